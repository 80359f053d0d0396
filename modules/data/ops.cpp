#include <algorithm>

#include "data/ops_internal.h"
#include "data/pipeline.h"
#include "data/readers.h"

namespace llmops::data {
namespace ops_detail {

Result<std::string> Params::str(const char* key, const std::string& def) const {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_string()) return invalid_argument(std::string("'") + key + "' must be a string");
  return it->get<std::string>();
}

Result<double> Params::num(const char* key, double def, double min, double max) const {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) return invalid_argument(std::string("'") + key + "' must be a number");
  double v = it->get<double>();
  if (v < min || v > max) {
    return invalid_argument(std::string("'") + key + "' must lie in [" + dump_json(min) + ", " + dump_json(max) + "], not " + dump_json(v));
  }
  return v;
}

Result<bool> Params::flag(const char* key, bool def) const {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) return invalid_argument(std::string("'") + key + "' must be true or false");
  return it->get<bool>();
}

namespace {
Json cut(const Json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.size() > 400) {
      size_t n = 400;
      while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
      s = s.substr(0, n) + "…";
    }
    return s;
  }
  if (v.is_object() || v.is_array()) {
    Json out = v.is_object() ? Json::object() : Json::array();
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (v.is_object()) out[it.key()] = cut(*it);
      else out.push_back(cut(*it));
    }
    return out;
  }
  return v;
}
}  // namespace

void OpReport::sample(const std::string& reason, const Json& before, const Json* after) {
  if (sampled_[reason]++ >= kSamples) return;
  Json s = {{"reason", reason}, {"before", cut(before)}};
  if (after != nullptr) s["after"] = cut(*after);
  samples.push_back(std::move(s));
}

void OpReport::sample_lines(const std::string& reason, std::string_view before, const std::string* after) {
  auto it = sampled_.find(reason);
  if (it != sampled_.end() && it->second >= kSamples) return;
  auto b = parse_json_bounded(before, 64);
  if (!b.ok()) return;
  if (after == nullptr) return sample(reason, *b, nullptr);
  auto a = parse_json_bounded(*after, 64);
  if (a.ok()) sample(reason, *b, &*a);
}

void OpReport::merge(const OpReport& o) {
  in += o.in;
  out += o.out;
  for (const auto& [k, n] : o.reasons) reasons[k] += n;
  for (const auto& smp : o.samples) {
    const std::string reason = smp.value("reason", "");
    if (sampled_[reason]++ < kSamples) samples.push_back(smp);
  }
}

Json OpReport::to_json() const {
  Json j = {{"records_in", in}, {"records_out", out}, {"by_reason", reasons}, {"samples", samples}};
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

namespace {
// Every string in the record, nested ones too.
void for_each_string(Json& v, const std::function<void(Json&)>& fn) {
  if (v.is_string()) fn(v);
  else if (v.is_object() || v.is_array()) {
    for (auto& c : v) for_each_string(c, fn);
  }
}

}  // namespace

Result<Record> Record::read(std::string_view line) {
  Record r;
  r.line_ = line;
  r.scanned_ok_ = scan_object(line, 64, &r.scan_);
  if (!r.scanned_ok_) {
    auto j = parse_json_bounded(line, 64);
    if (!j.ok()) return data_loss("a stored record is not JSON (damaged shard?): " + j.status().message());
    r.doc_ = std::move(*j);
  }
  return r;
}

Json& Record::json() {
  if (!doc_) doc_ = Json::parse(line_);  // scanned as valid JSON: cannot throw
  return *doc_;
}

std::optional<std::string> Record::text(const std::string& field) {
  if (scanned_ok_) {
    const ScannedField* f = scan_.find(field);
    if (f == nullptr) return std::nullopt;
    if (f->type == JsonType::kString) {
      std::string_view q = line_.substr(f->begin, f->end - f->begin);
      return f->escaped ? decode_json_string(q) : std::string(q.substr(1, q.size() - 2));
    }
    if (f->type != JsonType::kArray) return std::nullopt;
  }
  return record_text(json(), field);
}

std::optional<std::string> Record::rewrite(const std::string& field, const std::function<std::string(const std::string&)>& change) {
  bool flat = scanned_ok_ && !doc_;
  std::vector<const ScannedField*> targets;
  if (flat) {
    for (const auto& f : scan_.fields) {
      if (field == "*" ? (f.type == JsonType::kObject || f.type == JsonType::kArray) : (f.name == field && f.type != JsonType::kString)) {
        flat = false;
        break;
      }
      if (f.type == JsonType::kString && (field == "*" || f.name == field)) targets.push_back(&f);
    }
  }
  if (flat) {
    std::string out;
    size_t at = 0;
    bool changed = false;
    for (const ScannedField* f : targets) {
      std::string_view q = line_.substr(f->begin, f->end - f->begin);
      std::string text = f->escaped ? decode_json_string(q) : std::string(q.substr(1, q.size() - 2));
      std::string next = change(text);
      if (next == text) continue;
      if (!changed) out.reserve(line_.size() + 64);
      changed = true;
      out.append(line_.substr(at, f->begin - at));
      append_json_string(out, next);
      at = f->end;
    }
    if (!changed) return std::nullopt;
    out.append(line_.substr(at));
    return out;
  }
  Json& doc = json();
  bool changed = false;
  auto tracked = [&](const std::string& s) {
    std::string next = change(s);
    changed |= next != s;
    return next;
  };
  if (field == "*") for_each_string(doc, [&](Json& v) { v = tracked(v.get<std::string>()); });
  else set_record_text(doc, field, tracked);
  if (!changed) return std::nullopt;
  return dump_json(doc);
}

Status for_each_line(DatasetStore& store, const VersionRecord& in, JobHooks& hooks, const std::string& what,
                     const std::function<Status(std::string_view line)>& fn) {
  ShardReader reader(&store, in);
  uint64_t n = 0;
  while (true) {
    LLMOPS_ASSIGN_OR_RETURN(auto line, reader.next());
    if (!line) break;
    if ((++n & 1023) == 0) {
      if (hooks.cancelled && hooks.cancelled()) return cancelled("cancelled by a user; no version was made");
      if (hooks.stopping && hooks.stopping()) return aborted("the daemon stopped mid-way; no version was made, run it again");
      if (hooks.progress) {
        hooks.progress(static_cast<double>(reader.bytes_read()), static_cast<double>(in.bytes),
                       what + " " + in.ref() + ": " + std::to_string(n) + " of " + std::to_string(in.records) + " records");
      }
    }
    LLMOPS_RETURN_IF_ERROR(fn(*line));
  }
  return ok_status();
}

Status for_each_record(DatasetStore& store, const VersionRecord& in, JobHooks& hooks, const std::string& what,
                       const std::function<Status(Record& record)>& fn) {
  return for_each_line(store, in, hooks, what, [&](std::string_view line) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(Record rec, Record::read(line));
    return fn(rec);
  });
}

VersionRecord output_meta(const std::string& name, const std::vector<std::string>& parents, const std::string& op,
                          const Json& params, const JobHooks& hooks, const OpReport& report) {
  VersionRecord v;
  v.name = name;
  v.parents = parents;
  v.operation = op;
  v.params = params;
  v.created_by = hooks.caller;
  v.report = report.to_json();
  return v;
}

Result<std::string> output_name(const Json& params, const VersionRecord& in, const std::string& suffix) {
  LLMOPS_ASSIGN_OR_RETURN(std::string out, (Params{params}.str("output", "")));
  if (out.empty()) out = in.name + suffix;
  LLMOPS_RETURN_IF_ERROR(check_dataset_name(out));
  return out;
}

void set_record_text(Json& record, const std::string& field, const std::function<std::string(const std::string&)>& change) {
  auto it = record.find(field);
  if (it == record.end()) return;
  if (it->is_string()) {
    *it = change(it->get<std::string>());
  } else if (it->is_array()) {
    for (auto& m : *it) {
      if (m.is_object() && m.contains("content") && m["content"].is_string()) m["content"] = change(m["content"].get<std::string>());
    }
  }
}


Status check_steps(const Json& steps) {
  if (!steps.is_array() || steps.empty()) return invalid_argument("'steps' is a non-empty list such as [{\"op\": \"clean\"}, {\"op\": \"dedup\"}]");
  for (const auto& st : steps) {
    if (!st.is_object() || !st.contains("op") || !st["op"].is_string() || !is_step(st["op"].get<std::string>())) {
      return invalid_argument("each step is an object naming its 'op': clean, filter, pii, dedup or near-dedup");
    }
    LLMOPS_RETURN_IF_ERROR(make_step(st["op"].get<std::string>(), st).status());
  }
  return ok_status();
}

Result<std::vector<VersionRecord>> op_steps(DatasetStore& store, const std::string& op, const Json& p, const OpLimits& limits,
                                            JobHooks& hooks) {
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord in, store.resolve(p.at("input").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(std::string out, output_name(p, in));
  Json steps = op == "pipeline" ? p.at("steps") : Json::array({p});
  if (op != "pipeline") steps[0]["op"] = op;
  std::vector<std::unique_ptr<Step>> made;
  for (const auto& st : steps) {
    LLMOPS_ASSIGN_OR_RETURN(auto s, make_step(st.at("op").get<std::string>(), st));
    made.push_back(std::move(s));
  }
  ShardWriter w(&store, hooks.job_id, limits.shard_bytes);
  Pipeline pipe(std::move(made), &w, limits.threads);
  LLMOPS_RETURN_IF_ERROR(for_each_line(store, in, hooks, op, [&](std::string_view line) { return pipe.push(std::string(line)); }));
  LLMOPS_RETURN_IF_ERROR(pipe.finish());
  OpReport rep = pipe.reports().front();
  if (op == "pipeline") {
    // One version for the whole pass; the report has each step's.
    rep = OpReport();
    rep.in = in.records;
    rep.out = w.records();
    Json per_step = Json::array();
    for (size_t i = 0; i < pipe.steps().size(); ++i) {
      Json r = pipe.reports()[i].to_json();
      r["op"] = pipe.steps()[i]->name();
      per_step.push_back(r);
    }
    rep.extra["steps"] = per_step;
  }
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord v, w.commit(output_meta(out, {in.ref()}, op, p, hooks, rep)));
  return std::vector<VersionRecord>{std::move(v)};
}

}  // namespace ops_detail

using namespace ops_detail;

const std::vector<std::string>& op_names() {
  static const std::vector<std::string> kOps = {"import", "clean", "filter", "dedup", "near-dedup", "pii",
                                                "schema", "decontaminate", "split", "map", "pipeline"};
  return kOps;
}

Status validate_op(DatasetStore& store, const std::string& op, const Json& params) {
  if (!params.is_object()) return invalid_argument("params must be a JSON object");
  if (std::find(op_names().begin(), op_names().end(), op) == op_names().end()) {
    return invalid_argument("unknown data operation '" + op + "'");
  }
  if (op == "import") {
    LLMOPS_ASSIGN_OR_RETURN(std::string name, (Params{params}.str("name", "")));
    if (name.empty()) return invalid_argument("an import needs a dataset name (--name NAME)");
    LLMOPS_RETURN_IF_ERROR(check_dataset_name(name));
    const bool paths = params.contains("paths") && params["paths"].is_array() && !params["paths"].empty();
    const bool uploads = params.contains("uploads") && params["uploads"].is_array() && !params["uploads"].empty();
    if (!paths && !uploads) return invalid_argument("an import needs at least one path (files or directories on the server) or upload");
    if (paths) {
      std::vector<std::string> list;
      for (const auto& pth : params["paths"]) {
        if (!pth.is_string() || pth.get<std::string>().empty() || pth.get<std::string>()[0] != '/') {
          return invalid_argument("import paths are absolute paths on the server");
        }
        list.push_back(pth.get<std::string>());
      }
      // Missing files and unknown formats are a 4xx now rather than a failed job later.
      ImportOptions opt;
      LLMOPS_ASSIGN_OR_RETURN(opt.format, (Params{params}.str("format", "")));
      ImportReport scratch;
      LLMOPS_ASSIGN_OR_RETURN(auto files, expand_inputs(list, opt, scratch));
      if (files.empty() && !uploads) return invalid_argument("no file with a known format (.jsonl .json .csv .tsv .txt .md, maybe .gz/.zst) under the given paths");
    }
    if (params.contains("steps")) LLMOPS_RETURN_IF_ERROR(check_steps(params["steps"]));
    return ok_status();
  }
  if (!params.contains("input") || !params["input"].is_string()) return invalid_argument("'input' (a dataset NAME or NAME@VERSION) is required");
  LLMOPS_RETURN_IF_ERROR(store.resolve(params["input"].get<std::string>()).status());
  if (params.contains("output")) {
    if (!params["output"].is_string()) return invalid_argument("'output' must be a dataset name");
    LLMOPS_RETURN_IF_ERROR(check_dataset_name(params["output"].get<std::string>()));
  }
  if (op == "decontaminate") {
    if (!params.contains("eval") || !params["eval"].is_string()) return invalid_argument("'eval' (the evaluation dataset) is required");
    LLMOPS_RETURN_IF_ERROR(store.resolve(params["eval"].get<std::string>()).status());
  }
  if (op == "pipeline") LLMOPS_RETURN_IF_ERROR(check_steps(params.contains("steps") ? params["steps"] : Json()));
  if (is_step(op)) LLMOPS_RETURN_IF_ERROR(make_step(op, params).status());  // each step checks its own parameters
  if (op == "map") {
    LLMOPS_ASSIGN_OR_RETURN(std::string to, (Params{params}.str("to", "")));
    if (to != "text" && to != "completion" && to != "chat") return invalid_argument("'to' is text, completion or chat");
  }
  return ok_status();
}

Result<std::vector<VersionRecord>> run_op(DatasetStore& store, const std::string& op, const Json& params, const OpLimits& limits,
                                          JobHooks& hooks) {
  LLMOPS_RETURN_IF_ERROR(validate_op(store, op, params));
  try {
    if (op == "import") return op_import(store, params, limits, hooks);
    if (is_step(op) || op == "pipeline") return op_steps(store, op, params, limits, hooks);
    if (op == "schema") return op_schema(store, params, limits, hooks);
    if (op == "decontaminate") return op_decontaminate(store, params, limits, hooks);
    if (op == "split") return op_split(store, params, limits, hooks);
    return op_map(store, params, limits, hooks);
  } catch (const Json::exception& e) {
    return invalid_argument(std::string("bad parameters for ") + op + ": " + e.what());
  }
}

}  // namespace llmops::data

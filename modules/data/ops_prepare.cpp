// Import, and the operations that prepare data for training and evaluation: schema checks with
// a quarantine, decontamination against an evaluation set, the deterministic split and the
// mapping into training examples.
#include <algorithm>
#include <unordered_set>

#include "data/ops_internal.h"
#include "data/pipeline.h"
#include "data/readers.h"
#include "data/text.h"

namespace llmops::data::ops_detail {

Result<std::vector<VersionRecord>> op_import(DatasetStore& store, const Json& p, const OpLimits& limits, JobHooks& hooks) {
  Params P{p};
  ImportOptions opt;
  opt.max_record_bytes = limits.max_record_bytes;
  LLMOPS_ASSIGN_OR_RETURN(std::string name, P.str("name", ""));
  LLMOPS_ASSIGN_OR_RETURN(opt.format, P.str("format", ""));
  LLMOPS_ASSIGN_OR_RETURN(opt.split, P.str("split", "file"));
  LLMOPS_ASSIGN_OR_RETURN(opt.text_field, P.str("text_field", "text"));
  LLMOPS_ASSIGN_OR_RETURN(opt.strict, P.flag("strict", false));
  LLMOPS_ASSIGN_OR_RETURN(std::string utf8, P.str("invalid_utf8", "repair"));
  if (utf8 != "repair" && utf8 != "drop") return invalid_argument("'invalid_utf8' is repair or drop");
  if (opt.split != "file" && opt.split != "line" && opt.split != "paragraph") return invalid_argument("'split' is file, line or paragraph");
  opt.drop_invalid_utf8 = utf8 == "drop";

  // Uploads are blobs the import owns from here on: released whatever the outcome.
  struct Upload {
    std::string hex, display;
  };
  std::vector<Upload> uploads;
  if (p.contains("uploads")) {
    for (const auto& u : p["uploads"]) uploads.push_back({u.at("blob").get<std::string>(), u.value("name", u.at("blob").get<std::string>())});
  }
  struct Release {
    std::vector<Upload>& list;
    JobHooks& hooks;
    ~Release() {
      for (const auto& u : list) if (hooks.release_upload) hooks.release_upload(u.hex);
    }
  } release{uploads, hooks};

  ImportReport report;
  std::vector<std::string> paths;
  if (p.contains("paths")) paths = p["paths"].get<std::vector<std::string>>();
  LLMOPS_ASSIGN_OR_RETURN(std::vector<std::string> files, expand_inputs(paths, opt, report));
  struct Input {
    std::string path, display, format;
  };
  std::vector<Input> inputs;
  uint64_t total = 0;
  for (const auto& f : files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(f, ec);
    if (!ec) total += size;  // a FIFO has none
    inputs.push_back({f, f, opt.format.empty() ? format_from_name(f) : opt.format});
  }
  for (const auto& u : uploads) {
    LLMOPS_ASSIGN_OR_RETURN(std::string path, store.blob_path(u.hex));
    std::string fmt = opt.format.empty() ? format_from_name(u.display) : opt.format;
    if (fmt.empty()) return invalid_argument(u.display + ": cannot tell the format from the name; add --format jsonl|json|csv|tsv|text|markdown");
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec) total += size;
    inputs.push_back({path, u.display, fmt});
  }
  if (inputs.empty()) return invalid_argument("nothing to import: no file with a known format under the given paths");

  ShardWriter w(&store, hooks.job_id, limits.shard_bytes);
  // With "steps", the records go through them on the way in: one pass for import + clean +
  // dedup and the like.
  std::unique_ptr<Pipeline> pipe;
  if (p.contains("steps")) {
    LLMOPS_RETURN_IF_ERROR(check_steps(p["steps"]));
    std::vector<std::unique_ptr<Step>> steps;
    for (const auto& st : p["steps"]) {
      LLMOPS_ASSIGN_OR_RETURN(auto made, make_step(st.at("op").get<std::string>(), st));
      steps.push_back(std::move(made));
    }
    pipe = std::make_unique<Pipeline>(std::move(steps), &w, limits.threads);
  }
  uint64_t done_before = 0, n = 0;
  for (const auto& in : inputs) {
    LLMOPS_ASSIGN_OR_RETURN(auto src, ByteSource::open(in.path));
    ByteSource* s = src.get();
    auto tick = [&]() -> Status {
      if ((++n & 1023) == 0) {
        if (hooks.cancelled && hooks.cancelled()) return cancelled("cancelled by a user; no version was made");
        if (hooks.stopping && hooks.stopping()) return aborted("the daemon stopped mid-import; no version was made, run it again");
        if (hooks.progress) {
          hooks.progress(static_cast<double>(done_before + s->compressed_bytes_read()), static_cast<double>(total),
                         "importing " + in.display + ": " + std::to_string(n) + " records");
        }
      }
      return ok_status();
    };
    RecordSink sink = [&](Json&& rec) -> Status {
      LLMOPS_RETURN_IF_ERROR(tick());
      if (pipe) return pipe->push(dump_json(rec));
      return w.add(rec);
    };
    RawRecordSink raw = [&](std::string_view line, const ScannedObject& scanned) -> Status {
      LLMOPS_RETURN_IF_ERROR(tick());
      if (pipe) return pipe->push(std::string(line));
      return w.add_line(line, &scanned);
    };
    LLMOPS_RETURN_IF_ERROR(read_records(*src, in.format, in.display, opt, sink, report, &raw));
    done_before += src->compressed_bytes_read();
  }
  Json step_reports = Json::array();
  if (pipe) {
    LLMOPS_RETURN_IF_ERROR(pipe->finish());
    for (size_t i = 0; i < pipe->steps().size(); ++i) {
      Json r = pipe->reports()[i].to_json();
      r["op"] = pipe->steps()[i]->name();
      step_reports.push_back(r);
    }
  }
  if (w.records() == 0 && !pipe) {
    return invalid_argument("no records could be read (" + std::to_string(report.skipped) + " skipped; first reason: " +
                            (report.issues.empty() ? std::string("none") : report.issues[0].reason) + "); no version was made");
  }
  VersionRecord meta;
  meta.name = name;
  meta.operation = "import";
  meta.params = p;
  meta.created_by = hooks.caller;
  meta.report = report.to_json();
  if (pipe) {
    meta.report["steps"] = step_reports;
    meta.report["records_out"] = w.records();
  }
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord v, w.commit(std::move(meta)));
  return std::vector<VersionRecord>{std::move(v)};
}

Result<std::vector<VersionRecord>> op_schema(DatasetStore& store, const Json& p, const OpLimits& limits, JobHooks& hooks) {
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord in, store.resolve(p.at("input").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(std::string out, output_name(p, in));
  std::vector<std::string> required;
  if (p.contains("required")) required = p["required"].get<std::vector<std::string>>();
  std::map<std::string, std::string> types;
  if (p.contains("types")) types = p["types"].get<std::map<std::string, std::string>>();
  static const std::vector<std::string> kTypes = {"string", "number", "integer", "boolean", "object", "array"};
  for (const auto& [f, t] : types) {
    if (std::find(kTypes.begin(), kTypes.end(), t) == kTypes.end()) {
      return invalid_argument("type of '" + f + "' must be one of string, number, integer, boolean, object, array; not '" + t + "'");
    }
  }
  if (required.empty() && types.empty()) return invalid_argument("a schema check needs 'required' fields or field 'types'");
  auto type_ok = [](const Json& v, const std::string& t) {
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.is_number_integer() || v.is_number_unsigned();
    if (t == "boolean") return v.is_boolean();
    if (t == "object") return v.is_object();
    return v.is_array();
  };
  OpReport rep;
  uint64_t quarantined = 0;
  ShardWriter good(&store, hooks.job_id, limits.shard_bytes);
  ShardWriter bad(&store, hooks.job_id, limits.shard_bytes);
  LLMOPS_RETURN_IF_ERROR(for_each_record(store, in, hooks, "checking", [&](Record& r) -> Status {
    ++rep.in;
    Json& rec = r.json();
    std::string why;
    for (const auto& f : required) {
      auto it = rec.find(f);
      if (it == rec.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty())) {
        why = "missing_" + f;
        break;
      }
    }
    if (why.empty()) {
      for (const auto& [f, t] : types) {
        auto it = rec.find(f);
        if (it != rec.end() && !it->is_null() && !type_ok(*it, t)) {
          why = "wrong_type_" + f;
          break;
        }
      }
    }
    if (why.empty()) {
      ++rep.out;
      return good.add_line(r.line(), r.scanned());
    }
    rep.count(why);
    rep.sample(why, rec, nullptr);
    ++quarantined;
    rec["_quarantine_reason"] = why;
    return bad.add(rec);
  }));
  rep.extra["quarantined"] = quarantined;
  std::vector<VersionRecord> made;
  if (quarantined > 0) {
    OpReport qrep;
    qrep.in = rep.in;
    qrep.out = quarantined;
    qrep.reasons = rep.reasons;
    LLMOPS_ASSIGN_OR_RETURN(std::string qname, output_name(Json{{"output", out + ".quarantine"}}, in));
    LLMOPS_ASSIGN_OR_RETURN(VersionRecord q, bad.commit(output_meta(qname, {in.ref()}, "schema-quarantine", p, hooks, qrep)));
    rep.extra["quarantine_version"] = q.ref();
    made.push_back(std::move(q));
  }
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord v, good.commit(output_meta(out, {in.ref()}, "schema", p, hooks, rep)));
  made.insert(made.begin(), std::move(v));
  return made;
}

namespace {

// Hashes of the word n-grams of a dedup key.
void ngram_hashes(std::string_view key, size_t n, const std::function<void(uint64_t)>& fn) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < key.size(); ++i) {
    if (key[i] != ' ' && (i == 0 || key[i - 1] == ' ')) starts.push_back(i);
  }
  for (size_t k = 0; k + n <= starts.size(); ++k) {
    size_t end = k + n < starts.size() ? starts[k + n] - 1 : key.size();
    fn(hash64(key.substr(starts[k], end - starts[k]), 0xdec0));
  }
}

}  // namespace

Result<std::vector<VersionRecord>> op_decontaminate(DatasetStore& store, const Json& p, const OpLimits& limits, JobHooks& hooks) {
  Params P{p};
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord in, store.resolve(p.at("input").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord eval, store.resolve(p.at("eval").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(std::string field, P.str("field", "text"));
  LLMOPS_ASSIGN_OR_RETURN(std::string eval_field, P.str("eval_field", field));
  LLMOPS_ASSIGN_OR_RETURN(double ngram, P.num("ngram", 13, 3, 200));
  LLMOPS_ASSIGN_OR_RETURN(std::string out, output_name(p, in));
  const size_t n = static_cast<size_t>(ngram);
  std::unordered_set<uint64_t> eval_grams;
  uint64_t eval_short = 0;
  LLMOPS_RETURN_IF_ERROR(for_each_record(store, eval, hooks, "reading evaluation set", [&](Record& rec) -> Status {
    auto text = rec.text(eval_field);
    if (!text) return ok_status();
    size_t before = eval_grams.size();
    ngram_hashes(dedup_key(*text), n, [&](uint64_t h) { eval_grams.insert(h); });
    if (eval_grams.size() == before) ++eval_short;
    return ok_status();
  }));
  OpReport rep;
  ShardWriter w(&store, hooks.job_id, limits.shard_bytes);
  LLMOPS_RETURN_IF_ERROR(for_each_record(store, in, hooks, "decontaminating", [&](Record& rec) -> Status {
    ++rep.in;
    auto text = rec.text(field);
    bool hit = false;
    if (text) ngram_hashes(dedup_key(*text), n, [&](uint64_t h) { hit = hit || eval_grams.count(h) != 0; });
    if (hit) {
      rep.count("dropped_shares_ngram_with_eval");
      rep.sample_lines("dropped_shares_ngram_with_eval", rec.line(), nullptr);
      return ok_status();
    }
    ++rep.out;
    return w.add_line(rec.line(), rec.scanned());
  }));
  rep.extra["eval"] = eval.ref();
  rep.extra["eval_ngrams"] = eval_grams.size();
  rep.extra["eval_records_shorter_than_ngram"] = eval_short;
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord v, w.commit(output_meta(out, {in.ref(), eval.ref()}, "decontaminate", p, hooks, rep)));
  return std::vector<VersionRecord>{std::move(v)};
}

Result<std::vector<VersionRecord>> op_split(DatasetStore& store, const Json& p, const OpLimits& limits, JobHooks& hooks) {
  Params P{p};
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord in, store.resolve(p.at("input").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(double train, P.num("train", 0.8, 0, 1));
  LLMOPS_ASSIGN_OR_RETURN(double validation, P.num("validation", 0.1, 0, 1));
  LLMOPS_ASSIGN_OR_RETURN(double test, P.num("test", 0.1, 0, 1));
  LLMOPS_ASSIGN_OR_RETURN(std::string key_field, P.str("key_field", ""));
  LLMOPS_ASSIGN_OR_RETURN(std::string seed, P.str("seed", ""));
  LLMOPS_ASSIGN_OR_RETURN(std::string base, output_name(p, in));
  const double sum = train + validation + test;
  if (sum < 0.999 || sum > 1.001) return invalid_argument("split ratios must add up to 1 (train + validation + test = " + dump_json(sum) + ")");
  struct Part {
    const char* name;
    double upto;
    std::unique_ptr<ShardWriter> w;
    OpReport rep;
  };
  Part parts[3] = {{"train", train, nullptr, {}}, {"validation", train + validation, nullptr, {}}, {"test", 2.0, nullptr, {}}};
  for (auto& part : parts) part.w = std::make_unique<ShardWriter>(&store, hooks.job_id, limits.shard_bytes);
  const uint64_t salt = hash64(seed, 0x5b117);
  LLMOPS_RETURN_IF_ERROR(for_each_record(store, in, hooks, "splitting", [&](Record& rec) -> Status {
    const std::string_view line = rec.line();
    // The record's content (or one field's) picks its part: the same record always lands in
    // the same part, whatever else the dataset holds and in whatever order.
    std::string key;
    if (!key_field.empty()) {
      const Json& doc = rec.json();
      auto it = doc.find(key_field);
      key = it == doc.end() ? std::string(line) : (it->is_string() ? it->get<std::string>() : dump_json(*it));
    }
    const uint64_t h = hash64(key_field.empty() ? line : std::string_view(key), salt);
    const double u = static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
    for (auto& part : parts) {
      if (u < part.upto) {
        ++part.rep.in;
        ++part.rep.out;
        return part.w->add_line(line, rec.scanned());
      }
    }
    return ok_status();
  }));
  std::vector<VersionRecord> made;
  Json counts = Json::object();
  for (auto& part : parts) counts[part.name] = part.rep.out;
  for (auto& part : parts) {
    if (part.w->records() == 0) continue;
    part.rep.in = in.records;
    part.rep.extra["split"] = counts;
    LLMOPS_ASSIGN_OR_RETURN(std::string name, output_name(Json{{"output", base + "." + part.name}}, in));
    LLMOPS_ASSIGN_OR_RETURN(VersionRecord v, part.w->commit(output_meta(name, {in.ref()}, "split", p, hooks, part.rep)));
    made.push_back(std::move(v));
  }
  if (made.empty()) return invalid_argument(in.ref() + " is empty: nothing to split");
  return made;
}

Result<std::vector<VersionRecord>> op_map(DatasetStore& store, const Json& p, const OpLimits& limits, JobHooks& hooks) {
  Params P{p};
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord in, store.resolve(p.at("input").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(std::string to, P.str("to", ""));
  LLMOPS_ASSIGN_OR_RETURN(std::string out, output_name(p, in, ".examples"));
  std::map<std::string, std::string> tmpl;  // output field → template
  const char* keys[] = {"text", "prompt", "completion", "system", "user", "assistant"};
  for (const char* k : keys) {
    LLMOPS_ASSIGN_OR_RETURN(std::string t, P.str(k, ""));
    if (!t.empty()) tmpl[k] = t;
  }
  auto need = [&](std::initializer_list<const char*> ks) -> Status {
    for (const char* k : ks) {
      if (!tmpl.count(k)) return invalid_argument(std::string("mapping to '") + to + "' needs a '" + k + "' template such as \"{question}\"");
    }
    return ok_status();
  };
  if (to == "text") LLMOPS_RETURN_IF_ERROR(need({"text"}));
  if (to == "completion") LLMOPS_RETURN_IF_ERROR(need({"prompt", "completion"}));
  if (to == "chat") LLMOPS_RETURN_IF_ERROR(need({"user", "assistant"}));
  OpReport rep;
  ShardWriter w(&store, hooks.job_id, limits.shard_bytes);
  LLMOPS_RETURN_IF_ERROR(for_each_record(store, in, hooks, "mapping", [&](Record& r) -> Status {
    ++rep.in;
    const Json& rec = r.json();
    std::map<std::string, std::string> filled;
    for (const auto& [k, t] : tmpl) {
      auto v = fill_template(t, rec);
      if (!v.ok()) {
        if (v.status().code() != Code::kNotFound) return v.status();
        const std::string why = "skipped_missing_" + v.status().message();
        rep.count(why);
        rep.sample(why, rec, nullptr);
        return ok_status();
      }
      filled[k] = std::move(*v);
    }
    Json ex;
    if (to == "text") {
      ex = {{"text", filled["text"]}};
    } else if (to == "completion") {
      ex = {{"prompt", filled["prompt"]}, {"completion", filled["completion"]}};
    } else {
      Json msgs = Json::array();
      if (filled.count("system")) msgs.push_back({{"role", "system"}, {"content", filled["system"]}});
      msgs.push_back({{"role", "user"}, {"content", filled["user"]}});
      msgs.push_back({{"role", "assistant"}, {"content", filled["assistant"]}});
      ex = {{"messages", msgs}};
    }
    if (rep.out < OpReport::kSamples) rep.sample("mapped", rec, &ex);
    ++rep.out;
    return w.add(ex);
  }));
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord v, w.commit(output_meta(out, {in.ref()}, "map", p, hooks, rep)));
  return std::vector<VersionRecord>{std::move(v)};
}

}  // namespace llmops::data::ops_detail

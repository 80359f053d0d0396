#include <algorithm>
#include <filesystem>
#include <unordered_set>

#include "data/lang.h"
#include "data/minhash.h"
#include "data/ops_internal.h"
#include "data/pii.h"
#include "data/readers.h"
#include "data/text.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

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

Status for_each_record(DatasetStore& store, const VersionRecord& in, JobHooks& hooks, const std::string& what,
                       const std::function<Status(Record& record)>& fn) {
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
    LLMOPS_ASSIGN_OR_RETURN(Record rec, Record::read(*line));
    LLMOPS_RETURN_IF_ERROR(fn(rec));
  }
  return ok_status();
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

namespace {

Result<std::vector<VersionRecord>> one(Result<VersionRecord> v) {
  if (!v.ok()) return v.status();
  return std::vector<VersionRecord>{std::move(*v)};
}

Result<NormalForm> normal_form(const std::string& s) {
  if (s == "nfc") return NormalForm::kNfc;
  if (s == "nfkc") return NormalForm::kNfkc;
  if (s == "none") return NormalForm::kNone;
  return invalid_argument("'normalize' is nfc, nfkc or none, not '" + s + "'");
}

Result<std::vector<VersionRecord>> op_clean(DatasetStore& store, const Json& p, const OpLimits& limits, JobHooks& hooks) {
  Params P{p};
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord in, store.resolve(p.at("input").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(std::string field, P.str("field", "*"));
  LLMOPS_ASSIGN_OR_RETURN(std::string nf, P.str("normalize", "nfc"));
  LLMOPS_ASSIGN_OR_RETURN(NormalForm form, normal_form(nf));
  LLMOPS_ASSIGN_OR_RETURN(bool whitespace, P.flag("whitespace", true));
  LLMOPS_ASSIGN_OR_RETURN(std::string utf8, P.str("invalid_utf8", "repair"));
  LLMOPS_ASSIGN_OR_RETURN(bool drop_empty, P.flag("drop_empty", true));
  LLMOPS_ASSIGN_OR_RETURN(std::string out, output_name(p, in));
  OpReport rep;
  ShardWriter w(&store, hooks.job_id, limits.shard_bytes);
  LLMOPS_RETURN_IF_ERROR(for_each_record(store, in, hooks, "cleaning", [&](Record& rec) -> Status {
    ++rep.in;
    bool replaced = false, normalized = false, spaced = false;
    size_t controls = 0;
    auto fix = [&](const std::string& s) {
      // Stored text is valid UTF-8; what an import had to repair shows as U+FFFD.
      replaced |= s.find("\xEF\xBF\xBD") != std::string::npos;
      std::string n = normalize(s, form);
      normalized |= n != s;
      if (!whitespace) return n;
      WhitespaceReport wr;
      std::string c = clean_whitespace(n, &wr);
      controls += wr.control_removed;
      spaced |= wr.changed;
      return c;
    };
    std::optional<std::string> changed = rec.rewrite(field, fix);
    if (replaced && utf8 == "drop") {
      rep.count("dropped_invalid_utf8");
      rep.sample_lines("dropped_invalid_utf8", rec.line(), nullptr);
      return ok_status();
    }
    if (drop_empty) {
      std::optional<std::string> text;
      if (changed) {
        LLMOPS_ASSIGN_OR_RETURN(Record after, Record::read(*changed));
        text = after.text(field == "*" ? "text" : field);
      } else {
        text = rec.text(field == "*" ? "text" : field);
      }
      if (text && text->empty()) {
        rep.count("dropped_empty");
        rep.sample_lines("dropped_empty", rec.line(), nullptr);
        return ok_status();
      }
    }
    if (replaced) rep.count("has_replacement_characters");
    if (normalized) rep.count("normalized"), rep.sample_lines("normalized", rec.line(), &*changed);
    if (controls > 0) rep.count("control_characters_removed", controls);
    if (spaced) {
      rep.count("whitespace_changed");
      rep.sample_lines("whitespace_changed", rec.line(), &*changed);
    }
    ++rep.out;
    return changed ? w.add_line(*changed) : w.add_line(rec.line(), rec.scanned());
  }));
  return one(w.commit(output_meta(out, {in.ref()}, "clean", p, hooks, rep)));
}

// A tokenizer from a model on the server: a GGUF file or a Hugging Face directory.
Result<engine::Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return engine::Tokenizer::from_hf_dir(path);
  auto g = engine::GgufFile::open(path);
  if (!g.ok()) return invalid_argument("'tokenizer' must be a GGUF model or a Hugging Face directory with tokenizer.json: " + g.status().message());
  return engine::Tokenizer::from_gguf(**g);
}

Result<std::vector<VersionRecord>> op_filter(DatasetStore& store, const Json& p, const OpLimits& limits, JobHooks& hooks) {
  Params P{p};
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord in, store.resolve(p.at("input").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(std::string field, P.str("field", "text"));
  LLMOPS_ASSIGN_OR_RETURN(double min_chars, P.num("min_chars", 0, 0, 1e12));
  LLMOPS_ASSIGN_OR_RETURN(double max_chars, P.num("max_chars", 1e12, 0, 1e12));
  LLMOPS_ASSIGN_OR_RETURN(double min_tokens, P.num("min_tokens", 0, 0, 1e12));
  LLMOPS_ASSIGN_OR_RETURN(double max_tokens, P.num("max_tokens", 1e12, 0, 1e12));
  LLMOPS_ASSIGN_OR_RETURN(std::string tok_path, P.str("tokenizer", ""));
  LLMOPS_ASSIGN_OR_RETURN(double min_percent, P.num("min_language_percent", 0, 0, 100));
  LLMOPS_ASSIGN_OR_RETURN(bool tag, P.flag("tag_language", false));
  LLMOPS_ASSIGN_OR_RETURN(std::string out, output_name(p, in));
  std::vector<std::string> langs;
  if (p.contains("languages")) langs = p["languages"].get<std::vector<std::string>>();
  std::optional<engine::Tokenizer> tok;
  if (!tok_path.empty()) {
    LLMOPS_ASSIGN_OR_RETURN(engine::Tokenizer t, load_tokenizer(tok_path));
    tok.emplace(std::move(t));
  }
  const bool want_lang = !langs.empty() || tag;
  OpReport rep;
  std::map<std::string, uint64_t> lang_mix;
  ShardWriter w(&store, hooks.job_id, limits.shard_bytes);
  LLMOPS_RETURN_IF_ERROR(for_each_record(store, in, hooks, "filtering", [&](Record& rec) -> Status {
    ++rep.in;
    auto text = rec.text(field);
    auto drop = [&](const char* why) {
      rep.count(why);
      rep.sample_lines(why, rec.line(), nullptr);
      return ok_status();
    };
    if (!text) return drop("dropped_no_text");
    const double chars = static_cast<double>(utf8_length(*text));
    if (chars < min_chars) return drop("dropped_too_few_chars");
    if (chars > max_chars) return drop("dropped_too_many_chars");
    if (tok) {
      const double n = static_cast<double>(tok->encode(*text, false).size());
      if (n < min_tokens) return drop("dropped_too_few_tokens");
      if (n > max_tokens) return drop("dropped_too_many_tokens");
    }
    if (want_lang) {
      LanguageGuess g = detect_language(*text);
      ++lang_mix[g.code];
      if (!langs.empty() && (std::find(langs.begin(), langs.end(), g.code) == langs.end() || g.percent < min_percent)) {
        rep.count("dropped_language");
        rep.sample("dropped_language", Json{{"language", g.code}, {"percent", g.percent}, {"record", rec.json()}}, nullptr);
        return ok_status();
      }
      if (tag) {
        rec.json()["language"] = g.code;
        ++rep.out;
        return w.add(rec.json());
      }
    }
    ++rep.out;
    return w.add_line(rec.line(), rec.scanned());
  }));
  if (want_lang) rep.extra["languages_seen"] = lang_mix;
  return one(w.commit(output_meta(out, {in.ref()}, "filter", p, hooks, rep)));
}

struct Hash128 {
  uint64_t a, b;
  bool operator==(const Hash128& o) const { return a == o.a && b == o.b; }
};
struct Hash128Hasher {
  size_t operator()(const Hash128& h) const { return static_cast<size_t>(h.a); }
};

Result<std::vector<VersionRecord>> op_dedup(DatasetStore& store, const Json& p, const OpLimits& limits, JobHooks& hooks) {
  Params P{p};
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord in, store.resolve(p.at("input").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(std::string field, P.str("field", "text"));
  LLMOPS_ASSIGN_OR_RETURN(std::string out, output_name(p, in));
  std::unordered_set<Hash128, Hash128Hasher> seen;
  seen.reserve(static_cast<size_t>(in.records));
  OpReport rep;
  ShardWriter w(&store, hooks.job_id, limits.shard_bytes);
  LLMOPS_RETURN_IF_ERROR(for_each_record(store, in, hooks, "deduplicating", [&](Record& rec) -> Status {
    ++rep.in;
    auto text = rec.text(field);
    // Without the field, the whole record is the key: identical records are still duplicates.
    std::string key = text ? dedup_key(*text) : std::string(rec.line());
    if (!seen.insert({hash64(key, 1), hash64(key, 2)}).second) {
      rep.count("dropped_exact_duplicate");
      rep.sample_lines("dropped_exact_duplicate", rec.line(), nullptr);
      return ok_status();
    }
    ++rep.out;
    return w.add_line(rec.line(), rec.scanned());
  }));
  rep.extra["distinct"] = seen.size();
  return one(w.commit(output_meta(out, {in.ref()}, "dedup", p, hooks, rep)));
}

Result<std::vector<VersionRecord>> op_near_dedup(DatasetStore& store, const Json& p, const OpLimits& limits, JobHooks& hooks) {
  Params P{p};
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord in, store.resolve(p.at("input").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(std::string field, P.str("field", "text"));
  LLMOPS_ASSIGN_OR_RETURN(std::string out, output_name(p, in));
  MinHashParams mp;
  LLMOPS_ASSIGN_OR_RETURN(double shingle, P.num("shingle_words", 5, 1, 32));
  LLMOPS_ASSIGN_OR_RETURN(double perms, P.num("permutations", 128, 16, 1024));
  LLMOPS_ASSIGN_OR_RETURN(mp.threshold, P.num("threshold", 0.8, 0.05, 1.0));
  mp.shingle_words = static_cast<int>(shingle);
  mp.permutations = static_cast<int>(perms);
  NearDedup nd(mp);
  std::map<uint32_t, uint32_t> cluster_size;  // representative → near duplicates dropped
  OpReport rep;
  ShardWriter w(&store, hooks.job_id, limits.shard_bytes);
  LLMOPS_RETURN_IF_ERROR(for_each_record(store, in, hooks, "near-deduplicating", [&](Record& rec) -> Status {
    ++rep.in;
    auto text = rec.text(field);
    NearDedup::Verdict v = nd.add(text ? dedup_key(*text) : std::string());
    if (v.duplicate) {
      ++cluster_size[v.representative];
      rep.count("dropped_near_duplicate");
      if (rep.reasons["dropped_near_duplicate"] <= OpReport::kSamples) {
        rep.sample("dropped_near_duplicate", Json{{"similar_to_record", v.representative}, {"estimated_jaccard", v.similarity}, {"record", rec.json()}},
                   nullptr);
      }
      return ok_status();
    }
    ++rep.out;
    return w.add_line(rec.line(), rec.scanned());
  }));
  std::map<uint32_t, uint64_t> histogram;  // cluster size (with its representative) → clusters
  for (const auto& [rep_index, n] : cluster_size) ++histogram[n + 1];
  Json hist = Json::object();
  for (const auto& [size, n] : histogram) hist[std::to_string(size)] = n;
  rep.extra["clusters"] = cluster_size.size();
  rep.extra["cluster_sizes"] = hist;
  rep.extra["lsh"] = {{"bands", nd.shape().bands}, {"rows", nd.shape().rows}, {"permutations", mp.permutations},
                      {"shingle_words", mp.shingle_words}, {"threshold", mp.threshold}, {"memory_bytes", nd.memory_bytes()}};
  return one(w.commit(output_meta(out, {in.ref()}, "near-dedup", p, hooks, rep)));
}

Result<std::vector<VersionRecord>> op_pii(DatasetStore& store, const Json& p, const OpLimits& limits, JobHooks& hooks) {
  Params P{p};
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord in, store.resolve(p.at("input").get<std::string>()));
  LLMOPS_ASSIGN_OR_RETURN(std::string field, P.str("field", "*"));
  LLMOPS_ASSIGN_OR_RETURN(std::string out, output_name(p, in));
  PiiCounts counts{};
  OpReport rep;
  ShardWriter w(&store, hooks.job_id, limits.shard_bytes);
  LLMOPS_RETURN_IF_ERROR(for_each_record(store, in, hooks, "redacting", [&](Record& rec) -> Status {
    ++rep.in;
    ++rep.out;
    PiiCounts before = counts;
    std::optional<std::string> changed = rec.rewrite(field, [&](const std::string& s) { return redact_pii(s, &counts); });
    if (!changed) return w.add_line(rec.line(), rec.scanned());
    rep.count("records_redacted");
    for (size_t t = 0; t < kPiiTypes; ++t) {
      if (counts[t] != before[t]) rep.sample_lines(pii_name(static_cast<PiiType>(t)), rec.line(), &*changed);
    }
    return w.add_line(*changed);
  }));
  Json by_type = Json::object();
  for (size_t t = 0; t < kPiiTypes; ++t) by_type[pii_name(static_cast<PiiType>(t))] = counts[t];
  rep.extra["pii_by_type"] = by_type;
  return one(w.commit(output_meta(out, {in.ref()}, "pii", p, hooks, rep)));
}

}  // namespace
}  // namespace ops_detail

using namespace ops_detail;

const std::vector<std::string>& op_names() {
  static const std::vector<std::string> kOps = {"import", "clean", "filter", "dedup", "near-dedup", "pii",
                                                "schema", "decontaminate", "split", "map"};
  return kOps;
}

std::optional<std::string> record_text(const Json& record, const std::string& field) {
  auto it = record.find(field);
  if (it == record.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string joined;
    bool any = false;
    for (const auto& m : *it) {
      if (m.is_object() && m.contains("content") && m["content"].is_string()) {
        if (any) joined.push_back('\n');
        joined += m["content"].get<std::string>();
        any = true;
      }
    }
    if (any) return joined;
  }
  return std::nullopt;
}

Result<std::string> fill_template(const std::string& tmpl, const Json& record) {
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    char c = tmpl[i];
    if ((c == '{' || c == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    size_t close = tmpl.find('}', i);
    if (close == std::string::npos) return invalid_argument("template has a '{' without '}' (write {{ for a brace)");
    std::string field = tmpl.substr(i + 1, close - i - 1);
    auto it = record.find(field);
    if (it == record.end() || it->is_null()) return not_found(field);
    out += it->is_string() ? it->get<std::string>() : dump_json(*it);
    i = close;
  }
  return out;
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
  if (op == "filter" && params.contains("languages") &&
      (!params["languages"].is_array() || !std::all_of(params["languages"].begin(), params["languages"].end(), [](const Json& l) { return l.is_string(); }))) {
    return invalid_argument("'languages' is a list of language codes such as [\"en\", \"de\"]");
  }
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
    if (op == "clean") return op_clean(store, params, limits, hooks);
    if (op == "filter") return op_filter(store, params, limits, hooks);
    if (op == "dedup") return op_dedup(store, params, limits, hooks);
    if (op == "near-dedup") return op_near_dedup(store, params, limits, hooks);
    if (op == "pii") return op_pii(store, params, limits, hooks);
    if (op == "schema") return op_schema(store, params, limits, hooks);
    if (op == "decontaminate") return op_decontaminate(store, params, limits, hooks);
    if (op == "split") return op_split(store, params, limits, hooks);
    return op_map(store, params, limits, hooks);
  } catch (const Json::exception& e) {
    return invalid_argument(std::string("bad parameters for ") + op + ": " + e.what());
  }
}

}  // namespace llmops::data

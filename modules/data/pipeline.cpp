#include "data/pipeline.h"

#include <algorithm>
#include <filesystem>
#include <unordered_set>

#include "data/lang.h"
#include "data/pii.h"
#include "data/text.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace llmops::data::ops_detail {
namespace {

constexpr size_t kBatchRecords = 512;
constexpr size_t kBatchBytes = 1u << 20;

// ---- the steps -------------------------------------------------------------------------------

Result<NormalForm> normal_form(const std::string& s) {
  if (s == "nfc") return NormalForm::kNfc;
  if (s == "nfkc") return NormalForm::kNfkc;
  if (s == "none") return NormalForm::kNone;
  return invalid_argument("'normalize' is nfc, nfkc or none, not '" + s + "'");
}

class CleanStep : public Step {
 public:
  static Result<std::unique_ptr<Step>> make(const Json& p) {
    Params P{p};
    auto s = std::make_unique<CleanStep>();
    LLMOPS_ASSIGN_OR_RETURN(s->field_, P.str("field", "*"));
    LLMOPS_ASSIGN_OR_RETURN(std::string nf, P.str("normalize", "nfc"));
    LLMOPS_ASSIGN_OR_RETURN(s->form_, normal_form(nf));
    LLMOPS_ASSIGN_OR_RETURN(s->whitespace_, P.flag("whitespace", true));
    LLMOPS_ASSIGN_OR_RETURN(std::string utf8, P.str("invalid_utf8", "repair"));
    if (utf8 != "repair" && utf8 != "drop") return invalid_argument("'invalid_utf8' is repair or drop");
    s->drop_replaced_ = utf8 == "drop";
    LLMOPS_ASSIGN_OR_RETURN(s->drop_empty_, P.flag("drop_empty", true));
    return std::unique_ptr<Step>(std::move(s));
  }
  const char* name() const override { return "clean"; }
  Result<bool> transform(Record& rec, std::optional<std::string>* rewritten, OpReport& rep) override {
    ++rep.in;
    bool replaced = false, normalized = false, spaced = false;
    size_t controls = 0;
    auto fix = [&](const std::string& s) {
      // Stored text is valid UTF-8; what an import had to repair shows as U+FFFD.
      replaced |= s.find("\xEF\xBF\xBD") != std::string::npos;
      std::string n = normalize(s, form_);
      normalized |= n != s;
      if (!whitespace_) return n;
      WhitespaceReport wr;
      std::string c = clean_whitespace(n, &wr);
      controls += wr.control_removed;
      spaced |= wr.changed;
      return c;
    };
    std::optional<std::string> changed = rec.rewrite(field_, fix);
    if (replaced && drop_replaced_) {
      rep.count("dropped_invalid_utf8");
      rep.sample_lines("dropped_invalid_utf8", rec.line(), nullptr);
      return false;
    }
    if (drop_empty_) {
      const std::string f = field_ == "*" ? "text" : field_;
      std::optional<std::string> text;
      if (changed) {
        LLMOPS_ASSIGN_OR_RETURN(Record after, Record::read(*changed));
        text = after.text(f);
      } else {
        text = rec.text(f);
      }
      if (text && text->empty()) {
        rep.count("dropped_empty");
        rep.sample_lines("dropped_empty", rec.line(), nullptr);
        return false;
      }
    }
    if (replaced) rep.count("has_replacement_characters");
    if (normalized) rep.count("normalized"), rep.sample_lines("normalized", rec.line(), &*changed);
    if (controls > 0) rep.count("control_characters_removed", controls);
    if (spaced) rep.count("whitespace_changed"), rep.sample_lines("whitespace_changed", rec.line(), &*changed);
    ++rep.out;
    *rewritten = std::move(changed);
    return true;
  }

 private:
  std::string field_;
  NormalForm form_ = NormalForm::kNfc;
  bool whitespace_ = true, drop_replaced_ = false, drop_empty_ = true;
};


class FilterStep : public Step {
 public:
  static Result<std::unique_ptr<Step>> make(const Json& p) {
    Params P{p};
    auto s = std::make_unique<FilterStep>();
    LLMOPS_ASSIGN_OR_RETURN(s->field_, P.str("field", "text"));
    LLMOPS_ASSIGN_OR_RETURN(s->min_chars_, P.num("min_chars", 0, 0, 1e12));
    LLMOPS_ASSIGN_OR_RETURN(s->max_chars_, P.num("max_chars", 1e12, 0, 1e12));
    LLMOPS_ASSIGN_OR_RETURN(s->min_tokens_, P.num("min_tokens", 0, 0, 1e12));
    LLMOPS_ASSIGN_OR_RETURN(s->max_tokens_, P.num("max_tokens", 1e12, 0, 1e12));
    LLMOPS_ASSIGN_OR_RETURN(std::string tok_path, P.str("tokenizer", ""));
    LLMOPS_ASSIGN_OR_RETURN(s->min_percent_, P.num("min_language_percent", 0, 0, 100));
    LLMOPS_ASSIGN_OR_RETURN(s->tag_, P.flag("tag_language", false));
    if (p.contains("languages")) {
      if (!p["languages"].is_array()) return invalid_argument("'languages' is a list of language codes such as [\"en\", \"de\"]");
      for (const auto& l : p["languages"]) {
        if (!l.is_string()) return invalid_argument("'languages' is a list of language codes such as [\"en\", \"de\"]");
        s->langs_.push_back(l.get<std::string>());
      }
    }
    if (!tok_path.empty()) {
      LLMOPS_ASSIGN_OR_RETURN(engine::Tokenizer t, load_tokenizer(tok_path));
      s->tok_.emplace(std::move(t));
    } else if (s->min_tokens_ > 0 || s->max_tokens_ < 1e12) {
      return invalid_argument("token limits need --tokenizer (a GGUF model or Hugging Face directory on the server)");
    }
    return std::unique_ptr<Step>(std::move(s));
  }
  const char* name() const override { return "filter"; }
  Result<bool> transform(Record& rec, std::optional<std::string>* rewritten, OpReport& rep) override {
    ++rep.in;
    auto drop = [&](const char* why) {
      rep.count(why);
      rep.sample_lines(why, rec.line(), nullptr);
      return false;
    };
    auto text = rec.text(field_);
    if (!text) return drop("dropped_no_text");
    const double chars = static_cast<double>(utf8_length(*text));
    if (chars < min_chars_) return drop("dropped_too_few_chars");
    if (chars > max_chars_) return drop("dropped_too_many_chars");
    if (tok_) {
      const double n = static_cast<double>(tok_->encode(*text, false).size());
      if (n < min_tokens_) return drop("dropped_too_few_tokens");
      if (n > max_tokens_) return drop("dropped_too_many_tokens");
    }
    if (!langs_.empty() || tag_) {
      LanguageGuess g = detect_language(*text);
      rep.count("language_" + g.code);
      if (!langs_.empty() && (std::find(langs_.begin(), langs_.end(), g.code) == langs_.end() || g.percent < min_percent_)) {
        rep.count("dropped_language");
        if (rep.reasons["dropped_language"] <= OpReport::kSamples) {
          rep.sample("dropped_language", Json{{"language", g.code}, {"percent", g.percent}, {"record", rec.json()}}, nullptr);
        }
        return false;
      }
      if (tag_) {
        Json& doc = rec.json();
        doc["language"] = g.code;
        *rewritten = dump_json(doc);
      }
    }
    ++rep.out;
    return true;
  }
  void finish(OpReport& rep) override {
    // language_xx counters become one map.
    Json mix = Json::object();
    for (auto it = rep.reasons.begin(); it != rep.reasons.end();) {
      if (it->first.rfind("language_", 0) == 0) {
        mix[it->first.substr(9)] = it->second;
        it = rep.reasons.erase(it);
      } else {
        ++it;
      }
    }
    if (!mix.empty()) rep.extra["languages_seen"] = mix;
  }

 private:
  std::string field_;
  double min_chars_ = 0, max_chars_ = 0, min_tokens_ = 0, max_tokens_ = 0, min_percent_ = 0;
  bool tag_ = false;
  std::vector<std::string> langs_;
  std::optional<engine::Tokenizer> tok_;
};

class PiiStep : public Step {
 public:
  static Result<std::unique_ptr<Step>> make(const Json& p) {
    auto s = std::make_unique<PiiStep>();
    LLMOPS_ASSIGN_OR_RETURN(s->field_, (Params{p}.str("field", "*")));
    return std::unique_ptr<Step>(std::move(s));
  }
  const char* name() const override { return "pii"; }
  Result<bool> transform(Record& rec, std::optional<std::string>* rewritten, OpReport& rep) override {
    ++rep.in;
    ++rep.out;
    PiiCounts counts{};
    std::optional<std::string> changed = rec.rewrite(field_, [&](const std::string& s) { return redact_pii(s, &counts); });
    if (!changed) return true;
    rep.count("records_redacted");
    for (size_t t = 0; t < kPiiTypes; ++t) {
      if (counts[t] == 0) continue;
      rep.count(std::string("pii_") + pii_name(static_cast<PiiType>(t)), counts[t]);
      rep.sample_lines(pii_name(static_cast<PiiType>(t)), rec.line(), &*changed);
    }
    *rewritten = std::move(changed);
    return true;
  }
  void finish(OpReport& rep) override {
    Json by_type = Json::object();
    for (size_t t = 0; t < kPiiTypes; ++t) {
      const std::string key = std::string("pii_") + pii_name(static_cast<PiiType>(t));
      by_type[pii_name(static_cast<PiiType>(t))] = rep.reasons.count(key) ? rep.reasons[key] : 0;
      rep.reasons.erase(key);
    }
    rep.extra["pii_by_type"] = by_type;
  }

 private:
  std::string field_;
};

struct Hash128 {
  uint64_t a, b;
  bool operator==(const Hash128& o) const { return a == o.a && b == o.b; }
};
struct Hash128Hasher {
  size_t operator()(const Hash128& h) const { return static_cast<size_t>(h.a); }
};

class DedupStep : public Step {
 public:
  static Result<std::unique_ptr<Step>> make(const Json& p) {
    auto s = std::make_unique<DedupStep>();
    LLMOPS_ASSIGN_OR_RETURN(s->field_, (Params{p}.str("field", "text")));
    return std::unique_ptr<Step>(std::move(s));
  }
  const char* name() const override { return "dedup"; }
  bool stateful() const override { return true; }
  void prepare(Record& rec, Prepared& out) const override {
    auto text = rec.text(field_);
    // Without the field, the whole record is the key: identical records are still duplicates.
    const std::string key = text ? dedup_key(*text) : std::string(rec.line());
    out.a = hash64(key, 1);
    out.b = hash64(key, 2);
  }
  bool decide(Prepared& p, std::string_view line, OpReport& rep) override {
    ++rep.in;
    if (!seen_.insert({p.a, p.b}).second) {
      rep.count("dropped_exact_duplicate");
      rep.sample_lines("dropped_exact_duplicate", line, nullptr);
      return false;
    }
    ++rep.out;
    return true;
  }
  void finish(OpReport& rep) override { rep.extra["distinct"] = seen_.size(); }

 private:
  std::string field_;
  std::unordered_set<Hash128, Hash128Hasher> seen_;
};

class NearDedupStep : public Step {
 public:
  static Result<std::unique_ptr<Step>> make(const Json& p) {
    Params P{p};
    MinHashParams mp;
    std::string field;
    LLMOPS_ASSIGN_OR_RETURN(field, P.str("field", "text"));
    LLMOPS_ASSIGN_OR_RETURN(double shingle, P.num("shingle_words", 5, 1, 32));
    LLMOPS_ASSIGN_OR_RETURN(double perms, P.num("permutations", 128, 16, 1024));
    LLMOPS_ASSIGN_OR_RETURN(mp.threshold, P.num("threshold", 0.8, 0.05, 1.0));
    mp.shingle_words = static_cast<int>(shingle);
    mp.permutations = static_cast<int>(perms);
    return std::unique_ptr<Step>(new NearDedupStep(field, mp));
  }
  NearDedupStep(std::string field, const MinHashParams& mp) : field_(std::move(field)), params_(mp), nd_(mp) {}
  const char* name() const override { return "near-dedup"; }
  bool stateful() const override { return true; }
  void prepare(Record& rec, Prepared& out) const override {
    auto text = rec.text(field_);
    nd_.sketch(text ? dedup_key(*text) : std::string(), &out.sketch);
  }
  bool decide(Prepared& p, std::string_view line, OpReport& rep) override {
    ++rep.in;
    NearDedup::Verdict v = nd_.add(p.sketch);
    if (!v.duplicate) {
      ++rep.out;
      return true;
    }
    ++cluster_size_[v.representative];
    rep.count("dropped_near_duplicate");
    if (rep.reasons["dropped_near_duplicate"] <= OpReport::kSamples) {
      auto j = parse_json_bounded(line, 64);
      rep.sample("dropped_near_duplicate",
                 Json{{"similar_to_record", v.representative}, {"estimated_jaccard", v.similarity}, {"record", j.ok() ? *j : Json()}}, nullptr);
    }
    return false;
  }
  void finish(OpReport& rep) override {
    std::map<uint32_t, uint64_t> histogram;  // cluster size (with its representative) → clusters
    for (const auto& [r, n] : cluster_size_) ++histogram[n + 1];
    Json hist = Json::object();
    for (const auto& [size, n] : histogram) hist[std::to_string(size)] = n;
    rep.extra["clusters"] = cluster_size_.size();
    rep.extra["cluster_sizes"] = hist;
    rep.extra["lsh"] = {{"bands", nd_.shape().bands}, {"rows", nd_.shape().rows}, {"permutations", params_.permutations},
                        {"shingle_words", params_.shingle_words}, {"threshold", params_.threshold}, {"memory_bytes", nd_.memory_bytes()}};
  }

 private:
  std::string field_;
  MinHashParams params_;
  NearDedup nd_;
  std::map<uint32_t, uint32_t> cluster_size_;  // representative → near duplicates dropped
};

}  // namespace

bool is_step(const std::string& op) { return op == "clean" || op == "filter" || op == "pii" || op == "dedup" || op == "near-dedup"; }

Result<std::unique_ptr<Step>> make_step(const std::string& op, const Json& params) {
  if (op == "clean") return CleanStep::make(params);
  if (op == "filter") return FilterStep::make(params);
  if (op == "pii") return PiiStep::make(params);
  if (op == "dedup") return DedupStep::make(params);
  if (op == "near-dedup") return NearDedupStep::make(params);
  return invalid_argument("'" + op + "' is not a pipeline step (clean, filter, pii, dedup, near-dedup)");
}

// ---- the pipeline ----------------------------------------------------------------------------

Pipeline::Pipeline(std::vector<std::unique_ptr<Step>> steps, ShardWriter* out, int threads)
    : steps_(std::move(steps)), out_(out), reports_(steps_.size()), max_in_flight_(2 * static_cast<size_t>(std::max(threads, 1)) + 2) {
  bool seen_stateful = false;
  parallel_end_ = steps_.size();
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i]->stateful()) seen_stateful = true;
    else if (seen_stateful) {
      parallel_end_ = i;
      break;
    }
  }
  for (int t = 0; t < std::max(threads, 1); ++t) workers_.emplace_back([this] { work(); });
}

Pipeline::~Pipeline() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void Pipeline::work() {
  while (true) {
    Batch* b;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      b = queue_.front();
      queue_.pop_front();
    }
    process(*b);
    {
      std::lock_guard lock(mu_);
      b->done = true;
    }
    done_cv_.notify_all();
  }
}

void Pipeline::process(Batch& b) {
  b.reports.assign(parallel_end_, OpReport());
  size_t n_stateful = 0;
  for (size_t i = 0; i < parallel_end_; ++i) n_stateful += steps_[i]->stateful();
  for (Item& item : b.items) {
    item.prepared.resize(n_stateful);
    auto rec = Record::read(item.line);
    if (!rec.ok()) {
      b.status = rec.status();
      return;
    }
    size_t k = 0;
    for (size_t i = 0; i < parallel_end_ && item.dropped_at < 0; ++i) {
      Step& s = *steps_[i];
      if (s.stateful()) {
        s.prepare(*rec, item.prepared[k++]);
        continue;
      }
      std::optional<std::string> rewritten;
      auto keep = s.transform(*rec, &rewritten, b.reports[i]);
      if (!keep.ok()) {
        b.status = keep.status();
        return;
      }
      if (!*keep) {
        item.dropped_at = static_cast<int>(i);
        break;
      }
      if (rewritten) {
        item.line = std::move(*rewritten);
        rec = Record::read(item.line);
        if (!rec.ok()) {
          b.status = rec.status();
          return;
        }
      }
    }
    if (item.dropped_at < 0 && rec->scanned() != nullptr) {
      item.scan = *rec->scanned();
      item.scanned = true;
    }
  }
}

Status Pipeline::push(std::string line) {
  if (!filling_) filling_ = std::make_unique<Batch>();
  filling_bytes_ += line.size();
  filling_->items.emplace_back();
  filling_->items.back().line = std::move(line);
  if (filling_->items.size() >= kBatchRecords || filling_bytes_ >= kBatchBytes) return dispatch();
  return ok_status();
}

Status Pipeline::dispatch() {
  if (!filling_ || filling_->items.empty()) return ok_status();
  while (in_flight_.size() >= max_in_flight_) LLMOPS_RETURN_IF_ERROR(consume_front());
  Batch* b = filling_.get();
  in_flight_.push_back(std::move(filling_));
  filling_bytes_ = 0;
  {
    std::lock_guard lock(mu_);
    queue_.push_back(b);
  }
  work_cv_.notify_one();
  return ok_status();
}

Status Pipeline::finish_item(Item& item) {
  size_t k = 0;
  for (size_t i = 0; i < parallel_end_; ++i) {
    if (static_cast<int>(i) == item.dropped_at) return ok_status();
    if (steps_[i]->stateful() && !steps_[i]->decide(item.prepared[k++], item.line, reports_[i])) return ok_status();
  }
  if (parallel_end_ == steps_.size()) return out_->add_line(item.line, item.scanned ? &item.scan : nullptr);
  // The rest, in order on this thread: stateless steps after a stateful one.
  LLMOPS_ASSIGN_OR_RETURN(Record rec, Record::read(item.line));
  for (size_t i = parallel_end_; i < steps_.size(); ++i) {
    Step& s = *steps_[i];
    if (s.stateful()) {
      Prepared p;
      s.prepare(rec, p);
      if (!s.decide(p, item.line, reports_[i])) return ok_status();
      continue;
    }
    std::optional<std::string> rewritten;
    LLMOPS_ASSIGN_OR_RETURN(bool keep, s.transform(rec, &rewritten, reports_[i]));
    if (!keep) return ok_status();
    if (rewritten) {
      item.line = std::move(*rewritten);
      LLMOPS_ASSIGN_OR_RETURN(rec, Record::read(item.line));
    }
  }
  return out_->add_line(item.line, rec.scanned());
}

Status Pipeline::consume_front() {
  std::unique_ptr<Batch> b = std::move(in_flight_.front());
  in_flight_.pop_front();
  {
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return b->done; });
  }
  LLMOPS_RETURN_IF_ERROR(b->status);
  for (size_t i = 0; i < parallel_end_; ++i) {
    if (!steps_[i]->stateful()) reports_[i].merge(b->reports[i]);
  }
  for (Item& item : b->items) LLMOPS_RETURN_IF_ERROR(finish_item(item));
  return ok_status();
}

Status Pipeline::finish() {
  LLMOPS_RETURN_IF_ERROR(dispatch());
  while (!in_flight_.empty()) LLMOPS_RETURN_IF_ERROR(consume_front());
  for (size_t i = 0; i < steps_.size(); ++i) steps_[i]->finish(reports_[i]);
  return ok_status();
}

}  // namespace llmops::data::ops_detail

namespace llmops::data {

Result<engine::Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return engine::Tokenizer::from_hf_dir(path);
  auto g = engine::GgufFile::open(path);
  if (!g.ok()) return invalid_argument("'tokenizer' must be a GGUF model or a Hugging Face directory with tokenizer.json: " + g.status().message());
  return engine::Tokenizer::from_gguf(**g);
}

}  // namespace llmops::data

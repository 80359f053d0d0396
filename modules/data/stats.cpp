#include "data/stats.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "data/lang.h"
#include "data/minhash.h"
#include "data/ops.h"
#include "data/pii.h"
#include "data/text.h"

namespace llmops::data {
namespace {

// Percentiles, a histogram over powers of two and the mean of a list of lengths.
Json distribution(std::vector<uint32_t>& v) {
  if (v.empty()) return Json{{"count", 0}};
  std::sort(v.begin(), v.end());
  auto pct = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))]; };
  double sum = 0;
  for (uint32_t x : v) sum += x;
  Json bins = Json::array();
  uint64_t lo = 0, hi = 1;
  size_t i = 0;
  while (i < v.size()) {
    size_t start = i;
    while (i < v.size() && v[i] < hi) ++i;
    if (i > start || !bins.empty()) bins.push_back({{"from", lo}, {"to", hi - 1}, {"count", i - start}});
    lo = hi;
    hi *= 2;
  }
  while (!bins.empty() && bins.back()["count"] == 0) bins.erase(bins.size() - 1);
  return {{"count", v.size()}, {"mean", sum / v.size()}, {"min", v.front()}, {"p10", pct(0.10)}, {"p25", pct(0.25)},
          {"p50", pct(0.50)}, {"p75", pct(0.75)}, {"p90", pct(0.90)}, {"p99", pct(0.99)}, {"max", v.back()}, {"histogram", bins}};
}

std::string preview(const std::string& s) {
  if (s.size() <= 160) return s;
  size_t n = 160;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "…";
}

// Keeps the k records with the largest score.
struct Extremes {
  size_t k = 3;
  std::vector<std::pair<double, Json>> items;
  void offer(double score, const std::function<Json()>& make) {
    if (items.size() == k && score <= items.back().first) return;
    items.emplace_back(score, make());
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    if (items.size() > k) items.pop_back();
  }
  Json to_json() const {
    Json out = Json::array();
    for (const auto& [s, j] : items) out.push_back(j);
    return out;
  }
};

}  // namespace

void TopK::add(const std::string& key) {
  ++counts_[key];
  if (counts_.size() <= 4 * capacity_) return;
  // Keep the capacity most frequent; the rest were rare so far.
  std::vector<uint64_t> c;
  c.reserve(counts_.size());
  for (const auto& [k, n] : counts_) c.push_back(n);
  std::nth_element(c.begin(), c.begin() + capacity_, c.end(), std::greater<>());
  const uint64_t cut = c[capacity_];
  for (auto it = counts_.begin(); it != counts_.end();) {
    it = it->second <= cut ? counts_.erase(it) : std::next(it);
  }
}

std::vector<std::pair<std::string, uint64_t>> TopK::top(size_t k) const {
  std::vector<std::pair<std::string, uint64_t>> v(counts_.begin(), counts_.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  if (v.size() > k) v.resize(k);
  return v;
}

Result<Json> dataset_stats(DatasetStore& store, const VersionRecord& v, const StatsOptions& opt, const std::function<bool()>& should_stop) {
  std::optional<engine::Tokenizer> tok;
  if (!opt.tokenizer.empty()) {
    LLMOPS_ASSIGN_OR_RETURN(engine::Tokenizer t, load_tokenizer(opt.tokenizer));
    tok.emplace(std::move(t));
  }
  std::vector<uint32_t> chars, tokens;
  chars.reserve(static_cast<size_t>(v.records));
  Extremes longest, shortest, odd_mix;
  TopK uni(4000), bi(4000), tri(4000);
  std::map<std::string, uint64_t> langs;
  std::unordered_map<uint64_t, uint32_t> exact;
  exact.reserve(static_cast<size_t>(v.records));
  MinHashParams mp;
  NearDedup near(mp);
  std::map<uint32_t, uint32_t> near_clusters;
  uint64_t near_seen = 0, no_text = 0, records = 0;
  PiiCounts pii{};
  ShardReader reader(&store, v);
  while (true) {
    LLMOPS_ASSIGN_OR_RETURN(auto line, reader.next());
    if (!line) break;
    if ((++records & 1023) == 0 && should_stop && should_stop()) return cancelled("statistics stopped: the client went away");
    auto rec = parse_json_bounded(*line, 64);
    if (!rec.ok()) return data_loss(v.ref() + " holds a record that is not JSON");
    auto text = record_text(*rec, opt.field);
    if (!text) {
      ++no_text;
      continue;
    }
    const uint32_t n = static_cast<uint32_t>(utf8_length(*text));
    const uint64_t idx = records - 1;
    chars.push_back(n);
    if (tok) tokens.push_back(static_cast<uint32_t>(tok->encode(*text, false).size()));
    longest.offer(n, [&] { return Json{{"record", idx}, {"chars", n}, {"text", preview(*text)}}; });
    shortest.offer(-static_cast<double>(n), [&] { return Json{{"record", idx}, {"chars", n}, {"text", preview(*text)}}; });
    CharMix m = char_mix(*text);
    if (m.total() >= 20) {
      double odd = static_cast<double>(m.symbols + m.other + m.digits) / m.total();
      odd_mix.offer(odd, [&] {
        return Json{{"record", idx}, {"non_letter_share", std::round(odd * 1000) / 1000}, {"letters", m.letters}, {"digits", m.digits},
                    {"punctuation", m.punctuation}, {"symbols", m.symbols}, {"other", m.other}, {"text", preview(*text)}};
      });
    }
    const std::string key = dedup_key(*text);
    ++exact[hash64(key, 7)];
    if (near_seen < opt.near_dup_records) {
      ++near_seen;
      auto verdict = near.add(key);
      if (verdict.duplicate) ++near_clusters[verdict.representative];
    }
    // Words: the dedup key split on spaces, punctuation at the ends dropped.
    std::vector<std::string> words;
    size_t at = 0;
    while (at < key.size() && words.size() < 2000) {
      size_t sp = key.find(' ', at);
      if (sp == std::string::npos) sp = key.size();
      std::string w = key.substr(at, sp - at);
      while (!w.empty() && std::ispunct(static_cast<unsigned char>(w.back()))) w.pop_back();
      while (!w.empty() && std::ispunct(static_cast<unsigned char>(w.front()))) w.erase(0, 1);
      if (!w.empty()) words.push_back(std::move(w));
      at = sp + 1;
    }
    for (size_t k = 0; k < words.size(); ++k) {
      uni.add(words[k]);
      if (k + 1 < words.size()) bi.add(words[k] + " " + words[k + 1]);
      if (k + 2 < words.size()) tri.add(words[k] + " " + words[k + 1] + " " + words[k + 2]);
    }
    ++langs[detect_language(*text).code];  // stored text is valid UTF-8
    for (const auto& match : find_pii(*text)) ++pii[static_cast<size_t>(match.type)];
  }
  Json fields = Json::object();
  for (const auto& [f, s] : v.schema) {
    fields[f] = {{"fill_rate", v.records > 0 ? static_cast<double>(s.present) / v.records : 0.0}, {"present", s.present}, {"types", s.types}};
  }
  std::map<uint32_t, uint64_t> exact_sizes, near_sizes;
  uint64_t exact_extra = 0, near_extra = 0;
  for (const auto& [h, c] : exact) {
    if (c > 1) ++exact_sizes[c], exact_extra += c - 1;
  }
  for (const auto& [r, c] : near_clusters) ++near_sizes[c + 1], near_extra += c;
  auto sizes_json = [](const std::map<uint32_t, uint64_t>& m) {
    Json j = Json::object();
    for (const auto& [size, n] : m) j[std::to_string(size)] = n;
    return j;
  };
  auto top_json = [](const TopK& t) {
    Json j = Json::array();
    for (const auto& [k, n] : t.top(20)) j.push_back({{"ngram", k}, {"count", n}});
    return j;
  };
  Json pii_json = Json::object();
  for (size_t t = 0; t < kPiiTypes; ++t) pii_json[pii_name(static_cast<PiiType>(t))] = pii[t];
  Json out = {{"ref", v.ref()},
              {"records", v.records},
              {"bytes", v.bytes},
              {"field", opt.field},
              {"records_without_field", no_text},
              {"fields", fields},
              {"chars", distribution(chars)},
              {"outliers", {{"longest", longest.to_json()}, {"shortest", shortest.to_json()}, {"char_mix", odd_mix.to_json()}}},
              {"top_ngrams", {{"1", top_json(uni)}, {"2", top_json(bi)}, {"3", top_json(tri)}}},
              {"languages", langs},
              {"exact_duplicates", {{"records_beyond_first", exact_extra}, {"cluster_sizes", sizes_json(exact_sizes)}}},
              {"near_duplicates",
               {{"records_beyond_first", near_extra}, {"cluster_sizes", sizes_json(near_sizes)}, {"records_examined", near_seen},
                {"threshold", mp.threshold}}},
              {"pii", pii_json}};
  if (tok) {
    out["tokens"] = distribution(tokens);
    out["tokenizer"] = opt.tokenizer;
  }
  return out;
}

}  // namespace llmops::data

// The data stage's benchmark corpus and its checker (bench/data/run.sh drives both around a
// real llmopsd):
//
//   bench_data gen OUT.jsonl TRUTH.json --mb N [--seed S]
//     writes ~N MB of JSONL documents ({"id", "text"}) with known injected exact duplicates,
//     near duplicates (edited copies whose exact 5-word-shingle Jaccard with their source is
//     drawn from [0.80, 0.98] and recorded), PII items of each type, and decoys that look like
//     PII but are not (cards failing Luhn, IBANs failing mod 97, dates, versions, times).
//   bench_data check-near TRUTH.json DEDUPED.jsonl NEAR_OUT.jsonl
//     precision and recall of the near-duplicate pass against the injected truth, by Jaccard.
//   bench_data check-pii TRUTH.json PII_OUT.jsonl
//     PII recall per type (injected strings gone from their record) and the decoy false-positive
//     rate (decoys redacted).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "data/minhash.h"
#include "data/text.h"
#include "json.h"

using llmops::Json;

namespace {

struct Gen {
  std::mt19937_64 rng;
  std::vector<std::string> vocab;
  std::vector<double> cdf;

  explicit Gen(uint64_t seed) : rng(seed) {
    static const char* kSyl[] = {"ka", "to", "ri", "men", "sa", "lo", "ver", "tin", "da", "po", "qu", "el", "an", "ber", "shi",
                                 "mo", "ra", "ne", "ul", "fi", "gar", "zo", "he", "wi", "cor", "pel", "ys", "dun", "ma", "xe"};
    std::set<std::string> seen;
    double total = 0;
    while (vocab.size() < 30000) {
      std::string w;
      int n = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n; ++k) w += kSyl[rng() % 30];
      if (!seen.insert(w).second) continue;
      vocab.push_back(w);
      total += 1.0 / std::pow(static_cast<double>(vocab.size()), 1.07);
      cdf.push_back(total);
    }
    for (auto& c : cdf) c /= total;
  }
  const std::string& word() {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return vocab[std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin()];
  }
  std::vector<std::string> words(size_t n) {
    std::vector<std::string> w;
    for (size_t i = 0; i < n; ++i) w.push_back(word());
    return w;
  }
  uint64_t below(uint64_t n) { return rng() % n; }
  std::string digits(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + below(10)));
    return s;
  }
};

std::string join(const std::vector<std::string>& w) {
  std::string s;
  for (const auto& x : w) {
    if (!s.empty()) s.push_back(' ');
    s += x;
  }
  return s;
}

char luhn_digit(const std::string& body) {  // the check digit that makes body+d valid
  int sum = 0;
  bool dbl = true;
  for (size_t k = body.size(); k-- > 0;) {
    int d = body[k] - '0';
    if (dbl) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    dbl = !dbl;
  }
  return static_cast<char>('0' + (10 - sum % 10) % 10);
}

std::string iban_with_check(const std::string& cc, const std::string& bban) {
  std::string rearranged = bban + cc + "00";
  int rem = 0;
  for (char c : rearranged) {
    if (c >= '0' && c <= '9') rem = (rem * 10 + (c - '0')) % 97;
    else rem = (rem * 100 + (c - 'A' + 10)) % 97;
  }
  int check = 98 - rem;
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02d", check);
  return cc + buf + bban;
}

std::string group4(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && i % 4 == 0) out.push_back(' ');
    out.push_back(s[i]);
  }
  return out;
}

// One PII item of the given type, as it appears in text.
std::string pii_item(Gen& g, int type) {
  switch (type) {
    case 0: return g.word() + "." + g.word() + "@" + g.word() + (g.below(2) ? ".com" : ".org");
    case 1: {
      switch (g.below(3)) {
        case 0: return "+1 (" + std::to_string(200 + g.below(700)) + ") " + g.digits(3) + "-" + g.digits(4);
        case 1: return "+44 20 " + g.digits(4) + " " + g.digits(4);
        default: return std::to_string(200 + g.below(700)) + "-" + std::to_string(100 + g.below(900)) + "-" + g.digits(4);
      }
    }
    case 2: return std::to_string(1 + g.below(223)) + "." + std::to_string(g.below(256)) + "." + std::to_string(g.below(256)) + "." +
                   std::to_string(1 + g.below(254));
    case 3: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "2001:db8:%x:%x::%x", static_cast<unsigned>(g.below(65536)), static_cast<unsigned>(g.below(65536)),
                    static_cast<unsigned>(1 + g.below(65535)));
      return buf;
    }
    case 4: {
      std::string body = (g.below(2) ? "4" : "5" + std::to_string(1 + g.below(5))) ;
      body += g.digits(static_cast<int>(15 - body.size()));
      std::string card = body + luhn_digit(body);
      return g.below(2) ? group4(card) : card;
    }
    case 5: {
      std::string iban = g.below(2) ? iban_with_check("DE", g.digits(18)) : iban_with_check("GB", "WEST" + g.digits(14));
      return g.below(2) ? group4(iban) : iban;
    }
    default: {
      static const char kUp[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
      std::string k = "AKIA";
      for (int i = 0; i < 16; ++i) k.push_back(kUp[g.below(32)]);
      return k;
    }
  }
}

const char* kPiiNames[] = {"email", "phone", "ipv4", "ipv6", "credit_card", "iban", "secret"};

// Things a careless scanner would redact.
std::string decoy(Gen& g) {
  switch (g.below(6)) {
    case 0: {  // card-shaped, Luhn fails
      std::string body = "4" + g.digits(14);
      char bad = static_cast<char>('0' + (luhn_digit(body) - '0' + 1 + g.below(9)) % 10);
      return group4(body + bad);
    }
    case 1: {  // IBAN-shaped, checksum fails
      std::string iban = iban_with_check("DE", g.digits(18));
      iban[3] = static_cast<char>('0' + (iban[3] - '0' + 1) % 10);
      return group4(iban);
    }
    case 2: return "20" + g.digits(2) + "-0" + std::to_string(1 + g.below(9)) + "-1" + std::to_string(g.below(9));
    case 3: return "v" + std::to_string(g.below(10)) + "." + std::to_string(g.below(20)) + "." + std::to_string(g.below(30));
    case 4: return std::to_string(10 + g.below(13)) + ":" + std::to_string(10 + g.below(49)) + ":" + std::to_string(10 + g.below(49));
    default: return "order " + g.digits(7);
  }
}

int gen(const std::string& out_path, const std::string& truth_path, uint64_t mb, uint64_t seed) {
  Gen g(seed);
  std::FILE* out = std::fopen(out_path.c_str(), "wb");
  if (out == nullptr) return std::perror(out_path.c_str()), 1;
  const uint64_t target = mb << 20;
  uint64_t bytes = 0, id = 0;
  std::vector<std::pair<uint64_t, std::string>> clean_pool;  // (id, text) of plain base docs, for copies
  Json exact = Json::array(), near = Json::array(), pii = Json::object(), decoys = Json::object();
  std::map<std::string, uint64_t> pii_counts;
  uint64_t n_decoys = 0;
  auto write = [&](const std::string& text) {
    std::string line = llmops::dump_json(Json{{"id", id}, {"text", text}});
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), out);
    bytes += line.size();
    return id++;
  };
  while (bytes < target) {
    const uint64_t roll = g.below(100);
    if (roll < 5 && clean_pool.size() > 100) {  // exact duplicate, maybe with case and spacing changed
      const auto& [src, text] = clean_pool[g.below(clean_pool.size())];
      std::string copy = text;
      if (g.below(2)) {
        for (auto& c : copy) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      if (g.below(2)) copy = "  " + copy + "\n";
      exact.push_back({write(copy), src});
      continue;
    }
    if (roll < 10 && clean_pool.size() > 100) {  // near duplicate at a drawn Jaccard
      const auto& [src, text] = clean_pool[g.below(clean_pool.size())];
      const double target_j = 0.80 + 0.18 * std::uniform_real_distribution<double>(0, 1)(g.rng);
      std::vector<std::string> w;
      size_t at = 0;
      while (at < text.size()) {
        size_t sp = text.find(' ', at);
        if (sp == std::string::npos) sp = text.size();
        w.push_back(text.substr(at, sp - at));
        at = sp + 1;
      }
      const auto base_sh = llmops::data::shingles(llmops::data::dedup_key(text), 5);
      double j = 1.0;
      std::vector<std::string> edited = w;
      while (true) {
        std::vector<std::string> trial = edited;
        trial[g.below(trial.size())] = g.word() + "x";
        double tj = llmops::data::jaccard(base_sh, llmops::data::shingles(llmops::data::dedup_key(join(trial)), 5));
        if (tj < target_j) break;
        edited = std::move(trial);
        j = tj;
      }
      if (j >= 0.999) continue;  // too short to edit at this similarity
      near.push_back({write(join(edited)), src, j});
      continue;
    }
    std::vector<std::string> w = g.words(80 + g.below(720));
    if (roll < 13) {  // PII items at random places
      Json items = Json::array();
      for (uint64_t k = 0, n = 1 + g.below(3); k < n; ++k) {
        int type = static_cast<int>(g.below(7));
        std::string item = pii_item(g, type);
        w.insert(w.begin() + static_cast<long>(g.below(w.size() + 1)), item);
        items.push_back({{"type", kPiiNames[type]}, {"value", item}});
        ++pii_counts[kPiiNames[type]];
      }
      pii[std::to_string(write(join(w)))] = items;
      continue;
    }
    if (roll < 16) {  // decoys
      Json items = Json::array();
      for (uint64_t k = 0, n = 1 + g.below(3); k < n; ++k) {
        std::string d = decoy(g);
        w.insert(w.begin() + static_cast<long>(g.below(w.size() + 1)), d);
        items.push_back(d);
        ++n_decoys;
      }
      decoys[std::to_string(write(join(w)))] = items;
      continue;
    }
    std::string text = join(w);
    uint64_t my = write(text);
    if (clean_pool.size() < 20000) clean_pool.emplace_back(my, text);
    else if (g.below(20) == 0) clean_pool[g.below(clean_pool.size())] = {my, text};
  }
  std::fclose(out);
  Json truth = {{"records", id}, {"bytes", bytes}, {"exact", exact}, {"near", near}, {"pii", pii}, {"pii_counts", pii_counts},
                {"decoys", decoys}, {"decoy_count", n_decoys}};
  std::ofstream(truth_path) << truth.dump();
  std::fprintf(stderr, "wrote %s: %llu records, %.1f MB; %zu exact and %zu near duplicates, %zu records with PII, %llu decoys\n",
               out_path.c_str(), static_cast<unsigned long long>(id), bytes / 1048576.0, exact.size(), near.size(), pii.size(),
               static_cast<unsigned long long>(n_decoys));
  return 0;
}

// id → text of every record in a JSONL file.
std::unordered_map<uint64_t, std::string> load(const std::string& path, bool keep_text) {
  std::unordered_map<uint64_t, std::string> m;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("id")) continue;
    m[j["id"].get<uint64_t>()] = keep_text ? j.value("text", "") : std::string();
  }
  return m;
}

int check_near(const std::string& truth_path, const std::string& before_path, const std::string& after_path) {
  Json truth = Json::parse(std::ifstream(truth_path), nullptr, false);
  auto before = load(before_path, false), after = load(after_path, false);
  std::unordered_map<uint64_t, double> near;  // injected near duplicate → its Jaccard
  for (const auto& n : truth["near"]) near[n[0].get<uint64_t>()] = n[2].get<double>();
  uint64_t dropped = 0, true_drops = 0, injected = 0;
  std::map<int, std::pair<uint64_t, uint64_t>> by_bucket;  // J*100/5 → (found, total)
  for (const auto& [id, _] : before) {
    const bool gone = after.count(id) == 0;
    auto it = near.find(id);
    if (it != near.end()) {
      ++injected;
      auto& b = by_bucket[static_cast<int>(it->second * 20)];
      ++b.second;
      if (gone) ++b.first;
    }
    if (gone) {
      ++dropped;
      if (it != near.end()) ++true_drops;
    }
  }
  Json buckets = Json::object();
  for (const auto& [b, fc] : by_bucket) {
    char name[32];
    std::snprintf(name, sizeof name, "%.2f-%.2f", b / 20.0, (b + 1) / 20.0);
    buckets[name] = {{"found", fc.first}, {"injected", fc.second}, {"recall", fc.second ? static_cast<double>(fc.first) / fc.second : 0}};
  }
  Json r = {{"dropped", dropped}, {"injected_in_input", injected}, {"true_drops", true_drops},
            {"precision", dropped ? static_cast<double>(true_drops) / dropped : 1.0},
            {"recall", injected ? static_cast<double>(true_drops) / injected : 1.0}, {"recall_by_jaccard", buckets}};
  std::printf("%s\n", r.dump().c_str());
  return 0;
}

int check_pii(const std::string& truth_path, const std::string& after_path) {
  Json truth = Json::parse(std::ifstream(truth_path), nullptr, false);
  auto after = load(after_path, true);
  std::map<std::string, std::pair<uint64_t, uint64_t>> per_type;  // redacted, injected
  for (const auto& [id, items] : truth["pii"].items()) {
    auto it = after.find(std::stoull(id));
    for (const auto& item : items) {
      auto& t = per_type[item["type"].get<std::string>()];
      ++t.second;
      if (it != after.end() && it->second.find(item["value"].get<std::string>()) == std::string::npos) ++t.first;
    }
  }
  uint64_t decoys = 0, decoys_redacted = 0;
  for (const auto& [id, items] : truth["decoys"].items()) {
    auto it = after.find(std::stoull(id));
    if (it == after.end()) continue;
    for (const auto& d : items) {
      ++decoys;
      if (it->second.find(d.get<std::string>()) == std::string::npos) ++decoys_redacted;
    }
  }
  Json types = Json::object();
  uint64_t red = 0, inj = 0;
  for (const auto& [t, ri] : per_type) {
    types[t] = {{"redacted", ri.first}, {"injected", ri.second}, {"recall", ri.second ? static_cast<double>(ri.first) / ri.second : 1.0}};
    red += ri.first;
    inj += ri.second;
  }
  Json r = {{"recall", inj ? static_cast<double>(red) / inj : 1.0}, {"by_type", types}, {"decoys", decoys},
            {"decoys_redacted", decoys_redacted}, {"false_positive_rate", decoys ? static_cast<double>(decoys_redacted) / decoys : 0.0}};
  std::printf("%s\n", r.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() >= 3 && a[0] == "gen") {
    uint64_t mb = 1024, seed = 42;
    for (size_t i = 3; i + 1 < a.size(); i += 2) {
      if (a[i] == "--mb") mb = std::stoull(a[i + 1]);
      if (a[i] == "--seed") seed = std::stoull(a[i + 1]);
    }
    return gen(a[1], a[2], mb, seed);
  }
  if (a.size() == 4 && a[0] == "check-near") return check_near(a[1], a[2], a[3]);
  if (a.size() == 3 && a[0] == "check-pii") return check_pii(a[1], a[2]);
  std::fprintf(stderr,
               "usage: bench_data gen OUT.jsonl TRUTH.json [--mb N] [--seed S]\n"
               "       bench_data check-near TRUTH.json BEFORE.jsonl AFTER.jsonl\n"
               "       bench_data check-pii TRUTH.json AFTER.jsonl\n");
  return 2;
}

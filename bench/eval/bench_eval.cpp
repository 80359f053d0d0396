// The eval stage's metric throughput (issue 7): BLEU (sacreBLEU, corpus statistics and sentence
// scores) and ROUGE (rouge-score's rouge1/rouge2/rougeL, without and with the Porter stemmer)
// over generated sentence pairs, each against the time to read the same text from a file in
// the same run (the baseline: reading and splitting the pairs). Medians of --rounds runs.
//
//   bench_eval [--pairs 100000] [--rounds 5] [--file PATH]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "eval/metrics.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// English-like sentences: a Zipf-ish vocabulary, 12-30 words, punctuation; the reference is the
// hypothesis with about a third of its words changed, dropped or moved.
void generate(const std::string& path, size_t pairs) {
  const char* words[] = {"the", "a", "of", "to", "and", "in", "is", "was", "that", "for", "it", "with", "as", "his", "on", "be",
                         "at", "by", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which", "one", "you", "were",
                         "her", "all", "she", "there", "would", "their", "we", "him", "been", "has", "when", "who", "will", "more",
                         "running", "quickly", "houses", "generalization", "connected", "happily", "studies", "models", "evaluation",
                         "translation", "summary", "weather", "children", "played", "garden", "river", "mountains", "computer"};
  const size_t nwords = sizeof words / sizeof words[0];
  std::mt19937 rng(42);
  std::ofstream out(path);
  for (size_t p = 0; p < pairs; ++p) {
    std::vector<std::string> hyp;
    const int len = 12 + static_cast<int>(rng() % 19);
    for (int i = 0; i < len; ++i) {
      double u = std::uniform_real_distribution<double>(0, 1)(rng);
      hyp.push_back(words[static_cast<size_t>(u * u * nwords) % nwords]);
    }
    std::vector<std::string> ref = hyp;
    for (auto& w : ref) {
      if (rng() % 3 == 0) w = words[rng() % nwords];
    }
    if (rng() % 2 == 0 && ref.size() > 4) std::rotate(ref.begin(), ref.begin() + 2, ref.begin() + 4);
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& w : v) s += (s.empty() ? "" : " ") + w;
      return s + " .";
    };
    out << join(hyp) << '\t' << join(ref) << '\n';
  }
}

struct Pairs {
  std::vector<std::string> hyp, ref;
  size_t bytes = 0;
};

Pairs read_pairs(const std::string& path) {
  Pairs p;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    size_t tab = line.find('\t');
    p.hyp.push_back(line.substr(0, tab));
    p.ref.push_back(line.substr(tab + 1));
    p.bytes += line.size() + 1;
  }
  return p;
}

double time_metric(const std::string& name, bool stem, const Pairs& p, double* score) {
  llmops::eval::MetricOptions o;
  o.rouge_stemmer = stem;
  auto m = llmops::eval::make_metric(name, o);
  if (!m.ok()) std::abort();
  auto t0 = Clock::now();
  std::vector<double> sum;
  double sentence_sum = 0;
  std::vector<std::string> refs(1);
  for (size_t i = 0; i < p.hyp.size(); ++i) {
    refs[0] = p.ref[i];
    std::vector<double> st = (*m)->example_stats(p.hyp[i], refs);
    sentence_sum += (*m)->example_score(st);
    llmops::eval::add_stats(sum, st);
  }
  *score = (*m)->aggregate(sum);
  const double s = seconds_since(t0);
  if (sentence_sum < 0) std::abort();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  size_t pairs = 100000;
  int rounds = 5;
  std::string file = "/var/tmp/llmops-eval-bench-pairs.tsv";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--pairs") pairs = std::stoul(argv[i + 1]);
    else if (a == "--rounds") rounds = std::stoi(argv[i + 1]);
    else if (a == "--file") file = argv[i + 1];
  }
  generate(file, pairs);
  std::vector<double> read_s;
  struct Row {
    std::string name;
    bool stem;
    std::vector<double> s;
    double score = 0;
  };
  std::vector<Row> rows = {{"bleu", false, {}}, {"chrf", false, {}}, {"rouge1", false, {}}, {"rouge2", false, {}}, {"rougeL", false, {}},
                           {"rougeL", true, {}}};
  size_t bytes = 0;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    Pairs p = read_pairs(file);
    read_s.push_back(seconds_since(t0));
    bytes = p.bytes;
    for (auto& row : rows) row.s.push_back(time_metric(row.name, row.stem, p, &row.score));
  }
  const double base = median(read_s);
  std::printf("{\"pairs\": %zu, \"bytes\": %zu, \"rounds\": %d, \"read_s\": %.4f, \"metrics\": [", pairs, bytes, rounds, base);
  for (size_t k = 0; k < rows.size(); ++k) {
    const double s = median(rows[k].s);
    std::printf("%s{\"metric\": \"%s%s\", \"seconds\": %.4f, \"pairs_per_s\": %.0f, \"x_read_time\": %.2f, \"score\": %.4f}", k ? ", " : "",
                rows[k].name.c_str(), rows[k].stem ? "+stem" : "", s, pairs / s, s / base, rows[k].score);
  }
  std::printf("]}\n");
  return 0;
}

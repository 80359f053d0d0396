// Exploration: what a dataset version holds, in one streaming pass. Field fill rates and
// types, length distributions in characters (and tokens, given a tokenizer) with percentiles
// and histograms, outliers by length and by character-class mix with examples, top word
// n-grams, language mix, exact and near-duplicate cluster sizes, PII counts by type.
// Threads: any; one call per thread.
#pragma once

#include <functional>
#include <string>

#include "data/store.h"
#include "json.h"
#include "status.h"

namespace llmops::data {

struct StatsOptions {
  std::string field = "text";
  std::string tokenizer;                  // a GGUF file or HF directory; "" for no token counts
  uint64_t near_dup_records = 200000;     // near-duplicate clusters over at most this many records
};

// Returns the statistics as JSON (the shape `llmopsctl data stats` renders). should_stop is
// polled between records (a client that went away).
Result<Json> dataset_stats(DatasetStore& store, const VersionRecord& v, const StatsOptions& opt,
                           const std::function<bool()>& should_stop);

// Space-saving heavy hitters: the approximately most frequent keys of a stream in O(capacity).
class TopK {
 public:
  explicit TopK(size_t capacity) : capacity_(capacity) {}
  void add(const std::string& key);
  // The k most frequent with their counts (upper bounds), most frequent first.
  std::vector<std::pair<std::string, uint64_t>> top(size_t k) const;

 private:
  size_t capacity_;
  std::unordered_map<std::string, uint64_t> counts_;
};

}  // namespace llmops::data

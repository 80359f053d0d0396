// What the operation files (ops.cpp, ops_prepare.cpp) share: the streaming pass over a
// version, the report with samples, parameter readers and the output writer. Internal to the
// data module.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "data/json_scan.h"
#include "data/ops.h"

namespace llmops::data::ops_detail {

// Typed parameters with defaults; a wrong type is a clear kInvalidArgument naming the key.
struct Params {
  const Json& j;
  Result<std::string> str(const char* key, const std::string& def) const;
  Result<double> num(const char* key, double def, double min, double max) const;
  Result<bool> flag(const char* key, bool def) const;
};

// Counts in and out, per reason, and a few records before and after.
struct OpReport {
  uint64_t in = 0, out = 0;
  std::map<std::string, uint64_t> reasons;
  Json samples = Json::array();
  Json extra = Json::object();
  static constexpr size_t kSamples = 5;

  void count(const std::string& reason, uint64_t n = 1) { reasons[reason] += n; }
  // Adds another report's counts and its samples (still at most kSamples per reason).
  void merge(const OpReport& o);
  // Keeps the first kSamples of each reason (texts cut to 400 bytes).
  void sample(const std::string& reason, const Json& before, const Json* after);
  // The same from stored lines, parsed only when the sample is kept.
  void sample_lines(const std::string& reason, std::string_view before, const std::string* after);
  Json to_json() const;

 private:
  std::map<std::string, size_t> sampled_;
};

// One stored record: its line, scanned (fields located without a document) when it is a
// plain object, and parsed into a document only when an operation needs one.
class Record {
 public:
  // line must be a stored record (valid JSON); kDataLoss otherwise.
  static Result<Record> read(std::string_view line);
  std::string_view line() const { return line_; }
  const ScannedObject* scanned() const { return scanned_ok_ ? &scan_ : nullptr; }
  Json& json();
  // The text of a field (see record_text), from the line when it can be.
  std::optional<std::string> text(const std::string& field);
  // Changes a field's text ("*": every string in the record), on the line when every target
  // is a top-level string, else through the document. The new line, or nullopt if unchanged.
  std::optional<std::string> rewrite(const std::string& field, const std::function<std::string(const std::string&)>& change);

 private:
  std::string_view line_;
  ScannedObject scan_;
  bool scanned_ok_ = false;
  std::optional<Json> doc_;
};

// Reads every record line of a version in order, calling fn for each; reports progress and
// stops for cancel (kCancelled) or shutdown (kAborted).
Status for_each_line(DatasetStore& store, const VersionRecord& in, JobHooks& hooks, const std::string& what,
                     const std::function<Status(std::string_view line)>& fn);
// The same with each line read as a Record.
Status for_each_record(DatasetStore& store, const VersionRecord& in, JobHooks& hooks, const std::string& what,
                       const std::function<Status(Record& record)>& fn);

// The lineage of an op's output: named `name`, parents, operation, params, the caller.
VersionRecord output_meta(const std::string& name, const std::vector<std::string>& parents, const std::string& op,
                          const Json& params, const JobHooks& hooks, const OpReport& report);

// The "output" param, else the input's name with suffix ("" keeps the input's name).
Result<std::string> output_name(const Json& params, const VersionRecord& in, const std::string& suffix = "");

// Writes text back into a record: a string field, or each chat message's content.
void set_record_text(Json& record, const std::string& field, const std::function<std::string(const std::string&)>& change);

// The record-level ops (clean, filter, dedup, near-dedup, pii) and "pipeline" (several of them
// in one pass), through pipeline.h.
Result<std::vector<VersionRecord>> op_steps(DatasetStore& store, const std::string& op, const Json& params, const OpLimits& limits,
                                            JobHooks& hooks);
// The steps of a "pipeline" op or an import's "steps": [{"op": "clean", ...params}, ...].
Status check_steps(const Json& steps);

// The ops of ops_prepare.cpp.
Result<std::vector<VersionRecord>> op_import(DatasetStore& store, const Json& params, const OpLimits& limits, JobHooks& hooks);
Result<std::vector<VersionRecord>> op_schema(DatasetStore& store, const Json& params, const OpLimits& limits, JobHooks& hooks);
Result<std::vector<VersionRecord>> op_decontaminate(DatasetStore& store, const Json& params, const OpLimits& limits, JobHooks& hooks);
Result<std::vector<VersionRecord>> op_split(DatasetStore& store, const Json& params, const OpLimits& limits, JobHooks& hooks);
Result<std::vector<VersionRecord>> op_map(DatasetStore& store, const Json& params, const OpLimits& limits, JobHooks& hooks);

}  // namespace llmops::data::ops_detail

// What a stage reads from the others, through their published admin routes (peer_call),
// never their storage: a dataset version's description and records (the data stage), and a
// model version's files (the serving stage's catalogue). Threads: a job or a route handler.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/open_model.h"
#include "json.h"
#include "llmops/module.hpp"
#include "status.h"

namespace llmops::peers {

struct DatasetRef {
  std::string ref;           // "name@3" as the data stage resolved it
  std::string content_hash;  // sha256 of the records as JSONL
  uint64_t records = 0;
  Json schema;               // field → {present, types}
  std::string split;         // "" or the split asked for (its version is ref)
};

// "name", "name@3", or "name@3:test" (the version of "name.test" that `data split` made from
// name@3; the latest one when several were). kNotFound says what to run.
Result<DatasetRef> resolve_dataset(sdk::Host host, const std::string& spec);
// Every record in order, parsed; visit returns false to stop. kDataLoss when fewer records
// arrive than the version holds.
Status read_records(sdk::Host host, const DatasetRef& d, const std::function<bool(uint64_t index, Json& record)>& visit);
// The fields of a version's schema, for error messages ("prompt, answer").
std::string field_list(const Json& schema);

struct ModelRef {
  std::string name;  // the model version the name or alias resolved to
  std::string format, arch;  // no chat template: the stages reading it render no chat
  std::vector<models::StoredFile> files;
};
// A model or alias from the serving stage's catalogue (llmopsctl model list).
Result<ModelRef> resolve_model(sdk::Host host, const std::string& name);

// Holds a reference on each of a model's blobs for as long as it lives, so removing the model
// during a run cannot delete the files it has open.
class BlobHold {
 public:
  BlobHold(sdk::Host host, const std::vector<models::StoredFile>& files);
  ~BlobHold();
  BlobHold(const BlobHold&) = delete;
  BlobHold& operator=(const BlobHold&) = delete;
  const Status& status() const { return status_; }

 private:
  sdk::Host host_;
  std::vector<std::string> held_;
  Status status_ = ok_status();
};

}  // namespace llmops::peers

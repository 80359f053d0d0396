// The data stage's operations. Each reads one dataset version as a stream and writes a new
// version (or several: split, schema's quarantine) with lineage and a report: counts in and
// out, counts per reason, and sample records before and after. They run as durable jobs; a
// failed, cancelled or interrupted run leaves no version (ShardWriter gives its shards back).
//
//   import         files on the server and uploaded blobs → NAME@n
//   clean          Unicode NFC/NFKC, control characters and whitespace, invalid UTF-8
//   filter         length in characters and tokens, language (CLD2)
//   dedup          exact duplicates on normalised text
//   near-dedup     MinHash + LSH near duplicates, the first of each cluster kept
//   pii            e-mail, phone, IP, card (Luhn), IBAN (mod 97), secrets → <TYPE> placeholders
//   schema         required fields and types; records that fail go to NAME.quarantine
//   decontaminate  drop records sharing a long word n-gram with an evaluation set
//   split          train/validation/test by content hash → NAME.train, NAME.validation, NAME.test
//   map            records → training examples (text, prompt/completion or chat messages)
//   pipeline       several of clean, filter, dedup, near-dedup, pii in one pass (an import
//                  takes the same "steps"), spread over worker threads
//
// Threads: a job worker, one op at a time per call.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/record.h"
#include "data/store.h"
#include "json.h"
#include "status.h"
#include "tokenizer/tokenizer.h"

namespace llmops::data {

// What an operation needs of its job.
struct JobHooks {
  uint64_t job_id = 0;
  std::string caller;  // who submitted it (the version's created_by)
  std::function<void(double done, double total, const std::string& message)> progress;
  std::function<bool()> cancelled;  // a user asked to stop
  std::function<bool()> stopping;   // the daemon is shutting down
  // Called with each upload blob an import consumed, once it is no longer needed.
  std::function<void(const std::string& hex)> release_upload;
};

struct OpLimits {
  uint64_t shard_bytes = 64u << 20;
  uint64_t max_record_bytes = 16u << 20;
  int threads = 1;  // workers for record-level steps
};

const std::vector<std::string>& op_names();

// Checks params before the job is queued, so a bad request is a 400 and not a failed job.
Status validate_op(DatasetStore& store, const std::string& op, const Json& params);

// Runs an op to its end; on success returns the versions it made.
Result<std::vector<VersionRecord>> run_op(DatasetStore& store, const std::string& op, const Json& params, const OpLimits& limits,
                                          JobHooks& hooks);

// A tokenizer from a model on the server: a GGUF file or a Hugging Face directory (filters and
// statistics count tokens with it).
Result<engine::Tokenizer> load_tokenizer(const std::string& path);


}  // namespace llmops::data

// Datasets and their immutable versions, kept through the host: the version records in the data
// module's own LMDB database, the records themselves in content-addressed blob shards.
//
// Why shards in the blob store and not records in LMDB: a multi-GB dataset then costs LMDB one
// small record per version, not millions of entries and a map to grow; shards are written
// once, streamed back in order at disk speed in bounded memory, shared by identical versions,
// and a version's content hash is the sha256 of its records exported as JSONL.
//
//   n/<name>                 → {"latest": N, "created_ms"}: the dataset and its newest version
//   v/<name>\0<be32 version> → a VersionRecord (JSON)
//   p/<be64 job>             → shards a running job has written but not yet made a version of
//   s/<name>\0<be32 version> → cached statistics of the version (versions never change)
//
// A shard is JSONL: one compact JSON object per line, at most shard_bytes per shard.
// Threads: any; DatasetStore serialises version numbering. A ShardWriter or ShardReader is used
// by one thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "data/json_scan.h"
#include "json.h"
#include "llmops/module.hpp"
#include "sha256.h"
#include "status.h"

namespace llmops::data {

struct ShardRef {
  std::string sha256;
  uint64_t records = 0, bytes = 0;
};

// Per field: how many records have it and with which JSON types.
struct FieldSchema {
  uint64_t present = 0;
  std::map<std::string, uint64_t> types;  // "string" | "number" | "boolean" | "object" | "array" | "null"
};

struct VersionRecord {
  std::string name;
  uint32_t version = 0;
  std::string content_hash;  // sha256 of the records as JSONL, in order
  uint64_t records = 0, bytes = 0;
  std::map<std::string, FieldSchema> schema;
  uint64_t created_ms = 0;
  std::string created_by;
  // Lineage: where the records came from.
  std::vector<std::string> parents;  // "name@3"
  std::string operation;             // "import", "dedup", ...
  Json params = Json::object();
  uint64_t job = 0;
  Json report = Json::object();
  std::vector<ShardRef> shards;

  std::string ref() const { return name + "@" + std::to_string(version); }
  Json to_json(bool with_shards = true) const;
  static Result<VersionRecord> from_json(const Json& j);
};

// "name" or "name@3" → name and version (0: the latest).
struct DatasetRef {
  std::string name;
  uint32_t version = 0;
};
Result<DatasetRef> parse_dataset_ref(const std::string& text);
// 1-128 of A-Z a-z 0-9 . _ -, not starting with . or -.
Status check_dataset_name(const std::string& name);

class DatasetStore;

// Streams records into new shards. Destroying it before commit() gives every shard back, so a
// failed or cancelled job leaves no version and no referenced blob behind.
class ShardWriter {
 public:
  ShardWriter(DatasetStore* store, uint64_t job, uint64_t shard_bytes);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // One record: a JSON object on one line, without the newline. scanned (may be null) is the
  // line's scan_object result; without it the line is scanned or, failing that, parsed.
  Status add_line(std::string_view line, const ScannedObject* scanned = nullptr);
  Status add(const Json& record);
  uint64_t records() const { return records_; }
  uint64_t bytes() const { return bytes_; }
  // Makes the version: the next number of `name`, lineage and report as given.
  Result<VersionRecord> commit(VersionRecord meta);

 private:
  Status flush_shard();
  Status append(std::string_view line);
  void note_schema(const Json& record);
  void note_schema(const ScannedObject& record);
  DatasetStore* store_;
  uint64_t job_;
  uint64_t shard_bytes_;
  llmops_blob_writer* open_ = nullptr;
  ShardRef current_;
  std::string buffer_;
  std::vector<ShardRef> shards_;
  Sha256 content_;
  uint64_t records_ = 0, bytes_ = 0;
  std::map<std::string, FieldSchema> schema_;
  bool committed_ = false;
};

// Reads a version's records in order, one line at a time, in bounded memory.
class ShardReader {
 public:
  ShardReader(DatasetStore* store, const VersionRecord& v);
  ~ShardReader();
  // The next record line (valid until the next call), or nullopt at the end. An unreadable
  // shard is kDataLoss naming it (llmopsctl blobs verify checks them all).
  Result<std::optional<std::string_view>> next();
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  Status open_next();
  DatasetStore* store_;
  std::vector<ShardRef> shards_;
  size_t shard_ = 0;
  std::FILE* file_ = nullptr;
  std::string buf_;
  size_t pos_ = 0, len_ = 0;
  std::string line_;
  uint64_t bytes_read_ = 0;
};

class DatasetStore {
 public:
  explicit DatasetStore(sdk::Host host) : host_(host) {}
  sdk::Host host() const { return host_; }

  // The version a reference names (the latest for "name"); kNotFound says what exists.
  Result<VersionRecord> resolve(const std::string& ref);
  Result<VersionRecord> version(const std::string& name, uint32_t v);
  Result<std::vector<VersionRecord>> versions(const std::string& name);
  struct DatasetSummary {
    std::string name;
    uint32_t versions = 0;
    VersionRecord latest;
  };
  Result<std::vector<DatasetSummary>> datasets();
  // Removes one version (v > 0) or all of them (v == 0), giving their shards back.
  Result<std::vector<std::string>> remove(const std::string& name, uint32_t v);

  // Cached statistics (versions never change, so neither do their statistics).
  std::optional<Json> cached_stats(const VersionRecord& v);
  void cache_stats(const VersionRecord& v, const Json& stats);

  // Gives back shards that a job left pending when the daemon stopped mid-write.
  Status release_pending();
  // The read-only file of a blob (a shard, an upload); kDataLoss when it is missing.
  Result<std::string> blob_path(const std::string& hex);
  void unref(const std::string& hex);

 private:
  friend class ShardWriter;
  friend class ShardReader;
  Status add_pending(uint64_t job, const std::vector<ShardRef>& shards);
  Status drop_pending(uint64_t job);
  Result<VersionRecord> add_version(VersionRecord v, uint64_t job);

  sdk::Host host_;
  std::mutex mu_;  // version numbering
};

}  // namespace llmops::data

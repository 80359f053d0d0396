// Content-addressed blob files (model weights, dataset shards, checkpoints) under
// <state-dir>/blobs/sha256/ab/cdef..., with a reference count per blob in the store's "blobs"
// database. A blob's file appears under its final name only after its bytes are on disk
// (temp file, fsync, rename, fsync of the directory); the record is written right after, and
// gc removes files without records, so a crash in between leaves nothing that is referenced.
// Any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fs.h"
#include "sha256.h"
#include "store.h"

namespace llmops {

struct BlobInfo {
  std::string hex;  // sha256 of the contents
  uint64_t size = 0;
  uint64_t refs = 0;
  uint64_t created_ms = 0;
};

struct GcReport {
  uint64_t blobs_removed = 0;
  uint64_t bytes_freed = 0;
  uint64_t orphan_files_removed = 0;  // files with no record (an interrupted put)
  uint64_t temp_files_removed = 0;
  uint64_t blobs_kept = 0;
};

class BlobStore;

// Streams one new blob: write() any number of times, then commit(). Destroying an uncommitted
// writer removes its temp file. One thread at a time.
class BlobWriter {
 public:
  ~BlobWriter();
  BlobWriter(BlobWriter&&) noexcept;
  Status write(const void* data, size_t size);
  // Makes the blob durable and takes `refs` references (an existing identical blob gains them).
  Result<BlobInfo> commit(uint64_t refs);

 private:
  friend class BlobStore;
  BlobWriter(BlobStore* owner, UniqueFd fd, std::string tmp_path);
  BlobStore* owner_;
  UniqueFd fd_;
  std::string tmp_path_;
  Sha256 hash_;
  uint64_t size_ = 0;
  bool done_ = false;
};

class BlobStore {
 public:
  static Result<std::unique_ptr<BlobStore>> open(Store* store, const std::string& dir);

  Result<BlobWriter> begin();
  Result<BlobInfo> put_bytes(std::string_view data, uint64_t refs);
  Result<BlobInfo> put_file(const std::string& path, uint64_t refs);

  // Adds delta (may be negative) to the reference count; it never goes below zero.
  Result<BlobInfo> ref(const std::string& hex, int64_t delta);
  Result<BlobInfo> stat(const std::string& hex);
  Result<std::vector<BlobInfo>> list();
  std::string path_of(const std::string& hex) const;
  // Removes unreferenced blobs, orphan files and temp files older than temp_age_s.
  Result<GcReport> gc(int temp_age_s = 600);
  // Re-hashes one blob's file; kDataLoss when missing or different.
  Status verify(const std::string& hex);

 private:
  friend class BlobWriter;
  BlobStore(Store* store, Dbi dbi, std::string dir) : store_(store), dbi_(dbi), dir_(std::move(dir)) {}
  Result<BlobInfo> adopt(const std::string& tmp_path, const Digest& digest, uint64_t size, uint64_t refs);

  Store* store_;
  Dbi dbi_;
  std::string dir_;
  std::mutex publish_mu_;  // orders rename+record against gc's scan
  uint64_t tmp_counter_ = 0;
};

}  // namespace llmops

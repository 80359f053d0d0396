// A file mapped read-only into memory (weights stay in the page cache and are shared between
// processes). The mapping lives as long as the MappedFile; views into it must not outlive it.
// Immutable after open, so any thread may read it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "status.h"

namespace llmops::engine {

class MappedFile {
 public:
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  static Result<std::unique_ptr<MappedFile>> open(const std::string& path);
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops this process's copies of the whole pages within [p, p + n) (a part of this mapping no
  // longer read: they come back from the file if it is); false when the range is not in it.
  bool release(const uint8_t* p, size_t n) const;
  // Whether [p, p + n) lies within the mapping.
  bool contains(const uint8_t* p, size_t n) const;

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace llmops::engine

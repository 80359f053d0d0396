// File-system helpers with the durability rules of the store: a write is visible under its
// final name only after its bytes and its directory entry are on disk.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "status.h"

namespace llmops {

// Owns one file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { int f = fd_; fd_ = -1; return f; }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

Status make_dirs(const std::string& path, unsigned mode = 0750);
Status fsync_dir(const std::string& dir);
Status write_all(int fd, const void* data, size_t size);
// Writes to "<path>.tmp.<pid>", fsyncs, renames over path, fsyncs the directory.
Status write_file_atomic(const std::string& path, std::string_view contents, unsigned mode = 0640);
// The same with the contents streamed by `body` into the temporary file's descriptor (large
// files: models); an error from body removes the temporary file and leaves path as it was.
Status write_file_atomic(const std::string& path, const std::function<Status(int fd)>& body, unsigned mode = 0640);
Result<std::string> read_file(const std::string& path, size_t max_bytes);
std::string dir_of(const std::string& path);
std::string join_path(std::string_view a, std::string_view b);
std::string absolute_path(const std::string& path);
// Directory holding the running executable (from /proc/self/exe).
std::string executable_dir();

}  // namespace llmops

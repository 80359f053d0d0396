#include "fs.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace llmops {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Status make_dirs(const std::string& path, unsigned mode) {
  if (path.empty()) return invalid_argument("empty directory path");
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), mode) != 0 && errno != EEXIST) {
      return errno_status("creating directory " + partial, errno);
    }
  }
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return errno_status("checking directory " + path, errno);
  if (!S_ISDIR(st.st_mode)) return invalid_argument(path + " exists and is not a directory");
  return ok_status();
}

Status fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno_status("opening directory " + dir, errno);
  if (::fsync(fd.get()) != 0) return errno_status("fsync of directory " + dir, errno);
  return ok_status();
}

Status write_all(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("write", errno);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return ok_status();
}

Status write_file_atomic(const std::string& path, std::string_view contents, unsigned mode) {
  return write_file_atomic(path, [&](int fd) { return write_all(fd, contents.data(), contents.size()); }, mode);
}

Status write_file_atomic(const std::string& path, const std::function<Status(int fd)>& body, unsigned mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) return errno_status("creating " + tmp, errno);
  Status st = body(fd.get());
  if (st.ok() && ::fsync(fd.get()) != 0) st = errno_status("fsync of " + tmp, errno);
  fd.reset();
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = errno_status("renaming to " + path, errno);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st.with_context("writing " + path);
  }
  return fsync_dir(dir_of(path));
}

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_status("opening " + path, errno);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return errno_status("stat of " + path, errno);
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return resource_exhausted(path + " is " + std::to_string(st.st_size) + " bytes, more than the " +
                              std::to_string(max_bytes) + " allowed");
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("reading " + path, errno);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      return resource_exhausted(path + " grew past " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string dir_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string join_path(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  if (!b.empty() && b.front() == '/') return std::string(b);
  std::string out(a);
  if (out.back() != '/') out.push_back('/');
  out.append(b);
  return out;
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

std::string executable_dir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  return dir_of(buf);
}

}  // namespace llmops

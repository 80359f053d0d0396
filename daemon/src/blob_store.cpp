#include "blob_store.h"
#include "clock.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log.h"

namespace llmops {
namespace {

// Record layout: refs, size, created_ms as big-endian u64.
std::string encode(const BlobInfo& b) {
  std::string out(24, '\0');
  uint64_t vals[3] = {b.refs, b.size, b.created_ms};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 8; ++j) out[i * 8 + j] = static_cast<char>((vals[i] >> (56 - 8 * j)) & 0xff);
  }
  return out;
}

Result<BlobInfo> decode(std::string_view hex, std::string_view v) {
  if (v.size() != 24) return data_loss("blob record for " + std::string(hex) + " has " + std::to_string(v.size()) + " bytes, expected 24");
  uint64_t vals[3] = {};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 8; ++j) vals[i] = (vals[i] << 8) | static_cast<uint8_t>(v[i * 8 + j]);
  }
  return BlobInfo{std::string(hex), vals[1], vals[0], vals[2]};
}

template <typename Fn>
Status for_each_entry(const std::string& dir, Fn&& fn) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return errno == ENOENT ? ok_status() : errno_status("listing " + dir, errno);
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    fn(std::string(e->d_name));
  }
  ::closedir(d);
  return ok_status();
}

}  // namespace

BlobWriter::BlobWriter(BlobStore* owner, UniqueFd fd, std::string tmp_path)
    : owner_(owner), fd_(std::move(fd)), tmp_path_(std::move(tmp_path)) {}

BlobWriter::BlobWriter(BlobWriter&& o) noexcept
    : owner_(o.owner_),
      fd_(std::move(o.fd_)),
      tmp_path_(std::move(o.tmp_path_)),
      hash_(std::move(o.hash_)),
      size_(o.size_),
      done_(o.done_) {
  o.done_ = true;
}

BlobWriter::~BlobWriter() {
  if (!done_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

Status BlobWriter::write(const void* data, size_t size) {
  if (done_) return failed_precondition("blob writer already committed");
  LLMOPS_RETURN_IF_ERROR(write_all(fd_.get(), data, size).with_context("writing blob data"));
  hash_.update(data, size);
  size_ += size;
  return ok_status();
}

Result<BlobInfo> BlobWriter::commit(uint64_t refs) {
  if (done_) return failed_precondition("blob writer already committed");
  if (::fsync(fd_.get()) != 0) return errno_status("fsync of blob data", errno);
  fd_.reset();
  auto info = owner_->adopt(tmp_path_, hash_.finish(), size_, refs);
  done_ = true;
  if (!info.ok()) ::unlink(tmp_path_.c_str());
  return info;
}

Result<std::unique_ptr<BlobStore>> BlobStore::open(Store* store, const std::string& dir) {
  LLMOPS_RETURN_IF_ERROR(make_dirs(join_path(dir, "sha256")));
  LLMOPS_RETURN_IF_ERROR(make_dirs(join_path(dir, "tmp")));
  LLMOPS_ASSIGN_OR_RETURN(Dbi dbi, store->database("blobs"));
  return std::unique_ptr<BlobStore>(new BlobStore(store, dbi, dir));
}

std::string BlobStore::path_of(const std::string& hex) const {
  return join_path(dir_, "sha256/" + hex.substr(0, 2) + "/" + hex.substr(2));
}

Result<BlobWriter> BlobStore::begin() {
  std::string tmp;
  {
    std::lock_guard lock(publish_mu_);
    tmp = join_path(dir_, "tmp/" + std::to_string(::getpid()) + "." + std::to_string(++tmp_counter_));
  }
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
  if (!fd.valid()) return errno_status("creating blob temp file " + tmp, errno);
  return BlobWriter(this, std::move(fd), tmp);
}

Result<BlobInfo> BlobStore::put_bytes(std::string_view data, uint64_t refs) {
  LLMOPS_ASSIGN_OR_RETURN(BlobWriter w, begin());
  LLMOPS_RETURN_IF_ERROR(w.write(data.data(), data.size()));
  return w.commit(refs);
}

Result<BlobInfo> BlobStore::put_file(const std::string& path, uint64_t refs) {
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return errno_status("opening " + path, errno);
  LLMOPS_ASSIGN_OR_RETURN(BlobWriter w, begin());
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("reading " + path, errno);
    }
    if (n == 0) break;
    LLMOPS_RETURN_IF_ERROR(w.write(buf.data(), static_cast<size_t>(n)));
  }
  return w.commit(refs);
}

Result<BlobInfo> BlobStore::adopt(const std::string& tmp_path, const Digest& digest, uint64_t size, uint64_t refs) {
  std::string hex = to_hex(digest);
  std::string final_path = path_of(hex);
  std::lock_guard lock(publish_mu_);
  LLMOPS_RETURN_IF_ERROR(make_dirs(dir_of(final_path)));
  struct stat st{};
  bool exists = ::stat(final_path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == size;
  if (exists) {
    ::unlink(tmp_path.c_str());
  } else {
    ::chmod(tmp_path.c_str(), 0440);
    if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) return errno_status("publishing blob " + hex, errno);
    LLMOPS_RETURN_IF_ERROR(fsync_dir(dir_of(final_path)));
  }
  BlobInfo out;
  LLMOPS_RETURN_IF_ERROR(store_->write([&](Txn& t) -> Status {
    std::string key(reinterpret_cast<const char*>(digest.data()), digest.size());
    LLMOPS_ASSIGN_OR_RETURN(auto cur, t.get(dbi_, key));
    if (cur) {
      LLMOPS_ASSIGN_OR_RETURN(out, decode(hex, *cur));
      out.refs += refs;
    } else {
      out = BlobInfo{hex, size, refs, unix_ms()};
    }
    return t.put(dbi_, key, encode(out));
  }));
  return out;
}

namespace {
Result<std::string> digest_key(const std::string& hex) {
  if (!is_sha256_hex(hex)) return invalid_argument("'" + hex + "' is not a sha256 (64 lowercase hex digits)");
  std::string key(32, '\0');
  for (size_t i = 0; i < 32; ++i) key[i] = static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return key;
}
}  // namespace

Result<BlobInfo> BlobStore::ref(const std::string& hex, int64_t delta) {
  LLMOPS_ASSIGN_OR_RETURN(std::string key, digest_key(hex));
  BlobInfo out;
  LLMOPS_RETURN_IF_ERROR(store_->write([&](Txn& t) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(auto cur, t.get(dbi_, key));
    if (!cur) return not_found("no blob " + hex);
    LLMOPS_ASSIGN_OR_RETURN(out, decode(hex, *cur));
    if (delta < 0 && static_cast<uint64_t>(-delta) > out.refs) {
      return failed_precondition("blob " + hex + " has " + std::to_string(out.refs) + " references, cannot drop " +
                                 std::to_string(-delta));
    }
    out.refs = static_cast<uint64_t>(static_cast<int64_t>(out.refs) + delta);
    return t.put(dbi_, key, encode(out));
  }));
  return out;
}

Result<BlobInfo> BlobStore::stat(const std::string& hex) {
  LLMOPS_ASSIGN_OR_RETURN(std::string key, digest_key(hex));
  BlobInfo out;
  LLMOPS_RETURN_IF_ERROR(store_->read([&](Txn& t) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(auto cur, t.get(dbi_, key));
    if (!cur) return not_found("no blob " + hex);
    LLMOPS_ASSIGN_OR_RETURN(out, decode(hex, *cur));
    return ok_status();
  }));
  return out;
}

Result<std::vector<BlobInfo>> BlobStore::list() {
  std::vector<BlobInfo> out;
  Status inner;
  LLMOPS_RETURN_IF_ERROR(store_->read([&](Txn& t) {
    return t.scan(dbi_, {}, [&](std::string_view k, std::string_view v) {
      auto b = decode(to_hex(reinterpret_cast<const uint8_t*>(k.data()), k.size()), v);
      if (!b.ok()) {
        inner = b.status();
        return false;
      }
      out.push_back(std::move(b).value());
      return true;
    });
  }));
  LLMOPS_RETURN_IF_ERROR(inner);
  return out;
}

Result<GcReport> BlobStore::gc(int temp_age_s) {
  GcReport report;
  std::lock_guard lock(publish_mu_);
  // 1. Drop unreferenced records, then their files (a crash between leaves an orphan file,
  //    which step 2 of the next gc removes).
  std::vector<BlobInfo> dead;
  LLMOPS_RETURN_IF_ERROR(store_->write([&](Txn& t) -> Status {
    dead.clear();
    std::vector<std::string> keys;
    LLMOPS_RETURN_IF_ERROR(t.scan(dbi_, {}, [&](std::string_view k, std::string_view v) {
      auto b = decode(to_hex(reinterpret_cast<const uint8_t*>(k.data()), k.size()), v);
      if (b.ok() && b->refs == 0) {
        dead.push_back(*b);
        keys.emplace_back(k);
      } else {
        ++report.blobs_kept;
      }
      return true;
    }));
    for (const auto& k : keys) LLMOPS_RETURN_IF_ERROR(t.del(dbi_, k));
    return ok_status();
  }));
  for (const auto& b : dead) {
    if (::unlink(path_of(b.hex).c_str()) == 0 || errno == ENOENT) {
      ++report.blobs_removed;
      report.bytes_freed += b.size;
    }
  }
  // 2. Orphan files: published but never recorded.
  std::string root = join_path(dir_, "sha256");
  std::vector<std::string> files;
  LLMOPS_RETURN_IF_ERROR(for_each_entry(root, [&](const std::string& sub) {
    (void)for_each_entry(join_path(root, sub), [&](const std::string& name) { files.push_back(sub + name); });
  }));
  for (const auto& hex : files) {
    if (!is_sha256_hex(hex)) continue;
    auto s = stat(hex);
    if (!s.ok() && s.status().code() == Code::kNotFound) {
      struct stat st{};
      std::string p = path_of(hex);
      if (::stat(p.c_str(), &st) == 0 && ::unlink(p.c_str()) == 0) {
        ++report.orphan_files_removed;
        report.bytes_freed += static_cast<uint64_t>(st.st_size);
      }
    }
  }
  // 3. Temp files of writers that died.
  std::string tmp = join_path(dir_, "tmp");
  time_t now = ::time(nullptr);
  LLMOPS_RETURN_IF_ERROR(for_each_entry(tmp, [&](const std::string& name) {
    std::string p = join_path(tmp, name);
    struct stat st{};
    if (::stat(p.c_str(), &st) == 0 && now - st.st_mtime >= temp_age_s && ::unlink(p.c_str()) == 0) {
      ++report.temp_files_removed;
      report.bytes_freed += static_cast<uint64_t>(st.st_size);
    }
  }));
  return report;
}

Status BlobStore::verify(const std::string& hex) {
  LLMOPS_ASSIGN_OR_RETURN(BlobInfo info, stat(hex));
  auto digest = sha256_file(path_of(hex));
  if (!digest.ok()) return data_loss("blob " + hex + " is recorded but its file is unreadable: " + digest.status().message());
  if (to_hex(*digest) != hex) return data_loss("blob " + hex + " has changed on disk (its contents now hash to " + to_hex(*digest) + ")");
  return ok_status();
}

}  // namespace llmops

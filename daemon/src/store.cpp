#include "store.h"

#include <sys/statvfs.h>

#include "fs.h"
#include "log.h"

namespace llmops {
namespace {

MDB_val to_val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view to_view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

// A cursor that closes itself.
struct Cursor {
  MDB_cursor* c = nullptr;
  ~Cursor() {
    if (c != nullptr) mdb_cursor_close(c);
  }
};

constexpr int kMaxAttempts = 8;

}  // namespace

Status lmdb_status(int rc, std::string_view what) {
  if (rc == MDB_SUCCESS) return ok_status();
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  switch (rc) {
    case MDB_NOTFOUND: return not_found(msg);
    case MDB_KEYEXIST: return already_exists(msg);
    case MDB_MAP_FULL:
      return resource_exhausted(msg + " (the store reached store.max-map-size-mb or the disk is full)");
    case MDB_READERS_FULL: return resource_exhausted(msg);
    case MDB_DBS_FULL: return resource_exhausted(msg);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH: return data_loss(msg + " (the store is damaged or from another LMDB version)");
    case ENOSPC: return resource_exhausted(msg + " (no space left on the state directory's disk)");
    case EACCES: return permission_denied(msg);
    default: return internal_error(msg);
  }
}

Result<std::optional<std::string_view>> Txn::get(Dbi dbi, std::string_view key) {
  MDB_val k = to_val(key), v{};
  int rc = mdb_get(txn_, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string_view>();
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "reading a record");
  return std::optional<std::string_view>(to_view(v));
}

Status Txn::track(int rc, std::string_view what) {
  if (rc == MDB_MAP_FULL) map_full_ = true;
  return lmdb_status(rc, what);
}

Status Txn::put(Dbi dbi, std::string_view key, std::string_view value) {
  MDB_val k = to_val(key), v = to_val(value);
  return track(mdb_put(txn_, dbi, &k, &v, 0), "writing a record");
}

Status Txn::insert(Dbi dbi, std::string_view key, std::string_view value) {
  MDB_val k = to_val(key), v = to_val(value);
  return track(mdb_put(txn_, dbi, &k, &v, MDB_NOOVERWRITE), "inserting a record");
}

Status Txn::del(Dbi dbi, std::string_view key) {
  MDB_val k = to_val(key);
  return track(mdb_del(txn_, dbi, &k, nullptr), "deleting a record");
}

Status Txn::scan(Dbi dbi, std::string_view prefix,
                 const std::function<bool(std::string_view, std::string_view)>& visit, std::string_view start) {
  Cursor cur;
  LLMOPS_RETURN_IF_ERROR(lmdb_status(mdb_cursor_open(txn_, dbi, &cur.c), "opening a cursor"));
  std::string_view from = start > prefix ? start : prefix;
  MDB_val k = to_val(from), v{};
  int rc = from.empty() ? mdb_cursor_get(cur.c, &k, &v, MDB_FIRST) : mdb_cursor_get(cur.c, &k, &v, MDB_SET_RANGE);
  while (rc == MDB_SUCCESS) {
    std::string_view key = to_view(k);
    if (key.substr(0, prefix.size()) != prefix) break;
    if (!visit(key, to_view(v))) break;
    rc = mdb_cursor_get(cur.c, &k, &v, MDB_NEXT);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb_status(rc, "scanning records");
  return ok_status();
}

Status Txn::scan_reverse(Dbi dbi, std::string_view prefix,
                         const std::function<bool(std::string_view, std::string_view)>& visit) {
  Cursor cur;
  LLMOPS_RETURN_IF_ERROR(lmdb_status(mdb_cursor_open(txn_, dbi, &cur.c), "opening a cursor"));
  MDB_val k{}, v{};
  int rc;
  // Position after the last key with the prefix: the first key >= prefix+0xff.., then step back.
  std::string upper(prefix);
  while (!upper.empty() && static_cast<uint8_t>(upper.back()) == 0xff) upper.pop_back();
  if (upper.empty()) {
    rc = mdb_cursor_get(cur.c, &k, &v, MDB_LAST);
  } else {
    upper.back() = static_cast<char>(static_cast<uint8_t>(upper.back()) + 1);
    k = to_val(upper);
    rc = mdb_cursor_get(cur.c, &k, &v, MDB_SET_RANGE);
    rc = rc == MDB_SUCCESS ? mdb_cursor_get(cur.c, &k, &v, MDB_PREV) : mdb_cursor_get(cur.c, &k, &v, MDB_LAST);
  }
  while (rc == MDB_SUCCESS) {
    std::string_view key = to_view(k);
    if (key.substr(0, prefix.size()) != prefix) break;
    if (!visit(key, to_view(v))) break;
    rc = mdb_cursor_get(cur.c, &k, &v, MDB_PREV);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb_status(rc, "scanning records");
  return ok_status();
}

Result<std::optional<std::string>> Txn::last_key(Dbi dbi, std::string_view prefix) {
  std::optional<std::string> out;
  LLMOPS_RETURN_IF_ERROR(scan_reverse(dbi, prefix, [&](std::string_view k, std::string_view) {
    out = std::string(k);
    return false;
  }));
  return out;
}

Result<uint64_t> Txn::count(Dbi dbi) {
  MDB_stat st{};
  LLMOPS_RETURN_IF_ERROR(lmdb_status(mdb_stat(txn_, dbi, &st), "counting records"));
  return static_cast<uint64_t>(st.ms_entries);
}

Store::~Store() {
  if (env_ != nullptr) mdb_env_close(env_);
}

Result<std::unique_ptr<Store>> Store::open(const std::string& dir, const StoreOptions& options) {
  LLMOPS_RETURN_IF_ERROR(make_dirs(dir, 0750));
  std::unique_ptr<Store> s(new Store());
  s->dir_ = dir;
  s->options_ = options;
  LLMOPS_RETURN_IF_ERROR(lmdb_status(mdb_env_create(&s->env_), "creating the LMDB environment"));
  mdb_env_set_maxdbs(s->env_, options.max_databases);
  mdb_env_set_maxreaders(s->env_, options.max_readers);
  mdb_env_set_mapsize(s->env_, options.initial_map_bytes);
  int rc = mdb_env_open(s->env_, dir.c_str(), MDB_NOTLS, 0640);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "opening the store in " + dir);
  // The file may be larger than the configured initial size from an earlier growth: adopt it.
  MDB_envinfo info{};
  mdb_env_info(s->env_, &info);
  s->map_bytes_ = info.me_mapsize;
  int dead = 0;
  mdb_reader_check(s->env_, &dead);
  s->stale_cleared_ = dead;
  if (dead > 0) log_info("store", "cleared " + std::to_string(dead) + " stale reader slot(s) left by a dead process");
  return s;
}

Status Store::begin(unsigned flags, MDB_txn** txn) {
  for (int attempt = 0;; ++attempt) {
    int rc = mdb_txn_begin(env_, nullptr, flags, txn);
    if (rc == MDB_READERS_FULL && attempt == 0) {
      int dead = 0;
      mdb_reader_check(env_, &dead);
      continue;
    }
    if (rc == MDB_MAP_RESIZED && attempt < 2) {
      // Another process grew the map: adopt its size (0 = keep the file's size) and retry.
      mdb_env_set_mapsize(env_, 0);
      continue;
    }
    return lmdb_status(rc, "starting a transaction");
  }
}

Result<Dbi> Store::database(const std::string& name) {
  {
    std::lock_guard lock(dbi_mu_);
    auto it = dbis_.find(name);
    if (it != dbis_.end()) return it->second;
  }
  Dbi dbi = 0;
  Status st = write([&](Txn& t) {
    return lmdb_status(mdb_dbi_open(t.raw(), name.c_str(), MDB_CREATE, &dbi), "opening database '" + name + "'");
  });
  if (!st.ok()) return st;
  std::lock_guard lock(dbi_mu_);
  dbis_.emplace(name, dbi);
  return dbi;
}

Status Store::read(const std::function<Status(Txn&)>& fn) {
  std::shared_lock lock(resize_mu_);
  MDB_txn* raw = nullptr;
  LLMOPS_RETURN_IF_ERROR(begin(MDB_RDONLY, &raw));
  Txn txn(raw);
  Status st = fn(txn);
  mdb_txn_abort(raw);
  return st;
}

Status Store::write(const std::function<Status(Txn&)>& fn) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    bool map_full = false;
    {
      std::shared_lock lock(resize_mu_);
      MDB_txn* raw = nullptr;
      LLMOPS_RETURN_IF_ERROR(begin(0, &raw));
      Txn txn(raw);
      Status st = fn(txn);
      int rc = MDB_SUCCESS;
      if (st.ok()) {
        rc = mdb_txn_commit(raw);  // frees the transaction whatever the result
        if (rc == MDB_SUCCESS) return ok_status();
        st = lmdb_status(rc, "committing");
      } else {
        mdb_txn_abort(raw);
      }
      map_full = rc == MDB_MAP_FULL || txn.map_full_;
      if (!map_full) return st;
    }
    LLMOPS_RETURN_IF_ERROR(grow_map());
  }
  return resource_exhausted("the store stayed full after growing its map " + std::to_string(kMaxAttempts) + " times");
}

Status Store::grow_map() {
  std::unique_lock lock(resize_mu_);
  uint64_t next = map_bytes_ * 2;
  if (next > options_.max_map_bytes) next = options_.max_map_bytes;
  if (next <= map_bytes_) {
    return resource_exhausted("the store is full at " + std::to_string(map_bytes_ >> 20) +
                              " MiB, the store.max-map-size-mb limit: raise it or remove data (llmopsctl gc)");
  }
  struct statvfs vfs{};
  if (::statvfs(dir_.c_str(), &vfs) == 0) {
    uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    MDB_envinfo info{};
    mdb_env_info(env_, &info);
    MDB_stat st{};
    mdb_env_stat(env_, &st);
    uint64_t used = static_cast<uint64_t>(info.me_last_pgno + 1) * st.ms_psize;
    if (used + free_bytes < map_bytes_ + (map_bytes_ / 8)) {
      return resource_exhausted("the store needs more space but " + dir_ + " has only " +
                                std::to_string(free_bytes >> 20) + " MiB free: free disk space");
    }
  }
  int rc = mdb_env_set_mapsize(env_, next);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "growing the store map");
  log_info("store", "grew the map from " + std::to_string(map_bytes_ >> 20) + " to " + std::to_string(next >> 20) + " MiB");
  map_bytes_ = next;
  ++growths_;
  return ok_status();
}

StoreStats Store::stats() {
  std::shared_lock lock(resize_mu_);
  StoreStats s;
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  MDB_stat st{};
  mdb_env_stat(env_, &st);
  s.map_bytes = info.me_mapsize;
  s.used_bytes = static_cast<uint64_t>(info.me_last_pgno + 1) * st.ms_psize;
  s.readers_used = info.me_numreaders;
  s.max_readers = info.me_maxreaders;
  s.stale_readers_cleared = stale_cleared_;
  s.map_growths = growths_;
  return s;
}

}  // namespace llmops

// The state store: one LMDB environment under <state-dir>/store, a named database per concern.
// Every access is a short transaction through Store::read or Store::write, which own the
// transaction (aborted unless the callback returns OK and the commit succeeds) and grow the
// map on MDB_MAP_FULL. Any thread may call read/write; a Txn never leaves its callback.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "status.h"

namespace llmops {

struct StoreOptions {
  uint64_t initial_map_bytes = 256ull << 20;
  uint64_t max_map_bytes = 1ull << 40;
  unsigned max_databases = 128;
  unsigned max_readers = 256;
};

struct StoreStats {
  uint64_t map_bytes = 0;
  uint64_t used_bytes = 0;   // last page number × page size
  uint32_t readers_used = 0;
  uint32_t max_readers = 0;
  int stale_readers_cleared = 0;  // at open
  uint64_t map_growths = 0;
};

using Dbi = MDB_dbi;

// Maps an LMDB return code to a Status, once for the whole daemon.
Status lmdb_status(int rc, std::string_view what);

// A transaction lent to a read or write callback. Views returned by get/scan point into the
// map and are valid until the callback returns.
class Txn {
 public:
  Result<std::optional<std::string_view>> get(Dbi dbi, std::string_view key);
  Status put(Dbi dbi, std::string_view key, std::string_view value);
  // Puts only when the key is absent; kAlreadyExists otherwise.
  Status insert(Dbi dbi, std::string_view key, std::string_view value);
  Status del(Dbi dbi, std::string_view key);  // kNotFound when absent
  // Visits keys >= start with the prefix, in byte order, until visit returns false.
  Status scan(Dbi dbi, std::string_view prefix,
              const std::function<bool(std::string_view key, std::string_view value)>& visit,
              std::string_view start = {});
  // Same, from the last key with the prefix backwards.
  Status scan_reverse(Dbi dbi, std::string_view prefix,
                      const std::function<bool(std::string_view key, std::string_view value)>& visit);
  // The largest key with the prefix, if any.
  Result<std::optional<std::string>> last_key(Dbi dbi, std::string_view prefix);
  Result<uint64_t> count(Dbi dbi);
  MDB_txn* raw() { return txn_; }

 private:
  friend class Store;
  explicit Txn(MDB_txn* txn) : txn_(txn) {}
  Status track(int rc, std::string_view what);  // remembers MDB_MAP_FULL for Store::write
  MDB_txn* txn_;
  bool map_full_ = false;
};

class Store {
 public:
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Opens (creating) the environment in `dir`, clears stale reader slots.
  static Result<std::unique_ptr<Store>> open(const std::string& dir, const StoreOptions& options);

  // Opens or creates a named database; handles are cached and valid for the Store's life.
  Result<Dbi> database(const std::string& name);

  Status read(const std::function<Status(Txn&)>& fn);
  // Runs fn in a write transaction and commits when it returns OK. On MDB_MAP_FULL the
  // transaction is aborted, the map grown and fn run again (so fn must be repeatable).
  Status write(const std::function<Status(Txn&)>& fn);

  StoreStats stats();
  const std::string& dir() const { return dir_; }

 private:
  Store() = default;
  Status grow_map();
  Status begin(unsigned flags, MDB_txn** txn);

  MDB_env* env_ = nullptr;
  std::string dir_;
  StoreOptions options_;
  uint64_t map_bytes_ = 0;
  uint64_t growths_ = 0;
  int stale_cleared_ = 0;
  std::shared_mutex resize_mu_;  // shared: any transaction; exclusive: changing the map size
  std::mutex dbi_mu_;
  std::map<std::string, Dbi, std::less<>> dbis_;
};

}  // namespace llmops

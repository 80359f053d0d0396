// API keys for the data plane. A key is shown once at creation ("llmops-" + 43 base62
// characters); only its sha256 is stored (database "api_keys"). Verification is an in-memory
// lookup of the hash, refreshed after every change. Any thread.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "json.h"
#include "store.h"

namespace llmops {

struct ApiKey {
  uint64_t id = 0;
  std::string name;
  std::string hash;    // sha256 hex of the whole key
  std::string prefix;  // first characters, to recognise a key in listings
  std::string created_by;
  uint64_t created_ms = 0;
  uint64_t revoked_ms = 0;  // 0 while active

  Json to_json() const;  // without the hash
};

class KeyStore {
 public:
  static Result<std::unique_ptr<KeyStore>> open(Store* store);

  // Returns the new key's record and its secret, which is not stored anywhere.
  Result<std::pair<ApiKey, std::string>> create(const std::string& name, const std::string& created_by);
  Result<std::vector<ApiKey>> list();
  // Revokes by id ("3") or by name; kNotFound / kFailedPrecondition (already revoked).
  Result<ApiKey> revoke(const std::string& id_or_name);
  // True once any key was ever created, revoked ones included: revoking the last key must not
  // silently open the endpoint again.
  bool auth_required() const { return known_count_.load() > 0; }
  std::optional<ApiKey> verify(std::string_view token) const;

 private:
  explicit KeyStore(Store* store, Dbi dbi) : store_(store), dbi_(dbi) {}
  Status reload();

  Store* store_;
  Dbi dbi_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, ApiKey> active_;  // by hash
  std::atomic<size_t> known_count_{0};
};

}  // namespace llmops

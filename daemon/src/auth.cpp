#include "auth.h"
#include "clock.h"

#include <mutex>

#include "keys.h"
#include "sha256.h"

namespace llmops {
namespace {

Result<ApiKey> key_from_json(std::string_view text) {
  auto j = parse_json_bounded(text, 8);
  if (!j.ok()) return data_loss("API key record is not valid JSON");
  try {
    ApiKey k;
    k.id = j->at("id").get<uint64_t>();
    k.name = j->at("name").get<std::string>();
    k.hash = j->at("hash").get<std::string>();
    k.prefix = j->value("prefix", "");
    k.created_by = j->value("created_by", "");
    k.created_ms = j->value("created_ms", uint64_t{0});
    k.revoked_ms = j->value("revoked_ms", uint64_t{0});
    return k;
  } catch (const Json::exception& e) {
    return data_loss(std::string("API key record is malformed: ") + e.what());
  }
}

std::string key_to_record(const ApiKey& k) {
  Json j = k.to_json();
  j["hash"] = k.hash;
  return dump_json(j);
}

}  // namespace

Json ApiKey::to_json() const {
  return {{"id", id},         {"name", name},           {"prefix", prefix}, {"created_by", created_by},
          {"created_ms", created_ms}, {"revoked_ms", revoked_ms}, {"active", revoked_ms == 0}};
}

Result<std::unique_ptr<KeyStore>> KeyStore::open(Store* store) {
  LLMOPS_ASSIGN_OR_RETURN(Dbi dbi, store->database("api_keys"));
  std::unique_ptr<KeyStore> ks(new KeyStore(store, dbi));
  LLMOPS_RETURN_IF_ERROR(ks->reload());
  return ks;
}

Status KeyStore::reload() {
  std::unordered_map<std::string, ApiKey> fresh;
  size_t known = 0;
  LLMOPS_RETURN_IF_ERROR(store_->read([&](Txn& t) {
    return t.scan(dbi_, {}, [&](std::string_view, std::string_view v) {
      ++known;
      auto k = key_from_json(v);
      if (k.ok() && k->revoked_ms == 0) fresh[k->hash] = *k;
      return true;
    });
  }));
  std::unique_lock lock(mu_);
  active_ = std::move(fresh);
  known_count_ = known;
  return ok_status();
}

Result<std::pair<ApiKey, std::string>> KeyStore::create(const std::string& name, const std::string& created_by) {
  if (name.empty() || name.size() > 64 || name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != std::string::npos ||
      name.find_first_not_of("0123456789") == std::string::npos) {
    return invalid_argument("key name '" + name + "' must be 1-64 characters of letters, digits, . _ - and not all digits");
  }
  static const char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  uint8_t raw[43];
  LLMOPS_RETURN_IF_ERROR(random_bytes(raw, sizeof raw));
  std::string secret = "llmops-";
  for (uint8_t b : raw) secret.push_back(kAlphabet[b % 62]);  // 43 × log2(62) ≈ 256 bits, slight bias irrelevant
  ApiKey k;
  k.name = name;
  k.hash = sha256_hex(secret);
  k.prefix = secret.substr(0, 12);
  k.created_by = created_by;
  k.created_ms = unix_ms();
  LLMOPS_RETURN_IF_ERROR(store_->write([&](Txn& t) -> Status {
    Status dup;
    LLMOPS_RETURN_IF_ERROR(t.scan(dbi_, {}, [&](std::string_view, std::string_view v) {
      auto other = key_from_json(v);
      if (other.ok() && other->name == name && other->revoked_ms == 0) {
        dup = already_exists("an active key named '" + name + "' exists; revoke it first or pick another name");
        return false;
      }
      return true;
    }));
    LLMOPS_RETURN_IF_ERROR(dup);
    LLMOPS_ASSIGN_OR_RETURN(auto last, t.last_key(dbi_, {}));
    k.id = last ? KeyReader(*last).u64().value_or(0) + 1 : 1;
    return t.insert(dbi_, u64_key(k.id), key_to_record(k));
  }));
  LLMOPS_RETURN_IF_ERROR(reload());
  return std::make_pair(k, secret);
}

Result<std::vector<ApiKey>> KeyStore::list() {
  std::vector<ApiKey> out;
  LLMOPS_RETURN_IF_ERROR(store_->read([&](Txn& t) {
    return t.scan(dbi_, {}, [&](std::string_view, std::string_view v) {
      auto k = key_from_json(v);
      if (k.ok()) out.push_back(*k);
      return true;
    });
  }));
  return out;
}

Result<ApiKey> KeyStore::revoke(const std::string& id_or_name) {
  ApiKey found;
  LLMOPS_RETURN_IF_ERROR(store_->write([&](Txn& t) -> Status {
    bool by_id = !id_or_name.empty() && id_or_name.find_first_not_of("0123456789") == std::string::npos;
    std::optional<ApiKey> match;
    LLMOPS_RETURN_IF_ERROR(t.scan(dbi_, {}, [&](std::string_view, std::string_view v) {
      auto k = key_from_json(v);
      if (!k.ok()) return true;
      bool hit = by_id ? std::to_string(k->id) == id_or_name : (k->name == id_or_name && k->revoked_ms == 0);
      if (hit) match = *k;
      return !hit;
    }));
    if (!match) return not_found("no active key '" + id_or_name + "' (llmopsctl keys list shows them)");
    if (match->revoked_ms != 0) return failed_precondition("key " + id_or_name + " is already revoked");
    match->revoked_ms = unix_ms();
    found = *match;
    return t.put(dbi_, u64_key(match->id), key_to_record(*match));
  }));
  LLMOPS_RETURN_IF_ERROR(reload());
  return found;
}

std::optional<ApiKey> KeyStore::verify(std::string_view token) const {
  if (token.size() < 8 || token.size() > 256) return std::nullopt;
  std::string hash = sha256_hex(token);
  std::shared_lock lock(mu_);
  auto it = active_.find(hash);
  if (it == active_.end()) return std::nullopt;
  return it->second;
}

}  // namespace llmops

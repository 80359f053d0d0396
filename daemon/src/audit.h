// The append-only audit log of the admin plane (database "audit", key = big-endian sequence).
// Every admin call is appended once it is answered: who (uid, user, pid), what (method, path),
// and the outcome (HTTP status and error message). There is no call to change or delete an
// entry. Any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "json.h"
#include "store.h"

namespace llmops {

struct AuditEntry {
  uint64_t seq = 0;
  uint64_t time_ms = 0;
  std::string who;   // "uid:1000" / "key:3" / "daemon"
  std::string user;  // user name when known
  int64_t pid = 0;
  std::string action;  // "POST /v1/keys"
  int status = 0;
  std::string detail;  // error message, or a short note
  Json to_json() const;
};

class AuditLog {
 public:
  static Result<std::unique_ptr<AuditLog>> open(Store* store);
  Status append(AuditEntry entry);
  // Newest first, seq < before (0 = from the newest), at most limit.
  Result<std::vector<AuditEntry>> recent(size_t limit, uint64_t before = 0);

 private:
  AuditLog(Store* store, Dbi dbi) : store_(store), dbi_(dbi) {}
  Store* store_;
  Dbi dbi_;
};

}  // namespace llmops

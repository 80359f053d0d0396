#include "audit.h"

#include "clock.h"


#include "keys.h"

namespace llmops {

Json AuditEntry::to_json() const {
  return {{"seq", seq},       {"time_ms", time_ms}, {"who", who},       {"user", user},
          {"pid", pid},       {"action", action},   {"status", status}, {"detail", detail}};
}

Result<std::unique_ptr<AuditLog>> AuditLog::open(Store* store) {
  LLMOPS_ASSIGN_OR_RETURN(Dbi dbi, store->database("audit"));
  return std::unique_ptr<AuditLog>(new AuditLog(store, dbi));
}

Status AuditLog::append(AuditEntry e) {
  if (e.time_ms == 0) {
    e.time_ms = unix_ms();
  }
  if (e.detail.size() > 1024) e.detail.resize(1024);
  if (e.action.size() > 512) e.action.resize(512);
  return store_->write([&](Txn& t) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(auto last, t.last_key(dbi_, {}));
    e.seq = last ? KeyReader(*last).u64().value_or(0) + 1 : 1;
    return t.insert(dbi_, u64_key(e.seq), dump_json(e.to_json()));
  });
}

Result<std::vector<AuditEntry>> AuditLog::recent(size_t limit, uint64_t before) {
  std::vector<AuditEntry> out;
  LLMOPS_RETURN_IF_ERROR(store_->read([&](Txn& t) {
    return t.scan_reverse(dbi_, {}, [&](std::string_view k, std::string_view v) {
      uint64_t seq = KeyReader(k).u64().value_or(0);
      if (before != 0 && seq >= before) return true;
      auto j = parse_json_bounded(v, 8);
      if (j.ok()) {
        AuditEntry e;
        e.seq = seq;
        e.time_ms = j->value("time_ms", uint64_t{0});
        e.who = j->value("who", "");
        e.user = j->value("user", "");
        e.pid = j->value("pid", int64_t{0});
        e.action = j->value("action", "");
        e.status = j->value("status", 0);
        e.detail = j->value("detail", "");
        out.push_back(std::move(e));
      }
      return out.size() < limit;
    });
  }));
  return out;
}

}  // namespace llmops

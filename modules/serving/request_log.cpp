#include "serving/request_log.h"

#include <chrono>
#include <cstdio>

namespace llmops::serving {
namespace {

const char kPrefix[] = "r/";

std::string key_of(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "r/%016llx", static_cast<unsigned long long>(seq));
  return buf;
}

uint64_t seq_of(const void* key, size_t size) {
  if (size != 18) return 0;
  return std::strtoull(std::string(static_cast<const char*>(key) + 2, 16).c_str(), nullptr, 16);
}

}  // namespace

Status RequestLog::start() {
  struct Range {
    uint64_t first = 0, last = 0;
  } range;
  llmops_error err{};
  auto visit = [](void* user, const void* key, size_t key_size, const void*, size_t) -> int {
    auto* r = static_cast<Range*>(user);
    const uint64_t seq = seq_of(key, key_size);
    if (seq == 0) return 0;
    if (r->first == 0) r->first = seq;
    r->last = seq;
    return 0;
  };
  if (host_.api()->kv_scan(host_.ctx(), kPrefix, 2, visit, &range, &err) != LLMOPS_OK) {
    return Status(static_cast<Code>(err.code), std::string("reading the request log: ") + err.message);
  }
  if (range.first != 0) {
    oldest_seq_ = range.first;
    next_seq_ = range.last + 1;
  }
  thread_ = std::thread([this] { writer(); });
  return ok_status();
}

void RequestLog::stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RequestLog::append(Json record) {
  if (capacity_ == 0) return;
  std::string text = dump_json(record);
  {
    std::lock_guard lock(mu_);
    if (pending_.size() >= 65536) return;  // the store is failing or far behind: drop rather than grow without bound
    pending_.push_back(std::move(text));
    if (pending_.size() < 256) return;
  }
  cv_.notify_all();
}

void RequestLog::writer() {
  std::vector<std::string> batch;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stop_ || pending_.size() >= 256; });
    batch.swap(pending_);
    const bool stopping = stop_;
    lock.unlock();
    if (!batch.empty()) {
      Status st = flush(&batch);
      if (!st.ok()) host_.warn("the request log lost " + std::to_string(batch.size()) + " record(s): " + st.message());
      batch.clear();
    }
    lock.lock();
    if (stopping && pending_.empty()) return;
  }
}

Status RequestLog::flush(std::vector<std::string>* batch) {
  std::vector<std::string> keys;
  std::vector<const void*> key_ptrs, value_ptrs;
  std::vector<size_t> key_sizes, value_sizes;
  const uint64_t first = next_seq_;
  for (const auto& v : *batch) {
    keys.push_back(key_of(next_seq_++));
    value_ptrs.push_back(v.data());
    value_sizes.push_back(v.size());
  }
  // Trim to the capacity: the oldest records go in the same transaction.
  uint64_t oldest = oldest_seq_;
  while (next_seq_ - oldest > capacity_) {
    keys.push_back(key_of(oldest++));
    value_ptrs.push_back(nullptr);
    value_sizes.push_back(0);
  }
  for (const auto& k : keys) {
    key_ptrs.push_back(k.data());
    key_sizes.push_back(k.size());
  }
  llmops_error err{};
  if (host_.api()->kv_write_batch(host_.ctx(), keys.size(), key_ptrs.data(), key_sizes.data(), value_ptrs.data(), value_sizes.data(),
                                  &err) != LLMOPS_OK) {
    next_seq_ = first;
    return Status(static_cast<Code>(err.code), err.message);
  }
  oldest_seq_ = oldest;
  return ok_status();
}

Result<std::vector<Json>> RequestLog::newest(size_t limit, const std::string& model) const {
  std::vector<std::string> values;
  llmops_error err{};
  if (host_.kv_values(kPrefix, &values, &err) != LLMOPS_OK) {
    return Status(static_cast<Code>(err.code), std::string("reading the request log: ") + err.message);
  }
  std::vector<Json> rows;
  for (auto it = values.rbegin(); it != values.rend() && rows.size() < limit; ++it) {
    auto j = parse_json_bounded(*it, 32);
    if (!j.ok()) continue;
    if (!model.empty() && j->value("model", "") != model && j->value("requested", "") != model) continue;
    rows.push_back(std::move(j).value());
  }
  return rows;
}

}  // namespace llmops::serving

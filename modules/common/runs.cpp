#include "common/runs.h"

#include <chrono>

#include "keys.h"

namespace llmops::runs {
namespace {

std::string run_key(uint64_t id) { return KeyBuilder().raw("r/").u64(id).take(); }
std::string example_prefix(uint64_t id) { return KeyBuilder().raw("e/").u64(id).take(); }
std::string example_key(uint64_t id, uint64_t i) { return KeyBuilder().raw("e/").u64(id).u64(i).take(); }

Status from_c(const llmops_error& err, const std::string& what) {
  return Status(static_cast<Code>(err.code), what + ": " + err.message);
}

}  // namespace

Result<std::pair<uint64_t, Json>> run_of_job(const RunStore& store, const char* params_json) {
  auto params = parse_json_bounded(params_json != nullptr ? params_json : "", 16);
  if (!params.ok() || !params->contains("run") || !(*params)["run"].is_number_unsigned()) {
    return invalid_argument("the job's params do not name its run ({\"run\": id})");
  }
  const uint64_t id = (*params)["run"].get<uint64_t>();
  LLMOPS_ASSIGN_OR_RETURN(Json run, store.get(id));
  return std::make_pair(id, std::move(run));
}

llmops_code finish_run(RunStore& store, Json& run, const std::string& status, const Status& st, llmops_error* err) {
  run["status"] = status;
  run["finished_ms"] = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  if (!st.ok()) run["error"] = st.message();
  (void)store.put(run);
  return st.ok() ? LLMOPS_OK : sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());
}

llmops_code run_job(RunStore& store, const char* params_json, llmops_error* err,
                    const std::function<llmops_code(uint64_t id, Json& run)>& body) {
  auto loaded = run_of_job(store, params_json);
  if (!loaded.ok()) return sdk::fail(err, static_cast<llmops_code>(loaded.status().code()), loaded.status().message());
  Json run = std::move(loaded->second);
  try {
    return body(loaded->first, run);
  } catch (const std::exception& e) {
    return finish_run(store, run, "failed", internal_error(std::string("unexpected: ") + e.what()), err);
  } catch (...) {
    return finish_run(store, run, "failed", internal_error("unexpected non-standard exception"), err);
  }
}

Result<uint64_t> queue_run_job(sdk::Host host, RunStore& store, Json& run, const char* kind) {
  const uint64_t id = run.at("id").get<uint64_t>();
  uint64_t job = 0;
  llmops_error err{};
  const std::string params = dump_json(Json{{"run", id}});
  if (host.api()->job_submit(host.ctx(), kind, params.c_str(), &job, &err) != LLMOPS_OK) {
    run["status"] = "failed";
    run["error"] = std::string("could not queue the job: ") + err.message;
    (void)store.put(run);
    return Status(static_cast<Code>(err.code), err.message);
  }
  run["job"] = job;
  // The job may already be running and writing its own status: only the job id is added.
  auto now = store.get(id);
  if (now.ok() && !now->contains("job")) {
    (*now)["job"] = job;
    (void)store.put(*now);
  }
  return job;
}

Result<uint64_t> parse_run_id(const std::string& text, const std::string& verb) {
  std::string t = text.rfind("run-", 0) == 0 ? text.substr(4) : text;
  if (t.empty() || t.size() > 18 || t.find_first_not_of("0123456789") != std::string::npos) {
    return invalid_argument("'" + text + "' is not a run id (a number: llmopsctl " + verb + " list shows them)");
  }
  return std::stoull(t);
}

Result<uint64_t> RunStore::create(Json run) {
  std::lock_guard lock(id_mu_);
  std::string last;
  llmops_error err{};
  uint64_t id = 1;
  if (host_.kv_get_string("n", &last, &err) == LLMOPS_OK) {
    id = std::stoull(last) + 1;
  } else if (err.code != LLMOPS_NOT_FOUND) {
    return from_c(err, "reading the last run id");
  }
  run["id"] = id;
  std::string k = run_key(id), v = dump_json(run), n = std::to_string(id);
  const void* keys[] = {k.data(), "n"};
  const size_t key_sizes[] = {k.size(), 1};
  const void* values[] = {v.data(), n.data()};
  const size_t value_sizes[] = {v.size(), n.size()};
  err = {};
  if (host_.api()->kv_write_batch(host_.ctx(), 2, keys, key_sizes, values, value_sizes, &err) != LLMOPS_OK) {
    return from_c(err, "storing the run");
  }
  return id;
}

Result<Json> RunStore::get(uint64_t id) const {
  std::string v;
  llmops_error err{};
  if (host_.kv_get_string(run_key(id), &v, &err) != LLMOPS_OK) {
    if (err.code == LLMOPS_NOT_FOUND) return not_found("no " + verb_ + " run " + std::to_string(id) + " (llmopsctl " + verb_ + " list shows them)");
    return from_c(err, "reading run " + std::to_string(id));
  }
  return parse_json_bounded(v, 64);
}

Status RunStore::put(const Json& run) {
  std::string k = run_key(run.at("id").get<uint64_t>()), v = dump_json(run);
  llmops_error err{};
  if (host_.api()->kv_put(host_.ctx(), k.data(), k.size(), v.data(), v.size(), &err) != LLMOPS_OK) return from_c(err, "storing the run");
  return ok_status();
}

Result<std::vector<Json>> RunStore::list(size_t limit) const {
  std::vector<std::string> values;
  llmops_error err{};
  if (host_.kv_values("r/", &values, &err) != LLMOPS_OK) return from_c(err, "listing runs");
  std::vector<Json> out;
  for (auto it = values.rbegin(); it != values.rend() && out.size() < limit; ++it) {
    auto j = parse_json_bounded(*it, 64);
    if (j.ok()) out.push_back(std::move(*j));
  }
  return out;
}

Status RunStore::remove(uint64_t id) {
  std::vector<std::string> keys;
  std::string prefix = example_prefix(id);
  auto visit = [](void* user, const void* key, size_t n, const void*, size_t) -> int {
    static_cast<std::vector<std::string>*>(user)->emplace_back(static_cast<const char*>(key), n);
    return 0;
  };
  llmops_error err{};
  if (host_.api()->kv_scan(host_.ctx(), prefix.data(), prefix.size(), visit, &keys, &err) != LLMOPS_OK) return from_c(err, "listing examples");
  keys.push_back(run_key(id));
  for (size_t at = 0; at < keys.size(); at += 512) {
    size_t n = std::min<size_t>(512, keys.size() - at);
    std::vector<const void*> k(n), v(n, nullptr);
    std::vector<size_t> ks(n), vs(n, 0);
    for (size_t i = 0; i < n; ++i) k[i] = keys[at + i].data(), ks[i] = keys[at + i].size();
    if (host_.api()->kv_write_batch(host_.ctx(), n, k.data(), ks.data(), v.data(), vs.data(), &err) != LLMOPS_OK) {
      return from_c(err, "removing run " + std::to_string(id));
    }
  }
  return ok_status();
}

Status RunStore::put_examples(uint64_t id, const std::vector<Json>& examples) {
  if (examples.empty()) return ok_status();
  std::vector<std::string> keys, values;
  for (const auto& e : examples) {
    keys.push_back(example_key(id, e.at("i").get<uint64_t>()));
    values.push_back(dump_json(e));
  }
  std::vector<const void*> k, v;
  std::vector<size_t> ks, vs;
  for (size_t i = 0; i < keys.size(); ++i) {
    k.push_back(keys[i].data()), ks.push_back(keys[i].size());
    v.push_back(values[i].data()), vs.push_back(values[i].size());
  }
  llmops_error err{};
  if (host_.api()->kv_write_batch(host_.ctx(), k.size(), k.data(), ks.data(), v.data(), vs.data(), &err) != LLMOPS_OK) {
    return from_c(err, "storing examples of run " + std::to_string(id));
  }
  return ok_status();
}

Status RunStore::for_each_example(uint64_t id, const std::function<bool(Json&)>& visit) const {
  struct Ctx {
    const std::function<bool(Json&)>* visit;
    Status st = ok_status();
  } c{&visit};
  auto fn = [](void* user, const void*, size_t, const void* value, size_t n) -> int {
    auto* c = static_cast<Ctx*>(user);
    auto j = parse_json_bounded(std::string_view(static_cast<const char*>(value), n), 64);
    if (!j.ok()) {
      c->st = j.status().with_context("a stored example");
      return 1;
    }
    return (*c->visit)(*j) ? 0 : 1;
  };
  std::string prefix = example_prefix(id);
  llmops_error err{};
  if (host_.api()->kv_scan(host_.ctx(), prefix.data(), prefix.size(), fn, &c, &err) != LLMOPS_OK) return from_c(err, "reading examples");
  return c.st;
}

Result<std::vector<Json>> RunStore::examples(uint64_t id, uint64_t offset, uint64_t limit) const {
  std::vector<Json> out;
  uint64_t seen = 0;
  LLMOPS_RETURN_IF_ERROR(for_each_example(id, [&](Json& e) {
    if (seen++ >= offset) out.push_back(std::move(e));
    return out.size() < limit;
  }));
  return out;
}

}  // namespace llmops::runs

// The data stage's admin plane for llmopsctl (mounted under /v1/modules/data):
//
//   GET    /datasets                     datasets with their latest version
//   GET    /datasets/{name}              the versions of one dataset
//   GET    /versions/{ref}               one version in full (ref: name or name@3)
//   DELETE /versions/{ref}[?all=1]       remove a version (all versions of a name with all=1)
//   GET    /versions/{ref}/records       ?offset=&limit= the records, in order (head)
//   GET    /versions/{ref}/sample        ?n=&seed= a uniform random sample (reservoir)
//   GET    /versions/{ref}/export        the records as JSONL, streamed
//   GET    /versions/{ref}/stats         ?field=&tokenizer= statistics (cached per version)
//   GET    /diff                         ?a=&b= what changed between two versions
//   POST   /ops/{op}                     queue an operation as a job (params in the body)
//   POST   /uploads, PUT /uploads/{id}, POST /uploads/{id}/commit, DELETE /uploads/{id}
#include <chrono>
#include <random>
#include <unordered_map>

#include "common/admin_request.h"
#include "data/state.h"
#include "data/stats.h"
#include "data/text.h"

namespace llmops::data {
namespace {

uint64_t now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

void respond(State* s, llmops_response* resp, int status, const Json& body) { admin::respond(s->sdk(), resp, status, body); }
llmops_code respond_error(State* s, llmops_response* resp, const Status& st) { return admin::respond_error(s->sdk(), resp, st); }
std::string segment(const llmops_request* req, size_t k) { return admin::segment(req, "data", k); }
using admin::query;
using admin::query_number;

// A stored line as JSON (always, unless a shard is damaged: then the raw text).
Json line_json(std::string_view line) {
  auto j = parse_json_bounded(line, 64);
  return j.ok() ? std::move(*j) : Json(std::string(line));
}

Json version_summary(const VersionRecord& v) {
  return {{"ref", v.ref()},         {"name", v.name},         {"version", v.version},     {"records", v.records},
          {"bytes", v.bytes},       {"content_hash", v.content_hash}, {"created_ms", v.created_ms}, {"created_by", v.created_by},
          {"operation", v.operation}, {"parents", v.parents}};
}

llmops_code list_datasets(void* user, const llmops_request*, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto all = s->store->datasets();
  if (!all.ok()) return respond_error(s, resp, all.status());
  Json list = Json::array();
  for (const auto& d : *all) {
    Json j = version_summary(d.latest);
    j["versions"] = d.versions;
    list.push_back(j);
  }
  respond(s, resp, 200, {{"datasets", list}});
  return LLMOPS_OK;
}

llmops_code list_versions(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  const std::string name = segment(req, 1);
  if (Status st = check_dataset_name(name); !st.ok()) return respond_error(s, resp, st);
  auto all = s->store->versions(name);
  if (!all.ok()) return respond_error(s, resp, all.status());
  if (all->empty()) return respond_error(s, resp, not_found("no dataset '" + name + "' (llmopsctl data list shows them)"));
  Json list = Json::array();
  for (const auto& v : *all) list.push_back(version_summary(v));
  respond(s, resp, 200, {{"name", name}, {"versions", list}});
  return LLMOPS_OK;
}

llmops_code show_version(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto v = s->store->resolve(segment(req, 1));
  if (!v.ok()) return respond_error(s, resp, v.status());
  respond(s, resp, 200, v->to_json(true));
  return LLMOPS_OK;
}

llmops_code remove_version(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto ref = parse_dataset_ref(segment(req, 1));
  if (!ref.ok()) return respond_error(s, resp, ref.status());
  if (ref->version == 0 && query(req, "all") != "1") {
    return respond_error(s, resp, invalid_argument("name a version (" + ref->name + "@N), or remove every version of '" + ref->name + "' with --all"));
  }
  auto removed = s->store->remove(ref->name, ref->version);
  if (!removed.ok()) return respond_error(s, resp, removed.status());
  respond(s, resp, 200, {{"removed", *removed}});
  return LLMOPS_OK;
}

llmops_code head_records(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto v = s->store->resolve(segment(req, 1));
  if (!v.ok()) return respond_error(s, resp, v.status());
  auto offset = query_number(req, "offset", 0, UINT64_MAX >> 1);
  auto limit = query_number(req, "limit", 10, 1000);
  if (!offset.ok()) return respond_error(s, resp, offset.status());
  if (!limit.ok()) return respond_error(s, resp, limit.status());
  ShardReader r(s->store.get(), *v);
  Json list = Json::array();
  uint64_t i = 0;
  while (list.size() < *limit) {
    auto line = r.next();
    if (!line.ok()) return respond_error(s, resp, line.status());
    if (!*line) break;
    if (i++ < *offset) continue;
    list.push_back(line_json(**line));
  }
  respond(s, resp, 200, {{"ref", v->ref()}, {"offset", *offset}, {"records", list}, {"total", v->records}});
  return LLMOPS_OK;
}

llmops_code sample_records(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto v = s->store->resolve(segment(req, 1));
  if (!v.ok()) return respond_error(s, resp, v.status());
  auto n = query_number(req, "n", 5, 1000);
  auto seed = query_number(req, "seed", 0, UINT64_MAX >> 1);
  if (!n.ok()) return respond_error(s, resp, n.status());
  if (!seed.ok()) return respond_error(s, resp, seed.status());
  std::mt19937_64 rng(*seed);
  std::vector<std::pair<uint64_t, std::string>> picked;
  ShardReader r(s->store.get(), *v);
  for (uint64_t i = 0;; ++i) {
    auto line = r.next();
    if (!line.ok()) return respond_error(s, resp, line.status());
    if (!*line) break;
    if (picked.size() < *n) {
      picked.emplace_back(i, std::string(**line));
    } else {
      uint64_t k = std::uniform_int_distribution<uint64_t>(0, i)(rng);
      if (k < *n) picked[k] = {i, std::string(**line)};
    }
  }
  std::sort(picked.begin(), picked.end());
  Json list = Json::array();
  for (const auto& [i, line] : picked) {
    list.push_back({{"index", i}, {"record", line_json(line)}});
  }
  respond(s, resp, 200, {{"ref", v->ref()}, {"seed", *seed}, {"records", list}, {"total", v->records}});
  return LLMOPS_OK;
}

struct ExportJob {
  State* s;
  VersionRecord v;
};

void export_stream(void* user, llmops_stream* stream) {
  std::unique_ptr<ExportJob> job(static_cast<ExportJob*>(user));
  ShardReader r(job->s->store.get(), job->v);
  std::string chunk;
  while (true) {
    auto line = r.next();
    if (!line.ok() || !*line) break;  // a damaged shard ends the stream short; the hash check shows it
    chunk.append(**line);
    chunk.push_back('\n');
    if (chunk.size() >= (256u << 10)) {
      if (job->s->host->stream_write(stream, chunk.data(), chunk.size()) == 0) return;
      chunk.clear();
    }
  }
  if (!chunk.empty()) job->s->host->stream_write(stream, chunk.data(), chunk.size());
}

llmops_code export_records(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto v = s->store->resolve(segment(req, 1));
  if (!v.ok()) return respond_error(s, resp, v.status());
  s->host->response_set_status(resp, 200);
  s->host->response_set_header(resp, "Content-Type", "application/x-ndjson");
  s->host->response_set_header(resp, "X-Content-SHA256", v->content_hash.c_str());
  s->host->response_set_header(resp, "X-Records", std::to_string(v->records).c_str());
  s->host->response_stream(resp, export_stream, new ExportJob{s, *v});
  return LLMOPS_OK;
}

llmops_code stats_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto v = s->store->resolve(segment(req, 1));
  if (!v.ok()) return respond_error(s, resp, v.status());
  StatsOptions opt;
  opt.field = query(req, "field", "text");
  opt.tokenizer = query(req, "tokenizer");
  if (!opt.tokenizer.empty() && opt.tokenizer[0] != '/') {
    return respond_error(s, resp, invalid_argument("tokenizer is the absolute path of a GGUF model or Hugging Face directory on the server"));
  }
  const bool cacheable = opt.field == "text" && opt.tokenizer.empty();
  if (cacheable) {
    if (auto cached = s->store->cached_stats(*v)) {
      respond(s, resp, 200, *cached);
      return LLMOPS_OK;
    }
  }
  auto stats = dataset_stats(*s->store, *v, opt, nullptr);
  if (!stats.ok()) return respond_error(s, resp, stats.status());
  if (cacheable) s->store->cache_stats(*v, *stats);
  respond(s, resp, 200, *stats);
  return LLMOPS_OK;
}

// Records as multisets of their JSONL lines: what B added and what it no longer has of A.
llmops_code diff_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto a = s->store->resolve(query(req, "a"));
  if (!a.ok()) return respond_error(s, resp, a.status());
  auto b = s->store->resolve(query(req, "b"));
  if (!b.ok()) return respond_error(s, resp, b.status());
  std::unordered_map<uint64_t, uint32_t> in_a;
  in_a.reserve(static_cast<size_t>(a->records));
  {
    ShardReader r(s->store.get(), *a);
    while (true) {
      auto line = r.next();
      if (!line.ok()) return respond_error(s, resp, line.status());
      if (!*line) break;
      ++in_a[hash64(**line, 11)];
    }
  }
  uint64_t added = 0, same = 0;
  Json added_samples = Json::array(), removed_samples = Json::array();
  {
    ShardReader r(s->store.get(), *b);
    while (true) {
      auto line = r.next();
      if (!line.ok()) return respond_error(s, resp, line.status());
      if (!*line) break;
      auto it = in_a.find(hash64(**line, 11));
      if (it != in_a.end() && it->second > 0) {
        --it->second;
        ++same;
      } else {
        ++added;
        if (added_samples.size() < 5) added_samples.push_back(line_json(**line));
      }
    }
  }
  const uint64_t removed = a->records - same;
  if (removed > 0) {
    ShardReader r(s->store.get(), *a);
    while (removed_samples.size() < 5) {
      auto line = r.next();
      if (!line.ok() || !*line) break;
      auto it = in_a.find(hash64(**line, 11));
      if (it != in_a.end() && it->second > 0) {
        --it->second;
        removed_samples.push_back(line_json(**line));
      }
    }
  }
  Json fields_added = Json::array(), fields_removed = Json::array();
  for (const auto& [f, x] : b->schema) if (!a->schema.count(f)) fields_added.push_back(f);
  for (const auto& [f, x] : a->schema) if (!b->schema.count(f)) fields_removed.push_back(f);
  const bool derived = std::find(b->parents.begin(), b->parents.end(), a->ref()) != b->parents.end();
  respond(s, resp, 200,
          {{"a", version_summary(*a)}, {"b", version_summary(*b)}, {"same_content", a->content_hash == b->content_hash},
           {"records_in_both", same}, {"added", added}, {"removed", removed}, {"added_samples", added_samples},
           {"removed_samples", removed_samples}, {"fields_added", fields_added}, {"fields_removed", fields_removed},
           {"b_derived_from_a", derived}});
  return LLMOPS_OK;
}

llmops_code submit_op(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  const std::string op = segment(req, 1);
  auto params = parse_json_bounded(std::string_view(req->body, req->body_size), 32);
  if (!params.ok()) return respond_error(s, resp, invalid_argument("the body must be the operation's parameters as JSON: " + params.status().message()));
  if (Status st = validate_op(*s->store, op, *params); !st.ok()) return respond_error(s, resp, st);
  (*params)["op"] = op;
  (*params)["_by"] = req->caller;
  uint64_t id = 0;
  llmops_error err{};
  if (s->host->job_submit(s->ctx, op.c_str(), dump_json(*params).c_str(), &id, &err) != LLMOPS_OK) {
    return respond_error(s, resp, Status(static_cast<Code>(err.code), err.message));
  }
  respond(s, resp, 202, {{"job", id}, {"kind", "data." + op}});
  return LLMOPS_OK;
}

// The upload the path names; take = also remove it from the open ones (commit, abort).
std::shared_ptr<Upload> find_upload(State* s, const llmops_request* req, bool take = false) {
  const std::string id = segment(req, 1);
  if (id.empty() || id.size() > 18 || !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) return nullptr;
  std::lock_guard lock(s->uploads_mu);
  auto it = s->uploads.find(std::stoull(id));
  if (it == s->uploads.end()) return nullptr;
  std::shared_ptr<Upload> u = it->second;
  if (take) s->uploads.erase(it);
  return u;
}

llmops_code upload_begin(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  s->drop_uploads(now_ms() - 3600 * 1000);  // abandoned ones
  auto u = std::make_shared<Upload>();
  llmops_error err{};
  if (s->host->blob_begin(s->ctx, &u->writer, &err) != LLMOPS_OK) return respond_error(s, resp, Status(static_cast<Code>(err.code), err.message));
  u->touched_ms = now_ms();
  u->caller = req->caller;
  uint64_t id;
  {
    std::lock_guard lock(s->uploads_mu);
    id = s->next_upload++;
    s->uploads[id] = u;
  }
  respond(s, resp, 201, {{"upload", id}, {"max_bytes", s->max_upload_bytes}});
  return LLMOPS_OK;
}

llmops_code upload_chunk(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto u = find_upload(s, req);
  if (!u) return respond_error(s, resp, not_found("no open upload " + segment(req, 1) + " (uploads idle for an hour are dropped)"));
  std::lock_guard lock(u->mu);
  if (u->writer == nullptr) return respond_error(s, resp, failed_precondition("upload " + segment(req, 1) + " is already finished"));
  if (u->bytes + req->body_size > s->max_upload_bytes) {
    return respond_error(s, resp, resource_exhausted("the upload is larger than data.max-upload-mb; copy the file to the server and import it by path"));
  }
  llmops_error err{};
  if (s->host->blob_write(u->writer, req->body, req->body_size, &err) != LLMOPS_OK) {
    return respond_error(s, resp, Status(static_cast<Code>(err.code), std::string("storing the upload: ") + err.message));
  }
  u->bytes += req->body_size;
  u->touched_ms = now_ms();
  s->host->metric_add(s->ctx, s->m_upload_bytes, static_cast<double>(req->body_size));
  respond(s, resp, 200, {{"bytes", u->bytes}});
  return LLMOPS_OK;
}

llmops_code upload_commit(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto u = find_upload(s, req, true);
  if (!u) return respond_error(s, resp, not_found("no open upload " + segment(req, 1)));
  std::lock_guard lock(u->mu);
  if (u->writer == nullptr) return respond_error(s, resp, failed_precondition("upload " + segment(req, 1) + " is already finished"));
  char hex[65] = {};
  uint64_t size = 0;
  llmops_error err{};
  llmops_code c = s->host->blob_commit(u->writer, hex, &size, &err);
  u->writer = nullptr;
  if (c != LLMOPS_OK) return respond_error(s, resp, Status(static_cast<Code>(err.code), err.message));
  // The blob holds one reference now; the import job that names it gives it back.
  respond(s, resp, 200, {{"blob", hex}, {"bytes", size}});
  return LLMOPS_OK;
}

llmops_code upload_abort(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto u = find_upload(s, req, true);
  if (!u) return respond_error(s, resp, not_found("no open upload " + segment(req, 1)));
  {
    std::lock_guard lock(u->mu);
    if (u->writer != nullptr) s->host->blob_abort(u->writer);
    u->writer = nullptr;
  }
  respond(s, resp, 200, {{"aborted", true}});
  return LLMOPS_OK;
}

}  // namespace

void State::drop_uploads(uint64_t idle_before_ms) {
  std::vector<std::shared_ptr<Upload>> doomed;
  {
    std::lock_guard lock(uploads_mu);
    for (auto it = uploads.begin(); it != uploads.end();) {
      if (it->second->touched_ms < idle_before_ms) {
        doomed.push_back(it->second);
        it = uploads.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& u : doomed) {
    std::lock_guard lock(u->mu);
    if (u->writer != nullptr) host->blob_abort(u->writer);
    u->writer = nullptr;
  }
}

void add_routes(const std::function<void(const char*, const char*, llmops_route_fn)>& add) {
  add("GET", "/datasets", list_datasets);
  add("GET", "/datasets/{name}", list_versions);
  add("GET", "/versions/{ref}", show_version);
  add("DELETE", "/versions/{ref}", remove_version);
  add("GET", "/versions/{ref}/records", head_records);
  add("GET", "/versions/{ref}/sample", sample_records);
  add("GET", "/versions/{ref}/export", export_records);
  add("GET", "/versions/{ref}/stats", stats_route);
  add("GET", "/diff", diff_route);
  add("POST", "/ops/{op}", submit_op);
  add("POST", "/uploads", upload_begin);
  add("PUT", "/uploads/{id}", upload_chunk);
  add("POST", "/uploads/{id}/commit", upload_commit);
  add("DELETE", "/uploads/{id}", upload_abort);
}

}  // namespace llmops::data

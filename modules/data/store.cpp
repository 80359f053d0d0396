#include "data/store.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace llmops::data {
namespace {

uint64_t now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

void put_be32(std::string& s, uint32_t v) {
  for (int k = 3; k >= 0; --k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}
void put_be64(std::string& s, uint64_t v) {
  for (int k = 7; k >= 0; --k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

std::string version_key(const std::string& prefix, const std::string& name, uint32_t v) {
  std::string k = prefix + name;
  k.push_back('\0');
  put_be32(k, v);
  return k;
}
std::string name_key(const std::string& name) { return "n/" + name; }
std::string pending_key(uint64_t job) {
  std::string k = "p/";
  put_be64(k, job);
  return k;
}

Status from_c(const llmops_error& err, const std::string& what) {
  return Status(static_cast<Code>(err.code), what + ": " + err.message);
}

const char* json_type(const Json& v) {
  switch (v.type()) {
    case Json::value_t::string: return "string";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: return "number";
    case Json::value_t::object: return "object";
    case Json::value_t::array: return "array";
    default: return "null";
  }
}

}  // namespace

// ---- records --------------------------------------------------------------------------------

Json VersionRecord::to_json(bool with_shards) const {
  Json sch = Json::object();
  for (const auto& [field, f] : schema) sch[field] = {{"present", f.present}, {"types", f.types}};
  Json j = {{"name", name},       {"version", version},   {"ref", ref()},           {"content_hash", content_hash},
            {"records", records}, {"bytes", bytes},       {"schema", sch},          {"created_ms", created_ms},
            {"created_by", created_by},
            {"lineage", {{"parents", parents}, {"operation", operation}, {"params", params}, {"job", job}}},
            {"report", report},   {"shard_count", shards.size()}};
  if (with_shards) {
    Json s = Json::array();
    for (const auto& sh : shards) s.push_back({{"sha256", sh.sha256}, {"records", sh.records}, {"bytes", sh.bytes}});
    j["shards"] = s;
  }
  return j;
}

Result<VersionRecord> VersionRecord::from_json(const Json& j) {
  try {
    VersionRecord v;
    v.name = j.at("name").get<std::string>();
    v.version = j.at("version").get<uint32_t>();
    v.content_hash = j.at("content_hash").get<std::string>();
    v.records = j.at("records").get<uint64_t>();
    v.bytes = j.at("bytes").get<uint64_t>();
    for (const auto& [field, f] : j.at("schema").items()) {
      FieldSchema fs;
      fs.present = f.at("present").get<uint64_t>();
      fs.types = f.at("types").get<std::map<std::string, uint64_t>>();
      v.schema[field] = fs;
    }
    v.created_ms = j.at("created_ms").get<uint64_t>();
    v.created_by = j.value("created_by", "");
    const Json& l = j.at("lineage");
    v.parents = l.at("parents").get<std::vector<std::string>>();
    v.operation = l.at("operation").get<std::string>();
    v.params = l.value("params", Json::object());
    v.job = l.value("job", uint64_t{0});
    v.report = j.value("report", Json::object());
    for (const auto& s : j.at("shards")) {
      v.shards.push_back({s.at("sha256").get<std::string>(), s.at("records").get<uint64_t>(), s.at("bytes").get<uint64_t>()});
    }
    return v;
  } catch (const std::exception& e) {
    return data_loss(std::string("a dataset version record is damaged: ") + e.what());
  }
}

Status check_dataset_name(const std::string& name) {
  if (name.empty() || name.size() > 128) return invalid_argument("a dataset name has 1-128 characters");
  if (name[0] == '.' || name[0] == '-') return invalid_argument("a dataset name may not start with '.' or '-': " + name);
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return invalid_argument("a dataset name is made of A-Z a-z 0-9 . _ - ('" + name + "' has '" + std::string(1, c) + "')");
    }
  }
  return ok_status();
}

Result<DatasetRef> parse_dataset_ref(const std::string& text) {
  DatasetRef r;
  auto at = text.rfind('@');
  r.name = text.substr(0, at);
  LLMOPS_RETURN_IF_ERROR(check_dataset_name(r.name));
  if (at != std::string::npos) {
    std::string v = text.substr(at + 1);
    if (v.empty() || v.size() > 9 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }) || std::stoul(v) == 0) {
      return invalid_argument("'" + text + "': a version is a number from 1 (name@3)");
    }
    r.version = static_cast<uint32_t>(std::stoul(v));
  }
  return r;
}

// ---- ShardWriter ----------------------------------------------------------------------------

ShardWriter::ShardWriter(DatasetStore* store, uint64_t job, uint64_t shard_bytes)
    : store_(store), job_(job), shard_bytes_(std::max<uint64_t>(shard_bytes, 4096)) {
  buffer_.reserve(1 << 20);
}

ShardWriter::~ShardWriter() {
  if (committed_) return;
  if (open_ != nullptr) store_->host().api()->blob_abort(open_);
  for (const auto& s : shards_) store_->unref(s.sha256);
  if (!shards_.empty()) (void)store_->drop_pending(job_);
}

void ShardWriter::note_schema(const Json& record) {
  for (const auto& [field, value] : record.items()) {
    FieldSchema& f = schema_[field];
    ++f.present;
    ++f.types[json_type(value)];
  }
}

void ShardWriter::note_schema(const ScannedObject& record) {
  for (const auto& f : record.fields) {
    FieldSchema& fs = schema_[f.name];
    ++fs.present;
    ++fs.types[json_type_name(f.type)];
  }
}

Status ShardWriter::add(const Json& record) {
  if (!record.is_object()) return invalid_argument("a record must be a JSON object");
  note_schema(record);
  return append(dump_json(record));
}

Status ShardWriter::add_line(std::string_view line, const ScannedObject* scanned) {
  if (std::memchr(line.data(), '\n', line.size()) != nullptr) {  // whitespace between tokens: one line per record
    auto j = parse_json_bounded(line, 64);
    if (!j.ok()) return j.status();
    return add(*j);
  }
  if (scanned != nullptr) {
    note_schema(*scanned);
  } else {
    ScannedObject s;
    if (scan_object(line, 64, &s)) {
      note_schema(s);
    } else {
      auto j = parse_json_bounded(line, 64);
      if (!j.ok()) return j.status();
      if (!j->is_object()) return invalid_argument("a record must be a JSON object");
      note_schema(*j);
    }
  }
  return append(line);
}

Status ShardWriter::append(std::string_view line) {
  const sdk::Host h = store_->host();
  if (open_ == nullptr) {
    llmops_error err{};
    if (h.api()->blob_begin(h.ctx(), &open_, &err) != LLMOPS_OK) return from_c(err, "starting a dataset shard");
    current_ = {};
  }
  buffer_.append(line);
  buffer_.push_back('\n');
  content_.update(line);
  content_.update("\n", 1);
  ++records_;
  ++current_.records;
  bytes_ += line.size() + 1;
  current_.bytes += line.size() + 1;
  if (buffer_.size() >= (1u << 20)) {
    llmops_error err{};
    if (h.api()->blob_write(open_, buffer_.data(), buffer_.size(), &err) != LLMOPS_OK) return from_c(err, "writing a dataset shard");
    buffer_.clear();
  }
  if (current_.bytes >= shard_bytes_) return flush_shard();
  return ok_status();
}

Status ShardWriter::flush_shard() {
  if (open_ == nullptr) return ok_status();
  const sdk::Host h = store_->host();
  llmops_error err{};
  if (!buffer_.empty() && h.api()->blob_write(open_, buffer_.data(), buffer_.size(), &err) != LLMOPS_OK) {
    return from_c(err, "writing a dataset shard");
  }
  buffer_.clear();
  char hex[65] = {};
  llmops_blob_writer* w = open_;
  open_ = nullptr;
  if (h.api()->blob_commit(w, hex, nullptr, &err) != LLMOPS_OK) return from_c(err, "storing a dataset shard");
  current_.sha256 = hex;
  shards_.push_back(current_);
  // Recorded before anything else can fail, so a crash from here on gives the shard back at
  // the next start (release_pending) instead of leaking its reference.
  return store_->add_pending(job_, shards_);
}

Result<VersionRecord> ShardWriter::commit(VersionRecord meta) {
  LLMOPS_RETURN_IF_ERROR(flush_shard());
  meta.content_hash = to_hex(content_.finish());
  meta.records = records_;
  meta.bytes = bytes_;
  meta.schema = schema_;
  meta.shards = shards_;
  meta.job = job_;
  LLMOPS_ASSIGN_OR_RETURN(VersionRecord v, store_->add_version(std::move(meta), job_));
  committed_ = true;
  return v;
}

// ---- ShardReader ----------------------------------------------------------------------------

ShardReader::ShardReader(DatasetStore* store, const VersionRecord& v) : store_(store), shards_(v.shards) {}

ShardReader::~ShardReader() {
  if (file_ != nullptr) std::fclose(file_);
}

Status ShardReader::open_next() {
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  if (shard_ >= shards_.size()) return ok_status();
  const std::string& hex = shards_[shard_++].sha256;
  LLMOPS_ASSIGN_OR_RETURN(std::string path, store_->blob_path(hex));
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr) return data_loss("dataset shard " + hex + " cannot be read (" + std::strerror(errno) + "); run: llmopsctl blobs verify");
  if (buf_.empty()) buf_.resize(1 << 20);
  pos_ = len_ = 0;
  return ok_status();
}

Result<std::optional<std::string_view>> ShardReader::next() {
  line_.clear();
  while (true) {
    if (pos_ < len_) {
      const char* start = buf_.data() + pos_;
      const void* nl = std::memchr(start, '\n', len_ - pos_);
      if (nl != nullptr) {
        size_t n = static_cast<const char*>(nl) - start;
        pos_ += n + 1;
        bytes_read_ += n + 1;
        if (line_.empty()) return std::optional<std::string_view>(std::string_view(start, n));
        line_.append(start, n);
        return std::optional<std::string_view>(std::string_view(line_));
      }
      line_.append(start, len_ - pos_);
      pos_ = len_;
    }
    if (file_ == nullptr) {
      if (!line_.empty()) return data_loss("a dataset shard ends without a newline (damaged); run: llmopsctl blobs verify");
      LLMOPS_RETURN_IF_ERROR(open_next());
      if (file_ == nullptr) return std::optional<std::string_view>();
      continue;
    }
    len_ = std::fread(buf_.data(), 1, buf_.size(), file_);
    pos_ = 0;
    if (len_ == 0) {
      if (std::ferror(file_)) return data_loss("reading a dataset shard failed; run: llmopsctl blobs verify");
      std::fclose(file_);
      file_ = nullptr;
    }
  }
}

// ---- DatasetStore ---------------------------------------------------------------------------

Result<std::string> DatasetStore::blob_path(const std::string& hex) {
  char path[4096];
  llmops_error err{};
  if (host_.api()->blob_path(host_.ctx(), hex.c_str(), path, sizeof path, &err) != LLMOPS_OK) {
    return data_loss("dataset shard " + hex + " is missing from the blob store (" + err.message + ")");
  }
  return std::string(path);
}

void DatasetStore::unref(const std::string& hex) {
  llmops_error err{};
  if (host_.api()->blob_ref(host_.ctx(), hex.c_str(), -1, &err) != LLMOPS_OK) {
    host_.warn("giving back dataset shard " + hex + ": " + err.message);
  }
}

Status DatasetStore::add_pending(uint64_t job, const std::vector<ShardRef>& shards) {
  Json list = Json::array();
  for (const auto& s : shards) list.push_back(s.sha256);
  std::string k = pending_key(job), v = dump_json(list);
  llmops_error err{};
  if (host_.api()->kv_put(host_.ctx(), k.data(), k.size(), v.data(), v.size(), &err) != LLMOPS_OK) {
    return from_c(err, "recording a job's shards");
  }
  return ok_status();
}

Status DatasetStore::drop_pending(uint64_t job) {
  std::string k = pending_key(job);
  llmops_error err{};
  if (host_.api()->kv_del(host_.ctx(), k.data(), k.size(), &err) != LLMOPS_OK && err.code != LLMOPS_NOT_FOUND) {
    return from_c(err, "clearing a job's shards");
  }
  return ok_status();
}

Status DatasetStore::release_pending() {
  std::vector<std::pair<std::string, std::string>> entries;
  auto visit = [](void* user, const void* k, size_t kn, const void* v, size_t vn) -> int {
    static_cast<std::vector<std::pair<std::string, std::string>>*>(user)->emplace_back(
        std::string(static_cast<const char*>(k), kn), std::string(static_cast<const char*>(v), vn));
    return 0;
  };
  llmops_error err{};
  if (host_.api()->kv_scan(host_.ctx(), "p/", 2, visit, &entries, &err) != LLMOPS_OK) return from_c(err, "listing pending shards");
  for (const auto& [k, v] : entries) {
    auto list = parse_json_bounded(v, 4);
    if (list.ok() && list->is_array()) {
      for (const auto& hex : *list) {
        if (hex.is_string()) unref(hex.get<std::string>());
      }
    }
    host_.api()->kv_del(host_.ctx(), k.data(), k.size(), &err);
  }
  if (!entries.empty()) host_.info("gave back the shards of " + std::to_string(entries.size()) + " interrupted dataset job(s)");
  return ok_status();
}

Result<VersionRecord> DatasetStore::add_version(VersionRecord v, uint64_t job) {
  LLMOPS_RETURN_IF_ERROR(check_dataset_name(v.name));
  std::lock_guard lock(mu_);
  Json head = {{"latest", 0}, {"created_ms", now_ms()}};
  std::string nk = name_key(v.name);
  std::string found;
  llmops_error err{};
  if (host_.kv_get_string(nk, &found, &err) == LLMOPS_OK) {
    auto parsed = parse_json_bounded(found, 8);
    if (!parsed.ok()) return data_loss("dataset '" + v.name + "' has a damaged head record");
    head = *parsed;
  } else if (err.code != LLMOPS_NOT_FOUND) {
    return from_c(err, "reading dataset '" + v.name + "'");
  }
  v.version = head.value("latest", 0u) + 1;
  v.created_ms = now_ms();
  head["latest"] = v.version;
  std::string vk = version_key("v/", v.name, v.version), vv = dump_json(v.to_json()), hv = dump_json(head);
  std::string pk = pending_key(job);
  const void* keys[] = {vk.data(), nk.data(), pk.data()};
  const size_t key_sizes[] = {vk.size(), nk.size(), pk.size()};
  const void* values[] = {vv.data(), hv.data(), nullptr};
  const size_t value_sizes[] = {vv.size(), hv.size(), 0};
  if (host_.api()->kv_write_batch(host_.ctx(), 3, keys, key_sizes, values, value_sizes, &err) != LLMOPS_OK) {
    return from_c(err, "storing " + v.ref());
  }
  return v;
}

Result<VersionRecord> DatasetStore::version(const std::string& name, uint32_t v) {
  std::string k = version_key("v/", name, v), found;
  llmops_error err{};
  if (host_.kv_get_string(k, &found, &err) != LLMOPS_OK) {
    if (err.code == LLMOPS_NOT_FOUND) {
      auto all = versions(name);
      if (all.ok() && all->empty()) return not_found("no dataset '" + name + "' (llmopsctl data list shows them)");
      std::string have = all.ok() && !all->empty() ? " (it has versions " + std::to_string(all->front().version) + " to " +
                                                         std::to_string(all->back().version) + ", some may have been removed)"
                                                   : "";
      return not_found("dataset '" + name + "' has no version " + std::to_string(v) + have);
    }
    return from_c(err, "reading " + name + "@" + std::to_string(v));
  }
  auto j = parse_json_bounded(found, 64);
  if (!j.ok()) return data_loss(name + "@" + std::to_string(v) + " has a damaged record");
  return VersionRecord::from_json(*j);
}

Result<std::vector<VersionRecord>> DatasetStore::versions(const std::string& name) {
  std::vector<std::string> values;
  std::string prefix = "v/" + name;
  prefix.push_back('\0');
  llmops_error err{};
  if (host_.kv_values(prefix, &values, &err) != LLMOPS_OK) return from_c(err, "listing versions of " + name);
  std::vector<VersionRecord> out;
  for (const auto& v : values) {
    auto j = parse_json_bounded(v, 64);
    if (!j.ok()) return data_loss("a version of '" + name + "' has a damaged record");
    LLMOPS_ASSIGN_OR_RETURN(VersionRecord r, VersionRecord::from_json(*j));
    out.push_back(std::move(r));
  }
  return out;
}

Result<VersionRecord> DatasetStore::resolve(const std::string& ref) {
  LLMOPS_ASSIGN_OR_RETURN(DatasetRef r, parse_dataset_ref(ref));
  if (r.version != 0) return version(r.name, r.version);
  LLMOPS_ASSIGN_OR_RETURN(auto all, versions(r.name));
  if (all.empty()) return not_found("no dataset '" + r.name + "' (llmopsctl data list shows them)");
  return all.back();
}

Result<std::vector<DatasetStore::DatasetSummary>> DatasetStore::datasets() {
  std::vector<std::string> names;
  auto visit = [](void* user, const void* k, size_t kn, const void*, size_t) -> int {
    static_cast<std::vector<std::string>*>(user)->emplace_back(static_cast<const char*>(k) + 2, kn - 2);
    return 0;
  };
  llmops_error err{};
  if (host_.api()->kv_scan(host_.ctx(), "n/", 2, visit, &names, &err) != LLMOPS_OK) return from_c(err, "listing datasets");
  std::vector<DatasetSummary> out;
  for (const auto& n : names) {
    LLMOPS_ASSIGN_OR_RETURN(auto all, versions(n));
    if (all.empty()) continue;
    out.push_back({n, static_cast<uint32_t>(all.size()), all.back()});
  }
  return out;
}

Result<std::vector<std::string>> DatasetStore::remove(const std::string& name, uint32_t v) {
  std::lock_guard lock(mu_);
  std::vector<VersionRecord> doomed;
  if (v != 0) {
    LLMOPS_ASSIGN_OR_RETURN(VersionRecord r, version(name, v));
    doomed.push_back(std::move(r));
  } else {
    LLMOPS_ASSIGN_OR_RETURN(doomed, versions(name));
    if (doomed.empty()) return not_found("no dataset '" + name + "'");
  }
  std::vector<std::string> keys;
  for (const auto& d : doomed) {
    keys.push_back(version_key("v/", name, d.version));
    keys.push_back(version_key("s/", name, d.version));
  }
  if (v == 0) keys.push_back(name_key(name));  // the head goes with the last version; numbers are never reused otherwise
  std::vector<const void*> kp;
  std::vector<size_t> ks;
  std::vector<const void*> vp(keys.size(), nullptr);
  std::vector<size_t> vs(keys.size(), 0);
  for (const auto& k : keys) {
    kp.push_back(k.data());
    ks.push_back(k.size());
  }
  llmops_error err{};
  if (host_.api()->kv_write_batch(host_.ctx(), keys.size(), kp.data(), ks.data(), vp.data(), vs.data(), &err) != LLMOPS_OK) {
    return from_c(err, "removing " + name);
  }
  std::vector<std::string> removed;
  for (const auto& d : doomed) {
    for (const auto& s : d.shards) unref(s.sha256);
    removed.push_back(d.ref());
  }
  return removed;
}

std::optional<Json> DatasetStore::cached_stats(const VersionRecord& v) {
  std::string k = version_key("s/", v.name, v.version), found;
  llmops_error err{};
  if (host_.kv_get_string(k, &found, &err) != LLMOPS_OK) return std::nullopt;
  auto j = parse_json_bounded(found, 64);
  if (!j.ok()) return std::nullopt;
  return *j;
}

void DatasetStore::cache_stats(const VersionRecord& v, const Json& stats) {
  std::string k = version_key("s/", v.name, v.version), val = dump_json(stats);
  llmops_error err{};
  host_.api()->kv_put(host_.ctx(), k.data(), k.size(), val.data(), val.size(), &err);
}

}  // namespace llmops::data

#include "common/peers.h"


namespace llmops::peers {
namespace {

// An admin route of another stage, its JSON answer parsed; a 4xx/5xx becomes its message.
Result<Json> peer_json(sdk::Host host, const std::string& path, const std::string& what) {
  if (!host.has_peer_call()) return failed_precondition("this llmopsd is too old for the eval stage (it needs module ABI 1.5)");
  int status = 0;
  std::string body;
  llmops_error err{};
  if (host.peer(LLMOPS_PLANE_ADMIN, "GET", path, {}, &status, &body, &err) != LLMOPS_OK) {
    if (err.code == LLMOPS_NOT_FOUND) return unavailable(what + ": the stage that keeps it is not loaded (" + err.message + ")");
    return Status(static_cast<Code>(err.code), what + ": " + err.message);
  }
  auto j = parse_json_bounded(body, 64);
  if (status >= 400) {
    std::string msg = j.ok() && j->contains("error") ? (*j)["error"].value("message", body) : body.substr(0, 300);
    Code code = status == 404 ? Code::kNotFound : status == 400 ? Code::kInvalidArgument : Code::kUnavailable;
    return Status(code, msg);
  }
  if (!j.ok()) return j.status().with_context(what);
  return j;
}

std::string url_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '@' || c == ':') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

DatasetRef to_ref(const Json& v) {
  DatasetRef d;
  d.ref = v.value("ref", "");
  d.content_hash = v.value("content_hash", "");
  d.records = v.value("records", uint64_t{0});
  d.schema = v.value("schema", Json::object());
  return d;
}

}  // namespace

Result<DatasetRef> resolve_dataset(sdk::Host host, const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) {
    LLMOPS_ASSIGN_OR_RETURN(Json v, peer_json(host, "/v1/modules/data/versions/" + url_escape(spec), "dataset " + spec));
    return to_ref(v);
  }
  const std::string base = spec.substr(0, colon), split = spec.substr(colon + 1);
  if (split.empty() || base.empty()) return invalid_argument("'" + spec + "' is not DATASET[@V][:SPLIT]");
  LLMOPS_ASSIGN_OR_RETURN(Json parent, peer_json(host, "/v1/modules/data/versions/" + url_escape(base), "dataset " + base));
  const std::string parent_ref = parent.value("ref", base);
  const std::string split_name = parent.value("name", base.substr(0, base.find('@'))) + "." + split;
  auto versions = peer_json(host, "/v1/modules/data/datasets/" + url_escape(split_name), "dataset " + split_name);
  const std::string hint = "no '" + split + "' split of " + parent_ref + ": run llmopsctl data split " + parent_ref + " first";
  if (!versions.ok()) return versions.status().code() == Code::kNotFound ? not_found(hint) : versions.status();
  const Json list = versions->is_array() ? *versions : versions->value("versions", Json::array());
  const Json* best = nullptr;
  for (const auto& v : list) {
    const Json parents = v.value("parents", Json::array());
    for (const auto& p : parents) {
      if (p.is_string() && p.get<std::string>() == parent_ref && (best == nullptr || v.value("version", 0) > best->value("version", 0))) best = &v;
    }
  }
  if (best == nullptr) return not_found(hint);
  // The listing is a summary: the version itself carries the schema.
  const std::string ref = best->value("ref", "");
  LLMOPS_ASSIGN_OR_RETURN(Json full, peer_json(host, "/v1/modules/data/versions/" + url_escape(ref), "dataset " + ref));
  DatasetRef d = to_ref(full);
  d.split = split;
  return d;
}

Status read_records(sdk::Host host, const DatasetRef& d, const std::function<bool(uint64_t, Json&)>& visit) {
  std::string pending;
  uint64_t index = 0;
  bool stopped = false;
  Status failed = ok_status();
  auto chunk = [&](std::string_view data) {
    pending.append(data);
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      auto rec = parse_json_bounded(std::string_view(pending).substr(start, nl - start), 64);
      if (!rec.ok()) {
        failed = rec.status().with_context("record " + std::to_string(index) + " of " + d.ref);
        return false;
      }
      if (!visit(index++, *rec)) {
        stopped = true;
        return false;
      }
    }
    pending.erase(0, start);
    return true;
  };
  int status = 0;
  llmops_error err{};
  if (host.peer_stream(LLMOPS_PLANE_ADMIN, "GET", "/v1/modules/data/versions/" + url_escape(d.ref) + "/export", {}, &status, chunk, &err) != LLMOPS_OK) {
    return Status(static_cast<Code>(err.code), "reading " + d.ref + ": " + err.message);
  }
  if (!failed.ok()) return failed;
  if (status >= 400) return unavailable("reading " + d.ref + ": the data stage answered " + std::to_string(status));
  if (!stopped && index != d.records) {
    return data_loss(d.ref + " holds " + std::to_string(d.records) + " records but " + std::to_string(index) +
                     " could be read; check it with llmopsctl data show " + d.ref);
  }
  return ok_status();
}

std::string field_list(const Json& schema) {
  std::string out;
  if (schema.is_object()) {
    for (const auto& [k, v] : schema.items()) out += (out.empty() ? "" : ", ") + k;
  }
  return out.empty() ? "(none)" : out;
}

Result<ModelRef> resolve_model(sdk::Host host, const std::string& name) {
  LLMOPS_ASSIGN_OR_RETURN(Json m, peer_json(host, "/v1/modules/serving/models/" + url_escape(name), "model " + name));
  ModelRef r;
  r.name = m.value("name", name);
  r.format = m.value("format", "");
  r.arch = m.value("arch", "");
  for (const auto& f : m.value("files", Json::array())) r.files.push_back({f.value("name", ""), f.value("role", ""), f.value("sha256", "")});
  if (r.files.empty()) return failed_precondition("the serving stage lists no files for model '" + r.name + "'");
  return r;
}

BlobHold::BlobHold(sdk::Host host, const std::vector<models::StoredFile>& files) : host_(host) {
  for (const auto& f : files) {
    llmops_error err{};
    if (host_.api()->blob_ref(host_.ctx(), f.sha256.c_str(), +1, &err) != LLMOPS_OK) {
      status_ = data_loss("the file " + f.name + " is missing from the blob store (" + err.message + "); import the model again");
      return;
    }
    held_.push_back(f.sha256);
  }
}

BlobHold::~BlobHold() {
  for (const auto& h : held_) {
    llmops_error err{};
    host_.api()->blob_ref(host_.ctx(), h.c_str(), -1, &err);
  }
}

}  // namespace llmops::peers

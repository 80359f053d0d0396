#include "serving/registry.h"

#include <algorithm>

namespace llmops::serving {
namespace {

const char kModelPrefix[] = "m/";
const char kAliasPrefix[] = "a/";

Status from_error(const llmops_error& err, const std::string& context) {
  return Status(static_cast<Code>(err.code), context + ": " + err.message);
}

}  // namespace

uint64_t ModelRecord::bytes() const {
  uint64_t n = 0;
  for (const auto& f : files) n += f.size;
  return n;
}

Json ModelRecord::to_json() const {
  Json fs = Json::array();
  for (const auto& f : files) fs.push_back({{"name", f.name}, {"role", f.role}, {"sha256", f.sha256}, {"size", f.size}});
  return {{"name", name},       {"format", format},   {"files", fs},         {"chat_template", chat_template},
          {"arch", arch},       {"context", context}, {"vocab", vocab},      {"layers", layers},
          {"dim", dim},         {"weight_bytes", weight_bytes},             {"bytes", bytes()},
          {"imported_ms", imported_ms},              {"imported_by", imported_by},
          {"source", source},   {"log_bodies", log_bodies}, {"lineage", lineage}};
}

Result<ModelRecord> ModelRecord::from_json(const Json& j) {
  try {
    ModelRecord r;
    r.name = j.at("name").get<std::string>();
    r.format = j.at("format").get<std::string>();
    for (const Json& f : j.at("files")) {
      r.files.push_back({f.at("name").get<std::string>(), f.at("role").get<std::string>(), f.at("sha256").get<std::string>(),
                         f.at("size").get<uint64_t>()});
    }
    r.chat_template = j.value("chat_template", "");
    r.arch = j.value("arch", "");
    r.context = j.value("context", int64_t{0});
    r.vocab = j.value("vocab", int64_t{0});
    r.layers = j.value("layers", int64_t{0});
    r.dim = j.value("dim", int64_t{0});
    r.weight_bytes = j.value("weight_bytes", uint64_t{0});
    r.imported_ms = j.value("imported_ms", uint64_t{0});
    r.imported_by = j.value("imported_by", "");
    r.source = j.value("source", "");
    r.log_bodies = j.value("log_bodies", false);
    if (auto it = j.find("lineage"); it != j.end() && it->is_object()) r.lineage = *it;
    return r;
  } catch (const std::exception& e) {
    return data_loss(std::string("a stored model record is malformed: ") + e.what());
  }
}

Json AliasRecord::to_json() const {
  return {{"name", name}, {"target", target}, {"updated_ms", updated_ms}, {"updated_by", updated_by}};
}

Result<AliasRecord> AliasRecord::from_json(const Json& j) {
  try {
    AliasRecord r;
    r.name = j.at("name").get<std::string>();
    r.target = j.at("target").get<std::string>();
    r.updated_ms = j.value("updated_ms", uint64_t{0});
    r.updated_by = j.value("updated_by", "");
    return r;
  } catch (const std::exception& e) {
    return data_loss(std::string("a stored alias record is malformed: ") + e.what());
  }
}

Status check_model_name(const std::string& name, const char* what) {
  if (name.empty() || name.size() > 128) return invalid_argument(std::string(what) + " must be 1-128 characters");
  if (name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") != std::string::npos) {
    return invalid_argument(std::string(what) + " '" + name + "' may hold only letters, digits and . _ : -");
  }
  if (name[0] == '.' || name[0] == '-') return invalid_argument(std::string(what) + " '" + name + "' must not start with '.' or '-'");
  return ok_status();
}

// ---- storage ----------------------------------------------------------------------------------

Result<std::optional<Json>> Registry::get(const std::string& key) const {
  struct Out {
    std::optional<std::string> value;
  } out;
  llmops_error err{};
  auto found = [](void* user, const void* v, size_t n) { static_cast<Out*>(user)->value.emplace(static_cast<const char*>(v), n); };
  if (host_.api()->kv_get(host_.ctx(), key.data(), key.size(), found, &out, &err) != LLMOPS_OK) {
    if (err.code == LLMOPS_NOT_FOUND) return std::optional<Json>();  // the host's word for an absent key
    return from_error(err, "reading " + key);
  }
  if (!out.value) return std::optional<Json>();
  auto j = parse_json_bounded(*out.value, 32);
  if (!j.ok()) return data_loss("the stored record " + key + " is not valid JSON");
  return std::optional<Json>(std::move(j).value());
}

Result<std::vector<Json>> Registry::scan(const std::string& prefix) const {
  std::vector<std::string> values;
  llmops_error err{};
  if (host_.kv_values(prefix, &values, &err) != LLMOPS_OK) return from_error(err, "listing " + prefix);
  std::vector<Json> rows;
  for (const auto& v : values) {
    auto j = parse_json_bounded(v, 32);
    if (!j.ok()) return data_loss("a stored record under " + prefix + " is not valid JSON");
    rows.push_back(std::move(j).value());
  }
  return rows;
}

Status Registry::put(const std::string& key, const Json& value) {
  const std::string v = dump_json(value);
  llmops_error err{};
  if (host_.api()->kv_put(host_.ctx(), key.data(), key.size(), v.data(), v.size(), &err) != LLMOPS_OK) {
    return from_error(err, "writing " + key);
  }
  return ok_status();
}

Status Registry::del(const std::string& key) {
  llmops_error err{};
  if (host_.api()->kv_del(host_.ctx(), key.data(), key.size(), &err) != LLMOPS_OK) return from_error(err, "deleting " + key);
  return ok_status();
}

// ---- models -----------------------------------------------------------------------------------

Result<std::optional<ModelRecord>> Registry::model(const std::string& name) const {
  LLMOPS_ASSIGN_OR_RETURN(auto j, get(kModelPrefix + name));
  if (!j) return std::optional<ModelRecord>();
  LLMOPS_ASSIGN_OR_RETURN(auto r, ModelRecord::from_json(*j));
  return std::optional<ModelRecord>(std::move(r));
}

Result<std::vector<ModelRecord>> Registry::models() const {
  LLMOPS_ASSIGN_OR_RETURN(auto rows, scan(kModelPrefix));
  std::vector<ModelRecord> out;
  for (const Json& j : rows) {
    LLMOPS_ASSIGN_OR_RETURN(auto r, ModelRecord::from_json(j));
    out.push_back(std::move(r));
  }
  return out;
}

Status Registry::add_model(const ModelRecord& rec) {
  LLMOPS_RETURN_IF_ERROR(check_model_name(rec.name));
  std::lock_guard lock(write_mu_);
  LLMOPS_ASSIGN_OR_RETURN(auto existing, get(kModelPrefix + rec.name));
  if (existing) return already_exists("a model named '" + rec.name + "' exists; import under a new name (a version) or remove it first");
  LLMOPS_ASSIGN_OR_RETURN(auto a, get(kAliasPrefix + rec.name));
  if (a) return already_exists("'" + rec.name + "' is an alias; model names and aliases share one namespace");
  return put(kModelPrefix + rec.name, rec.to_json());
}

Status Registry::update_model(const ModelRecord& rec) {
  std::lock_guard lock(write_mu_);
  LLMOPS_ASSIGN_OR_RETURN(auto existing, get(kModelPrefix + rec.name));
  if (!existing) return not_found("no model '" + rec.name + "' (llmopsctl model list shows them)");
  return put(kModelPrefix + rec.name, rec.to_json());
}

Status Registry::remove_model(const std::string& name) {
  std::lock_guard lock(write_mu_);
  LLMOPS_ASSIGN_OR_RETURN(auto existing, get(kModelPrefix + name));
  if (!existing) return not_found("no model '" + name + "' (llmopsctl model list shows them)");
  LLMOPS_ASSIGN_OR_RETURN(auto pointing, aliases_of(name));
  if (!pointing.empty()) {
    std::string list;
    for (const auto& a : pointing) list += (list.empty() ? "" : ", ") + a;
    return failed_precondition("the alias(es) " + list + " point at '" + name + "'; repoint or remove them first");
  }
  return del(kModelPrefix + name);
}

// ---- aliases ----------------------------------------------------------------------------------

Result<std::optional<AliasRecord>> Registry::alias(const std::string& name) const {
  LLMOPS_ASSIGN_OR_RETURN(auto j, get(kAliasPrefix + name));
  if (!j) return std::optional<AliasRecord>();
  LLMOPS_ASSIGN_OR_RETURN(auto r, AliasRecord::from_json(*j));
  return std::optional<AliasRecord>(std::move(r));
}

Result<std::vector<AliasRecord>> Registry::aliases() const {
  LLMOPS_ASSIGN_OR_RETURN(auto rows, scan(kAliasPrefix));
  std::vector<AliasRecord> out;
  for (const Json& j : rows) {
    LLMOPS_ASSIGN_OR_RETURN(auto r, AliasRecord::from_json(j));
    out.push_back(std::move(r));
  }
  return out;
}

Status Registry::set_alias(const AliasRecord& rec) {
  LLMOPS_RETURN_IF_ERROR(check_model_name(rec.name, "alias"));
  std::lock_guard lock(write_mu_);
  LLMOPS_ASSIGN_OR_RETURN(auto m, get(kModelPrefix + rec.name));
  if (m) return already_exists("'" + rec.name + "' is a model's name; model names and aliases share one namespace");
  LLMOPS_ASSIGN_OR_RETURN(auto target, get(kModelPrefix + rec.target));
  if (!target) return not_found("no model '" + rec.target + "' to point the alias at (llmopsctl model list shows them)");
  return put(kAliasPrefix + rec.name, rec.to_json());
}

Status Registry::remove_alias(const std::string& name) {
  std::lock_guard lock(write_mu_);
  LLMOPS_ASSIGN_OR_RETURN(auto existing, get(kAliasPrefix + name));
  if (!existing) return not_found("no alias '" + name + "' (llmopsctl alias list shows them)");
  return del(kAliasPrefix + name);
}

Result<std::vector<std::string>> Registry::aliases_of(const std::string& model) const {
  LLMOPS_ASSIGN_OR_RETURN(auto all, aliases());
  std::vector<std::string> out;
  for (const auto& a : all) {
    if (a.target == model) out.push_back(a.name);
  }
  return out;
}

Result<std::vector<Json>> Registry::priorities() const { return scan("p/"); }

Status Registry::set_priority(const std::string& caller, const Json& entry) { return put("p/" + caller, entry); }

Status Registry::remove_priority(const std::string& caller) {
  LLMOPS_ASSIGN_OR_RETURN(auto existing, get("p/" + caller));
  if (!existing) return not_found("no priority is set for " + caller);
  return del("p/" + caller);
}

Result<std::string> Registry::resolve(const std::string& name) const {
  LLMOPS_ASSIGN_OR_RETURN(auto a, alias(name));
  return a ? a->target : name;
}

}  // namespace llmops::serving

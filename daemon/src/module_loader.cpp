// Finding, checking and validating modules: everything before a module's init runs.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <set>
#include <sstream>

#include "fs.h"
#include "log.h"
#include "module_host.h"

namespace llmops {
namespace {

const std::set<std::string> kStages = {"data",     "prompts", "tuning",    "eval",     "registry",
                                       "serving",  "monitor", "pipelines", "extension"};

// llmops_<name>.so → name; "" when the file does not follow the pattern.
std::string module_name_of(const std::string& file) {
  static const std::string kPrefix = "llmops_", kSuffix = ".so";
  if (file.size() <= kPrefix.size() + kSuffix.size() || file.compare(0, kPrefix.size(), kPrefix) != 0 ||
      file.compare(file.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
    return {};
  }
  std::string name = file.substr(kPrefix.size(), file.size() - kPrefix.size() - kSuffix.size());
  if (name.empty() || name.size() > 32 || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
    return {};
  }
  return name;
}

bool ends_with_so(const std::string& file) {
  return file.size() > 3 && (file.compare(file.size() - 3, 3, ".so") == 0 || file.find(".so.") != std::string::npos);
}

std::vector<std::string> split_dirs(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Status check_elf(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return errno_status("stat", errno);
  if (!S_ISREG(st.st_mode)) return invalid_argument("not a regular file");
  if (st.st_size < 64) return invalid_argument("file too small to be a shared object (" + std::to_string(st.st_size) + " bytes)");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_status("open", errno);
  unsigned char magic[5] = {};
  if (::read(fd.get(), magic, sizeof magic) != static_cast<ssize_t>(sizeof magic) || std::memcmp(magic, "\x7f" "ELF", 4) != 0) {
    return invalid_argument("not an ELF shared object (corrupt or wrong file)");
  }
  if (magic[4] != 2) return invalid_argument("not a 64-bit ELF object");
  return ok_status();
}

bool parse_bool(const std::string& v, bool* out) {
  static const std::set<std::string> kTrue = {"1", "true", "yes", "on"}, kFalse = {"0", "false", "no", "off"};
  if (kTrue.count(v)) return *out = true, true;
  if (kFalse.count(v)) return *out = false, true;
  return false;
}

}  // namespace

void DlCloser::operator()(void* handle) const {
  if (handle != nullptr) ::dlclose(handle);
}

void ModuleHost::refuse(const std::string& path, const std::string& name, const std::string& reason) {
  log_error("modules", "refused " + path + ": " + reason + (is_required(name) ? "" : "; the daemon runs on without it"));
  Module m;
  m.name = name;
  m.path = path;
  m.state = "refused";
  m.reason = reason;
  modules_.push_back(std::move(m));
}

bool ModuleHost::is_required(const std::string& name) const {
  return std::find(required_.begin(), required_.end(), name) != required_.end();
}

Status ModuleHost::load(const Config& config) {
  required_ = config.required_modules;
  disabled_ = config.disabled_modules;
  auto dirs = split_dirs(config.module_dir);
  for (const auto& dir : dirs) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      log_warning("modules", "cannot read module directory " + dir + ": " + std::strerror(errno));
      continue;
    }
    std::vector<std::string> files;
    while (dirent* e = ::readdir(d)) files.emplace_back(e->d_name);
    ::closedir(d);
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      if (file == "." || file == "..") continue;
      std::string path = join_path(dir, file);
      std::string name = module_name_of(file);
      if (name.empty()) {
        if (ends_with_so(file)) log_warning("modules", "skipped " + path + ": module files are named llmops_<name>.so");
        continue;
      }
      if (std::find(disabled_.begin(), disabled_.end(), name) != disabled_.end()) {
        Module m;
        m.name = name;
        m.path = path;
        m.state = "disabled";
        m.reason = "listed in disabled-modules";
        modules_.push_back(std::move(m));
        continue;
      }
      (void)load_one(path, name);
    }
  }
  for (const auto& name : required_) {
    auto it = std::find_if(modules_.begin(), modules_.end(), [&](const Module& m) { return m.name == name && m.state == "loaded"; });
    if (it != modules_.end()) continue;
    auto refused = std::find_if(modules_.begin(), modules_.end(), [&](const Module& m) { return m.name == name; });
    if (refused != modules_.end()) {
      return failed_precondition("required module '" + name + "' was " + refused->state + ": " + refused->reason);
    }
    return not_found("required module '" + name + "' is not in " + config.module_dir);
  }
  return ok_status();
}

Status ModuleHost::load_one(const std::string& path, const std::string& name) {
  for (const auto& m : modules_) {
    if (m.name == name && m.state == "loaded") {
      refuse(path, name, "duplicate: module '" + name + "' is already loaded from " + m.path);
      return ok_status();
    }
  }
  if (Status st = check_elf(path); !st.ok()) {
    refuse(path, name, st.message());
    return ok_status();
  }
  ::dlerror();
  DlHandle handle(::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!handle) {
    const char* err = ::dlerror();
    refuse(path, name, std::string("cannot be loaded: ") + (err != nullptr ? err : "unknown dlopen error"));
    return ok_status();
  }
  auto get_api = reinterpret_cast<llmops_module_get_api_fn>(::dlsym(handle.get(), LLMOPS_MODULE_ENTRY));
  if (get_api == nullptr) {
    refuse(path, name, "does not export " LLMOPS_MODULE_ENTRY "; is it an llmops module?");
    return ok_status();
  }
  const llmops_module_api* api = get_api();
  std::string why;
  constexpr size_t kMinSize = offsetof(llmops_module_api, health) + sizeof(api->health);
  if (api == nullptr) {
    why = LLMOPS_MODULE_ENTRY " returned NULL";
  } else if (api->struct_size < kMinSize) {
    why = "its llmops_module_api is " + std::to_string(api->struct_size) + " bytes, smaller than ABI 1.0's " + std::to_string(kMinSize);
  } else if (api->abi_major != LLMOPS_ABI_MAJOR) {
    why = "built for module ABI " + std::to_string(api->abi_major) + "." + std::to_string(api->abi_minor) +
          ", this llmopsd speaks " + std::to_string(LLMOPS_ABI_MAJOR) + "." + std::to_string(LLMOPS_ABI_MINOR) +
          " (major versions must match); rebuild the module against this SDK";
  } else if (api->abi_minor > LLMOPS_ABI_MINOR) {
    why = "needs module ABI " + std::to_string(api->abi_major) + "." + std::to_string(api->abi_minor) + ", newer than this llmopsd's " +
          std::to_string(LLMOPS_ABI_MAJOR) + "." + std::to_string(LLMOPS_ABI_MINOR) + "; upgrade llmops";
  } else if (api->name == nullptr || name != api->name) {
    why = std::string("calls itself '") + (api->name != nullptr ? api->name : "(null)") + "' but its file is named for '" + name + "'";
  } else if (api->init == nullptr) {
    why = "has no init entry point (required)";
  } else if (api->stage == nullptr || !kStages.count(api->stage)) {
    why = std::string("declares unknown stage '") + (api->stage != nullptr ? api->stage : "(null)") + "'";
  } else if (api->version == nullptr) {
    why = "declares no version";
  }
  if (!why.empty()) {
    refuse(path, name, why);
    return ok_status();
  }
  Module m;
  m.name = name;
  m.path = path;
  m.state = "loaded";
  m.handle = std::move(handle);
  m.api = api;
  log_info("modules", "loaded " + name + " " + api->version + " (" + api->stage + (api->implemented ? "" : ", placeholder") + ") from " + path);
  modules_.push_back(std::move(m));
  return ok_status();
}

Status ModuleHost::validate_module(Module& m, const Config& config) const {
  std::map<std::string, std::string> values;
  auto section_it = config.module_sections.find(m.name);
  const auto* section = section_it == config.module_sections.end() ? nullptr : &section_it->second;
  const llmops_config_item* schema = m.api->config_schema;
  size_t n = schema != nullptr ? m.api->config_schema_size : 0;
  std::string accepted;
  for (size_t i = 0; i < n; ++i) accepted += (i ? ", " : "") + std::string(schema[i].key);
  if (section != nullptr) {
    for (const auto& [key, value] : *section) {
      const llmops_config_item* item = nullptr;
      for (size_t i = 0; i < n; ++i) {
        if (key == schema[i].key) item = &schema[i];
      }
      std::string full = m.name + "." + key;
      if (item == nullptr) {
        return invalid_argument("unknown key '" + full + "': module " + m.name +
                                (n ? " accepts " + accepted : std::string(" takes no configuration keys")));
      }
      bool range = item->min <= item->max;
      if (item->type == LLMOPS_CONFIG_INT) {
        long long v = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec != std::errc() || p != value.data() + value.size()) return invalid_argument("key '" + full + "': '" + value + "' is not an integer");
        if (range && (v < item->min || v > item->max)) {
          return invalid_argument("key '" + full + "': " + value + " is outside " + std::to_string(static_cast<long long>(item->min)) +
                                  ".." + std::to_string(static_cast<long long>(item->max)));
        }
      } else if (item->type == LLMOPS_CONFIG_DOUBLE) {
        char* end = nullptr;
        double v = std::strtod(value.c_str(), &end);
        if (value.empty() || end != value.c_str() + value.size()) return invalid_argument("key '" + full + "': '" + value + "' is not a number");
        if (range && (v < item->min || v > item->max)) return invalid_argument("key '" + full + "': " + value + " is out of range");
      } else if (item->type == LLMOPS_CONFIG_BOOL) {
        bool b = false;
        if (!parse_bool(value, &b)) return invalid_argument("key '" + full + "': '" + value + "' is not true/false");
      }
      values[key] = value;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (values.count(schema[i].key)) continue;
    if (schema[i].default_value == nullptr) {
      return invalid_argument("key '" + m.name + "." + schema[i].key + "' is required" +
                              (schema[i].help ? std::string(": ") + schema[i].help : std::string()));
    }
    values[schema[i].key] = schema[i].default_value;
  }
  m.config = std::move(values);
  return ok_status();
}

Status ModuleHost::validate_config(const Config& config) {
  for (const auto& entry : config.module_sections) {
    const std::string& section = entry.first;
    bool known = std::any_of(modules_.begin(), modules_.end(), [&](const Module& m) { return m.name == section; });
    if (!known) {
      return invalid_argument("unknown key '" + section + "." + entry.second.begin()->first + "': there is no module '" + section +
                              "' in " + config.module_dir);
    }
  }
  for (auto& m : modules_) {
    if (m.state != "loaded" && m.state != "running") continue;
    LLMOPS_RETURN_IF_ERROR(validate_module(m, config).with_context(config.config_path.empty() ? "command line" : config.config_path));
  }
  return ok_status();
}

}  // namespace llmops

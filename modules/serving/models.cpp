#include "serving/models.h"

#include <thread>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>

#include "formats/detect.h"
#include "fs.h"
#include "json.h"

namespace llmops::serving {
namespace fs = std::filesystem;

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool Served::idle() const {
  if (in_flight.load() != 0) return false;
  SchedulerStats st = scheduler->stats();
  return st.running == 0 && st.waiting == 0;
}

Result<std::unique_ptr<GpuExecution>> ModelManager::place_on_gpu(const engine::Model& model, const std::string& name) {
  if (opt_.device == "cpu") return std::unique_ptr<GpuExecution>();
  auto refuse = [&](const Status& why) -> Result<std::unique_ptr<GpuExecution>> {
    if (opt_.device == "cuda") return why.with_context("serving.device is cuda, but '" + name + "' cannot run on the GPU");
    // "auto": a server without a GPU is the ordinary case and says so once per model at info level.
    host_.info("'" + name + "' runs on the CPU: " + why.message());
    return std::unique_ptr<GpuExecution>();
  };
  auto driver = engine::GpuDriver::find_usable();
  if (!driver.ok()) return refuse(driver.status());
  if (opt_.gpu >= (*driver)->api().device_count()) {
    return refuse(invalid_argument("serving.gpu is " + std::to_string(opt_.gpu) + ", and the " + (*driver)->api().name + " driver sees " +
                                   std::to_string((*driver)->api().device_count()) + " GPU(s)"));
  }
  // The device's context and pinned staging are made, and the weights uploaded, on a thread
  // pinned next to the GPU (as the scheduler thread that drives it will be), so they sit in its
  // NUMA node, not in this caller's.
  Status failed = ok_status();
  auto gpu = std::make_unique<GpuExecution>();
  std::thread([&] {
    auto pci = (*driver)->pci_bus_id(opt_.gpu);
    if (pci.ok() && opt_.scheduler.on_gpu_thread_start) opt_.scheduler.on_gpu_thread_start(*pci);
    auto device = engine::GpuDevice::open(*driver, opt_.gpu);
    if (!device.ok()) return void(failed = device.status());
    gpu->device = std::move(*device);
    // The weights' budget: the device's free memory less a reserve for activations and the
    // libraries' workspaces (or serving.gpu-memory-mb when smaller), less the KV caches' budget;
    // past it, the last layers stream.
    const uint64_t free_bytes = gpu->device->info().free_bytes, reserve = (512ull << 20) + free_bytes / 20;
    uint64_t room = free_bytes > reserve ? free_bytes - reserve : 0;
    if (opt_.gpu_memory_bytes > 0) room = std::min(room, opt_.gpu_memory_bytes);
    const uint64_t kv = opt_.scheduler.kv_budget_bytes;
    if (room <= kv) {
      return void(failed = resource_exhausted("the GPU leaves " + std::to_string(room >> 20) + " MiB to serving, not more than the " +
                                              std::to_string(kv >> 20) + " MiB KV budget (serving.kv-budget-mb, serving.gpu-memory-mb)"));
    }
    auto uploaded = engine::GpuModel::upload(*gpu->device, model, room - kv);
    if (!uploaded.ok()) return void(failed = uploaded.status());
    gpu->model = std::move(*uploaded);
  }).join();
  if (!failed.ok()) return refuse(failed);
  if (const int streamed = gpu->model->streamed_layers(); streamed > 0) {
    host_.info("'" + name + "' does not fit the GPU whole: " + std::to_string(streamed) + " of its " + std::to_string(model.config().n_layers) +
               " layers stream from host memory at each step (slower; a smaller quantisation or a larger GPU keeps it resident)");
  }
  return gpu;
}

Result<std::shared_ptr<Served>> ModelManager::make_served(OpenedModel opened, const std::string& name, const std::string& origin,
                                                          const std::string& path) {
  auto served = std::make_shared<Served>();
  served->name = name;
  served->origin = origin;
  served->path = path;
  served->created = static_cast<int64_t>(std::time(nullptr));
  served->model = opened.model;
  served->tok = opened.tok;
  served->chat = opened.chat;
  served->chat_source = opened.chat_source;
  served->cost_bytes = opened.model->weight_bytes() + opened.model->packed_bytes() + opt_.scheduler.kv_budget_bytes;
  LLMOPS_ASSIGN_OR_RETURN(auto gpu, place_on_gpu(*opened.model, name));
  served->scheduler = std::make_unique<Scheduler>(opened.model, opened.tok, opt_.scheduler, std::move(gpu));
  served->last_used_ms = unix_ms_now();
  if (opt_.on_load) opt_.on_load(*served);
  const std::string device = served->scheduler->device();
  host_.info("serving '" + name + "' from " + path + " (" + opened.model->config().arch_name + ", " +
             std::to_string(opened.model->weight_bytes() >> 20) + " MiB of weights, context " +
             std::to_string(served->scheduler->context()) + ", " +
             (device == "cpu" ? std::to_string(opt_.scheduler.threads) + " CPU threads" : "on " + device) + ", chat template " +
             served->chat_source + ")");
  return served;
}

Status ModelManager::load_pinned(const ModelSource& src, const std::string& path) {
  ModelSource packed = src;
  packed.pack_for_batches = opt_.pack_for_batches;
  LLMOPS_ASSIGN_OR_RETURN(auto opened, open_model(packed, [&](const std::string& m) { host_.warn(m); }));
  LLMOPS_ASSIGN_OR_RETURN(auto served, make_served(std::move(opened), src.name, "config", path));
  served->pinned = true;
  std::lock_guard lock(mu_);
  loaded_[src.name] = served;
  if (default_.empty()) default_ = src.name;
  return ok_status();
}

Status ModelManager::make_room(uint64_t need, const std::string& for_name) {
  if (opt_.memory_budget_bytes == 0) return ok_status();
  auto in_use = [&] {
    uint64_t n = 0;
    for (const auto& [_, m] : loaded_) n += m->cost_bytes;
    return n;
  };
  while (in_use() + need > opt_.memory_budget_bytes) {
    std::shared_ptr<Served> victim;
    for (const auto& [_, m] : loaded_) {
      if (m->pinned || !m->idle()) continue;
      if (victim == nullptr || m->last_used_ms.load() < victim->last_used_ms.load()) victim = m;
    }
    if (victim == nullptr) {
      return resource_exhausted("no room to load '" + for_name + "': it needs " + std::to_string(need >> 20) + " MiB and " +
                                std::to_string(in_use() >> 20) + " MiB of the " + std::to_string(opt_.memory_budget_bytes >> 20) +
                                " MiB budget (serving.memory-budget-mb) are held by busy or pinned models; retry when they are idle");
    }
    host_.info("unloading '" + victim->name + "' (idle) to make room for '" + for_name + "'");
    loaded_.erase(victim->name);
  }
  return ok_status();
}

Result<std::shared_ptr<Served>> ModelManager::load_from_registry(const ModelRecord& rec) {
  std::vector<models::StoredFile> files;
  for (const auto& f : rec.files) files.push_back({f.name, f.role, f.sha256});
  ModelSource src;
  src.name = rec.name;
  src.format = rec.format;
  src.chat_template = rec.chat_template;
  src.chat_source = "registry";
  src.pack_for_batches = opt_.pack_for_batches;
  std::string where;
  LLMOPS_ASSIGN_OR_RETURN(auto opened, models::open_stored_model(host_, src, files, [&](const std::string& m) { host_.warn(m); }, &where));
  if (rec.format == "hf") where = "blobs of " + rec.source;
  LLMOPS_ASSIGN_OR_RETURN(auto served, make_served(std::move(opened), rec.name, "registry", where));
  served->created = static_cast<int64_t>(rec.imported_ms / 1000);
  served->log_bodies = rec.log_bodies;
  return served;
}

Result<std::shared_ptr<Served>> ModelManager::acquire(const std::string& requested) {
  std::string name = requested.empty() ? default_name() : requested;
  if (name.empty()) return not_found("no default model: name one in 'model' (GET /v1/models lists them) or set serving.model");
  {
    std::lock_guard lock(mu_);
    if (auto it = loaded_.find(name); it != loaded_.end()) {  // the configured model, or a version asked for by name
      it->second->last_used_ms = unix_ms_now();
      return it->second;
    }
  }
  LLMOPS_ASSIGN_OR_RETURN(std::string target, registry_->resolve(name));
  std::promise<Result<std::shared_ptr<Served>>> promise;
  std::shared_future<Result<std::shared_ptr<Served>>> pending;
  {
    std::lock_guard lock(mu_);
    if (auto it = loaded_.find(target); it != loaded_.end()) {
      it->second->last_used_ms = unix_ms_now();
      return it->second;
    }
    if (auto it = loading_.find(target); it != loading_.end()) {
      pending = it->second;
    } else {
      loading_[target] = promise.get_future().share();
    }
  }
  if (pending.valid()) return pending.get();  // another request is loading it

  auto finish = [&](Result<std::shared_ptr<Served>> r) {
    std::lock_guard lock(mu_);
    loading_.erase(target);
    promise.set_value(r);
    return r;
  };
  auto rec = registry_->model(target);
  if (!rec.ok()) return finish(rec.status());
  if (!rec->has_value()) {
    return finish(not_found("the model '" + name + "' does not exist; GET /v1/models lists the models and aliases"));
  }
  {
    std::lock_guard lock(mu_);
    // Estimated from the files; loading tells the exact bytes (packed panels included), checked again below.
    Status room = make_room((*rec)->bytes() + opt_.scheduler.kv_budget_bytes, target);
    if (!room.ok()) {
      loading_.erase(target);
      promise.set_value(room);
      return room;
    }
  }
  auto served = load_from_registry(**rec);
  if (!served.ok()) return finish(served.status());
  {
    std::lock_guard lock(mu_);
    Status room = make_room((*served)->cost_bytes, target);
    if (!room.ok()) {
      served = room;
    } else {
      loaded_[target] = *served;
    }
  }
  return finish(std::move(served));
}

Status ModelManager::unload(const std::string& requested) {
  LLMOPS_ASSIGN_OR_RETURN(std::string target, registry_->resolve(requested));
  std::shared_ptr<Served> gone;
  {
    std::lock_guard lock(mu_);
    auto it = loaded_.find(target);
    if (it == loaded_.end()) it = loaded_.find(requested);
    if (it == loaded_.end()) return not_found("'" + requested + "' is not loaded (llmopsctl serve list shows the loaded models)");
    if (it->second->pinned) {
      return failed_precondition("'" + requested + "' is the configured model (serving.model); change the configuration to stop serving it");
    }
    gone = it->second;
    loaded_.erase(it);
  }
  host_.info("unloaded '" + gone->name + "'" + (gone->idle() ? "" : "; its requests in flight finish first"));
  return ok_status();  // the last request holding it frees it
}

void ModelManager::unload_all() {
  std::map<std::string, std::shared_ptr<Served>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(loaded_);
  }
  all.clear();  // schedulers end their sequences as they go
}

void ModelManager::reap_idle() {
  if (opt_.idle_unload_s <= 0) return;
  const int64_t cutoff = unix_ms_now() - static_cast<int64_t>(opt_.idle_unload_s) * 1000;
  std::vector<std::shared_ptr<Served>> gone;
  {
    std::lock_guard lock(mu_);
    for (auto it = loaded_.begin(); it != loaded_.end();) {
      const auto& m = it->second;
      if (!m->pinned && m->last_used_ms.load() < cutoff && m->idle()) {
        gone.push_back(m);
        it = loaded_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& m : gone) {
    host_.info("unloaded '" + m->name + "' after " + std::to_string(opt_.idle_unload_s) + " s idle (serving.idle-unload-s)");
  }
}

std::vector<std::shared_ptr<Served>> ModelManager::loaded() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Served>> out;
  for (const auto& [_, m] : loaded_) out.push_back(m);
  return out;
}

std::shared_ptr<Served> ModelManager::find_loaded(const std::string& model_name) const {
  std::lock_guard lock(mu_);
  auto it = loaded_.find(model_name);
  return it == loaded_.end() ? nullptr : it->second;
}

uint64_t ModelManager::bytes_in_use() const {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const auto& [_, m] : loaded_) n += m->cost_bytes;
  return n;
}

}  // namespace llmops::serving

namespace llmops::serving {
namespace {

// The files of a Hugging Face directory the loaders read: configuration, tokenizer, weights.
// Other files (PyTorch pickles, ONNX, README) are not copied.
bool wanted_hf_file(const std::string& name) {
  auto ends = [&](std::string_view suffix) { return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0; };
  return ends(".json") || ends(".safetensors") || ends(".model") || ends(".txt") || ends(".jinja");
}

}  // namespace

Result<ModelRecord> import_model(sdk::Host host, Registry& registry, const ImportRequest& req) {
  LLMOPS_RETURN_IF_ERROR(check_model_name(req.name));
  {
    LLMOPS_ASSIGN_OR_RETURN(auto m, registry.model(req.name));
    if (m) return already_exists("a model named '" + req.name + "' exists; import under a new name (a version) or remove it first");
    LLMOPS_ASSIGN_OR_RETURN(auto a, registry.alias(req.name));
    if (a) return already_exists("'" + req.name + "' is an alias; model names and aliases share one namespace");
  }
  if (req.path.empty() || req.path[0] != '/') return invalid_argument("the path to import must be absolute (got '" + req.path + "')");
  std::error_code ec;
  if (!fs::exists(req.path, ec)) return not_found("llmopsd cannot see " + req.path + " (no such file, or not readable by the daemon's user)");
  LLMOPS_ASSIGN_OR_RETURN(engine::ModelFormat format, engine::detect_model_format(req.path));

  ModelRecord rec;
  rec.name = req.name;
  rec.source = req.path;
  rec.imported_by = req.caller;
  rec.chat_template = req.chat_template;
  rec.lineage = req.lineage;
  std::vector<std::pair<ModelFile, std::string>> files;  // with the path to copy from
  ModelSource src;
  src.name = req.name;
  src.weights = req.path;
  src.chat_template = req.chat_template;
  src.chat_source = "given at import";
  auto file_of = [&](const std::string& name, const std::string& role, const std::string& path) -> Status {
    ModelFile f;
    f.name = name;
    f.role = role;
    f.size = fs::file_size(path, ec);
    if (ec) return not_found("cannot read " + path + ": " + ec.message());
    files.emplace_back(f, path);
    return ok_status();
  };
  switch (format) {
    case engine::ModelFormat::kGguf:
      if (!req.tokenizer.empty()) return invalid_argument("a GGUF file carries its vocabulary; drop --tokenizer");
      rec.format = src.format = "gguf";
      LLMOPS_RETURN_IF_ERROR(file_of("model.gguf", "weights", req.path));
      break;
    case engine::ModelFormat::kLlama2c:
      if (req.tokenizer.empty()) return invalid_argument("a llama2.c checkpoint carries no vocabulary: add --tokenizer PATH/tokenizer.bin");
      if (req.tokenizer[0] != '/' || fs::is_directory(req.tokenizer, ec)) {
        return invalid_argument("--tokenizer must be the absolute path of the checkpoint's tokenizer.bin");
      }
      rec.format = src.format = "llama2c";
      src.tokenizer = req.tokenizer;
      LLMOPS_RETURN_IF_ERROR(file_of("model.bin", "weights", req.path));
      LLMOPS_RETURN_IF_ERROR(file_of("tokenizer.bin", "tokenizer", req.tokenizer));
      break;
    case engine::ModelFormat::kHuggingFaceDir: {
      if (!req.tokenizer.empty()) return invalid_argument("a Hugging Face directory carries its tokenizer; drop --tokenizer");
      rec.format = src.format = "hf";
      std::vector<std::string> names;
      for (const auto& e : fs::directory_iterator(req.path, ec)) {
        if (e.is_regular_file() && wanted_hf_file(e.path().filename().string())) names.push_back(e.path().filename().string());
      }
      if (ec) return not_found("cannot list " + req.path + ": " + ec.message());
      std::sort(names.begin(), names.end());
      for (const auto& n : names) {
        const bool weights = n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0;
        LLMOPS_RETURN_IF_ERROR(file_of(n, weights ? "weights" : "config", req.path + "/" + n));
      }
      break;
    }
    case engine::ModelFormat::kSafetensors:
      return invalid_argument(req.path + " is a lone safetensors file: import the Hugging Face directory that holds it with its config.json");
    default:
      return invalid_argument(req.path + " is not a model format llmops can import");
  }

  // Validate by opening it exactly as serving will, before anything is written.
  {
    auto opened = open_model(src, [&](const std::string& m) { host.warn(m); });
    if (!opened.ok()) return opened.status();
    const auto& c = opened->model->config();
    rec.arch = c.arch_name;
    rec.context = c.seq_len;
    rec.vocab = c.vocab_size;
    rec.layers = c.n_layers;
    rec.dim = c.dim;
    rec.weight_bytes = opened->model->weight_bytes();
  }

  auto give_back = [&](size_t n) {
    for (size_t i = 0; i < n; ++i) {
      llmops_error err{};
      host.api()->blob_ref(host.ctx(), rec.files[i].sha256.c_str(), -1, &err);
    }
  };
  for (auto& [f, path] : files) {
    char hex[65] = {};
    llmops_error err{};
    if (host.api()->blob_put_file(host.ctx(), path.c_str(), hex, &err) != LLMOPS_OK) {
      give_back(rec.files.size());
      return Status(static_cast<Code>(err.code), "copying " + path + " into the blob store: " + err.message);
    }
    f.sha256 = hex;
    rec.files.push_back(f);
  }
  rec.imported_ms = static_cast<uint64_t>(unix_ms_now());
  Status st = registry.add_model(rec);
  if (!st.ok()) {
    give_back(rec.files.size());
    return st;
  }
  return rec;
}

}  // namespace llmops::serving

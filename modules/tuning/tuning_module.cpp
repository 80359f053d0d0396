// Stage module 'tuning': training runs as durable jobs — full fine-tuning of a base model and
// training its shape from scratch, with validation, early stopping and checkpoints that a
// restarted daemon resumes from; the result becomes a model version in the serving stage's
// catalogue. This file is the lifecycle; the job is in job.cpp, the admin routes in routes.cpp.
#include <filesystem>

#include "common/gpu_list.h"
#include "tuning/state.h"

namespace {

using namespace llmops::tuning;

llmops_code init(llmops_module_ctx* ctx, const llmops_host_api* host, llmops_error* err) {
  if (host->struct_size < offsetof(llmops_host_api, peer_call) + sizeof host->peer_call) {
    return llmops::sdk::fail(err, LLMOPS_FAILED_PRECONDITION, "the tuning stage needs a host with ABI 1.5 (peer calls to the data and serving stages)");
  }
  const llmops::sdk::Host early{ctx, host};  // the settings checked before any state is made
  const std::string device = early.config("device", "auto");
  if (device != "auto" && device != "cpu" && device != "cuda") {
    return llmops::sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "tuning.device is '" + device + "': use auto, cpu or cuda");
  }
  const std::string precision = early.config("gpu-precision", "fp32");
  if (precision != "fp32" && precision != "tf32" && precision != "bf16") {
    return llmops::sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "tuning.gpu-precision is '" + precision + "': use fp32, tf32 or bf16");
  }
  auto gpus = llmops::parse_gpu_list(early.config("gpus", "all"));
  if (!gpus.ok()) return llmops::sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "tuning.gpus: " + gpus.status().message());
  auto* s = new State();
  s->host = host;
  s->ctx = ctx;
  host->set_state(ctx, s);
  s->runs = std::make_unique<llmops::runs::RunStore>(s->sdk(), "tune");
  const llmops::sdk::Host sdk = s->sdk();
  s->work_dir = sdk.config("work-dir", "");
  if (s->work_dir.empty()) s->work_dir = (std::filesystem::temp_directory_path() / "llmops-tuning").string();
  s->m_runs = host->metric_register(ctx, "runs_completed_total", "Training runs that finished", 0);
  s->m_steps = host->metric_register(ctx, "steps_total", "Optimiser steps taken", 0);
  s->m_tokens = host->metric_register(ctx, "tokens_total", "Target tokens trained on", 0);
  s->watts_per_core = std::stod(sdk.config("watts-per-core", "10"));
  s->threads = std::stoi(sdk.config("threads", "0"));
  s->device = device;
  s->gpu_precision = precision;
  s->gpus = *gpus;
  if (host->job_kind_register(ctx, "train", 1, run_training_job, s, err) != LLMOPS_OK) return err->code;
  if (host->job_kind_register(ctx, "search", 1, run_search_job, s, err) != LLMOPS_OK) return err->code;
  llmops_code c = LLMOPS_OK;
  add_routes([&](const char* method, const char* path, llmops_route_fn fn) {
    if (c == LLMOPS_OK) c = host->route_register(ctx, LLMOPS_PLANE_ADMIN, method, path, fn, s, err);
  });
  return c;
}

void fini(llmops_module_ctx*, void* state) { delete static_cast<State*>(state); }

llmops_code health(llmops_module_ctx*, void*, llmops_health* out) {
  llmops::sdk::set_health(out, LLMOPS_HEALTH_OK, "ready");
  return LLMOPS_OK;
}

const llmops_config_item kSchema[] = {
    {"work-dir", LLMOPS_CONFIG_STRING, "", 0, 0, "where a trained model's GGUF is written before the serving stage imports it (default: the temp directory)"},
    {"watts-per-core", LLMOPS_CONFIG_STRING, "10", 0, 0, "energy estimate per busy core (W) where Intel RAPL is not readable"},
    {"threads", LLMOPS_CONFIG_INT, "0", 0, 1024, "engine threads of a training run (0: the training pool's size, else all CPUs)"},
    {"device", LLMOPS_CONFIG_STRING, "auto", 0, 0,
     "where training runs: auto (a GPU when the llmops-cuda driver finds one, the model is covered and its state fits; else the CPU), cpu, or cuda (the GPU or a failed run saying why)"},
    {"gpus", LLMOPS_CONFIG_STRING, "all", 0, 0,
     "the GPUs a run trains on: all, or their indices (0,2,3); one replica each, the batch split across them and the gradients summed by NCCL"},
    {"gpu-precision", LLMOPS_CONFIG_STRING, "fp32", 0, 0,
     "how a GPU run's matrix products multiply: fp32 (the CPU's arithmetic), or tensor cores with inputs rounded to tf32 or bf16 (F32 weights, gradients and sums either way)"},
};

const llmops_module_api kApi = {
    sizeof(llmops_module_api), LLMOPS_ABI_MAJOR, LLMOPS_ABI_MINOR, "tuning", LLMOPS_VERSION, "tuning",
    "training runs: full fine-tuning and training from scratch with checkpoints, validation and early stopping", 1, kSchema,
    sizeof kSchema / sizeof kSchema[0], init, nullptr, nullptr, nullptr, fini, health};

}  // namespace

extern "C" LLMOPS_EXPORT const llmops_module_api* llmops_module_get_api(void) { return &kApi; }

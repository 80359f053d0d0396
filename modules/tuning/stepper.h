// Where a training run's steps run: the CPU trainer on the training pool, or the same step on
// a GPU (engine/gpu/gpu_trainer.h). The job's loop (job.cpp) sees one interface for both, so
// checkpoints, validation, early stopping and the result work the same on either.
//
// On GPUs the parameters, gradients and AdamW's moments live on the devices, one replica per
// GPU with the batch split across them (engine/gpu/data_parallel.h); to_host() brings the
// trained set and the moments back into the host trainer and optimiser (for a checkpoint, and
// once at the end for the result). Each GPU's calls run on one thread bound next to it (its
// NUMA node's CPUs and memory, through the host's placement_bind_device); the job's own thread
// only hands them work, so nothing of the job thread's placement changes.
//
// One job's thread uses a Stepper; the trainer and optimiser must outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llmops/driver.h"
#include "tuning/checkpoint.h"

namespace llmops::tuning {

class Stepper {
 public:
  // device: "cpu"; "cuda" (the GPU or a failed run saying why); "auto" (the GPU when the
  // llmops-cuda driver finds one, it covers the model and the state fits, else the CPU with
  // the reason in *note: kUnavailable where the server has no usable GPU, another code where
  // one is there but cannot take this run). gpus: the GPUs' indices (empty: all the driver sees). pin_to_device(pci)
  // binds the calling thread next to that GPU. math: how the GPUs' products multiply
  // (LLMOPS_MATH_*; the CPU's are F32).
  // The trainer and optimiser hold the run's current state (a resumed run's, too).
  static Result<std::unique_ptr<Stepper>> make(const std::string& device, const std::vector<int>& gpus, int math, Trainer& t, Optimizer& opt, bool lora,
                                               const std::function<void(const std::string&)>& pin_to_device, Status* note);
  virtual ~Stepper() = default;

  // "cpu", "cuda:0 (NVIDIA H200, 0000:41:00.0)" or "cuda:0-3 (4 × NVIDIA H200)".
  virtual std::string device() const = 0;
  virtual Result<double> forward(const int32_t* tokens, const int32_t* targets, int batch, int seq) = 0;
  virtual int64_t counted_targets() const = 0;
  virtual Status backward() = 0;
  virtual Status zero_grads() = 0;
  virtual void set_dropout_stream(uint64_t stream) = 0;
  virtual void set_training(bool on) = 0;
  // The optimiser step over gradients summed from `micro_batches` micro-batches (their mean is
  // the step's gradient); returns the gradients' norm before clipping (not finite: no step).
  virtual Result<double> step(const engine::train::AdamWConfig& config, int micro_batches) = 0;
  // The trained parameters and the optimiser's state into the host trainer and optimiser.
  virtual Status to_host() = 0;
};

}  // namespace llmops::tuning

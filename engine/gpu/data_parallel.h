// Data-parallel training on the GPUs of one server: one GpuTrainer replica per device, each
// driven by its own thread (engine/gpu/device_thread.h) bound next to its GPU, the batch's
// sequences dealt out in contiguous slices, and the gradients summed across the replicas by
// the driver's all-reduce (NCCL on CUDA) once per optimiser step. Every replica then takes the
// same AdamW update from the same gradients, so their parameters stay equal bit for bit.
//
// The result is the one-device step's: each replica divides its gradient by the whole batch's
// counted targets, and its slice of LoRA's dropout mask is the slice of the whole batch's mask.
// Tensor parallelism (one model over several GPUs) is not done: each replica holds the model.
//
// One thread at a time; the replicas' devices are opened, used and closed on their own threads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gpu/device.h"
#include "gpu/device_thread.h"
#include "gpu/gpu_trainer.h"

namespace llmops::engine {

class DataParallelTrainer {
 public:
  // Opens the driver's devices of those indices (one replica each, in that order), each on its
  // own thread (pin(pci) binds that thread next to its GPU first), and makes a replica of the
  // host trainer on each. With more than one, the driver's communicator joins them
  // (kUnimplemented where it cannot, saying why).
  static Result<std::unique_ptr<DataParallelTrainer>> create(std::shared_ptr<GpuDriver> driver, const std::vector<int>& devices,
                                                             const train::LlamaTrainer<float>& host, const std::function<void(const std::string& pci)>& pin);
  ~DataParallelTrainer();

  int replicas() const { return static_cast<int>(reps_.size()); }
  // "cuda:0 (NVIDIA H200, 0000:41:00.0)", or "cuda:0,1,2,3 (4 × NVIDIA H200)".
  std::string describe() const;

  Status set_math(int mode);
  void set_dropout_stream(uint64_t stream);
  void set_training(bool on);
  // Sequence b goes to replica b·replicas/batch's slice; a batch of fewer sequences than
  // replicas leaves the last replicas idle for the step. Returns the batch's mean loss.
  Result<double> forward(const int32_t* tokens, const int32_t* targets, int batch, int seq);
  int64_t counted_targets() const { return counted_; }
  Status backward();
  Status zero_grads();
  // Sums the replicas' gradients (the micro-batches' of the step included), then the same AdamW
  // update on each; returns the gradients' norm as GpuTrainer::adamw_step does.
  Result<double> adamw_step(const train::AdamWConfig& config, double grad_multiplier = 1.0);

  size_t trained_count() const;
  Status download_trained(std::vector<float>* out);
  Status download_trained_grads(std::vector<float>* out);
  Status download_moments(std::vector<float>* m, std::vector<float>* v);
  Status upload_trained_state(const std::vector<float>& params, const std::vector<float>& m, const std::vector<float>& v, int64_t steps);
  int64_t steps() const;

 private:
  struct Replica {
    std::unique_ptr<DeviceThread> thread;
    std::unique_ptr<GpuDevice> dev;
    std::unique_ptr<GpuTrainer> trainer;
    Status status = ok_status();  // its last task's
    int first = 0, count = 0;     // its slice of the current batch: sequences [first, first + count)
    double loss_sum = 0;          // its slice's summed loss
  };
  DataParallelTrainer() = default;
  // Runs task(replica) on every replica (those with a slice only, when only_active) at once; the first error.
  Status each(const std::function<Status(Replica&)>& task, bool only_active = false);

  std::vector<Replica> reps_;
  std::shared_ptr<GpuDriver> driver_;
  void* comm_ = nullptr;
  int64_t counted_ = 0;
  bool have_forward_ = false;
};

}  // namespace llmops::engine

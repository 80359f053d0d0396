#include "tuning/stepper.h"

#include <algorithm>

#include "gpu/data_parallel.h"

namespace llmops::tuning {
namespace {

class CpuStepper final : public Stepper {
 public:
  CpuStepper(Trainer& t, Optimizer& opt, bool lora) : t_(t), opt_(opt), lora_(lora) {}
  std::string device() const override { return "cpu"; }
  Result<double> forward(const int32_t* tokens, const int32_t* targets, int batch, int seq) override {
    return t_.forward(tokens, targets, batch, seq);
  }
  int64_t counted_targets() const override { return t_.counted_targets(); }
  Status backward() override {
    t_.backward();
    return ok_status();
  }
  Status zero_grads() override {
    t_.zero_grads();
    if (lora_) t_.zero_lora_grads();
    return ok_status();
  }
  void set_dropout_stream(uint64_t stream) override { t_.set_dropout_stream(stream); }
  void set_training(bool on) override { t_.set_training(on); }
  Result<double> step(const engine::train::AdamWConfig&, int micro_batches) override {
    std::vector<float>& gr = lora_ ? t_.lora_grads() : t_.grads();
    if (micro_batches > 1) {
      const float inv = 1.0f / static_cast<float>(micro_batches);
      for (float& x : gr) x *= inv;
    }
    return lora_ ? opt_.step(t_.lora_params(), t_.lora_grads(), t_.lora_tensors()) : opt_.step(t_.params(), t_.grads(), t_.tensors());
  }
  Status to_host() override { return ok_status(); }

 private:
  Trainer& t_;
  Optimizer& opt_;
  bool lora_;
};

// The step on the GPUs: one replica per GPU (engine/gpu/data_parallel.h), each on a thread
// bound next to its GPU; one GPU is the plain case of one replica.
class GpuStepper final : public Stepper {
 public:
  GpuStepper(Trainer& t, Optimizer& opt, bool lora) : t_(t), opt_(opt), lora_(lora) {}

  // kUnavailable only where this server has no usable GPU; a GPU that is there but cannot take
  // this run says why with another code.
  Status open(const std::vector<int>& gpus, int math, const std::function<void(const std::string&)>& pin) {
    LLMOPS_ASSIGN_OR_RETURN(auto driver, engine::GpuDriver::find_usable());
    if (driver->score() <= 0) return unavailable("the " + std::string(driver->api().name) + " driver finds no usable device here");
    Status st = start(driver, gpus, math, pin);
    return st.code() == Code::kUnavailable ? failed_precondition(st.message()) : st;
  }

  Status start(const std::shared_ptr<engine::GpuDriver>& driver, const std::vector<int>& gpus, int math,
               const std::function<void(const std::string&)>& pin) {
    std::vector<int> devices = gpus;
    if (devices.empty()) {
      for (int i = 0; i < driver->api().device_count(); ++i) devices.push_back(i);
    }
    LLMOPS_ASSIGN_OR_RETURN(dp_, engine::DataParallelTrainer::create(driver, devices, t_, pin));
    LLMOPS_RETURN_IF_ERROR(dp_->set_math(math));
    // A resumed run: its moments and step count from the checkpoint the host holds.
    if (opt_.steps() > 0) {
      std::vector<float>& trained = lora_ ? t_.lora_params() : t_.params();
      LLMOPS_RETURN_IF_ERROR(dp_->upload_trained_state(trained, opt_.m(), opt_.v(), opt_.steps()));
    }
    return ok_status();
  }

  std::string device() const override { return dp_->describe(); }
  Result<double> forward(const int32_t* tokens, const int32_t* targets, int batch, int seq) override {
    return dp_->forward(tokens, targets, batch, seq);
  }
  int64_t counted_targets() const override { return dp_->counted_targets(); }
  Status backward() override { return dp_->backward(); }
  Status zero_grads() override { return dp_->zero_grads(); }
  void set_dropout_stream(uint64_t stream) override { dp_->set_dropout_stream(stream); }
  void set_training(bool on) override { dp_->set_training(on); }
  Result<double> step(const engine::train::AdamWConfig& config, int micro_batches) override {
    return dp_->adamw_step(config, 1.0 / static_cast<double>(std::max(1, micro_batches)));
  }
  Status to_host() override {
    LLMOPS_RETURN_IF_ERROR(dp_->download_trained(lora_ ? &t_.lora_params() : &t_.params()));
    LLMOPS_RETURN_IF_ERROR(dp_->download_moments(&opt_.m(), &opt_.v()));
    opt_.set_steps(dp_->steps());
    return ok_status();
  }

 private:
  Trainer& t_;
  Optimizer& opt_;
  bool lora_;
  std::unique_ptr<engine::DataParallelTrainer> dp_;
};

}  // namespace

Result<std::unique_ptr<Stepper>> Stepper::make(const std::string& device, const std::vector<int>& gpus, int math, Trainer& t, Optimizer& opt, bool lora,
                                               const std::function<void(const std::string&)>& pin_to_device, Status* note) {
  if (device != "cpu") {
    auto gpu = std::make_unique<GpuStepper>(t, opt, lora);
    Status st = gpu->open(gpus, math, pin_to_device);
    if (st.ok()) return std::unique_ptr<Stepper>(std::move(gpu));
    if (device == "cuda") return st.with_context("tuning.device is cuda, but this run cannot train on the GPU");
    if (note != nullptr) *note = st;
  }
  return std::unique_ptr<Stepper>(std::make_unique<CpuStepper>(t, opt, lora));
}

}  // namespace llmops::tuning

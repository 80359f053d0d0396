#include "tuning/stepper.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "gpu/gpu_trainer.h"

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

// One thread that owns a GPU's work: run() hands it a task and waits for it.
class DeviceThread {
 public:
  DeviceThread() : thread_([this] { loop(); }) {}
  ~DeviceThread() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void run(const std::function<void()>& task) {
    std::unique_lock<std::mutex> lk(mu_);
    task_ = &task;
    done_ = false;
    cv_.notify_all();
    cv_.wait(lk, [&] { return done_; });
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return quit_ || task_ != nullptr; });
      if (task_ == nullptr) return;
      const std::function<void()>* task = task_;
      lk.unlock();
      (*task)();
      lk.lock();
      task_ = nullptr;
      done_ = true;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void()>* task_ = nullptr;
  bool done_ = false, quit_ = false;
  std::thread thread_;
};

class GpuStepper final : public Stepper {
 public:
  GpuStepper(Trainer& t, Optimizer& opt, bool lora) : t_(t), opt_(opt), lora_(lora) {}
  ~GpuStepper() override {
    // The trainer and the device are released on the thread that made them.
    thread_.run([&] {
      gpu_.reset();
      dev_.reset();
    });
  }

  Status open(const std::function<void(const std::string&)>& pin, int math) {
    Status st = ok_status();
    thread_.run([&] {
      st = open_here(pin);
      if (st.ok()) st = gpu_->set_math(math);
    });
    return st;
  }

  std::string device() const override { return name_; }
  Result<double> forward(const int32_t* tokens, const int32_t* targets, int batch, int seq) override {
    Result<double> r = 0.0;
    thread_.run([&] { r = gpu_->forward(tokens, targets, batch, seq); });
    return r;
  }
  int64_t counted_targets() const override { return gpu_->counted_targets(); }
  Status backward() override { return on_device([&] { return gpu_->backward(); }); }
  Status zero_grads() override { return on_device([&] { return gpu_->zero_grads(); }); }
  void set_dropout_stream(uint64_t stream) override { gpu_->set_dropout_stream(stream); }
  void set_training(bool on) override { gpu_->set_training(on); }
  Result<double> step(const engine::train::AdamWConfig& config, int micro_batches) override {
    Result<double> r = 0.0;
    thread_.run([&] { r = gpu_->adamw_step(config, 1.0 / static_cast<double>(std::max(1, micro_batches))); });
    return r;
  }
  Status to_host() override {
    return on_device([&]() -> Status {
      LLMOPS_RETURN_IF_ERROR(gpu_->download_trained(lora_ ? &t_.lora_params() : &t_.params()));
      LLMOPS_RETURN_IF_ERROR(gpu_->download_moments(&opt_.m(), &opt_.v()));
      opt_.set_steps(gpu_->steps());
      return ok_status();
    });
  }

 private:
  Status on_device(const std::function<Status()>& f) {
    Status st = ok_status();
    thread_.run([&] { st = f(); });
    return st;
  }
  Status open_here(const std::function<void(const std::string&)>& pin) {
    LLMOPS_ASSIGN_OR_RETURN(auto driver, engine::GpuDriver::find_usable());
    if (auto pci = driver->pci_bus_id(0); pci.ok() && pin) pin(*pci);
    LLMOPS_ASSIGN_OR_RETURN(dev_, engine::GpuDevice::open(driver, 0));
    LLMOPS_ASSIGN_OR_RETURN(gpu_, engine::GpuTrainer::create(*dev_, t_));
    // A resumed run: its moments and step count from the checkpoint the host holds.
    if (opt_.steps() > 0) {
      std::vector<float>& trained = lora_ ? t_.lora_params() : t_.params();
      LLMOPS_RETURN_IF_ERROR(gpu_->upload_trained_state(trained, opt_.m(), opt_.v(), opt_.steps()));
    }
    name_ = "cuda:0 (" + std::string(dev_->info().name) + ", " + dev_->info().pci_bus_id + ")";
    return ok_status();
  }

  Trainer& t_;
  Optimizer& opt_;
  bool lora_;
  std::unique_ptr<engine::GpuDevice> dev_;
  std::unique_ptr<engine::GpuTrainer> gpu_;
  std::string name_;
  DeviceThread thread_;  // last: it stops (after the destructor's release) before the rest goes
};

}  // namespace

Result<std::unique_ptr<Stepper>> Stepper::make(const std::string& device, int math, Trainer& t, Optimizer& opt, bool lora,
                                               const std::function<void(const std::string&)>& pin_to_device, std::string* note) {
  if (device != "cpu") {
    auto gpu = std::make_unique<GpuStepper>(t, opt, lora);
    Status st = gpu->open(pin_to_device, math);
    if (st.ok()) return std::unique_ptr<Stepper>(std::move(gpu));
    if (device == "cuda") return st.with_context("tuning.device is cuda, but this run cannot train on the GPU");
    if (note != nullptr) *note = st.message();
  }
  return std::unique_ptr<Stepper>(std::make_unique<CpuStepper>(t, opt, lora));
}

}  // namespace llmops::tuning

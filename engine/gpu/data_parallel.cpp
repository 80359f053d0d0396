#include "gpu/data_parallel.h"

#include <algorithm>

namespace llmops::engine {

Result<std::unique_ptr<DataParallelTrainer>> DataParallelTrainer::create(std::shared_ptr<GpuDriver> driver, const std::vector<int>& devices,
                                                                         const train::LlamaTrainer<float>& host,
                                                                         const std::function<void(const std::string& pci)>& pin) {
  const llmops_driver_api& api = driver->api();
  const int replicas = static_cast<int>(devices.size());
  if (replicas < 1) return invalid_argument("data parallelism needs at least one device");
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i] < 0 || devices[i] >= api.device_count()) {
      return invalid_argument("there is no device " + std::to_string(devices[i]) + ": the " + std::string(api.name) + " driver sees " +
                              std::to_string(api.device_count()));
    }
    if (std::find(devices.begin(), devices.begin() + static_cast<long>(i), devices[i]) != devices.begin() + static_cast<long>(i)) {
      return invalid_argument("device " + std::to_string(devices[i]) + " is named twice");
    }
  }
  std::unique_ptr<DataParallelTrainer> dp(new DataParallelTrainer);
  dp->driver_ = driver;
  dp->reps_.resize(static_cast<size_t>(replicas));
  for (Replica& r : dp->reps_) r.thread = std::make_unique<DeviceThread>();
  for (size_t k = 0; k < dp->reps_.size(); ++k) {
    Replica& r = dp->reps_[k];
    const int i = devices[k];
    r.thread->run([&] {
      r.status = [&]() -> Status {
        if (auto pci = driver->pci_bus_id(i); pci.ok() && pin) pin(*pci);
        LLMOPS_ASSIGN_OR_RETURN(r.dev, GpuDevice::open(driver, i));
        LLMOPS_ASSIGN_OR_RETURN(r.trainer, GpuTrainer::create(*r.dev, host));
        return ok_status();
      }();
    });
    LLMOPS_RETURN_IF_ERROR(r.status.with_context("device " + std::to_string(i)));
  }
  if (replicas > 1) {
    std::vector<llmops_drv*> handles;
    for (Replica& r : dp->reps_) handles.push_back(r.dev->handle());
    if (int rc = api.comm_create(handles.data(), replicas, &dp->comm_); rc != LLMOPS_DRV_OK) {
      Status st = dp->reps_[0].dev->check(rc, "joining the GPUs for data parallelism");
      return st.code() == Code::kUnimplemented ? st : unimplemented(st.message());
    }
  }
  return dp;
}

DataParallelTrainer::~DataParallelTrainer() {
  if (comm_ != nullptr) driver_->api().comm_destroy(comm_);
  // Each replica's trainer and device go on the thread that made them.
  for (Replica& r : reps_) {
    r.thread->run([&] {
      r.trainer.reset();
      r.dev.reset();
    });
  }
}

std::string DataParallelTrainer::describe() const {
  const llmops_drv_device_info& first = reps_[0].dev->info();
  if (reps_.size() == 1) return "cuda:" + std::to_string(reps_[0].dev->index()) + " (" + first.name + ", " + first.pci_bus_id + ")";
  std::string ids;
  for (const Replica& r : reps_) ids += (ids.empty() ? "" : ",") + std::to_string(r.dev->index());
  return "cuda:" + ids + " (" + std::to_string(reps_.size()) + " × " + first.name + ")";
}

Status DataParallelTrainer::each(const std::function<Status(Replica&)>& task, bool only_active) {
  std::vector<std::function<void()>> tasks(reps_.size());
  for (size_t i = 0; i < reps_.size(); ++i) {
    Replica& r = reps_[i];
    if (only_active && r.count == 0) continue;
    tasks[i] = [&task, &r] { r.status = task(r); };
    r.thread->start(tasks[i]);
  }
  Status first = ok_status();
  for (size_t i = 0; i < reps_.size(); ++i) {
    if (!tasks[i]) continue;
    reps_[i].thread->wait();
    if (first.ok() && !reps_[i].status.ok()) first = reps_[i].status.with_context("replica " + std::to_string(i));
  }
  return first;
}

Status DataParallelTrainer::set_math(int mode) {
  return each([mode](Replica& r) { return r.trainer->set_math(mode); });
}

void DataParallelTrainer::set_dropout_stream(uint64_t stream) {
  for (Replica& r : reps_) r.trainer->set_dropout_stream(stream);
}

void DataParallelTrainer::set_training(bool on) {
  for (Replica& r : reps_) r.trainer->set_training(on);
}

Result<double> DataParallelTrainer::forward(const int32_t* tokens, const int32_t* targets, int batch, int seq) {
  have_forward_ = false;
  if (batch < 1 || seq < 1) return invalid_argument("a training batch needs at least one sequence of at least one token");
  const int n = batch * seq;
  counted_ = 0;
  for (int i = 0; i < n; ++i) counted_ += targets[i] >= 0;
  const int reps = static_cast<int>(reps_.size());
  for (int i = 0; i < reps; ++i) {
    // Slices as even as can be.
    Replica& r = reps_[static_cast<size_t>(i)];
    r.first = batch * i / reps, r.count = batch * (i + 1) / reps - r.first;
    r.loss_sum = 0;
    if (r.count == 0) continue;
    r.trainer->set_gradient_normaliser(reps > 1 ? counted_ : 0);
    r.trainer->set_token_offset(static_cast<uint64_t>(r.first) * static_cast<uint64_t>(seq));
  }
  LLMOPS_RETURN_IF_ERROR(each(
      [&](Replica& r) -> Status {
        const size_t at = static_cast<size_t>(r.first) * static_cast<size_t>(seq);
        LLMOPS_ASSIGN_OR_RETURN(double mean, r.trainer->forward(tokens + at, targets + at, r.count, seq));
        r.loss_sum = mean * static_cast<double>(r.trainer->counted_targets());
        return ok_status();
      },
      true));
  double total = 0;
  for (const Replica& r : reps_) total += r.loss_sum;  // in rank order
  have_forward_ = true;
  return counted_ > 0 ? total / static_cast<double>(counted_) : 0.0;
}

Status DataParallelTrainer::backward() {
  if (!have_forward_) return failed_precondition("backward() needs a forward() first");
  have_forward_ = false;
  return each([](Replica& r) { return r.trainer->backward(); }, true);
}

Status DataParallelTrainer::zero_grads() {
  return each([](Replica& r) { return r.trainer->zero_grads(); });
}

Result<double> DataParallelTrainer::adamw_step(const train::AdamWConfig& config, double grad_multiplier) {
  if (comm_ != nullptr) {
    std::vector<float*> bufs;
    for (Replica& r : reps_) bufs.push_back(r.trainer->trained_grads());
    const llmops_driver_api& api = driver_->api();
    if (int rc = api.comm_all_reduce(comm_, bufs.data(), trained_count()); rc != LLMOPS_DRV_OK) {
      return reps_[0].dev->check(rc, "summing the gradients across the GPUs");
    }
  }
  std::vector<double> norms(reps_.size(), 0.0);
  LLMOPS_RETURN_IF_ERROR(each([&](Replica& r) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(norms[static_cast<size_t>(&r - reps_.data())], r.trainer->adamw_step(config, grad_multiplier));
    return ok_status();
  }));
  return norms[0];
}

size_t DataParallelTrainer::trained_count() const { return reps_[0].trainer->trained_count(); }
int64_t DataParallelTrainer::steps() const { return reps_[0].trainer->steps(); }

Status DataParallelTrainer::download_trained(std::vector<float>* out) {
  Status st = ok_status();
  reps_[0].thread->run([&] { st = reps_[0].trainer->download_trained(out); });
  return st;
}

Status DataParallelTrainer::download_trained_grads(std::vector<float>* out) {
  Status st = ok_status();
  reps_[0].thread->run([&] { st = reps_[0].trainer->download_trained_grads(out); });
  return st;
}

Status DataParallelTrainer::download_moments(std::vector<float>* m, std::vector<float>* v) {
  Status st = ok_status();
  reps_[0].thread->run([&] { st = reps_[0].trainer->download_moments(m, v); });
  return st;
}

Status DataParallelTrainer::upload_trained_state(const std::vector<float>& params, const std::vector<float>& m, const std::vector<float>& v,
                                                 int64_t steps) {
  return each([&](Replica& r) { return r.trainer->upload_trained_state(params, m, v, steps); });
}

}  // namespace llmops::engine

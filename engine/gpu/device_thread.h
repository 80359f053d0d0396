// One thread that owns a GPU's work (its context, its stream's calls), bound where its caller
// chooses (next to the GPU): run() hands it a task and waits for it to finish. A device's calls
// all come from one thread this way while the caller's own thread keeps its placement.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace llmops::engine {

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
  DeviceThread(const DeviceThread&) = delete;
  DeviceThread& operator=(const DeviceThread&) = delete;

  // Runs task on the thread and returns when it has.
  void run(const std::function<void()>& task) {
    start(task);
    wait();
  }
  // The two halves of run(), so that several devices' threads work at once: start each, then
  // wait for each. task must stay alive until wait() returns.
  void start(const std::function<void()>& task) {
    std::lock_guard<std::mutex> lk(mu_);
    task_ = &task;
    done_ = false;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lk(mu_);
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

}  // namespace llmops::engine

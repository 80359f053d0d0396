// The sd_notify protocol: READY, RELOADING, STOPPING, STATUS and WATCHDOG to $NOTIFY_SOCKET
// (a no-op when systemd did not start us). Main thread.
#pragma once

#include <cstdint>
#include <string>

namespace llmops {

class Notifier {
 public:
  Notifier();
  void ready(const std::string& status);
  void reloading();
  void stopping(const std::string& status);
  void status(const std::string& status);
  void watchdog();
  // The interval systemd expects pings within (0 when no watchdog is set).
  uint64_t watchdog_usec() const { return watchdog_usec_; }
  bool active() const { return active_; }

 private:
  void send(const std::string& text);
  bool active_ = false;
  uint64_t watchdog_usec_ = 0;
};

}  // namespace llmops

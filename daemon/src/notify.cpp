#include "notify.h"

#include <time.h>

#include <cstdlib>

#ifdef LLMOPS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace llmops {

Notifier::Notifier() {
#ifdef LLMOPS_HAVE_SYSTEMD
  active_ = std::getenv("NOTIFY_SOCKET") != nullptr;
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) watchdog_usec_ = usec;
#endif
}

void Notifier::send(const std::string& text) {
#ifdef LLMOPS_HAVE_SYSTEMD
  if (active_) sd_notify(0, text.c_str());
#else
  (void)text;
#endif
}

void Notifier::ready(const std::string& status) { send("READY=1\nSTATUS=" + status); }

void Notifier::reloading() {
  // systemd >= 253 (Type=notify-reload) wants the monotonic time of the reload start.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t usec = static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading configuration");
}

void Notifier::stopping(const std::string& status) { send("STOPPING=1\nSTATUS=" + status); }
void Notifier::status(const std::string& status) { send("STATUS=" + status); }
void Notifier::watchdog() { send("WATCHDOG=1"); }

}  // namespace llmops

#include "log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>

#ifdef LLMOPS_HAVE_SYSTEMD
#include <syslog.h>
#include <systemd/sd-journal.h>
#endif

namespace llmops {
namespace {

std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_journald{false};
std::mutex g_stderr_mu;

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

}  // namespace

void log_init(LogLevel min_level, bool journald) {
  g_min_level = static_cast<int>(min_level);
#ifdef LLMOPS_HAVE_SYSTEMD
  g_journald = journald;
#else
  (void)journald;
#endif
}

void log_set_level(LogLevel min_level) { g_min_level = static_cast<int>(min_level); }

bool parse_log_level(std::string_view text, LogLevel* out) {
  for (auto level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    if (text == level_name(level)) {
      *out = level;
      return true;
    }
  }
  return false;
}

bool stderr_is_journal() {
  // JOURNAL_STREAM is "device:inode" of the stream systemd connected; compare with stderr.
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st{};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

void log_message(LogLevel level, std::string_view tag, std::string_view message) {
  if (static_cast<int>(level) < g_min_level.load(std::memory_order_relaxed)) return;
#ifdef LLMOPS_HAVE_SYSTEMD
  if (g_journald.load(std::memory_order_relaxed)) {
    static const int kPriority[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
    sd_journal_send("MESSAGE=[%.*s] %.*s", static_cast<int>(tag.size()), tag.data(),
                    static_cast<int>(message.size()), message.data(), "PRIORITY=%d",
                    kPriority[static_cast<int>(level)], "SYSLOG_IDENTIFIER=llmopsd",
                    "LLMOPS_MODULE=%.*s", static_cast<int>(tag.size()), tag.data(), nullptr);
    return;
  }
#endif
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  gmtime_r(&ts.tv_sec, &utc);
  char stamp[40];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ts.tv_nsec / 1000000);
  std::lock_guard lock(g_stderr_mu);
  std::fprintf(stderr, "%s %-7s [%.*s] %.*s\n", stamp, level_name(level), static_cast<int>(tag.size()),
               tag.data(), static_cast<int>(message.size()), message.data());
}

}  // namespace llmops

// Process-wide logger: journald (with a LLMOPS_MODULE field) under systemd, stderr otherwise.
// Every line carries a tag: the module or daemon component it came from. Any thread.
#pragma once

#include <string_view>

namespace llmops {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Call once at start; later calls change the level and sink. `journald` picks the sink.
void log_init(LogLevel min_level, bool journald);
void log_set_level(LogLevel min_level);
bool parse_log_level(std::string_view text, LogLevel* out);
// True when stderr is connected to the journal (systemd sets JOURNAL_STREAM).
bool stderr_is_journal();

void log_message(LogLevel level, std::string_view tag, std::string_view message);
inline void log_debug(std::string_view tag, std::string_view m) { log_message(LogLevel::kDebug, tag, m); }
inline void log_info(std::string_view tag, std::string_view m) { log_message(LogLevel::kInfo, tag, m); }
inline void log_warning(std::string_view tag, std::string_view m) { log_message(LogLevel::kWarning, tag, m); }
inline void log_error(std::string_view tag, std::string_view m) { log_message(LogLevel::kError, tag, m); }

}  // namespace llmops

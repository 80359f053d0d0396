// Language identification with CLD2 (Debian's libcld2): ISO 639-1 style codes ("en", "de",
// "zh", "un" for unknown). Thread-safe (CLD2 keeps no mutable state); any thread.
#pragma once

#include <string>
#include <string_view>

namespace llmops::data {

struct LanguageGuess {
  std::string code = "un";  // "un": too short, mixed, or not a language CLD2 knows
  int percent = 0;          // of the text's letters in that language
  bool reliable = false;
};

// Valid UTF-8 only (callers repair first); looks at the first 64 KiB.
LanguageGuess detect_language(std::string_view text);

}  // namespace llmops::data

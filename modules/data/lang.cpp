#include "data/lang.h"

#include <compact_lang_det.h>
#include <lang_script.h>

#include <algorithm>

namespace llmops::data {

LanguageGuess detect_language(std::string_view text) {
  LanguageGuess g;
  size_t cut = std::min<size_t>(text.size(), 64 * 1024);
  while (cut > 0 && cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // whole characters
  const int n = static_cast<int>(cut);
  if (n == 0) return g;
  CLD2::Language top3[3];
  int percent3[3] = {};
  int text_bytes = 0;
  bool reliable = false;
  CLD2::Language lang = CLD2::DetectLanguageSummary(text.data(), n, true, top3, percent3, &text_bytes, &reliable);
  if (lang == CLD2::UNKNOWN_LANGUAGE) return g;
  g.code = CLD2::LanguageCode(lang);
  g.percent = top3[0] == lang ? percent3[0] : 0;
  g.reliable = reliable;
  return g;
}

}  // namespace llmops::data

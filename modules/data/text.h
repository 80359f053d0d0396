// Text clean-up primitives of the data stage: UTF-8 checks and repair, Unicode normalisation
// (utf8proc), control characters and whitespace, fast 64-bit hashing, character classes and
// lengths. Pure functions of their arguments; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmops::data {

// Whether text is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view text);
// Text with each maximal invalid sequence replaced by U+FFFD; *replaced counts them.
std::string repair_utf8(std::string_view text, size_t* replaced = nullptr);
// Code points in valid UTF-8 text (bytes that do not start a sequence are not counted).
size_t utf8_length(std::string_view text);

enum class NormalForm { kNone, kNfc, kNfkc };
// NFC or NFKC of valid UTF-8 text (kNone returns it as is). Invalid input is repaired first.
std::string normalize(std::string_view text, NormalForm form);

struct WhitespaceReport {
  size_t control_removed = 0;  // C0/C1 controls other than \t \n, and U+FEFF / zero-width marks
  bool changed = false;
};
// Drops control characters (keeping \n and \t), turns \r\n and \r into \n, Unicode spaces
// (NBSP, U+2000..U+200A, U+3000) into ' ', collapses runs of spaces and tabs to one space,
// strips spaces at line ends, keeps at most one blank line in a row and trims the ends.
std::string clean_whitespace(std::string_view text, WhitespaceReport* report = nullptr);

// The key exact deduplication compares: NFKC, lower case (ASCII and Unicode simple case
// folding), whitespace runs as one space, trimmed.
std::string dedup_key(std::string_view text);

// A fast non-cryptographic 64-bit hash (wyhash-style multiply-mix); seed picks the function.
uint64_t hash64(std::string_view data, uint64_t seed = 0);
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Counts of what a text is made of, by code point.
struct CharMix {
  size_t letters = 0, digits = 0, spaces = 0, punctuation = 0, symbols = 0, other = 0;
  size_t total() const { return letters + digits + spaces + punctuation + symbols + other; }
};
CharMix char_mix(std::string_view text);

}  // namespace llmops::data

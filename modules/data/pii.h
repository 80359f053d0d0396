// Personal data and secrets in text, found by hand-written scanners (no regex engine: one pass
// over the bytes at tens of MB/s) and replaced by typed placeholders such as <EMAIL>.
// Pure functions; any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmops::data {

enum class PiiType : uint8_t { kEmail, kPhone, kIpv4, kIpv6, kCreditCard, kIban, kSecret, kCount };
constexpr size_t kPiiTypes = static_cast<size_t>(PiiType::kCount);
const char* pii_name(PiiType t);         // "email", "phone", ...
const char* pii_placeholder(PiiType t);  // "<EMAIL>", "<PHONE>", ...

struct PiiMatch {
  size_t begin = 0, end = 0;  // byte range in the text
  PiiType type = PiiType::kEmail;
};

using PiiCounts = std::array<uint64_t, kPiiTypes>;

// Every match, in order, not overlapping (a longer or more specific match wins: a card number
// is not also a phone number).
std::vector<PiiMatch> find_pii(std::string_view text);
// The text with each match replaced by its placeholder; counts (may be null) gain one per match.
std::string redact_pii(std::string_view text, PiiCounts* counts);

// Checksums the scanners use, exposed for tests.
bool luhn_valid(std::string_view digits);          // digits only
bool iban_valid(std::string_view compact_iban);    // letters and digits, no spaces

}  // namespace llmops::data

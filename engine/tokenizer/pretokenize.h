// Pre-tokenizers of byte-level BPE: split text into the words that BPE then merges within. Each
// reproduces one regex exactly (matched left to right, alternatives in order, as Oniguruma and
// PCRE do), hand-written because std::regex knows neither \p{L} nor \p{N}:
//
//   kGpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   kLlama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2:  kLlama3 with \p{N} (one digit per word) in place of \p{N}{1,3}
//
// Classes come from unicode.h. (?i) folds ASCII letters only (it does not match U+017F 'ſ' for
// 's', as Oniguruma would; llama.cpp does the same). A byte that is not well-formed UTF-8 is a
// character of class "other" on its own. Pure functions; any thread may call them.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace llmops::engine {

enum class BpePreTokenizer { kGpt2, kLlama3, kQwen2 };

// "gpt2", "llama3", "qwen2": for messages.
const char* pre_tokenizer_name(BpePreTokenizer kind);

// The pre-tokenizer whose regex is exactly pattern (as written in a tokenizer.json Split), or
// nullopt.
std::optional<BpePreTokenizer> pre_tokenizer_for_regex(std::string_view pattern);
// The regex of a pre-tokenizer, as tokenizer.json files write it.
std::string_view pre_tokenizer_regex(BpePreTokenizer kind);

// The words of text in order, as views into it; they cover text exactly with no gaps, so their
// concatenation is text. "" gives no words.
std::vector<std::string_view> pre_tokenize(std::string_view text, BpePreTokenizer kind);

}  // namespace llmops::engine

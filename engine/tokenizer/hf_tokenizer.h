// Vocabularies from Hugging Face tokenizer.json files (plus tokenizer_config.json beside them).
// Two kinds of model "BPE" are understood:
//   - byte-level BPE (GPT-2, Llama 3, Qwen2): pre_tokenizer ByteLevel alone (the GPT-2 regex) or a
//     Sequence of one Split whose regex is exactly one of pretokenize.h's and ByteLevel
//     (use_regex false). normalizer must be null, an empty Sequence or NFC; NFC is not applied
//     (text is taken as already NFC, as llama.cpp does).
//   - SentencePiece exported as BPE with byte_fallback (Llama 2, Mistral): built as an SpmVocab
//     whose scores are minus the rank of the first merge that makes each piece (pieces no merge
//     makes get a score below them all); Prepend("▁") or a Metaspace that prepends sets the
//     dummy space prefix.
// Anything else (Unigram, WordPiece, other regexes, Digits pre-tokenizers, add_prefix_space,
// subword prefixes) is kUnimplemented naming what was found; malformed files are kInvalidArgument
// naming the field. Pure functions; any thread.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "status.h"
#include "tokenizer/bpe.h"
#include "tokenizer/spm.h"

namespace llmops::engine {

struct HfVocab {
  std::variant<SpmVocab, BpeVocab> vocab;
  // Prompts start with BOS: tokenizer_config.json's add_bos_token when set, else whether the
  // post_processor template starts with a special token.
  bool add_bos = false;
};

// tokenizer_config_json may be "" (no config). Tokens: model.vocab as normal tokens, added_tokens
// as control ("special": true) or user-defined tokens. bos/eos/pad from the config's bos_token,
// eos_token, pad_token (a string or {"content": ...}); a bos or eos that is not a token is
// kInvalidArgument. Without a config: bos from the post_processor template, eos "<|endoftext|>"
// (byte-level) or "</s>" (SentencePiece) when present.
Result<HfVocab> vocab_from_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json);

// Reads dir/tokenizer.json and, when present, dir/tokenizer_config.json (each at most
// kMaxTokenizerFileBytes).
Result<HfVocab> vocab_from_hf_dir(const std::string& dir);

}  // namespace llmops::engine

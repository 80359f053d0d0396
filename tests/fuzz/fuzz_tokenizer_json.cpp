// Hugging Face tokenizer.json (and tokenizer_config.json): any bytes give a tokenizer or a typed
// error; a tokenizer that builds must encode and decode a fixed string, and stream its pieces,
// without reading out of bounds.
#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

using namespace llmops::engine;

namespace {

// A small valid byte-level tokenizer.json, to feed the input as its tokenizer_config.json.
constexpr std::string_view kTokenizerJson = R"({
  "added_tokens": [{"id": 5, "content": "<|im_end|>", "special": true},
                   {"id": 6, "content": "<x>", "special": false}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
  "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120ab": 4},
            "merges": ["a b", "\u0120 ab"]}
})";

void exercise(const Tokenizer& tok) {
  const std::string text = "Hello ab <|im_end|><x> 123 'S caf\xc3\xa9 \xf0\x9f\xa6\x99 \xff\xfe\n\n";
  for (bool parse_special : {true, false}) {
    const auto ids = tok.encode(text, parse_special);
    (void)tok.decode(ids);
    std::string streamed;
    bool start = true;
    for (int32_t id : ids) {
      streamed += tok.decode_piece(id, start);
      start = id == tok.bos_id();
      (void)complete_utf8_prefix(streamed);
      (void)tok.is_eog(id);
    }
  }
  for (int32_t id : {-1, 0, tok.size() - 1, tok.size(), tok.bos_id(), tok.eos_id()}) {
    (void)tok.decode_piece(id, true);
    (void)tok.token_text(id);
    (void)tok.token_type(id);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto tok = Tokenizer::from_hf_json(input, ""); tok.ok()) exercise(*tok);
  if (auto tok = Tokenizer::from_hf_json(kTokenizerJson, input); tok.ok()) exercise(*tok);
  return 0;
}

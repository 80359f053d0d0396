// Training examples from dataset records, as token chunks of the training length:
//
//   {"prompt": ..., "completion": ...}  the prompt's tokens are context only (their targets are
//                                       masked); the completion and the end token are learned
//   {"text": ...} (or --text-field)     every token is learned
//   {"messages": [{"role", "content"}]} a chat, rendered with the model's chat template turn by
//                                       turn: only the assistant turns' tokens are learned (the
//                                       template's headers and the other roles are context)
//
// Each example is [BOS] + tokens + [EOS]. With packing (the default) examples are laid end to
// end and cut into chunks of seq_len inputs, so a long record is split across chunks; without
// packing each example fills its own chunk, padded with masked targets, and a longer one is cut
// (truncate) or split into several chunks (split). The report counts each case. Chunks are
// visited in a seeded order that changes every epoch; which chunk a step reads follows from the
// step alone, so a resumed job reads exactly what an uninterrupted one would. Pure; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "json.h"
#include "status.h"
#include "chat/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace llmops::tuning {

struct ExampleOptions {
  int seq_len = 256;
  bool packing = true;
  std::string long_records = "split";  // without packing: "split" | "truncate"
  std::string text_field = "text";
  const engine::ChatTemplate* chat = nullptr;  // renders "messages" records; null: they are unusable
};

struct ExampleReport {
  uint64_t records = 0, prompt_completion = 0, text = 0, chat = 0, unusable = 0;
  uint64_t longer_than_context = 0;  // split across chunks (packing, split) or cut (truncate)
  uint64_t truncated_tokens = 0;
  uint64_t tokens = 0, learned_tokens = 0;
  Json to_json() const;
};

// The text a record teaches: prompt + completion, its messages' contents, or its text field;
// nothing for an unusable one.
std::optional<std::string> example_text(const Json& record, const ExampleOptions& opt);

class ExampleSet {
 public:
  // Adds one record; unusable ones (no text, no prompt/completion) are counted.
  void add(const Json& record, const engine::Tokenizer& tok, const ExampleOptions& opt);
  // Cuts the stream into chunks (after every record was added).
  void finish(const ExampleOptions& opt, int32_t pad_token);

  size_t chunks() const { return inputs_.size(); }
  const ExampleReport& report() const { return report_; }
  // Chunk k of the visiting order over epochs: epoch k / chunks(), shuffled with seed + epoch.
  size_t chunk_at(uint64_t k, uint64_t seed) const;
  const std::vector<int32_t>& inputs(size_t chunk) const { return inputs_[chunk]; }
  const std::vector<int32_t>& targets(size_t chunk) const { return targets_[chunk]; }

 private:
  bool add_chat(const Json& messages, const engine::Tokenizer& tok, const engine::ChatTemplate& chat, std::vector<int32_t>& seq,
                std::vector<int32_t>& learn);

  ExampleReport report_;
  std::vector<int32_t> stream_in_, stream_tg_;               // packing: all examples end to end
  std::vector<std::vector<int32_t>> inputs_, targets_;       // the chunks
  mutable uint64_t cached_epoch_ = UINT64_MAX;
  mutable std::vector<size_t> order_;
};

}  // namespace llmops::tuning

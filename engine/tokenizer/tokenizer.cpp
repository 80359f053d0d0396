#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdint>

#include "tokenizer/bpe_load.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/hf_tokenizer.h"

namespace llmops::engine {
namespace {

// Texts of the control tokens chat models end a turn with.
constexpr std::string_view kEndOfTurnTexts[] = {
    "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|endoftext|>", "<|end|>", "<end_of_turn>", "<|end_of_text|>",
};

Result<Tokenizer> from_hf_vocab(HfVocab hf) {
  if (auto* spm = std::get_if<SpmVocab>(&hf.vocab)) {
    auto tok = SpmTokenizer::create(std::move(*spm));
    if (!tok.ok()) return tok.status().with_context("tokenizer.json");
    return Tokenizer(std::move(tok).value(), hf.add_bos);
  }
  auto tok = BpeTokenizer::create(std::move(std::get<BpeVocab>(hf.vocab)));
  if (!tok.ok()) return tok.status().with_context("tokenizer.json");
  return Tokenizer(std::move(tok).value(), hf.add_bos);
}

// An optional id key of the file for an end-of-generation token.
Status read_eog_id(const GgufFile& g, std::string_view key, std::vector<int32_t>& ids) {
  if (g.find(key) == nullptr) return ok_status();
  LLMOPS_ASSIGN_OR_RETURN(uint64_t id, g.get_uint(key));
  if (id > static_cast<uint64_t>(INT32_MAX)) {
    return invalid_argument("GGUF " + std::string(key) + " is " + std::to_string(id) + ", not a token id");
  }
  ids.push_back(static_cast<int32_t>(id));
  return ok_status();
}

}  // namespace

Tokenizer::Tokenizer(SpmTokenizer spm, bool add_bos, const std::vector<int32_t>& extra_eog_ids)
    : impl_(std::move(spm)), add_bos_(add_bos) {
  collect_eog_ids(extra_eog_ids);
}

Tokenizer::Tokenizer(BpeTokenizer bpe, bool add_bos, const std::vector<int32_t>& extra_eog_ids)
    : impl_(std::move(bpe)), add_bos_(add_bos) {
  collect_eog_ids(extra_eog_ids);
}

void Tokenizer::collect_eog_ids(const std::vector<int32_t>& extra) {
  eog_ids_.clear();
  const auto add = [&](int32_t id) {
    if (id >= 0 && id < size()) eog_ids_.push_back(id);
  };
  add(eos_id());
  for (int32_t id : extra) add(id);
  for (int32_t id = 0; id < size(); ++id) {
    const TokenType type = token_type(id);
    if (type != TokenType::kControl && type != TokenType::kUserDefined) continue;
    const std::string& text = token_text(id);
    if (std::find(std::begin(kEndOfTurnTexts), std::end(kEndOfTurnTexts), text) != std::end(kEndOfTurnTexts)) add(id);
  }
  std::sort(eog_ids_.begin(), eog_ids_.end());
  eog_ids_.erase(std::unique(eog_ids_.begin(), eog_ids_.end()), eog_ids_.end());
}

Result<Tokenizer> Tokenizer::from_gguf(const GgufFile& g) {
  LLMOPS_ASSIGN_OR_RETURN(std::string model, g.get_string("tokenizer.ggml.model"));
  std::vector<int32_t> eog;
  LLMOPS_RETURN_IF_ERROR(read_eog_id(g, "tokenizer.ggml.eot_token_id", eog));
  LLMOPS_RETURN_IF_ERROR(read_eog_id(g, "tokenizer.ggml.eom_token_id", eog));
  const GgufValue* add_bos_key = g.find("tokenizer.ggml.add_bos_token");
  const bool has_add_bos = add_bos_key != nullptr && add_bos_key->type == GgufType::kBool;
  if (model == "llama") {
    LLMOPS_ASSIGN_OR_RETURN(SpmVocab vocab, spm_vocab_from_gguf(g));
    LLMOPS_ASSIGN_OR_RETURN(SpmTokenizer tok, SpmTokenizer::create(std::move(vocab)));
    return Tokenizer(std::move(tok), has_add_bos ? add_bos_key->u != 0 : true, eog);
  }
  if (model == "gpt2") {
    LLMOPS_ASSIGN_OR_RETURN(BpeVocab vocab, bpe_vocab_from_gguf(g));
    const bool llama3 = vocab.pre_tokenizer == BpePreTokenizer::kLlama3;
    LLMOPS_ASSIGN_OR_RETURN(BpeTokenizer tok, BpeTokenizer::create(std::move(vocab)));
    return Tokenizer(std::move(tok), has_add_bos ? add_bos_key->u != 0 : llama3, eog);
  }
  return unimplemented("GGUF tokenizer model '" + model +
                       "' is not supported (SentencePiece 'llama' and byte-level BPE 'gpt2' are)");
}

Result<Tokenizer> Tokenizer::from_hf_dir(const std::string& dir) {
  LLMOPS_ASSIGN_OR_RETURN(HfVocab hf, vocab_from_hf_dir(dir));
  auto tok = from_hf_vocab(std::move(hf));
  if (!tok.ok()) return tok.status().with_context(dir);
  return tok;
}

Result<Tokenizer> Tokenizer::from_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json) {
  LLMOPS_ASSIGN_OR_RETURN(HfVocab hf, vocab_from_hf_json(tokenizer_json, tokenizer_config_json));
  return from_hf_vocab(std::move(hf));
}

Result<Tokenizer> Tokenizer::from_llama2c(const std::string& path, int32_t vocab_size) {
  LLMOPS_ASSIGN_OR_RETURN(SpmVocab vocab, load_llama2c_tokenizer(path, vocab_size));
  LLMOPS_ASSIGN_OR_RETURN(SpmTokenizer tok, SpmTokenizer::create(std::move(vocab)));
  return Tokenizer(std::move(tok), true);
}

Result<Tokenizer> Tokenizer::from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  LLMOPS_ASSIGN_OR_RETURN(BpeVocab vocab, bpe_vocab_from_gpt2_files(encoder_json, vocab_bpe));
  LLMOPS_ASSIGN_OR_RETURN(BpeTokenizer tok, BpeTokenizer::create(std::move(vocab)));
  return Tokenizer(std::move(tok), false);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  if (const auto* bpe = std::get_if<BpeTokenizer>(&impl_)) return bpe->encode(text, parse_special);
  return std::get<SpmTokenizer>(impl_).encode(text, parse_special);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  return std::visit([&](const auto& tok) { return tok.decode(ids); }, impl_);
}

std::string Tokenizer::decode_piece(int32_t id, bool after_bos_or_start) const {
  if (const auto* bpe = std::get_if<BpeTokenizer>(&impl_)) return bpe->decode_piece(id);
  return std::get<SpmTokenizer>(impl_).decode_piece(id, after_bos_or_start);
}

int32_t Tokenizer::size() const {
  return std::visit([](const auto& tok) { return tok.size(); }, impl_);
}

int32_t Tokenizer::bos_id() const {
  return std::visit([](const auto& tok) { return tok.vocab().bos_id; }, impl_);
}

int32_t Tokenizer::eos_id() const {
  return std::visit([](const auto& tok) { return tok.vocab().eos_id; }, impl_);
}

bool Tokenizer::is_eog(int32_t id) const { return std::binary_search(eog_ids_.begin(), eog_ids_.end(), id); }

const std::string& Tokenizer::token_text(int32_t id) const {
  static const std::string kNone;
  if (id < 0 || id >= size()) return kNone;
  if (const auto* bpe = std::get_if<BpeTokenizer>(&impl_)) return bpe->vocab().tokens[id];
  return std::get<SpmTokenizer>(impl_).vocab().pieces[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= size()) return TokenType::kUndefined;
  return std::visit([&](const auto& tok) { return tok.vocab().types[id]; }, impl_);
}

}  // namespace llmops::engine

#include "tokenizer/gguf_vocab.h"

namespace llmops::engine {

Result<SpmVocab> spm_vocab_from_gguf(const GgufFile& g) {
  LLMOPS_ASSIGN_OR_RETURN(std::string model, g.get_string("tokenizer.ggml.model"));
  if (model != "llama") {
    return unimplemented("tokenizer model '" + model + "' is not SentencePiece ('llama'); open it with Tokenizer::from_gguf");
  }
  LLMOPS_ASSIGN_OR_RETURN(auto tokens, g.get_strings("tokenizer.ggml.tokens"));
  SpmVocab v;
  v.pieces.assign(tokens.begin(), tokens.end());
  if (g.find("tokenizer.ggml.scores") != nullptr) {
    LLMOPS_ASSIGN_OR_RETURN(v.scores, g.get_floats("tokenizer.ggml.scores"));
  } else {
    v.scores.assign(v.pieces.size(), 0.0f);
  }
  if (g.find("tokenizer.ggml.token_type") != nullptr) {
    LLMOPS_ASSIGN_OR_RETURN(auto types, g.get_ints("tokenizer.ggml.token_type"));
    for (int64_t t : types) v.types.push_back(static_cast<TokenType>(t));
  }
  if (v.scores.size() != v.pieces.size() || (!v.types.empty() && v.types.size() != v.pieces.size())) {
    return invalid_argument("tokenizer metadata arrays differ in length (tokens " + std::to_string(v.pieces.size()) + ", scores " +
                            std::to_string(v.scores.size()) + ", types " + std::to_string(v.types.size()) + ")");
  }
  v.bos_id = static_cast<int32_t>(g.get_uint_or("tokenizer.ggml.bos_token_id", 1));
  v.eos_id = static_cast<int32_t>(g.get_uint_or("tokenizer.ggml.eos_token_id", 2));
  v.unk_id = static_cast<int32_t>(g.get_uint_or("tokenizer.ggml.unknown_token_id", 0));
  if (const GgufValue* p = g.find("tokenizer.ggml.add_space_prefix"); p != nullptr && p->type == GgufType::kBool) {
    v.add_space_prefix = p->u != 0;
  }
  v.escape_spaces = true;
  return v;
}

}  // namespace llmops::engine

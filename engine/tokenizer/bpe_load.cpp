#include "tokenizer/bpe_load.h"

#include <algorithm>
#include <limits>

#include "fs.h"
#include "json.h"

namespace llmops::engine {
namespace {

std::string shown(std::string_view text) {
  constexpr size_t kMax = 64;
  return "'" + std::string(text.substr(0, kMax)) + (text.size() > kMax ? "...'" : "'");
}

struct PreTokenizerName {
  std::string_view name;
  BpePreTokenizer kind;
  bool ignore_merges;
};

constexpr PreTokenizerName kGgufPreTokenizers[] = {
    {"gpt-2", BpePreTokenizer::kGpt2, false},     {"default", BpePreTokenizer::kGpt2, false},
    {"llama-bpe", BpePreTokenizer::kLlama3, true}, {"llama3", BpePreTokenizer::kLlama3, true},
    {"llama-v3", BpePreTokenizer::kLlama3, true},  {"smaug-bpe", BpePreTokenizer::kLlama3, false},
    {"qwen2", BpePreTokenizer::kQwen2, false},
};

// An optional token id key: absent leaves id as it is; present must be inside the vocabulary.
Status read_token_id(const GgufFile& g, std::string_view key, size_t vocab_size, int32_t& id) {
  if (g.find(key) == nullptr) return ok_status();
  LLMOPS_ASSIGN_OR_RETURN(uint64_t value, g.get_uint(key));
  if (value >= vocab_size) {
    return invalid_argument("GGUF " + std::string(key) + " is " + std::to_string(value) + ", outside the vocabulary of " +
                            std::to_string(vocab_size) + " tokens");
  }
  id = static_cast<int32_t>(value);
  return ok_status();
}

}  // namespace

Status lay_out_tokens(std::vector<NamedToken> named, std::string_view source, std::vector<std::string>& tokens,
                      std::vector<TokenType>& types) {
  int64_t highest = -1;
  for (const NamedToken& t : named) {
    if (t.id < 0 || static_cast<uint64_t>(t.id) >= kMaxBpeVocab) {
      return invalid_argument(std::string(source) + ": token " + shown(t.text) + " has id " + std::to_string(t.id) +
                              ", outside 0.." + std::to_string(kMaxBpeVocab - 1));
    }
    if (t.text.size() > kMaxBpeTokenBytes) {
      return invalid_argument(std::string(source) + ": token " + std::to_string(t.id) + " is " +
                              std::to_string(t.text.size()) + " bytes long, more than the limit of " +
                              std::to_string(kMaxBpeTokenBytes));
    }
    highest = std::max(highest, t.id);
  }
  const size_t size = static_cast<size_t>(highest + 1);
  if (size > named.size() + kMaxUnnamedTokenIds) {
    return invalid_argument(std::string(source) + ": the highest token id is " + std::to_string(highest) + " but only " +
                            std::to_string(named.size()) + " tokens are named; ids that sparse are not supported");
  }
  tokens.assign(size, std::string());
  types.assign(size, TokenType::kUnused);
  std::vector<bool> seen(size, false);
  for (NamedToken& t : named) {
    const auto id = static_cast<size_t>(t.id);
    if (seen[id] && tokens[id] != t.text) {
      return invalid_argument(std::string(source) + ": id " + std::to_string(id) + " is given to both " +
                              shown(tokens[id]) + " and " + shown(t.text));
    }
    seen[id] = true;
    tokens[id] = std::move(t.text);
    types[id] = t.type;
  }
  return ok_status();
}

int64_t json_token_id(const Json& value) {
  if (value.is_number_unsigned()) {
    return static_cast<int64_t>(std::min<uint64_t>(value.get<uint64_t>(), std::numeric_limits<int64_t>::max()));
  }
  return value.get<int64_t>();
}

Result<std::pair<std::string, std::string>> parse_merge_rule(std::string_view rule, std::string_view where) {
  const size_t space = rule.size() < 2 ? std::string_view::npos : rule.find(' ', 1);
  if (space == std::string_view::npos) {
    return invalid_argument(std::string(where) + " " + shown(rule) + " is not two tokens separated by a space");
  }
  return std::pair<std::string, std::string>(rule.substr(0, space), rule.substr(space + 1));
}

Result<BpeVocab> bpe_vocab_from_gguf(const GgufFile& g) {
  LLMOPS_ASSIGN_OR_RETURN(std::string model, g.get_string("tokenizer.ggml.model"));
  if (model != "gpt2") {
    return invalid_argument("GGUF tokenizer model '" + model + "' is not byte-level BPE ('gpt2')");
  }
  BpeVocab v;
  std::string pre = "default";
  if (g.find("tokenizer.ggml.pre") != nullptr) {
    LLMOPS_ASSIGN_OR_RETURN(pre, g.get_string("tokenizer.ggml.pre"));
  }
  const auto known = std::find_if(std::begin(kGgufPreTokenizers), std::end(kGgufPreTokenizers),
                                  [&](const PreTokenizerName& p) { return p.name == pre; });
  if (known == std::end(kGgufPreTokenizers)) {
    return unimplemented("GGUF tokenizer.ggml.pre '" + pre +
                         "' names a pre-tokenizer this build does not have (it has gpt-2, default, llama-bpe, "
                         "llama3, llama-v3, smaug-bpe, qwen2); use a model converted with one of those");
  }
  v.pre_tokenizer = known->kind;
  v.ignore_merges = known->ignore_merges;

  LLMOPS_ASSIGN_OR_RETURN(auto tokens, g.get_strings("tokenizer.ggml.tokens"));
  if (tokens.size() > kMaxBpeVocab) {
    return invalid_argument("GGUF tokenizer.ggml.tokens has " + std::to_string(tokens.size()) +
                            " tokens, more than the limit of " + std::to_string(kMaxBpeVocab));
  }
  v.tokens.assign(tokens.begin(), tokens.end());
  if (g.find("tokenizer.ggml.token_type") != nullptr) {
    LLMOPS_ASSIGN_OR_RETURN(auto types, g.get_ints("tokenizer.ggml.token_type"));
    if (types.size() != tokens.size()) {
      return invalid_argument("GGUF tokenizer.ggml.token_type has " + std::to_string(types.size()) + " entries for " +
                              std::to_string(tokens.size()) + " tokens");
    }
    v.types.reserve(types.size());
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] < 0 || types[i] > static_cast<int64_t>(TokenType::kByte)) {
        return invalid_argument("GGUF tokenizer.ggml.token_type[" + std::to_string(i) + "] is " +
                                std::to_string(types[i]) + ", not a token type (0..6)");
      }
      v.types.push_back(static_cast<TokenType>(types[i]));
    }
  }
  LLMOPS_ASSIGN_OR_RETURN(auto merges, g.get_strings("tokenizer.ggml.merges"));
  if (merges.size() > kMaxBpeMerges) {
    return invalid_argument("GGUF tokenizer.ggml.merges has " + std::to_string(merges.size()) +
                            " merges, more than the limit of " + std::to_string(kMaxBpeMerges));
  }
  v.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    LLMOPS_ASSIGN_OR_RETURN(auto merge, parse_merge_rule(merges[i], "GGUF tokenizer.ggml.merges[" + std::to_string(i) + "]"));
    v.merges.push_back(std::move(merge));
  }
  LLMOPS_RETURN_IF_ERROR(read_token_id(g, "tokenizer.ggml.bos_token_id", v.tokens.size(), v.bos_id));
  LLMOPS_RETURN_IF_ERROR(read_token_id(g, "tokenizer.ggml.eos_token_id", v.tokens.size(), v.eos_id));
  LLMOPS_RETURN_IF_ERROR(read_token_id(g, "tokenizer.ggml.unknown_token_id", v.tokens.size(), v.unk_id));
  LLMOPS_RETURN_IF_ERROR(read_token_id(g, "tokenizer.ggml.padding_token_id", v.tokens.size(), v.pad_id));
  return v;
}

Result<BpeVocab> bpe_vocab_from_gpt2_text(std::string_view encoder_json, std::string_view vocab_bpe) {
  LLMOPS_ASSIGN_OR_RETURN(Json encoder, parse_json_bounded(encoder_json, kMaxTokenizerJsonDepth));
  if (!encoder.is_object()) return invalid_argument("encoder.json must be an object of token: id");
  if (encoder.size() > kMaxBpeVocab) {
    return invalid_argument("encoder.json has " + std::to_string(encoder.size()) + " tokens, more than the limit of " +
                            std::to_string(kMaxBpeVocab));
  }
  std::vector<NamedToken> named;
  named.reserve(encoder.size());
  for (const auto& entry : encoder.items()) {
    const std::string& text = entry.key();
    const Json& id = entry.value();
    if (!id.is_number_integer()) {
      return invalid_argument("encoder.json: the id of token " + shown(text) + " is not an integer");
    }
    const bool end_of_text = text == "<|endoftext|>";
    named.push_back({json_token_id(id), text, end_of_text ? TokenType::kControl : TokenType::kNormal});
  }
  BpeVocab v;
  LLMOPS_RETURN_IF_ERROR(lay_out_tokens(std::move(named), "encoder.json", v.tokens, v.types));

  size_t line_number = 0;
  for (size_t pos = 0; pos < vocab_bpe.size();) {
    size_t end = vocab_bpe.find('\n', pos);
    if (end == std::string_view::npos) end = vocab_bpe.size();
    std::string_view line = vocab_bpe.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_number == 1 && line.starts_with("#version"))) continue;
    if (v.merges.size() == kMaxBpeMerges) {
      return invalid_argument("vocab.bpe has more merges than the limit of " + std::to_string(kMaxBpeMerges));
    }
    LLMOPS_ASSIGN_OR_RETURN(auto merge, parse_merge_rule(line, "vocab.bpe line " + std::to_string(line_number)));
    v.merges.push_back(std::move(merge));
  }
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (v.tokens[id] == "<|endoftext|>") v.bos_id = v.eos_id = static_cast<int32_t>(id);
  }
  v.pre_tokenizer = BpePreTokenizer::kGpt2;
  return v;
}

Result<BpeVocab> bpe_vocab_from_gpt2_files(const std::string& encoder_json_path, const std::string& vocab_bpe_path) {
  LLMOPS_ASSIGN_OR_RETURN(std::string encoder, read_file(encoder_json_path, kMaxTokenizerFileBytes));
  LLMOPS_ASSIGN_OR_RETURN(std::string merges, read_file(vocab_bpe_path, kMaxTokenizerFileBytes));
  auto v = bpe_vocab_from_gpt2_text(encoder, merges);
  if (!v.ok()) return v.status().with_context(encoder_json_path + " + " + vocab_bpe_path);
  return v;
}

}  // namespace llmops::engine

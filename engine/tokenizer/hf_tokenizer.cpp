#include "tokenizer/hf_tokenizer.h"

#include <sys/stat.h>

#include <unordered_map>

#include "fs.h"
#include "json.h"
#include "tokenizer/bpe_load.h"

namespace llmops::engine {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // "▁", SentencePiece's space
// Below -rank of every merge (ranks stay under 2^24, where floats are still exact).
constexpr float kNoMergeScore = -static_cast<float>(size_t{1} << 25);

std::string shown(std::string_view text) {
  constexpr size_t kMax = 64;
  return "'" + std::string(text.substr(0, kMax)) + (text.size() > kMax ? "...'" : "'");
}

// obj[key], or nullptr when obj is no object, lacks key or holds null there.
const Json* field(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

Result<bool> bool_field(const Json& obj, const char* key, bool fallback, std::string_view where) {
  const Json* v = field(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return invalid_argument(std::string(where) + "." + key + " must be true or false");
  return v->get<bool>();
}

// A string field, or "" when absent.
Result<std::string> string_field(const Json& obj, const char* key, std::string_view where) {
  const Json* v = field(obj, key);
  if (v == nullptr) return std::string();
  if (!v->is_string()) return invalid_argument(std::string(where) + "." + key + " must be a string");
  return v->get<std::string>();
}

std::string type_of(const Json& node) {
  const Json* t = field(node, "type");
  return t != nullptr && t->is_string() ? t->get<std::string>() : std::string();
}

// The elements of a pre_tokenizer, normalizer or post_processor: itself, or those of its
// Sequence (listed under list_key).
std::vector<const Json*> components(const Json* node, const char* list_key) {
  std::vector<const Json*> out;
  if (node == nullptr || !node->is_object()) return out;
  const Json* list = field(*node, list_key);
  if (type_of(*node) == "Sequence" && list != nullptr && list->is_array()) {
    for (const Json& e : *list) out.push_back(&e);
  } else {
    out.push_back(node);
  }
  return out;
}

bool is_string(const Json* v, std::string_view text) {
  return v != nullptr && v->is_string() && v->get_ref<const std::string&>() == text;
}

// A special token as tokenizer_config.json writes it: "text" or {"content": "text", ...}.
Result<std::string> config_token(const Json& config, const char* key) {
  const Json* v = field(config, key);
  if (v == nullptr) return std::string();
  if (v->is_string()) return v->get<std::string>();
  if (const Json* content = field(*v, "content"); content != nullptr && content->is_string()) {
    return content->get<std::string>();
  }
  return invalid_argument(std::string("tokenizer_config.json ") + key + " must be a string or {\"content\": string}");
}

// The text of the special token the post_processor template puts first ("<|begin_of_text|>"),
// or "" when it starts with the text itself.
std::string template_first_special(const Json& root) {
  for (const Json* p : components(field(root, "post_processor"), "processors")) {
    if (type_of(*p) != "TemplateProcessing") continue;
    const Json* single = field(*p, "single");
    if (single == nullptr || !single->is_array() || single->empty()) continue;
    const Json* special = field((*single)[0], "SpecialToken");
    const Json* id = special == nullptr ? nullptr : field(*special, "id");
    if (id != nullptr && id->is_string()) return id->get<std::string>();
  }
  return {};
}

bool is_byte_piece(std::string_view piece) {
  const auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); };
  return piece.size() == 6 && piece.starts_with("<0x") && piece[5] == '>' && hex(piece[3]) && hex(piece[4]);
}

// What every kind of tokenizer.json BPE has in common, read and checked once.
struct HfBpeModel {
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  std::vector<std::pair<std::string, std::string>> merges;
  std::unordered_map<std::string, int32_t> ids;  // text → id; the later id of a repeated text
  bool byte_fallback = false, ignore_merges = false;
  int32_t unk_id = -1;

  int32_t id_of(const std::string& text) const {
    const auto it = ids.find(text);
    return it == ids.end() ? -1 : it->second;
  }
};

Result<HfBpeModel> read_model(const Json& root) {
  const Json* model = field(root, "model");
  if (model == nullptr || !model->is_object()) return invalid_argument("tokenizer.json has no \"model\" object");
  LLMOPS_ASSIGN_OR_RETURN(std::string type, string_field(*model, "type", "model"));
  if (type.empty()) return invalid_argument("tokenizer.json model has no \"type\"");
  if (type != "BPE") {
    return unimplemented("tokenizer.json model type '" + type + "' is not supported (only BPE is)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    LLMOPS_ASSIGN_OR_RETURN(std::string affix, string_field(*model, key, "model"));
    if (!affix.empty()) return unimplemented(std::string("tokenizer.json BPE with model.") + key + " is not supported");
  }
  HfBpeModel m;
  LLMOPS_ASSIGN_OR_RETURN(m.byte_fallback, bool_field(*model, "byte_fallback", false, "model"));
  LLMOPS_ASSIGN_OR_RETURN(m.ignore_merges, bool_field(*model, "ignore_merges", false, "model"));

  const Json* vocab = field(*model, "vocab");
  if (vocab == nullptr || !vocab->is_object()) return invalid_argument("tokenizer.json model.vocab must be an object");
  const Json* added = field(root, "added_tokens");
  if (added != nullptr && !added->is_array()) return invalid_argument("tokenizer.json added_tokens must be an array");
  const size_t added_count = added == nullptr ? 0 : added->size();
  if (vocab->size() + added_count > kMaxBpeVocab) {
    return invalid_argument("tokenizer.json has " + std::to_string(vocab->size() + added_count) +
                            " tokens, more than the limit of " + std::to_string(kMaxBpeVocab));
  }
  std::vector<NamedToken> named;
  named.reserve(vocab->size() + added_count);
  for (const auto& entry : vocab->items()) {
    if (!entry.value().is_number_integer()) {
      return invalid_argument("tokenizer.json model.vocab: the id of " + shown(entry.key()) + " is not an integer");
    }
    named.push_back({json_token_id(entry.value()), entry.key(), TokenType::kNormal});
  }
  for (size_t i = 0; i < added_count; ++i) {
    const Json& a = (*added)[i];
    const Json* id = field(a, "id");
    const Json* content = field(a, "content");
    if (id == nullptr || !id->is_number_integer() || content == nullptr || !content->is_string()) {
      return invalid_argument("tokenizer.json added_tokens[" + std::to_string(i) +
                              "] needs an integer \"id\" and a string \"content\"");
    }
    LLMOPS_ASSIGN_OR_RETURN(bool special, bool_field(a, "special", false, "added_tokens[" + std::to_string(i) + "]"));
    named.push_back({json_token_id(*id), content->get<std::string>(),
                     special ? TokenType::kControl : TokenType::kUserDefined});
  }
  LLMOPS_RETURN_IF_ERROR(lay_out_tokens(std::move(named), "tokenizer.json", m.tokens, m.types));
  m.ids.reserve(m.tokens.size());
  for (size_t i = 0; i < m.tokens.size(); ++i) {
    if (m.types[i] != TokenType::kUnused) m.ids.insert_or_assign(m.tokens[i], static_cast<int32_t>(i));
  }

  if (const Json* merges = field(*model, "merges")) {
    if (!merges->is_array()) return invalid_argument("tokenizer.json model.merges must be an array");
    if (merges->size() > kMaxBpeMerges) {
      return invalid_argument("tokenizer.json has " + std::to_string(merges->size()) +
                              " merges, more than the limit of " + std::to_string(kMaxBpeMerges));
    }
    m.merges.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      const Json& e = (*merges)[i];
      const std::string where = "tokenizer.json model.merges[" + std::to_string(i) + "]";
      if (e.is_string()) {
        LLMOPS_ASSIGN_OR_RETURN(auto merge, parse_merge_rule(e.get<std::string>(), where));
        m.merges.push_back(std::move(merge));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        m.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        return invalid_argument(where + " must be a string \"a b\" or a pair [\"a\", \"b\"]");
      }
    }
  }
  LLMOPS_ASSIGN_OR_RETURN(std::string unk, string_field(*model, "unk_token", "model"));
  if (!unk.empty()) {
    m.unk_id = m.id_of(unk);
    if (m.unk_id < 0) return invalid_argument("tokenizer.json model.unk_token " + shown(unk) + " is not a token");
  }
  return m;
}

// The byte-level pre-tokenizer the file describes.
Result<BpePreTokenizer> byte_level_pre_tokenizer(const Json& root) {
  for (const Json* n : components(field(root, "normalizer"), "normalizers")) {
    const std::string type = type_of(*n);
    if (type != "NFC") {
      return unimplemented("tokenizer.json normalizer '" + type + "' is not supported with byte-level BPE");
    }
  }
  const Json* pre = field(root, "pre_tokenizer");
  if (pre == nullptr) return unimplemented("tokenizer.json BPE without a pre_tokenizer (and no byte_fallback) is not supported");
  std::string split_regex;
  bool byte_level = false, byte_level_regex = false;
  for (const Json* p : components(pre, "pretokenizers")) {
    const std::string type = type_of(*p);
    if (type == "ByteLevel") {
      LLMOPS_ASSIGN_OR_RETURN(bool add_prefix_space, bool_field(*p, "add_prefix_space", false, "ByteLevel"));
      if (add_prefix_space) return unimplemented("tokenizer.json ByteLevel add_prefix_space=true is not supported");
      LLMOPS_ASSIGN_OR_RETURN(byte_level_regex, bool_field(*p, "use_regex", true, "ByteLevel"));
      byte_level = true;
    } else if (type == "Split") {
      const Json* pattern = field(*p, "pattern");
      const Json* regex = pattern == nullptr ? nullptr : field(*pattern, "Regex");
      if (regex == nullptr || !regex->is_string()) {
        return unimplemented("tokenizer.json Split pre-tokenizers without a \"Regex\" pattern are not supported");
      }
      LLMOPS_ASSIGN_OR_RETURN(std::string behavior, string_field(*p, "behavior", "Split"));
      LLMOPS_ASSIGN_OR_RETURN(bool invert, bool_field(*p, "invert", false, "Split"));
      if (behavior != "Isolated" || invert || !split_regex.empty()) {
        return unimplemented("tokenizer.json Split pre-tokenizer (behavior '" + behavior +
                             "', invert, or more than one Split) is not supported; only one Isolated Split is");
      }
      split_regex = regex->get<std::string>();
      if (split_regex.empty()) return invalid_argument("tokenizer.json Split pre-tokenizer has an empty regex");
    } else {
      return unimplemented("tokenizer.json pre-tokenizer '" + type + "' is not supported with byte-level BPE");
    }
  }
  if (!byte_level) return unimplemented("tokenizer.json BPE is neither byte-level (ByteLevel) nor byte_fallback");
  if (split_regex.empty()) {
    if (!byte_level_regex) return unimplemented("tokenizer.json ByteLevel with use_regex=false and no Split is not supported");
    return BpePreTokenizer::kGpt2;
  }
  if (byte_level_regex) return unimplemented("tokenizer.json Split followed by ByteLevel use_regex=true is not supported");
  const auto kind = pre_tokenizer_for_regex(split_regex);
  if (!kind) {
    return unimplemented("tokenizer.json Split regex " + shown(split_regex) +
                         " is not one this build has (GPT-2, Llama 3, Qwen2)");
  }
  return *kind;
}

// Whether a SentencePiece export prepends "▁" to the text.
bool spm_adds_space_prefix(const Json& root) {
  for (const Json* n : components(field(root, "normalizer"), "normalizers")) {
    const Json* prepend = field(*n, "prepend");
    if (type_of(*n) == "Prepend" && is_string(prepend, kSpaceMark)) return true;
  }
  for (const Json* p : components(field(root, "pre_tokenizer"), "pretokenizers")) {
    if (type_of(*p) != "Metaspace") continue;
    const Json* scheme = field(*p, "prepend_scheme");
    if (scheme != nullptr) return is_string(scheme, "always") || is_string(scheme, "first");
    const Json* add = field(*p, "add_prefix_space");
    return add == nullptr || (add->is_boolean() && add->get<bool>());
  }
  return false;
}

// The id of a token text named by the config (or the template), -1 for "".
Result<int32_t> named_id(const HfBpeModel& m, const std::string& text, const char* what) {
  if (text.empty()) return -1;
  const int32_t id = m.id_of(text);
  if (id < 0) return invalid_argument(std::string(what) + " " + shown(text) + " is not a token of tokenizer.json");
  return id;
}

}  // namespace

Result<HfVocab> vocab_from_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json) {
  auto parsed = parse_json_bounded(tokenizer_json, kMaxTokenizerJsonDepth);
  if (!parsed.ok()) return parsed.status().with_context("tokenizer.json");
  const Json& root = *parsed;
  if (!root.is_object()) return invalid_argument("tokenizer.json must be a JSON object");
  Json config = Json::object();
  if (!tokenizer_config_json.empty()) {
    auto c = parse_json_bounded(tokenizer_config_json, kMaxTokenizerJsonDepth);
    if (!c.ok()) return c.status().with_context("tokenizer_config.json");
    if (!c->is_object()) return invalid_argument("tokenizer_config.json must be a JSON object");
    config = std::move(c).value();
  }
  LLMOPS_ASSIGN_OR_RETURN(HfBpeModel m, read_model(root));

  const std::string first_special = template_first_special(root);
  LLMOPS_ASSIGN_OR_RETURN(std::string bos_text, config_token(config, "bos_token"));
  LLMOPS_ASSIGN_OR_RETURN(std::string eos_text, config_token(config, "eos_token"));
  LLMOPS_ASSIGN_OR_RETURN(std::string pad_text, config_token(config, "pad_token"));
  if (bos_text.empty()) bos_text = !first_special.empty() ? first_special : m.byte_fallback ? "<s>" : "";
  if (eos_text.empty()) eos_text = m.byte_fallback ? "</s>" : "<|endoftext|>";
  // Defaults may be absent; what the config names must exist.
  const bool bos_named = field(config, "bos_token") != nullptr || !first_special.empty();
  const bool eos_named = field(config, "eos_token") != nullptr;
  LLMOPS_ASSIGN_OR_RETURN(int32_t bos_id, named_id(m, bos_named ? bos_text : std::string(), "bos_token"));
  LLMOPS_ASSIGN_OR_RETURN(int32_t eos_id, named_id(m, eos_named ? eos_text : std::string(), "eos_token"));
  if (!bos_named) bos_id = m.id_of(bos_text);
  if (!eos_named) eos_id = m.id_of(eos_text);
  const int32_t pad_id = pad_text.empty() ? -1 : m.id_of(pad_text);  // informational only: unknown is no error

  HfVocab out;
  LLMOPS_ASSIGN_OR_RETURN(out.add_bos, bool_field(config, "add_bos_token", !first_special.empty(), "tokenizer_config.json"));

  if (m.byte_fallback) {
    SpmVocab v;
    v.scores.assign(m.tokens.size(), kNoMergeScore);
    for (size_t rank = 0; rank < m.merges.size(); ++rank) {
      const auto& [left, right] = m.merges[rank];
      for (const std::string* side : {&left, &right}) {
        if (m.id_of(*side) < 0) {
          return invalid_argument("tokenizer.json model.merges[" + std::to_string(rank) + "]: " + shown(*side) +
                                  " is not a token of the vocabulary");
        }
      }
      const int32_t joined = m.id_of(left + right);
      if (joined >= 0 && v.scores[joined] == kNoMergeScore) v.scores[joined] = -static_cast<float>(rank);
    }
    v.types = std::move(m.types);
    for (size_t i = 0; i < m.tokens.size(); ++i) {
      if (v.types[i] == TokenType::kNormal && is_byte_piece(m.tokens[i])) v.types[i] = TokenType::kByte;
    }
    if (m.unk_id >= 0) v.types[m.unk_id] = TokenType::kUnknown;
    v.pieces = std::move(m.tokens);
    v.bos_id = bos_id;
    v.eos_id = eos_id;
    v.unk_id = m.unk_id;
    v.escape_spaces = true;
    v.add_space_prefix = spm_adds_space_prefix(root);
    out.vocab = std::move(v);
    return out;
  }

  LLMOPS_ASSIGN_OR_RETURN(BpePreTokenizer pre, byte_level_pre_tokenizer(root));
  BpeVocab v;
  v.tokens = std::move(m.tokens);
  v.types = std::move(m.types);
  v.merges = std::move(m.merges);
  v.pre_tokenizer = pre;
  v.ignore_merges = m.ignore_merges;
  v.bos_id = bos_id;
  v.eos_id = eos_id;
  v.unk_id = m.unk_id;
  v.pad_id = pad_id;
  out.vocab = std::move(v);
  return out;
}

Result<HfVocab> vocab_from_hf_dir(const std::string& dir) {
  const std::string json_path = join_path(dir, "tokenizer.json");
  const std::string config_path = join_path(dir, "tokenizer_config.json");
  LLMOPS_ASSIGN_OR_RETURN(std::string tokenizer_json, read_file(json_path, kMaxTokenizerFileBytes));
  std::string config_json;
  struct stat st {};
  if (::stat(config_path.c_str(), &st) == 0) {
    LLMOPS_ASSIGN_OR_RETURN(config_json, read_file(config_path, kMaxTokenizerFileBytes));
  }
  auto v = vocab_from_hf_json(tokenizer_json, config_json);
  if (!v.ok()) return v.status().with_context(dir);
  return v;
}

}  // namespace llmops::engine

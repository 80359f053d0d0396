#include "model/synth.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>

#include "formats/gguf_writer.h"
#include "formats/quantize.h"
#include "model/export.h"

namespace llmops::engine {

const std::vector<SynthShape>& synth_shapes() {
  static const std::vector<SynthShape> kShapes = [] {
    auto make = [](const char* name, int dim, int hidden, int layers, int heads, int kv, int vocab, int ctx, Arch arch = Arch::kLlama) {
      SynthShape s;
      s.name = name;
      s.config.arch = arch;
      s.config.arch_name = arch == Arch::kGpt2 ? "gpt2" : "llama";
      s.config.rope = arch == Arch::kGpt2 ? RopeLayout::kNone : RopeLayout::kNormal;
      s.config.head_dim = dim / heads;
      s.config.dim = dim;
      s.config.hidden_dim = hidden;
      s.config.n_layers = layers;
      s.config.n_heads = heads;
      s.config.n_kv_heads = kv;
      s.config.vocab_size = vocab;
      s.config.seq_len = ctx;
      return s;
    };
    return std::vector<SynthShape>{
        make("tiny", 256, 512, 2, 4, 2, 1024, 128),
        make("llama-15M", 288, 768, 6, 6, 6, 32000, 256),
        make("llama-110M", 768, 2048, 12, 12, 12, 32000, 1024),
        make("tinyllama-1.1B", 2048, 5632, 22, 32, 4, 32000, 2048),
        make("llama-8B", 4096, 14336, 32, 32, 8, 128256, 8192),
        make("gpt2-tiny", 128, 512, 2, 4, 4, 1024, 128, Arch::kGpt2),
        make("gpt2-124M", 768, 3072, 12, 12, 12, 50257, 1024, Arch::kGpt2),
    };
  }();
  return kShapes;
}

Result<SynthShape> find_synth_shape(const std::string& name) {
  std::string known;
  for (const auto& s : synth_shapes()) {
    if (s.name == name) return s;
    known += (known.empty() ? "" : ", ") + s.name;
  }
  return invalid_argument("unknown shape '" + name + "' (known: " + known + ")");
}

namespace {

// A SentencePiece vocabulary: specials, the 256 byte tokens, then made-up pieces with falling
// scores.
void add_spm_vocab(GgufWriter& w, int vocab_size) {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    pieces.emplace_back(buf);
    types.push_back(6);
  }
  for (int i = 0; static_cast<int>(pieces.size()) < vocab_size; ++i) {
    std::string word = "\xE2\x96\x81";  // U+2581, a leading space
    for (int v = i; ; v = v / 26 - 1) {
      word.push_back(static_cast<char>('a' + v % 26));
      if (v < 26) break;
    }
    pieces.push_back(word);
    types.push_back(1);
  }
  std::vector<float> scores(pieces.size());
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = -static_cast<float>(i);
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_strings("tokenizer.ggml.tokens", pieces);
  w.add_f32s("tokenizer.ggml.scores", scores);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  w.add_u32("tokenizer.ggml.unknown_token_id", 0);
}

// GPT-2's printable stand-in for byte b (its byte-level BPE alphabet).
std::string gpt2_byte_char(int b) {
  auto printable = [](int c) { return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF); };
  int cp = b;
  if (!printable(b)) {
    int n = 0;
    for (int c = 0; c < b; ++c) n += printable(c) ? 0 : 1;
    cp = 256 + n;
  }
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

// A byte-level BPE vocabulary: the 256 byte characters, then words " a", " b", ... " aa", ...
// each made by merging its prefix with its last letter (so every merge's parts exist), and
// <|endoftext|> last, as BOS and EOS.
void add_bpe_vocab(GgufWriter& w, int vocab_size) {
  std::vector<std::string> tokens, merges;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) tokens.push_back(gpt2_byte_char(b)), types.push_back(1);
  const std::string space = gpt2_byte_char(' ');
  std::vector<std::string> frontier = {space};
  while (static_cast<int>(tokens.size()) < vocab_size - 1) {
    std::vector<std::string> next;
    for (const auto& prefix : frontier) {
      for (char ch = 'a'; ch <= 'z' && static_cast<int>(tokens.size()) < vocab_size - 1; ++ch) {
        merges.push_back(prefix + " " + std::string(1, ch));
        tokens.push_back(prefix + ch);
        types.push_back(1);
        next.push_back(tokens.back());
      }
    }
    frontier = std::move(next);
  }
  tokens.push_back("<|endoftext|>");
  types.push_back(3);
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "gpt-2");
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_strings("tokenizer.ggml.merges", merges);
  w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(tokens.size() - 1));
  w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(tokens.size() - 1));
}

}  // namespace

Result<SynthReport> write_synth_model(const SynthShape& shape, GgmlType type, uint64_t seed, const std::string& path) {
  if (!can_quantize(type)) return unimplemented("cannot write " + ggml_type_name(static_cast<uint32_t>(type)) + " weights");
  const ModelConfig& c = shape.config;
  const bool gpt2 = c.arch == Arch::kGpt2;
  const std::string arch = gpt2 ? "gpt2" : "llama";
  SynthReport report;
  GgufWriter w;
  w.set_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));  // each tensor draws from its own generator
  w.add_string("general.architecture", arch);
  w.add_string("general.name", "llmops-synth " + shape.name);
  w.add_u32("general.file_type", gguf_file_type(type));
  add_shape_metadata(w, arch, c);
  if (gpt2) {
    add_bpe_vocab(w, c.vocab_size);
  } else {
    add_spm_vocab(w, c.vocab_size);
  }

  // Each tensor draws from its own generator, seeded from the model seed and its index; the
  // writer asks for rows in order, so the same seed always gives the same file.
  uint64_t index = 0;
  const uint64_t dim = static_cast<uint64_t>(c.dim), hidden = static_cast<uint64_t>(c.hidden_dim);
  const uint64_t kv = static_cast<uint64_t>(c.kv_dim()), vocab = static_cast<uint64_t>(c.vocab_size);
  auto matrix = [&](const std::string& name, GgmlType t, uint64_t cols, uint64_t rows) -> Status {
    auto rng = std::make_shared<std::mt19937_64>(seed * 1000003u + index++);
    auto dist = std::make_shared<std::normal_distribution<float>>(0.0f, 0.02f);
    GgmlType stored = storable_type(t, cols, name, &report.fallbacks);
    report.bytes += *ggml_row_bytes(stored, cols) * rows;
    return w.add_tensor(name, stored, {cols, rows}, [rng, dist, cols](uint64_t, float* out) {
      for (uint64_t i = 0; i < cols; ++i) out[i] = (*dist)(*rng);
    });
  };
  // Norm weights are 1; biases small and random.
  auto vec = [&](const std::string& name, uint64_t n, float value) -> Status {
    report.bytes += n * 4;
    auto rng = std::make_shared<std::mt19937_64>(seed * 1000003u + index++);
    return w.add_tensor(name, GgmlType::kF32, {n}, [rng, n, value](uint64_t, float* out) {
      std::normal_distribution<float> dist(0.0f, 0.02f);
      for (uint64_t i = 0; i < n; ++i) out[i] = value != 0.0f ? value : dist(*rng);
    });
  };
  GgmlType out_type = (type == GgmlType::kQ4_0 || type == GgmlType::kQ4_K) ? GgmlType::kQ6_K : type;
  LLMOPS_RETURN_IF_ERROR(matrix("token_embd.weight", type, dim, vocab));
  if (gpt2) LLMOPS_RETURN_IF_ERROR(matrix("position_embd.weight", GgmlType::kF32, dim, static_cast<uint64_t>(c.seq_len)));
  for (int l = 0; l < c.n_layers; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    LLMOPS_RETURN_IF_ERROR(vec(p + "attn_norm.weight", dim, 1.0f));
    if (gpt2) {
      LLMOPS_RETURN_IF_ERROR(vec(p + "attn_norm.bias", dim, 0.0f));
      LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_qkv.weight", type, dim, 3 * dim));
      LLMOPS_RETURN_IF_ERROR(vec(p + "attn_qkv.bias", 3 * dim, 0.0f));
      LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_output.weight", type, dim, dim));
      LLMOPS_RETURN_IF_ERROR(vec(p + "attn_output.bias", dim, 0.0f));
      LLMOPS_RETURN_IF_ERROR(vec(p + "ffn_norm.weight", dim, 1.0f));
      LLMOPS_RETURN_IF_ERROR(vec(p + "ffn_norm.bias", dim, 0.0f));
      LLMOPS_RETURN_IF_ERROR(matrix(p + "ffn_up.weight", type, dim, hidden));
      LLMOPS_RETURN_IF_ERROR(vec(p + "ffn_up.bias", hidden, 0.0f));
      LLMOPS_RETURN_IF_ERROR(matrix(p + "ffn_down.weight", type, hidden, dim));
      LLMOPS_RETURN_IF_ERROR(vec(p + "ffn_down.bias", dim, 0.0f));
      continue;
    }
    LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_q.weight", type, dim, dim));
    LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_k.weight", type, dim, kv));
    LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_v.weight", type, dim, kv));
    LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_output.weight", type, dim, dim));
    LLMOPS_RETURN_IF_ERROR(vec(p + "ffn_norm.weight", dim, 1.0f));
    LLMOPS_RETURN_IF_ERROR(matrix(p + "ffn_gate.weight", type, dim, hidden));
    LLMOPS_RETURN_IF_ERROR(matrix(p + "ffn_down.weight", type, hidden, dim));
    LLMOPS_RETURN_IF_ERROR(matrix(p + "ffn_up.weight", type, dim, hidden));
  }
  LLMOPS_RETURN_IF_ERROR(vec("output_norm.weight", dim, 1.0f));
  if (gpt2) LLMOPS_RETURN_IF_ERROR(vec("output_norm.bias", dim, 0.0f));
  // GPT-2 ties its classifier to the embedding; Llama shapes keep a separate one.
  if (!gpt2) LLMOPS_RETURN_IF_ERROR(matrix("output.weight", out_type, dim, vocab));
  LLMOPS_RETURN_IF_ERROR(w.write(path));
  return report;
}

}  // namespace llmops::engine

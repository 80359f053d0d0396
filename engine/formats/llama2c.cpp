#include "formats/llama2c.h"

#include <cstdint>
#include <cstring>
#include <string>

namespace llmops::engine {
namespace {

constexpr uint32_t kExportMagic = 0x616b3432;  // "ak42"

uint64_t fp32_floats(const Llama2cHeader& h) {
  uint64_t dim = static_cast<uint64_t>(h.dim), hidden = static_cast<uint64_t>(h.hidden_dim);
  uint64_t layers = static_cast<uint64_t>(h.n_layers), vocab = static_cast<uint64_t>(h.vocab_size);
  uint64_t head = dim / static_cast<uint64_t>(h.n_heads), kv = head * static_cast<uint64_t>(h.n_kv_heads);
  uint64_t n = vocab * dim;                                     // token embedding
  n += layers * (dim + dim * dim + 2 * kv * dim + dim * dim);   // rms_att, wq, wk, wv, wo
  n += layers * (dim + 3 * hidden * dim);                       // rms_ffn, w1, w2, w3
  n += dim;                                                     // rms_final
  if (h.version == 0) n += static_cast<uint64_t>(h.seq_len) * head;  // freq_cis real+imag (unused)
  if (!h.shared_classifier) n += vocab * dim;
  return n;
}

}  // namespace

Result<Llama2cHeader> parse_llama2c_header(const uint8_t* data, size_t size) {
  Llama2cHeader h;
  int32_t fields[7];
  uint32_t magic = 0;
  if (size >= 4) std::memcpy(&magic, data, 4);
  if (magic == kExportMagic) {
    if (size < 256) return invalid_argument("llama2.c export is shorter than its 256-byte header");
    int32_t version = 0;
    std::memcpy(&version, data + 4, 4);
    if (version != 1) {
      return unimplemented("llama2.c export version " + std::to_string(version) +
                           " is not supported (version 1, fp32, and the legacy format are); re-export with version 1");
    }
    std::memcpy(fields, data + 8, sizeof fields);
    h.shared_classifier = data[8 + sizeof fields] != 0;
    h.version = 1;
    h.weights_offset = 256;
  } else {
    if (size < sizeof fields) return invalid_argument("file is shorter than a llama2.c header (28 bytes)");
    std::memcpy(fields, data, sizeof fields);
    h.weights_offset = sizeof fields;
  }
  h.dim = fields[0];
  h.hidden_dim = fields[1];
  h.n_layers = fields[2];
  h.n_heads = fields[3];
  h.n_kv_heads = fields[4];
  h.vocab_size = fields[5];
  h.seq_len = fields[6];
  if (h.version == 0) {
    h.shared_classifier = h.vocab_size > 0;  // a negative vocab size marks a separate classifier
    if (h.vocab_size < 0 && h.vocab_size != INT32_MIN) h.vocab_size = -h.vocab_size;  // INT32_MIN stays bad
  }
  auto bad = [&](const std::string& why) { return invalid_argument("not a valid llama2.c checkpoint: " + why); };
  if (h.dim <= 0 || h.dim > 65536) return bad("dim " + std::to_string(h.dim));
  if (h.hidden_dim <= 0 || h.hidden_dim > 262144) return bad("hidden_dim " + std::to_string(h.hidden_dim));
  if (h.n_layers <= 0 || h.n_layers > 1024) return bad("n_layers " + std::to_string(h.n_layers));
  if (h.n_heads <= 0 || h.n_heads > 1024 || h.dim % h.n_heads != 0) return bad("n_heads " + std::to_string(h.n_heads));
  if ((h.dim / h.n_heads) % 2 != 0) return bad("odd head size");
  if (h.n_kv_heads <= 0 || h.n_kv_heads > h.n_heads || h.n_heads % h.n_kv_heads != 0) return bad("n_kv_heads " + std::to_string(h.n_kv_heads));
  if (h.vocab_size <= 0 || h.vocab_size > (1 << 24)) return bad("vocab_size " + std::to_string(h.vocab_size));
  if (h.seq_len <= 0 || h.seq_len > (1 << 24)) return bad("seq_len " + std::to_string(h.seq_len));
  uint64_t expected = h.weights_offset + fp32_floats(h) * 4;
  if (expected != size) {
    return bad("the header implies " + std::to_string(expected) + " bytes but the file has " + std::to_string(size));
  }
  return h;
}

}  // namespace llmops::engine

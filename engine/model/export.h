// Writing a loaded model out again, so models move between the engine, llama.cpp, vLLM and
// Hugging Face tools: GGUF at any type quantize_row writes (F32, F16, BF16, Q8_0, Q4_0, Q4_K,
// Q6_K), and a Hugging Face directory (config.json + model.safetensors at F32, F16 or BF16).
// Each weight row is dequantised from the model's views and re-encoded on the way out, so a
// multi-GB model streams through row buffers. RoPE layouts are converted as the target
// expects: GGUF "llama" keeps q/k rows in the adjacent-pair layout, Hugging Face in
// rotate-half. Files appear only when complete. `llmopsctl model quantize` calls the same code.
#pragma once

#include <functional>

#include <string>

#include "formats/ggml_types.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "status.h"

namespace llmops::engine {

class GgufWriter;

struct ExportReport {
  std::vector<std::string> notes;  // tensors stored in another type than asked, and why
  uint64_t bytes = 0;              // bytes of tensor data written
};

// type: the matrices' type. Rows that are not whole blocks of it fall back to Q8_0 or F32, and
// Q4_0/Q4_K files keep the classifier at Q6_K, as llama.cpp's quantizer does; vectors stay F32.
// The tokenizer metadata of a GGUF source is copied unchanged. For other sources, `tok` (may
// be null) supplies it when it is a SentencePiece vocabulary (a llama2.c tokenizer.bin, a
// Hugging Face byte_fallback tokenizer.json); a byte-level BPE vocabulary from tokenizer.json is
// not written yet, and the report says the tokenizer files must travel beside the model.
// chat_template, when not empty, is written as tokenizer.chat_template in place of the source's.
Result<ExportReport> export_gguf(const Model& m, GgmlType type, const std::string& path, const Tokenizer* tok = nullptr,
                                 std::string_view chat_template = {});

// The GGUF metadata export_gguf writes, for writers of other models (training from scratch):
// a SentencePiece vocabulary as llama.cpp's "llama" tokenizer, and a shape under `arch.`.
void add_spm_metadata(GgufWriter& w, const SpmVocab& v, bool add_bos);
void add_shape_metadata(GgufWriter& w, const std::string& arch, const ModelConfig& c);
// A GGUF source's tokenizer.* keys as they are (arrays of arrays left out).
void copy_tokenizer_metadata(GgufWriter& w, const GgufFile& src, bool with_chat_template = true);
// The tokenizer metadata export_gguf writes for m: a GGUF source's copied, else tok's (may be
// null) when it is SentencePiece or byte-level BPE; else a note in notes.
void add_tokenizer_metadata(GgufWriter& w, const Model& m, const Tokenizer* tok, bool with_chat_template, std::vector<std::string>* notes);
// The order of a model's q/k rows in RoPE layout target: row r there is the model's row map(r)
// (empty: the same order). kUnimplemented when the layouts differ and RoPE covers part of each
// head.
Result<std::function<uint64_t(uint64_t)>> rope_row_map(const ModelConfig& c, RopeLayout target);
// The GGUF architecture a model of this shape is written as ("llama", "qwen2", "gpt2") and the
// order of its q/k rows there: qk_row(r) is the model's row that GGUF row r holds (empty: the
// same order). kUnimplemented when the layouts differ and RoPE covers part of each head.
struct GgufLayout {
  std::string arch;
  std::function<uint64_t(uint64_t)> qk_row;
};
Result<GgufLayout> gguf_layout(const ModelConfig& c);

// Writes dir/config.json and dir/model.safetensors (dtype F32, F16 or BF16); a Hugging Face
// source's tokenizer files are copied beside them.
Result<ExportReport> export_hf(const Model& m, SafetensorsDtype dtype, const std::string& dir);

}  // namespace llmops::engine

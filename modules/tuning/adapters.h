// A LoRA run's adapters as the two formats other tools load:
//   PEFT: adapter_model.safetensors (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight
//         [rank, in], ...lora_B.weight [out, rank]) + adapter_config.json; q and k rows of B in
//         Hugging Face's rotate-half order (the base GGUF keeps adjacent pairs);
//   GGUF: llama.cpp's LoRA adapter (general.type "adapter", adapter.type "lora",
//         adapter.lora.alpha; blk.N.attn_q.weight.lora_a / .lora_b at F32).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "status.h"
#include "tuning/checkpoint.h"

namespace llmops::tuning {

// Writes dir/adapter_model.safetensors, dir/adapter_config.json and dir/adapter.gguf.
// gguf_qk_row (may be empty): the order of q/k rows in the base's GGUF form when the base is not
// GGUF itself (row r of the GGUF adapter's B ← the trainer's row gguf_qk_row(r)).
Status write_adapters(const Trainer& t, const std::string& base_name, const std::string& architecture, const std::string& dir,
                      const std::function<uint64_t(uint64_t)>& gguf_qk_row = {});

}  // namespace llmops::tuning

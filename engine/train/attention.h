// Causal self-attention for training, forward and backward, with grouped-query heads: q is
// [batch·seq × heads·head_dim], k and v [batch·seq × kv_heads·head_dim], the softmax att
// [batch × heads × seq × seq] (kept for backward; entries past the diagonal are left as they
// were), out [batch·seq × heads·head_dim]. Scores are scaled by 1/sqrt(head_dim).
//
// Work is cut across the pool by (sequence, kv head): backward adds every head of a group into
// the same dk and dv, so a group stays on one thread and no two threads write the same row.
// The sums inside a task run in a fixed order: results do not depend on the thread count.
#pragma once

namespace llmops::engine {
class ThreadPool;
}

namespace llmops::engine::train {

struct AttentionShape {
  int batch, seq, heads, kv_heads, head_dim;
};

// out must be zero on entry (the weighted values are added into it).
template <typename T>
void causal_attention(ThreadPool* pool, const AttentionShape& s, const T* q, const T* k, const T* v, T* att, T* out);

// Adds d loss / d q, k, v into dq, dk, dv given dout = d loss / d out.
template <typename T>
void causal_attention_backward(ThreadPool* pool, const AttentionShape& s, const T* q, const T* k, const T* v, const T* att, const T* dout,
                               T* dq, T* dk, T* dv);

}  // namespace llmops::engine::train

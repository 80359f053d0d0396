#include "train/attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "kernels/thread_pool.h"

namespace llmops::engine::train {
namespace {

// Runs fn(b, kv_head) for every sequence and kv head across the pool.
template <typename Fn>
void for_each_group(ThreadPool* pool, const AttentionShape& s, Fn fn) {
  parallel_for(pool, static_cast<size_t>(s.batch) * s.kv_heads, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) fn(static_cast<int>(i) / s.kv_heads, static_cast<int>(i) % s.kv_heads);
  });
}

}  // namespace

template <typename T>
void causal_attention(ThreadPool* pool, const AttentionShape& s, const T* q, const T* k, const T* v, T* att_all, T* out_all) {
  const int seq = s.seq, heads = s.heads, kv_heads = s.kv_heads, head_dim = s.head_dim, group = heads / kv_heads;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  for_each_group(pool, s, [&](int bi, int kh) {
    for (int h = kh * group; h < (kh + 1) * group; ++h) {
      for (int t = 0; t < seq; ++t) {
        const T* qt = q + (static_cast<size_t>(bi * seq + t) * heads + h) * head_dim;
        T* att = att_all + ((static_cast<size_t>(bi) * heads + h) * seq + t) * seq;
        T mx = -std::numeric_limits<T>::infinity();
        for (int u = 0; u <= t; ++u) {
          const T* ku = k + (static_cast<size_t>(bi * seq + u) * kv_heads + kh) * head_dim;
          T dot = 0;
          for (int j = 0; j < head_dim; ++j) dot += qt[j] * ku[j];
          att[u] = dot * scale;
          mx = std::max(mx, att[u]);
        }
        T sum = 0;
        for (int u = 0; u <= t; ++u) sum += (att[u] = std::exp(att[u] - mx));
        T* out = out_all + (static_cast<size_t>(bi * seq + t) * heads + h) * head_dim;
        for (int u = 0; u <= t; ++u) {
          att[u] /= sum;
          const T* vu = v + (static_cast<size_t>(bi * seq + u) * kv_heads + kh) * head_dim;
          for (int j = 0; j < head_dim; ++j) out[j] += att[u] * vu[j];
        }
      }
    }
  });
}

template <typename T>
void causal_attention_backward(ThreadPool* pool, const AttentionShape& s, const T* q, const T* k, const T* v, const T* att_all,
                               const T* dout_all, T* dq, T* dk, T* dv) {
  const int seq = s.seq, heads = s.heads, kv_heads = s.kv_heads, head_dim = s.head_dim, group = heads / kv_heads;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  for_each_group(pool, s, [&](int bi, int kh) {
    std::vector<T> dps(static_cast<size_t>(seq));
    for (int h = kh * group; h < (kh + 1) * group; ++h) {
      for (int t = 0; t < seq; ++t) {
        const T* att = att_all + ((static_cast<size_t>(bi) * heads + h) * seq + t) * seq;
        const T* dout = dout_all + (static_cast<size_t>(bi * seq + t) * heads + h) * head_dim;
        const T* qt = q + (static_cast<size_t>(bi * seq + t) * heads + h) * head_dim;
        T* dqt = dq + (static_cast<size_t>(bi * seq + t) * heads + h) * head_dim;
        // dp_u = dout · v_u; dv_u += p_u dout; ds_u = p_u (dp_u − Σ p dp).
        T dot = 0;
        for (int u = 0; u <= t; ++u) {
          const T* vu = v + (static_cast<size_t>(bi * seq + u) * kv_heads + kh) * head_dim;
          T* dvu = dv + (static_cast<size_t>(bi * seq + u) * kv_heads + kh) * head_dim;
          T dp = 0;
          for (int j = 0; j < head_dim; ++j) {
            dp += dout[j] * vu[j];
            dvu[j] += att[u] * dout[j];
          }
          dps[static_cast<size_t>(u)] = dp;
          dot += att[u] * dp;
        }
        for (int u = 0; u <= t; ++u) {
          const T ds = att[u] * (dps[static_cast<size_t>(u)] - dot) * scale;
          const T* ku = k + (static_cast<size_t>(bi * seq + u) * kv_heads + kh) * head_dim;
          T* dku = dk + (static_cast<size_t>(bi * seq + u) * kv_heads + kh) * head_dim;
          for (int j = 0; j < head_dim; ++j) {
            dqt[j] += ds * ku[j];
            dku[j] += ds * qt[j];
          }
        }
      }
    }
  });
}

template void causal_attention<float>(ThreadPool*, const AttentionShape&, const float*, const float*, const float*, float*, float*);
template void causal_attention<double>(ThreadPool*, const AttentionShape&, const double*, const double*, const double*, double*, double*);
template void causal_attention_backward<float>(ThreadPool*, const AttentionShape&, const float*, const float*, const float*, const float*,
                                               const float*, float*, float*, float*);
template void causal_attention_backward<double>(ThreadPool*, const AttentionShape&, const double*, const double*, const double*,
                                                const double*, const double*, double*, double*, double*);

}  // namespace llmops::engine::train

// The operation graphs of causal flash attention, forward and backward, as cudnn-frontend's
// sdpa / sdpa_backward nodes lower them (cudnn_sdpa.cu explains their shape and runs them).
// Host code only: cudnn_graph_tests builds them against the installed cuDNN without a GPU.
#pragma once

#include <stdint.h>

#include "cudnn_backend.h"
#include "cudnn_sdpa.h"

namespace llmops::cuda::sdpa_detail {

// Non-virtual tensor UIDs: the variant pack names them.
enum : int64_t {
  kQ = 1, kK, kV, kO, kStats, kScale, kNegInf,
  kDO, kDQ, kDK, kDV, kOne, kSoftmaxSum, kDQAccum,
};
static_assert(kDQAccum < cudnn_backend::kFirstVirtualUid);

// Adds every tensor and operation of the forward (O and Stats from Q, K, V) or the backward
// (dQ, dK, dV) to g; g.error() says what cuDNN refused.
void build_forward(cudnn_backend::Graph& g, const SdpaShape& s);
void build_backward(cudnn_backend::Graph& g, const SdpaShape& s);

}  // namespace llmops::cuda::sdpa_detail

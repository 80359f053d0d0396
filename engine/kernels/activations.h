// The element-wise steps of the forward pass between its products: the gated activation of the
// MLP and the norms, vectorised at each ISA level (kernels/matvec.h KernelIsa). In a decode step
// they run on one thread while the others wait, so their cost is paid in full.
// The AVX levels compute exp with a polynomial (within 2 ulp of std::exp over the range used);
// the portable level calls std::exp. Pure functions; any thread.
#pragma once

#include <cstdint>

#include "kernels/matvec.h"

namespace llmops::engine {

// g[i] = g[i] · sigmoid(g[i]) · u[i] (SwiGLU's SiLU gate), over n floats.
void silu_mul(float* g, const float* u, uint64_t n, KernelIsa isa);

// One row of n floats normalised: RMSNorm, out = w ⊙ x / sqrt(mean(x²) + eps); with
// layer_norm, LayerNorm, out = w ⊙ (x − mean) / sqrt(var + eps) + b (b may be null). out may be x.
void norm_row(const float* x, const float* w, const float* b, float* out, uint64_t n, float eps, bool layer_norm, KernelIsa isa);

// exp(x) for each of n floats (the kernels' own, for tests of its error).
void exp_row(const float* x, float* out, uint64_t n, KernelIsa isa);

}  // namespace llmops::engine

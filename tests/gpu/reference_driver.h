// The driver interface (drivers/include/llmops/driver.h) carried out on the CPU, plainly and in
// double where a sum is long: the reference the CUDA driver's ops are held to, and a device
// on which the engine's device code (GpuTrainer) runs in every build, GPU or not. "Device"
// memory is host memory; everything runs at once on the calling thread. It does the ops
// training needs and F32 products; the decode path's ops (KV cache, graphs, quantised
// products) say EUNSUPPORTED. Linked into gpu_tests, and built as libllmops_reference.so for
// daemons of the integration tests (LLMOPS_COMPUTE_DRIVER).
#pragma once

#include "gpu/device.h"

namespace llmops::engine::gpu_test {

const llmops_driver_api* reference_driver_api();

// Fault injection for tests of error paths: the n-th matrix product from now (1: the next)
// fails with EDEVICE; 0 turns it off. One count for every open reference device of the process.
void reference_driver_fail_product(int n);

}  // namespace llmops::engine::gpu_test

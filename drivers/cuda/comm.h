// NCCL behind the driver's comm_* calls (nccl_comm.cu): one communicator per GPU of a group,
// all-reduce enqueued on each device's stream. Errors come back as LLMOPS_DRV_E* with words.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include <string>

#include "llmops/driver.h"

namespace llmops::cuda {

struct Comm;
int comm_create(const int* devices, const cudaStream_t* streams, int n, Comm** out, std::string* error);
int comm_all_reduce(Comm* c, float* const* bufs, uint64_t count, std::string* error);
void comm_destroy(Comm* c);

}  // namespace llmops::cuda

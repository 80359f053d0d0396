// The CUDA driver's cuDNN attention graphs built against the cuDNN installed here, without a
// GPU: every tensor and operation descriptor of the forward and backward graphs, and the
// operation graph itself, must finalize (cuDNN checks attribute types, dims, strides and data
// types at each finalize). Whether an engine then takes the graph, and what it computes, needs
// a GPU: Drivers/GpuTrain.Bf16AttentionStaysCloseToTheReference/cuda.
#include <gtest/gtest.h>

#include <string>

#include "cudnn_backend.h"
#include "cudnn_sdpa_graphs.h"

namespace llmops::cuda {
namespace {

using cudnn_backend::Graph;

TEST(CudnnGraphs, AttentionGraphsFinalizeAgainstTheInstalledCudnn) {
  if (!cudnn_backend::api().error.empty()) GTEST_SKIP() << "cuDNN cannot be opened here: " << cudnn_backend::api().error;
  std::printf("cuDNN %d\n", cudnn_backend::api().version);
  for (const SdpaShape& s : {SdpaShape{2, 256, 8, 8, 64, 0.125f}, SdpaShape{1, 512, 32, 8, 128, 0.08838835f},
                             SdpaShape{4, 1024, 12, 12, 64, 0.125f}}) {
    SCOPED_TRACE("batch " + std::to_string(s.batch) + " seq " + std::to_string(s.seq) + " heads " + std::to_string(s.heads) + "/" +
                 std::to_string(s.kv_heads) + " head_dim " + std::to_string(s.head_dim));
    for (bool backward : {false, true}) {
      Graph g(nullptr);
      if (backward) {
        sdpa_detail::build_backward(g, s);
      } else {
        sdpa_detail::build_forward(g, s);
      }
      g.finalize_graph();
      EXPECT_TRUE(g.ok()) << (backward ? "backward: " : "forward: ") << g.error();
    }
  }
}

// A graph cuDNN must refuse is refused, with words: the checks above are not vacuous.
TEST(CudnnGraphs, AMalformedGraphIsRefusedSayingWhere) {
  if (!cudnn_backend::api().error.empty()) GTEST_SKIP() << "cuDNN cannot be opened here: " << cudnn_backend::api().error;
  Graph g(nullptr);
  // A matmul whose inner dimensions disagree: [1,1,4,8] x [1,1,4,8] -> [1,1,4,8].
  const cudnn_backend::Dims dims{1, 1, 4, 8}, strides{32, 32, 8, 1};
  auto a = g.tensor(1, CUDNN_DATA_BFLOAT16, dims, strides);
  auto b = g.tensor(2, CUDNN_DATA_BFLOAT16, dims, strides);
  auto c = g.tensor(3, CUDNN_DATA_FLOAT, dims, strides);
  g.matmul(a, b, c);
  g.finalize_graph();
  EXPECT_FALSE(g.ok());
  EXPECT_NE(g.error().find("matmul"), std::string::npos) << g.error();
}

}  // namespace
}  // namespace llmops::cuda

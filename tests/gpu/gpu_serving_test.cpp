// The serving scheduler on the GPU: continuous batching, chunked prefill, the prefix cache and
// sampling run unchanged over GpuRunner. stories260K's greedy answers equal the references for
// requests decoded together, a shared prefix is copied on the device and answers the same, and
// seeded sampling gives what the CPU scheduler gives.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gpu/gpu_test_util.h"
#include "serving/scheduler.h"
#include "unit/test_util.h"

namespace llmops::engine {
namespace {

using namespace gpu_test;
using serving::GenerationParams;
using serving::Request;
using serving::Scheduler;
using serving::SchedulerOptions;

std::vector<int32_t> collect(const std::shared_ptr<Request>& r) {
  std::vector<int32_t> ids;
  std::vector<serving::Piece> pieces;
  while (r->next(&pieces, std::chrono::milliseconds(20000))) {
    for (const auto& p : pieces) ids.push_back(p.id);
    pieces.clear();
  }
  for (const auto& p : pieces) ids.push_back(p.id);
  return ids;
}

TEST(GpuServing, BatchedGreedyPrefixCacheAndSamplingMatch) {
  REQUIRE_GPU();
  const std::string dir = shared_dir() + "/models/stories260K/";
  if (!std::filesystem::exists(dir + "reference_greedy.txt")) GTEST_SKIP() << "../shared is absent (" << dir << " not found)";
  auto loaded = Model::load(dir + "stories260K.gguf");
  ASSERT_TRUE(loaded.ok());
  std::shared_ptr<const Model> model(std::move(*loaded));
  auto tok = Tokenizer::from_gguf(*model->gguf());
  ASSERT_TRUE(tok.ok());
  auto tokenizer = std::make_shared<const Tokenizer>(std::move(*tok));
  std::ifstream in(dir + "reference_greedy.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  const auto prompt = ::llmops::test::ints_after(ss.str(), "PROMPT ids: ");
  const auto want = ::llmops::test::ints_after(ss.str(), "B generated (60): ");
  ASSERT_EQ(want.size(), 60u);

  auto gpu = std::make_unique<serving::GpuExecution>();
  auto device = open_test_device();
  ASSERT_TRUE(device.ok()) << device.status().message();
  gpu->device = std::move(*device);
  auto up = GpuModel::upload(*gpu->device, *model);
  ASSERT_TRUE(up.ok()) << up.status().message();
  gpu->model = std::move(*up);
  SchedulerOptions opt;
  opt.prefill_chunk = 3;  // prompts take several steps, interleaved with others' decoding
  Scheduler on_gpu(model, tokenizer, opt, std::move(gpu));
  Scheduler on_cpu(model, tokenizer, opt);
  EXPECT_EQ(on_gpu.device().rfind("cuda:0 ", 0), 0u) << on_gpu.device();  // "cuda:0 NAME (PCI address)"

  GenerationParams greedy;
  greedy.max_tokens = 60;
  greedy.ignore_eos = true;
  greedy.sampling.temperature = 0;
  std::vector<std::shared_ptr<Request>> reqs;
  for (int i = 0; i < 6; ++i) {
    reqs.push_back(std::make_shared<Request>(prompt, greedy));
    ASSERT_TRUE(on_gpu.submit(reqs.back()).ok());
  }
  for (auto& r : reqs) {
    EXPECT_EQ(collect(r), want);
    EXPECT_EQ(r->finish_reason(), "length");
  }
  // The finished sequences' caches are now prefixes: the same prompt copies them on the device.
  const uint64_t hits = on_gpu.stats().prefix_hit_tokens;
  auto again = std::make_shared<Request>(prompt, greedy);
  ASSERT_TRUE(on_gpu.submit(again).ok());
  EXPECT_EQ(collect(again), want);
  EXPECT_GT(on_gpu.stats().prefix_hit_tokens, hits);

  // Sampled on the device: a seed repeats whatever the batch, another seed draws otherwise,
  // and penalties apply there too. (The device's draws are its own, not the host sampler's.)
  GenerationParams sampled = greedy;
  sampled.sampling.temperature = 0.8f;
  sampled.sampling.top_p = 0.9f;
  sampled.sampling.seed = 1234;
  sampled.max_tokens = 40;
  auto a = std::make_shared<Request>(prompt, sampled), b = std::make_shared<Request>(prompt, sampled);
  auto alone = std::make_shared<Request>(prompt, sampled);
  GenerationParams other = sampled;
  other.sampling.seed = 99;
  auto o = std::make_shared<Request>(prompt, other);
  GenerationParams penalised = sampled;
  penalised.sampling.frequency_penalty = 1.5f;
  penalised.sampling.top_k = 20;
  auto pen = std::make_shared<Request>(prompt, penalised), pen2 = std::make_shared<Request>(prompt, penalised);
  for (auto& r : {a, b, o, pen}) ASSERT_TRUE(on_gpu.submit(r).ok());
  const std::vector<int32_t> ta = collect(a), tb = collect(b), to = collect(o), tp = collect(pen);
  ASSERT_TRUE(on_gpu.submit(alone).ok());
  ASSERT_TRUE(on_gpu.submit(pen2).ok());
  EXPECT_EQ(ta.size(), 40u);
  EXPECT_EQ(ta, tb);
  EXPECT_EQ(collect(alone), ta) << "the draw depends on the seed and the token's index, not on the batch";
  EXPECT_NE(to, ta);
  EXPECT_EQ(collect(pen2), tp);
  EXPECT_NE(tp, ta);
  // A request that wants logprobs reads its logits and samples on the host, as the CPU does.
  GenerationParams with_logprobs = sampled;
  with_logprobs.top_logprobs = 2;
  auto g = std::make_shared<Request>(prompt, with_logprobs), c = std::make_shared<Request>(prompt, with_logprobs);
  ASSERT_TRUE(on_gpu.submit(g).ok());
  ASSERT_TRUE(on_cpu.submit(c).ok());
  EXPECT_EQ(collect(g), collect(c));
}

}  // namespace
}  // namespace llmops::engine

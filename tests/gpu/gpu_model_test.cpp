// Whole models on the GPU: stories260K's greedy tokens equal the shared references, synthetic
// models of every type the driver reads agree with the CPU runner, batched decode equals one
// sequence at a time, graph replay equals direct launches, and bad input is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gpu/gpu_test_util.h"
#include "model/model.h"
#include "model/synth.h"
#include "unit/test_util.h"

namespace llmops::engine {
namespace {

using namespace gpu_test;

std::vector<int32_t> gpu_greedy(GpuRunner& runner, GpuSession& s, const std::vector<int32_t>& prompt, int n) {
  std::vector<GpuBatchToken> batch;
  for (size_t i = 0; i < prompt.size(); ++i) batch.push_back({&s, prompt[i], static_cast<int>(i), i + 1 == prompt.size()});
  auto first = runner.run_greedy(batch.data(), batch.size());
  EXPECT_TRUE(first.ok()) << first.status().message();
  std::vector<int32_t> out;
  if (!first.ok()) return out;
  int32_t next = first->at(0);
  for (int i = 0; i < n; ++i) {
    out.push_back(next);
    if (i + 1 == n) break;
    GpuBatchToken b{&s, next, static_cast<int>(prompt.size()) + i, true};
    auto ids = runner.run_greedy(&b, 1);
    EXPECT_TRUE(ids.ok()) << ids.status().message();
    if (!ids.ok()) break;
    next = ids->at(0);
  }
  return out;
}

// A synthetic model of the shape and type, written under dir, loaded, and uploaded to dev;
// nulls (after a failure saying why) if any step fails.
struct SynthOnGpu {
  std::unique_ptr<Model> model;
  std::unique_ptr<GpuModel> gpu;
};
SynthOnGpu synth_on_gpu(GpuDevice& dev, const char* shape_name, GgmlType type, uint64_t seed, const std::string& dir) {
  SynthOnGpu out;
  auto shape = find_synth_shape(shape_name);
  EXPECT_TRUE(shape.ok());
  const std::string path = dir + "/m.gguf";
  if (!shape.ok() || !write_synth_model(*shape, type, seed, path).ok()) return out;
  auto model = Model::load(path);
  EXPECT_TRUE(model.ok()) << model.status().message();
  if (!model.ok()) return out;
  auto gm = GpuModel::upload(dev, **model);
  EXPECT_TRUE(gm.ok()) << gm.status().message();
  if (!gm.ok()) return out;
  out.model = std::move(*model);
  out.gpu = std::move(*gm);
  return out;
}

class GpuStories : public ::testing::TestWithParam<const char*> {};

TEST_P(GpuStories, GreedyIdsEqualTheReferences) {
  REQUIRE_GPU();
  const std::string dir = shared_dir() + "/models/stories260K/";
  if (!std::filesystem::exists(dir + "reference_greedy.txt")) GTEST_SKIP() << "../shared is absent (" << dir << " not found)";
  auto model = Model::load(dir + GetParam());
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto gm = GpuModel::upload(dev, **model);
  ASSERT_TRUE(gm.ok()) << gm.status().message();
  std::ifstream in(dir + "reference_greedy.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string ref = ss.str();
  const auto prompt = ::llmops::test::ints_after(ref, "PROMPT ids: ");
  const auto case1 = ::llmops::test::ints_after(ref, "B generated (60): ");
  ASSERT_EQ(case1.size(), 60u);
  const auto case2 = ::llmops::test::ints_after(ref.substr(ref.find("== Case 2")), "A generated (255 ids):\n");
  ASSERT_GE(case2.size(), 255u);
  for (bool graphs : {true, false}) {
    GpuRunner runner(**gm, 512, graphs);
    auto s = GpuSession::create(**gm, 512);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(gpu_greedy(runner, **s, prompt, 60), case1) << "graphs " << graphs;
    (*s)->reset();
    EXPECT_EQ(gpu_greedy(runner, **s, {1}, static_cast<int>(case2.size())), case2) << "graphs " << graphs;
  }
}

// Per-layer offload: budgets that keep 3, 1 and 0 of stories260K's 5 layers on the device (the
// rest stream from host memory each pass) give the reference tokens, also after a pass that
// failed midway (on the reference driver, which can inject the failure); one too small for
// even the embeddings and one layer's staging is refused saying what it needs.
TEST(GpuStreaming, LayersPastTheBudgetStreamAndGiveTheSameTokens) {
  REQUIRE_GPU();
  const std::string dir = shared_dir() + "/models/stories260K/";
  if (!std::filesystem::exists(dir + "reference_greedy.txt")) GTEST_SKIP() << "../shared is absent (" << dir << " not found)";
  auto model = Model::load(dir + "stories260K.gguf");
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::ifstream in(dir + "reference_greedy.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  const auto prompt = ::llmops::test::ints_after(ss.str(), "PROMPT ids: ");
  const auto want = ::llmops::test::ints_after(ss.str(), "B generated (60): ");
  auto whole = GpuModel::upload(dev, **model);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ((*whole)->streamed_layers(), 0);
  const uint64_t all = (*whole)->device_bytes();
  const int layers = (**model).config().n_layers;
  ASSERT_EQ(layers, 5);
  uint64_t layer_bytes = 0;
  for (const WeightView* w : {&(**model).layers()[0].wq, &(**model).layers()[0].wk, &(**model).layers()[0].wv, &(**model).layers()[0].wo,
                              &(**model).layers()[0].w_gate, &(**model).layers()[0].w_up, &(**model).layers()[0].w_down}) {
    layer_bytes += w->bytes();
  }
  for (int streamed : {2, 4, 5}) {
    SCOPED_TRACE(std::to_string(streamed) + " layers streamed");
    // Room for the resident layers and one layer's staging (plus its 256-byte slots), not one more layer.
    const uint64_t budget = all - static_cast<uint64_t>(streamed) * layer_bytes + layer_bytes + 7 * 256 + 4096;
    auto gm = GpuModel::upload(dev, **model, budget);
    ASSERT_TRUE(gm.ok()) << gm.status().message();
    EXPECT_EQ((*gm)->streamed_layers(), streamed);
    EXPECT_TRUE((*gm)->streamed(layers - 1));
    EXPECT_EQ((*gm)->streamed(0), streamed == layers);
    EXPECT_LE((*gm)->device_bytes(), budget);
    GpuRunner runner(**gm, 512, true);  // graphs asked for; streaming turns them off
    auto s = GpuSession::create(**gm, 512);
    ASSERT_TRUE(s.ok());
    if (holder().reference) {
      // A pass that fails inside a streamed layer (the last layer's third product) gives the
      // staging area back: the model answers rightly afterwards (the reference driver refuses
      // an upload into an area whose readers were never released).
      reference_driver_fail_product(7 * (layers - 1) + 3);
      GpuBatchToken first{s->get(), prompt[0], 0, true};
      auto failed = runner.run_greedy(&first, 1);
      reference_driver_fail_product(0);
      ASSERT_FALSE(failed.ok());
      EXPECT_NE(failed.status().message().find("injected"), std::string::npos) << failed.status().message();
      (*s)->reset();
    }
    EXPECT_EQ(gpu_greedy(runner, **s, prompt, 60), want);
  }
  auto tiny = GpuModel::upload(dev, **model, layer_bytes);
  ASSERT_FALSE(tiny.ok());
  EXPECT_EQ(tiny.status().code(), Code::kResourceExhausted);
  EXPECT_NE(tiny.status().message().find("even with every layer streamed"), std::string::npos) << tiny.status().message();
}

INSTANTIATE_TEST_SUITE_P(BothFormats, GpuStories, ::testing::Values("stories260K.bin", "stories260K.gguf"),
                         [](const auto& info) { return std::string(info.param).find(".gguf") != std::string::npos ? "gguf" : "llama2c"; });

struct SynthCase {
  const char* shape;
  GgmlType type;
  double bound;  // NMSE of GPU logits against the CPU runner's
};

class GpuSynth : public ::testing::TestWithParam<SynthCase> {};

// A prompt through prefill, then decode steps: every logit row of the GPU against the CPU's.
// The CPU multiplies quantised weights by activations quantised to 8 bits (as llama.cpp does)
// and F16/BF16 weights through its own half-precision tiles in prefill; the GPU keeps decode
// activations in fp32 and rounds them to 16 bits only for cuBLAS over many tokens. So the
// bounds are those roundings' (seen on an H200: F32 2.6e-13, F16 1.8e-7, BF16 1.3e-5,
// 8-bit activations 1e-4 to 2.3e-4), not more. Q4_K decode on the GPU rounds activations per
// 32 and the CPU per 256, so both roundings add up there (6.3e-4 seen).
TEST_P(GpuSynth, LogitsMatchTheCpuRunner) {
  REQUIRE_GPU();
  const SynthCase c = GetParam();
  ::llmops::test::TempDir tmp;
  auto [model, gm] = synth_on_gpu(dev, c.shape, c.type, 7, tmp.path());
  ASSERT_NE(gm, nullptr);
  const int vocab = model->config().vocab_size;
  Session cpu(*model, 64);
  GpuRunner runner(*gm);
  auto gs = GpuSession::create(*gm, 64);
  ASSERT_TRUE(gs.ok());
  std::vector<int32_t> prompt = {1, 17, 300, 42, 9, 511, 3, 77, 100, 5, 6, 250};
  std::vector<GpuBatchToken> batch;
  for (size_t i = 0; i < prompt.size(); ++i) batch.push_back({gs->get(), prompt[i], static_cast<int>(i), true});
  auto got = runner.run(batch.data(), batch.size());
  ASSERT_TRUE(got.ok()) << got.status().message();
  double worst = 0;
  for (size_t i = 0; i < prompt.size(); ++i) {
    const float* want = *cpu.forward(prompt[i], static_cast<int>(i));
    std::vector<double> w(want, want + vocab);
    worst = std::max(worst, nmse(*got + i * static_cast<size_t>(vocab), w.data(), w.size()));
  }
  int32_t next = 1;
  for (int step = 0; step < 4; ++step) {
    const int pos = static_cast<int>(prompt.size()) + step;
    GpuBatchToken b{gs->get(), next, pos, true};
    auto g = runner.run(&b, 1);
    ASSERT_TRUE(g.ok()) << g.status().message();
    const float* want = *cpu.forward(next, pos);
    std::vector<double> w(want, want + vocab);
    worst = std::max(worst, nmse(*g, w.data(), w.size()));
    next = static_cast<int32_t>(std::max_element(want, want + vocab) - want);
  }
  std::printf("  %s %s: worst logits nmse %.2e (bound %.0e)\n", c.shape, ggml_type_name(static_cast<uint32_t>(c.type)).c_str(), worst, c.bound);
  EXPECT_LT(worst, c.bound);
}

INSTANTIATE_TEST_SUITE_P(Models, GpuSynth,
                         ::testing::Values(SynthCase{"tiny", GgmlType::kF32, 1e-9}, SynthCase{"tiny", GgmlType::kF16, 1e-6},
                                           SynthCase{"tiny", GgmlType::kBF16, 1e-4}, SynthCase{"tiny", GgmlType::kQ8_0, 5e-4},
                                           SynthCase{"tiny", GgmlType::kQ4_0, 5e-4}, SynthCase{"tiny", GgmlType::kQ4_K, 1.5e-3},
                                           SynthCase{"tiny", GgmlType::kQ6_K, 5e-4}, SynthCase{"gpt2-tiny", GgmlType::kF32, 1e-9},
                                           SynthCase{"gpt2-tiny", GgmlType::kQ8_0, 5e-4}, SynthCase{"llama-15M", GgmlType::kQ4_K, 1.5e-3}),
                         [](const auto& info) {
                           std::string n = std::string(info.param.shape) + "_" + ggml_type_name(static_cast<uint32_t>(info.param.type));
                           for (char& ch : n) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return n;
                         });

// Four sequences of different lengths decoding together give each one's logits alone.
TEST(GpuRunnerTest, BatchedDecodeEqualsOneSequenceAtATime) {
  REQUIRE_GPU();
  ::llmops::test::TempDir tmp;
  // Q4_0: its one- and four-token kernels both keep activations in fp32 (Q4_K's one-token
  // kernel quantises them, so it would differ from its batched form by that rounding).
  auto [model, gm] = synth_on_gpu(dev, "tiny", GgmlType::kQ4_0, 3, tmp.path());
  ASSERT_NE(gm, nullptr);
  const int vocab = model->config().vocab_size;
  GpuRunner together(*gm), alone(*gm);
  std::vector<std::unique_ptr<GpuSession>> a, b;
  std::vector<GpuBatchToken> step;
  for (int s = 0; s < 4; ++s) {
    a.push_back(std::move(*GpuSession::create(*gm, 64)));
    b.push_back(std::move(*GpuSession::create(*gm, 64)));
    std::vector<GpuBatchToken> prompt;
    for (int i = 0; i <= 3 * s; ++i) prompt.push_back({a.back().get(), 10 + 7 * i + s, i, false});
    ASSERT_TRUE(together.run(prompt.data(), prompt.size()).ok());
    for (auto& p : prompt) p.session = b.back().get();
    ASSERT_TRUE(alone.run(prompt.data(), prompt.size()).ok());
  }
  for (int round = 0; round < 3; ++round) {
    step.clear();
    for (int s = 0; s < 4; ++s) step.push_back({a[static_cast<size_t>(s)].get(), 40 + s + round, a[static_cast<size_t>(s)]->length(), true});
    auto got = together.run(step.data(), step.size());
    ASSERT_TRUE(got.ok()) << got.status().message();
    std::vector<float> batched(*got, *got + 4 * static_cast<size_t>(vocab));
    for (int s = 0; s < 4; ++s) {
      GpuBatchToken one{b[static_cast<size_t>(s)].get(), 40 + s + round, b[static_cast<size_t>(s)]->length(), true};
      auto want = alone.run(&one, 1);
      ASSERT_TRUE(want.ok());
      std::vector<double> w(*want, *want + vocab);
      EXPECT_LT(nmse(batched.data() + static_cast<size_t>(s * vocab), w.data(), w.size()), 1e-12) << "sequence " << s << " round " << round;
    }
  }
}

TEST(GpuRunnerTest, BadTokensAndPositionsAreRefusedAndChangeNothing) {
  REQUIRE_GPU();
  ::llmops::test::TempDir tmp;
  auto [model, gm] = synth_on_gpu(dev, "tiny", GgmlType::kF16, 3, tmp.path());
  ASSERT_NE(gm, nullptr);
  GpuRunner runner(*gm);
  auto s = GpuSession::create(*gm, 4);
  ASSERT_TRUE(s.ok());
  GpuBatchToken bad_token{s->get(), 1 << 20, 0, true}, past{s->get(), 1, 4, true}, skip{s->get(), 1, 2, true};
  EXPECT_EQ(runner.run(&bad_token, 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(runner.run(&past, 1).status().code(), Code::kResourceExhausted);
  EXPECT_EQ(runner.run(&skip, 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ((*s)->length(), 0);
  auto too_big = GpuSession::create(*gm, 1 << 30);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), Code::kResourceExhausted) << too_big.status().message();
}

// The tool a user reaches first: `llmops-infer --device cuda` gives stories260K's reference
// tokens on a GPU, and where there is none it fails saying why (it never falls back silently).
TEST(GpuInferTool, RunsOnTheGpuOrSaysWhy) {
  const std::string dir = shared_dir() + "/models/stories260K/";
  if (!std::filesystem::exists(dir + "reference_greedy.txt")) GTEST_SKIP() << "../shared is absent (" << dir << " not found)";
  const char* env = std::getenv("LLMOPS_INFER");
  const std::string infer = env != nullptr ? env : LLMOPS_INFER_PATH;
  // On the reference driver the tool is handed it as a daemon would be (LLMOPS_COMPUTE_DRIVER).
  const std::string env_prefix = holder().reference ? std::string("LLMOPS_COMPUTE_DRIVER=") + LLMOPS_REFERENCE_DRIVER + " " : std::string();
  const std::string cmd = env_prefix + infer + " --model " + dir + "stories260K.gguf --prompt 'Once upon a time' --max-tokens 60 --ignore-eos --json --device cuda 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  if (holder().dev == nullptr) {
    EXPECT_NE(status, 0) << out;
    EXPECT_TRUE(out.find("no usable device") != std::string::npos || out.find("no CUDA driver") != std::string::npos) << out;
    return;
  }
  ASSERT_EQ(status, 0) << out;
  std::ifstream in(dir + "reference_greedy.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  const auto want = ::llmops::test::ints_after(ss.str(), "B generated (60): ");
  const size_t at = out.find("\"generated_ids\":[");
  ASSERT_NE(at, std::string::npos) << out;
  std::string ids = out.substr(at + 17, out.find(']', at) - at - 17);
  std::replace(ids.begin(), ids.end(), ',', ' ');
  EXPECT_EQ(::llmops::test::ints_after("ids: " + ids, "ids: "), want) << out;
  EXPECT_NE(out.find("\"device\":\"cuda\""), std::string::npos) << out;
}

TEST(GpuModelTest, RandomModelsOfRealShapesRun) {
  REQUIRE_GPU();
  if (holder().reference) GTEST_SKIP() << "quantised random weights of a 1.1B shape are for a real device";
  auto shape = find_synth_shape("tinyllama-1.1B");
  ASSERT_TRUE(shape.ok());
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kF16}) {
    auto gm = GpuModel::random(dev, shape->config, type, 1);
    ASSERT_TRUE(gm.ok()) << gm.status().message();
    EXPECT_GT((*gm)->bytes_per_token(), 500ull << 20);
    GpuRunner runner(**gm);
    auto s = GpuSession::create(**gm, 16);
    ASSERT_TRUE(s.ok());
    GpuBatchToken b{s->get(), 1, 0, true};
    auto logits = runner.run(&b, 1);
    ASSERT_TRUE(logits.ok()) << logits.status().message();
    for (int i = 0; i < shape->config.vocab_size; ++i) ASSERT_TRUE(std::isfinite((*logits)[i])) << i;
  }
}

}  // namespace
}  // namespace llmops::engine

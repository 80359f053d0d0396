// The training engine: every parameter's gradient against central finite differences (in
// double precision, on tiny models of both RoPE layouts, tied and untied, with q/k/v biases,
// and GPT-2's shape, with masked targets), the forward loss against the inference engine on
// stories260K and a synthetic GPT-2, AdamW driving a tiny model's loss down, and the
// learning-rate schedule.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <random>

#include "model/logprobs.h"
#include "model/model.h"
#include "kernels/thread_pool.h"
#include "model/synth.h"
#include "tokenizer/tokenizer.h"
#include "train/llama_train.h"

namespace llmops::engine::train {
namespace {

ModelConfig tiny(RopeLayout rope, int rope_dims) {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 24;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 19;
  c.seq_len = 16;
  c.rope = rope;
  c.rope_dims = rope_dims;
  return c;
}

// GPT-2's shape: learned positions, LayerNorm, GELU, biases everywhere, no RoPE, all heads.
ModelConfig tiny_gpt2() {
  ModelConfig c = tiny(RopeLayout::kNone, 0);
  c.arch = Arch::kGpt2;
  c.arch_name = "gpt2";
  c.n_kv_heads = c.n_heads;
  return c;
}

// The inference engine's mean cross-entropy over ids (token by token through a Session) and the
// trainer's forward loss over the same ids, from the same model.
std::pair<double, double> engine_and_trainer_loss(const Model& model, const std::vector<int32_t>& ids) {
  const int n = static_cast<int>(ids.size()) - 1;
  Session session(model, n + 1);
  double want = 0;
  for (int i = 0; i < n; ++i) {
    auto logits = session.forward(ids[static_cast<size_t>(i)], i);
    EXPECT_TRUE(logits.ok());
    if (!logits.ok()) return {NAN, NAN};
    want -= token_logprob(*logits, model.config().vocab_size, ids[static_cast<size_t>(i) + 1]);
  }
  auto t = LlamaTrainer<float>::from_model(model);
  EXPECT_TRUE(t.ok()) << t.status().message();
  if (!t.ok()) return {NAN, NAN};
  std::vector<int32_t> inputs(ids.begin(), ids.end() - 1), targets(ids.begin() + 1, ids.end());
  auto got = t->forward(inputs.data(), targets.data(), 1, n);
  EXPECT_TRUE(got.ok());
  return {want / n, got.ok() ? *got : NAN};
}

struct Case {
  RopeLayout rope;
  int rope_dims;
  bool tied;
  bool gpt2 = false;
  bool qkv_bias = false;
  int threads = 1;  // > 1: the trainer runs on a pool (attention, norms, softmax cut across it)
};

class TrainGradients : public ::testing::TestWithParam<Case> {};

TEST_P(TrainGradients, MatchFiniteDifferencesForEveryTensor) {
  const Case k = GetParam();
  auto t = LlamaTrainer<double>::random(k.gpt2 ? tiny_gpt2() : tiny(k.rope, k.rope_dims), k.tied, 7, k.qkv_bias);
  ASSERT_TRUE(t.ok()) << t.status().message();
  std::unique_ptr<ThreadPool> pool = k.threads > 1 ? std::make_unique<ThreadPool>(k.threads) : nullptr;
  t->set_pool(pool.get());
  // Larger weights than the init so every path carries a gradient well above rounding.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> nd(0.0, 0.3);
  for (auto& p : t->params()) p += nd(rng);
  const int batch = 2, seq = 6;
  std::vector<int32_t> tokens(batch * seq), targets(batch * seq);
  for (int i = 0; i < batch * seq; ++i) {
    tokens[i] = static_cast<int32_t>((i * 7 + 3) % 19);
    targets[i] = i % 5 == 1 ? -1 : static_cast<int32_t>((i * 5 + 1) % 19);  // some masked
  }
  auto loss = t->forward(tokens.data(), targets.data(), batch, seq);
  ASSERT_TRUE(loss.ok());
  t->zero_grads();
  t->backward();
  const std::vector<double> analytic = t->grads();
  std::uniform_int_distribution<size_t> pick;
  for (const TensorRef& r : t->tensors()) {
    for (int s = 0; s < 6; ++s) {
      const size_t i = r.offset + pick(rng) % r.size();
      const double keep = t->params()[i], eps = 1e-5;
      t->params()[i] = keep + eps;
      const double up = *t->forward(tokens.data(), targets.data(), batch, seq);
      t->params()[i] = keep - eps;
      const double down = *t->forward(tokens.data(), targets.data(), batch, seq);
      t->params()[i] = keep;
      const double numeric = (up - down) / (2 * eps);
      EXPECT_NEAR(analytic[i], numeric, 1e-7 + 1e-5 * std::fabs(numeric)) << r.name << " entry " << i - r.offset;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, TrainGradients,
                         ::testing::Values(Case{RopeLayout::kNormal, 0, false}, Case{RopeLayout::kNeox, 2, true},
                                           Case{RopeLayout::kNormal, 0, true}, Case{RopeLayout::kNeox, 0, true, false, true},
                                           Case{RopeLayout::kNone, 0, true, true},
                                           Case{RopeLayout::kNone, 0, false, true},
                                           Case{RopeLayout::kNeox, 0, true, false, true, 3}, Case{RopeLayout::kNone, 0, false, true, false, 3}));

// A pool cuts the products, attention, norms and softmax across threads: the loss and every
// gradient are those of one thread (to float rounding), and the same pool size gives the same
// bits every time (what a resumed training run relies on).
TEST(Train, APoolOfThreadsComputesWhatOneThreadDoes) {
  ModelConfig c = tiny(RopeLayout::kNormal, 0);
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.vocab_size = 300;
  c.seq_len = 64;
  const int batch = 3, seq = 64;
  std::vector<int32_t> tokens(batch * seq), targets(batch * seq);
  for (int i = 0; i < batch * seq; ++i) {
    tokens[i] = static_cast<int32_t>((i * 7919) % c.vocab_size);
    targets[i] = i % 11 == 0 ? -1 : static_cast<int32_t>((i * 104729 + 1) % c.vocab_size);
  }
  auto run = [&](ThreadPool* pool, bool lora) {
    auto t = LlamaTrainer<float>::random(c, false, 21);
    EXPECT_TRUE(t.ok());
    t->set_pool(pool);
    if (lora) {
      EXPECT_TRUE(t->enable_lora({}).ok());
    }
    const double loss = *t->forward(tokens.data(), targets.data(), batch, seq);
    t->zero_grads();
    t->backward();
    return std::make_pair(loss, lora ? t->lora_grads() : t->grads());
  };
  ThreadPool three(3), again(3);
  for (bool lora : {false, true}) {
    const auto [loss1, g1] = run(nullptr, lora);
    const auto [loss3, g3] = run(&three, lora);
    const auto [loss3b, g3b] = run(&again, lora);
    EXPECT_NEAR(loss3, loss1, 1e-5 * loss1);
    float scale = 0;
    for (float g : g1) scale = std::max(scale, std::fabs(g));
    ASSERT_GT(scale, 0.0f);
    for (size_t i = 0; i < g1.size(); ++i) ASSERT_NEAR(g3[i], g1[i], 1e-4f * scale) << "gradient " << i << (lora ? " (LoRA)" : "");
    EXPECT_EQ(loss3b, loss3);
    EXPECT_EQ(g3b, g3);
  }
}

TEST(Train, Gpt2ForwardLossEqualsTheInferenceEngine) {
  // A synthetic GPT-2 (fused q/k/v with biases, learned positions, LayerNorm, GELU) written as
  // GGUF and read back by both sides.
  auto shape = find_synth_shape("gpt2-tiny");
  ASSERT_TRUE(shape.ok());
  const std::string path = ::testing::TempDir() + "/train-gpt2-tiny.gguf";
  ASSERT_TRUE(write_synth_model(*shape, GgmlType::kF32, 5, path).ok());
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const int n = 40, V = (*model)->config().vocab_size;
  std::vector<int32_t> ids(static_cast<size_t>(n) + 1);
  for (int i = 0; i <= n; ++i) ids[static_cast<size_t>(i)] = (i * 37 + 11) % V;
  const auto [want, got] = engine_and_trainer_loss(**model, ids);
  EXPECT_NEAR(got, want, 1e-4 * want);
  // And it learns: a few AdamW steps on this one sequence lower its loss.
  auto t = LlamaTrainer<float>::from_model(**model);
  ASSERT_TRUE(t.ok()) << t.status().message();
  std::vector<int32_t> inputs(ids.begin(), ids.end() - 1), targets(ids.begin() + 1, ids.end());
  AdamWConfig oc;
  oc.lr = 1e-2;
  oc.total_steps = 20;
  AdamW<float> opt(oc, t->params().size());
  double first = 0, last = 0;
  for (int s = 0; s < 20; ++s) {
    t->zero_grads();
    last = *t->forward(inputs.data(), targets.data(), 1, n);
    if (s == 0) first = last;
    t->backward();
    opt.step(t->params(), t->grads(), t->tensors());
  }
  EXPECT_LT(last, 0.5 * first);
  std::filesystem::remove(path);
}

void check_lora(Result<LlamaTrainer<double>> t, const std::vector<std::string>& projections, double dropout = 0.0) {
  ASSERT_TRUE(t.ok());
  LoraConfig lc;
  lc.rank = 2;
  lc.alpha = 4;
  lc.targets = projections;
  lc.seed = 5;
  lc.dropout = dropout;  // the mask is a function of (seed, stream, slot): fixed here, so the finite differences hold
  t->set_dropout_stream(3);
  ASSERT_TRUE(t->enable_lora(lc).ok());
  EXPECT_FALSE(t->enable_lora(LoraConfig{4, 8, 0, {"qkv"}, 0}).ok()) << "unknown target";
  std::vector<int32_t> tokens = {1, 4, 9, 16, 6, 2, 11, 3}, targets = {4, 9, 16, -1, 2, 11, 3, 7};
  // B starts at zero: the adapted model is the base.
  const double base_loss = *t->forward(tokens.data(), targets.data(), 2, 4);
  std::mt19937_64 rng(8);
  std::normal_distribution<double> nd(0.0, 0.3);
  for (auto& v : t->lora_params()) v += nd(rng);
  const double adapted = *t->forward(tokens.data(), targets.data(), 2, 4);
  EXPECT_NE(adapted, base_loss);
  t->zero_grads();
  t->zero_lora_grads();
  t->backward();
  const std::vector<double> analytic = t->lora_grads();
  for (const TensorRef& r : t->lora_tensors()) {
    for (int s = 0; s < 4; ++s) {
      const size_t i = r.offset + (static_cast<size_t>(s) * 7919) % r.size();
      const double keep = t->lora_params()[i], eps = 1e-5;
      t->lora_params()[i] = keep + eps;
      const double up = *t->forward(tokens.data(), targets.data(), 2, 4);
      t->lora_params()[i] = keep - eps;
      const double down = *t->forward(tokens.data(), targets.data(), 2, 4);
      t->lora_params()[i] = keep;
      EXPECT_NEAR(analytic[i], (up - down) / (2 * eps), 1e-7 + 1e-5 * std::fabs(analytic[i])) << r.name;
    }
  }
  // The base is frozen: no gradient reaches its matrices.
  for (const TensorRef& r : t->tensors()) {
    if (!r.matrix()) continue;
    for (size_t i = r.offset; i < r.offset + r.size(); ++i) ASSERT_EQ(t->grads()[i], 0.0) << r.name;
  }
  t->set_training(false);  // dropout off: the function merge_lora keeps
  const double evaluated = *t->forward(tokens.data(), targets.data(), 2, 4);
  if (dropout == 0.0) EXPECT_EQ(evaluated, adapted);
  t->merge_lora();
  EXPECT_FALSE(t->lora());
  EXPECT_NEAR(*t->forward(tokens.data(), targets.data(), 2, 4), evaluated, 1e-12) << "W + (alpha/r)·B·A is the same function";
}

TEST(Train, LoraDropoutGradientsMatchFiniteDifferences) {
  check_lora(LlamaTrainer<double>::random(tiny(RopeLayout::kNeox, 0), false, 12), {"q", "v", "up", "down"}, 0.3);
}

TEST(Train, DropoutMasksKeepTheirShareAndDependOnTheirKey) {
  const uint64_t a = lora_dropout_key(5, 0, 0), b = lora_dropout_key(5, 1, 0), c = lora_dropout_key(5, 0, 1);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  int kept = 0, same = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    kept += dropout_keeps(a, static_cast<uint64_t>(i), 0.25f);
    same += dropout_keeps(a, static_cast<uint64_t>(i), 0.25f) == dropout_keeps(b, static_cast<uint64_t>(i), 0.25f);
  }
  EXPECT_NEAR(kept / static_cast<double>(n), 0.75, 0.005);
  EXPECT_NEAR(same / static_cast<double>(n), 0.75 * 0.75 + 0.25 * 0.25, 0.01) << "masks of two streams are independent";
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(dropout_keeps(a, static_cast<uint64_t>(i), 0.0f));
}

TEST(Train, LoraGradientsMatchFiniteDifferencesAndMergeKeepsTheFunction) {
  check_lora(LlamaTrainer<double>::random(tiny(RopeLayout::kNormal, 0), false, 11), {"q", "k", "v", "o", "gate", "up", "down"});
}

// GPT-2: q, k and v adapt the row blocks of the fused projection; there is no gate.
TEST(Train, Gpt2LoraGradientsMatchFiniteDifferencesAndMergeKeepsTheFunction) {
  check_lora(LlamaTrainer<double>::random(tiny_gpt2(), true, 11), {"q", "k", "v", "o", "up", "down"});
  auto t = LlamaTrainer<double>::random(tiny_gpt2(), true, 11);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->enable_lora(LoraConfig{2, 4, 0, {"gate"}, 0}).code(), Code::kInvalidArgument);
}

TEST(Train, MaskedTargetsDoNotCount) {
  auto t = LlamaTrainer<double>::random(tiny(RopeLayout::kNormal, 0), false, 1);
  ASSERT_TRUE(t.ok());
  std::vector<int32_t> tokens = {1, 2, 3, 4}, all = {2, 3, 4, 5}, last = {-1, -1, -1, 5};
  const double full = *t->forward(tokens.data(), all.data(), 1, 4);
  const double only = *t->forward(tokens.data(), last.data(), 1, 4);
  EXPECT_EQ(t->counted_targets(), 1);
  EXPECT_NE(full, only);
  // The last position's loss does not depend on which earlier targets are masked.
  std::vector<int32_t> other = {-1, 7, -1, 5};
  (void)t->forward(tokens.data(), other.data(), 1, 4);
  std::vector<int32_t> solo = {-1, -1, -1, 5};
  EXPECT_DOUBLE_EQ(*t->forward(tokens.data(), solo.data(), 1, 4), only);
  std::vector<int32_t> bad = {1, 2, 99, 4};
  EXPECT_FALSE(t->forward(bad.data(), all.data(), 1, 4).ok());
}

TEST(Train, AdamWDrivesATinyBatchsLossDown) {
  auto t = LlamaTrainer<float>::random(tiny(RopeLayout::kNormal, 0), true, 5);
  ASSERT_TRUE(t.ok());
  AdamWConfig cfg;
  cfg.lr = 1e-2;
  cfg.min_lr = 1e-3;
  cfg.warmup_steps = 10;
  cfg.total_steps = 150;
  cfg.weight_decay = 0.0;
  AdamW<float> opt(cfg, t->parameter_count());
  std::vector<int32_t> tokens = {1, 5, 9, 13, 17, 2, 6, 10, 14, 18, 3, 7}, targets(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) targets[i] = tokens[(i + 1) % tokens.size()];
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    auto loss = t->forward(tokens.data(), targets.data(), 2, 6);
    ASSERT_TRUE(loss.ok());
    if (step == 0) first = *loss;
    last = *loss;
    t->zero_grads();
    t->backward();
    const double norm = opt.step(t->params(), t->grads(), t->tensors());
    ASSERT_TRUE(std::isfinite(norm));
  }
  EXPECT_NEAR(first, std::log(19.0), 0.1) << "a fresh model is near uniform";
  EXPECT_LT(last, 0.1 * first) << "first " << first << " last " << last;
}

TEST(Train, LearningRateWarmsUpThenDecays) {
  AdamWConfig c;
  c.lr = 1.0;
  c.min_lr = 0.1;
  c.warmup_steps = 10;
  c.total_steps = 110;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(c, 9), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 10), 1.0);
  EXPECT_NEAR(learning_rate(c, 60), 0.55, 1e-12);  // halfway down the cosine
  EXPECT_DOUBLE_EQ(learning_rate(c, 110), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(c, 500), 0.1);
  c.cosine = false;
  EXPECT_NEAR(learning_rate(c, 35), 1.0 - 0.9 * 0.25, 1e-12);
}

TEST(Train, ForwardLossEqualsTheInferenceEngineOnStories260K) {
  const std::string path = std::string(LLMOPS_SHARED_DIR) + "/models/stories260K/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "../shared is absent: needs stories260K";
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok());
  auto tok = Tokenizer::from_gguf(*(*model)->gguf());
  ASSERT_TRUE(tok.ok());
  std::vector<int32_t> ids = {tok->bos_id()};
  for (int32_t id : tok->encode("Once upon a time, there was a little girl named Lily. She loved to play outside.", false)) ids.push_back(id);
  const auto [want, got] = engine_and_trainer_loss(**model, ids);
  EXPECT_NEAR(got, want, 1e-4 * want);
  EXPECT_LT(got, 3.0) << "stories260K predicts its own kind of text";
}

}  // namespace
}  // namespace llmops::engine::train

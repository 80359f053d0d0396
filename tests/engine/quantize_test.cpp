// Quantisation round trips and whole-model error bounds against F32.
#include "formats/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/model.h"
#include "model/synth.h"
#include "unit/test_util.h"

namespace llmops::engine {
namespace {

// Normalised mean squared error: sum (a-b)^2 / sum b^2.
double nmse(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return num / den;
}

struct Bound {
  GgmlType type;
  double row_nmse;    // quantise + dequantise a Gaussian row
  double logit_nmse;  // whole-model logits against the F32 model
};

// Bounds the tests enforce. Logits include the Q8_0 quantisation of activations for Q8_0 and
// Q4_0 weights (as in llama.cpp); random weights make 4-bit types look worse than on trained ones.
const Bound kBounds[] = {
    {GgmlType::kF16, 1e-6, 1e-5},  {GgmlType::kBF16, 3e-5, 1e-4},  {GgmlType::kQ8_0, 3e-5, 1e-3},
    {GgmlType::kQ6_K, 5e-4, 3e-3}, {GgmlType::kQ4_K, 1.5e-2, 6e-2}, {GgmlType::kQ4_0, 1.5e-2, 6e-2},
};

TEST(Quantize, RoundTripErrorPerType) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(4096), y(4096);
  for (auto& v : x) v = dist(rng);
  for (const Bound& b : kBounds) {
    std::vector<uint8_t> packed(*ggml_row_bytes(b.type, x.size()));
    quantize_row(b.type, x.data(), packed.data(), x.size());
    dequantize_row(b.type, packed.data(), y.data(), x.size());
    double e = nmse(y.data(), x.data(), x.size());
    EXPECT_LT(e, b.row_nmse) << ggml_type_name(static_cast<uint32_t>(b.type));
    RecordProperty(std::string("nmse_") + ggml_type_name(static_cast<uint32_t>(b.type)), std::to_string(e));
  }
  std::vector<float> zeros(256, 0.0f);
  std::vector<uint8_t> packed(*ggml_row_bytes(GgmlType::kQ4_K, 256));
  quantize_row(GgmlType::kQ4_K, zeros.data(), packed.data(), 256);
  dequantize_row(GgmlType::kQ4_K, packed.data(), y.data(), 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[static_cast<size_t>(i)], 0.0f);
}

TEST(Quantize, SynthModelsStayCloseToF32) {
  test::TempDir dir;
  auto shape = *find_synth_shape("tiny");
  ASSERT_TRUE(write_synth_model(shape, GgmlType::kF32, 7, dir.file("f32.gguf")).ok());
  auto ref = Model::load_gguf(dir.file("f32.gguf"));
  ASSERT_TRUE(ref.ok()) << ref.status().to_string();
  const std::vector<int32_t> tokens = {1, 300, 301, 302, 500, 700, 900, 1000};
  auto run = [&](const Model& m) {
    Session s(m, 16);
    std::vector<float> all;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const float* l = *s.forward(tokens[i], static_cast<int>(i));
      all.insert(all.end(), l, l + m.config().vocab_size);
    }
    return all;
  };
  auto want = run(**ref);
  for (const Bound& b : kBounds) {
    std::string path = dir.file(std::string(ggml_type_name(static_cast<uint32_t>(b.type))) + ".gguf");
    auto report = write_synth_model(shape, b.type, 7, path);
    ASSERT_TRUE(report.ok()) << report.status().to_string();
    auto m = Model::load_gguf(path);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    EXPECT_EQ(m->get()->layers()[0].wq.type, b.type);
    auto got = run(**m);
    double e = nmse(got.data(), want.data(), want.size());
    EXPECT_LT(e, b.logit_nmse) << ggml_type_name(static_cast<uint32_t>(b.type));
    std::printf("[ info     ] %-5s logits NMSE vs F32: %.2e (bound %.0e)\n", ggml_type_name(static_cast<uint32_t>(b.type)).c_str(), e,
                b.logit_nmse);
  }
}

TEST(Quantize, SameSeedSameFile) {
  test::TempDir dir;
  auto shape = *find_synth_shape("tiny");
  ASSERT_TRUE(write_synth_model(shape, GgmlType::kQ8_0, 5, dir.file("a.gguf")).ok());
  ASSERT_TRUE(write_synth_model(shape, GgmlType::kQ8_0, 5, dir.file("b.gguf")).ok());
  ASSERT_TRUE(write_synth_model(shape, GgmlType::kQ8_0, 6, dir.file("c.gguf")).ok());
  EXPECT_EQ(test::read_text(dir.file("a.gguf")), test::read_text(dir.file("b.gguf")));
  EXPECT_NE(test::read_text(dir.file("a.gguf")), test::read_text(dir.file("c.gguf")));
  EXPECT_TRUE(find_synth_shape("gpt2-124M").ok());
  EXPECT_EQ(find_synth_shape("llama-3B").status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace llmops::engine

namespace llmops::engine {
namespace {

// Prefill through sgemm must leave the same KV cache and logits as token-by-token decoding.
TEST(Prefill, MatchesTokenByTokenForEveryChunkSize) {
  test::TempDir dir;
  auto shape = *find_synth_shape("tiny");
  const std::vector<int32_t> prompt = {1, 300, 301, 302, 500, 700, 900, 1000, 5, 17, 400};
  for (GgmlType type : {GgmlType::kF32, GgmlType::kQ4_K, GgmlType::kQ8_0}) {
    std::string path = dir.file(std::string(ggml_type_name(static_cast<uint32_t>(type))) + ".gguf");
    ASSERT_TRUE(write_synth_model(shape, type, 11, path).ok());
    auto m = std::move(Model::load_gguf(path)).value();
    const int vocab = m->config().vocab_size;
    Session ref(*m, 32);
    std::vector<float> want;
    for (size_t i = 0; i < prompt.size(); ++i) {
      const float* l = *ref.forward(prompt[i], static_cast<int>(i));
      want.assign(l, l + vocab);
    }
    const float* next_ref = *ref.forward(42, static_cast<int>(prompt.size()));
    std::vector<float> want_next(next_ref, next_ref + vocab);
    // Decoding quantises activations (Q8_0 per 32, or Q8_K per 256 for the K-quants, as
    // llama.cpp does) for these weight types; prefill does the same on AVX-512 (the integer GEMM)
    // and multiplies in fp32 elsewhere, so the bound covers the fp32 case.
    const double tol = !type_uses_q8(type) ? 1e-4 : type == GgmlType::kQ8_0 ? 2e-2 : 4e-2;
    for (int chunk : {1, 3, 64}) {
      Session s(*m, 32);
      auto got = s.prefill(prompt.data(), static_cast<int>(prompt.size()), 0, chunk);
      ASSERT_TRUE(got.ok()) << got.status().to_string();
      double worst = 0, scale = 0;
      for (int i = 0; i < vocab; ++i) scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
      for (int i = 0; i < vocab; ++i) worst = std::max(worst, std::fabs(static_cast<double>((*got)[i]) - want[i]) / scale);
      EXPECT_LT(worst, tol) << ggml_type_name(static_cast<uint32_t>(type)) << " chunk " << chunk;
      const float* next = *s.forward(42, static_cast<int>(prompt.size()));
      double worst_next = 0;
      for (int i = 0; i < vocab; ++i) worst_next = std::max(worst_next, std::fabs(static_cast<double>(next[i]) - want_next[i]) / scale);
      EXPECT_LT(worst_next, tol) << "the KV cache after prefill, " << ggml_type_name(static_cast<uint32_t>(type)) << " chunk " << chunk;
    }
  }
}

TEST(Prefill, RefusesBadInput) {
  test::TempDir dir;
  ASSERT_TRUE(write_synth_model(*find_synth_shape("tiny"), GgmlType::kF32, 1, dir.file("m.gguf")).ok());
  auto m = std::move(Model::load_gguf(dir.file("m.gguf"))).value();
  Session s(*m, 4);
  std::vector<int32_t> five = {1, 2, 3, 4, 5};
  EXPECT_EQ(s.prefill(five.data(), 5, 0).status().code(), Code::kResourceExhausted);
  EXPECT_EQ(s.prefill(five.data(), 0, 0).status().code(), Code::kInvalidArgument);
  std::vector<int32_t> bad = {1, 99999};
  EXPECT_EQ(s.prefill(bad.data(), 2, 0).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace llmops::engine

// The forward pass of every architecture variant against a slow, obvious reference written
// here: the test draws the weights, writes them as a GGUF, and the reference computes from its
// own copy in double precision, whole sequence at a time (no cache), following the published
// definitions (RoPE in both layouts, Llama 3 frequency factors, q/k/v biases, GPT-2's
// LayerNorm + GELU + learned positions). Also: batched forward over several sequences equals
// running them one by one, and bad batches are refused without touching any cache.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "engine_test_util.h"
#include "formats/gguf_writer.h"
#include "kernels/thread_pool.h"
#include "model/model.h"
#include "model/synth.h"
#include "unit/test_util.h"

namespace llmops::engine {
namespace {

struct Spec {
  std::string arch = "llama";  // llama, qwen2, gpt2
  int dim = 64, hidden = 96, layers = 2, heads = 4, kv_heads = 2, vocab = 50, ctx = 64;
  int rope_dims = 0;           // 0: whole head
  bool qkv_bias = false;       // Qwen2
  bool fused_qkv = false;
  bool rope_freqs = false;     // Llama 3 per-pair divisors
  bool tied = false;
  int head_dim() const { return dim / heads; }
};

using Tensors = std::map<std::string, std::vector<float>>;

// Draws the weights, writes them to path as GGUF and returns them.
Tensors write_net(const Spec& s, const std::string& path) {
  std::mt19937_64 rng(42);
  std::normal_distribution<float> dist(0.0f, 0.3f);
  Tensors w;
  GgufWriter g;
  const bool gpt2 = s.arch == "gpt2";
  const std::string k = s.arch + ".";
  g.add_string("general.architecture", s.arch);
  g.add_u32(k + "context_length", static_cast<uint32_t>(s.ctx));
  g.add_u32(k + "embedding_length", static_cast<uint32_t>(s.dim));
  g.add_u32(k + "block_count", static_cast<uint32_t>(s.layers));
  g.add_u32(k + "feed_forward_length", static_cast<uint32_t>(s.hidden));
  g.add_u32(k + "attention.head_count", static_cast<uint32_t>(s.heads));
  if (gpt2) {
    g.add_f32(k + "attention.layer_norm_epsilon", 1e-5f);
  } else {
    g.add_u32(k + "attention.head_count_kv", static_cast<uint32_t>(s.kv_heads));
    g.add_f32(k + "attention.layer_norm_rms_epsilon", 1e-5f);
    g.add_f32(k + "rope.freq_base", 10000.0f);
    if (s.rope_dims != 0) g.add_u32(k + "rope.dimension_count", static_cast<uint32_t>(s.rope_dims));
  }
  auto add = [&](const std::string& name, std::vector<uint64_t> ne, float fixed = NAN) {
    uint64_t n = 1;
    for (auto d : ne) n *= d;
    std::vector<float>& v = w[name];
    v.resize(n);
    for (auto& x : v) x = std::isnan(fixed) ? dist(rng) : fixed + 0.1f * dist(rng);
    const std::vector<float>* data = &v;
    const uint64_t cols = ne[0];
    ASSERT_TRUE(g.add_tensor(name, GgmlType::kF32, ne, [data, cols](uint64_t r, float* out) {
                   std::copy(data->begin() + static_cast<ptrdiff_t>(r * cols), data->begin() + static_cast<ptrdiff_t>((r + 1) * cols), out);
                 }).ok());
  };
  const uint64_t d = static_cast<uint64_t>(s.dim), h = static_cast<uint64_t>(s.hidden);
  const uint64_t kv = static_cast<uint64_t>(s.head_dim() * (gpt2 ? s.heads : s.kv_heads));
  add("token_embd.weight", {d, static_cast<uint64_t>(s.vocab)});
  if (gpt2) add("position_embd.weight", {d, static_cast<uint64_t>(s.ctx)});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {d}, 1.0f);
    if (gpt2) add(p + "attn_norm.bias", {d});
    if (s.fused_qkv) {
      add(p + "attn_qkv.weight", {d, d + 2 * kv});
      if (gpt2 || s.qkv_bias) add(p + "attn_qkv.bias", {d + 2 * kv});
    } else {
      add(p + "attn_q.weight", {d, d});
      add(p + "attn_k.weight", {d, kv});
      add(p + "attn_v.weight", {d, kv});
      if (s.qkv_bias) add(p + "attn_q.bias", {d}), add(p + "attn_k.bias", {kv}), add(p + "attn_v.bias", {kv});
    }
    add(p + "attn_output.weight", {d, d});
    if (gpt2) add(p + "attn_output.bias", {d});
    add(p + "ffn_norm.weight", {d}, 1.0f);
    if (gpt2) add(p + "ffn_norm.bias", {d});
    if (!gpt2) add(p + "ffn_gate.weight", {d, h});
    add(p + "ffn_up.weight", {d, h});
    if (gpt2) add(p + "ffn_up.bias", {h});
    add(p + "ffn_down.weight", {h, d});
    if (gpt2) add(p + "ffn_down.bias", {d});
  }
  add("output_norm.weight", {d}, 1.0f);
  if (gpt2) add("output_norm.bias", {d});
  if (!s.tied) add("output.weight", {d, static_cast<uint64_t>(s.vocab)});
  if (s.rope_freqs) {
    const int rd = s.rope_dims == 0 ? s.head_dim() : s.rope_dims;
    std::vector<float>& f = w["rope_freqs.weight"];
    for (int i = 0; i < rd / 2; ++i) f.push_back(i < rd / 4 ? 1.0f : 8.0f);  // slow the long wavelengths down
    const std::vector<float>* data = &f;
    EXPECT_TRUE(g.add_tensor("rope_freqs.weight", GgmlType::kF32, {f.size()}, [data](uint64_t, float* out) {
                   std::copy(data->begin(), data->end(), out);
                 }).ok());
  }
  EXPECT_TRUE(g.write(path).ok());
  return w;
}

// y = W x (+ b), W rows × cols row-major (rows = output).
std::vector<double> matvec(const std::vector<float>& w, const std::vector<double>& x, size_t rows, size_t row0 = 0,
                           const std::vector<float>* b = nullptr, size_t b0 = 0) {
  const size_t cols = x.size();
  std::vector<double> y(rows);
  for (size_t r = 0; r < rows; ++r) {
    double acc = b != nullptr ? (*b)[b0 + r] : 0.0;
    for (size_t c = 0; c < cols; ++c) acc += static_cast<double>(w[(row0 + r) * cols + c]) * x[c];
    y[r] = acc;
  }
  return y;
}

// Logits at the last position of tokens, computed from scratch.
std::vector<double> reference(const Spec& s, Tensors& w, const std::vector<int32_t>& tokens) {
  const bool gpt2 = s.arch == "gpt2";
  const size_t n = tokens.size(), d = static_cast<size_t>(s.dim), hd = static_cast<size_t>(s.head_dim());
  const size_t kvh = static_cast<size_t>(gpt2 ? s.heads : s.kv_heads), kv = hd * kvh;
  auto norm = [&](const std::vector<double>& x, const std::string& name) {
    const std::vector<float>& g = w[name + ".weight"];
    double mean = 0;
    if (gpt2) {
      for (double v : x) mean += v;
      mean /= static_cast<double>(d);
    }
    double ss = 0;
    for (double v : x) ss += (v - mean) * (v - mean);
    double scale = 1.0 / std::sqrt(ss / static_cast<double>(d) + 1e-5);
    std::vector<double> out(d);
    for (size_t j = 0; j < d; ++j) out[j] = g[j] * (x[j] - mean) * scale + (gpt2 ? w[name + ".bias"][j] : 0.0);
    return out;
  };
  const size_t rd = s.rope_dims == 0 ? hd : static_cast<size_t>(s.rope_dims);
  auto rope = [&](std::vector<double>& v, size_t heads, size_t pos) {
    if (gpt2) return;
    for (size_t h = 0; h < heads; ++h) {
      double* x = v.data() + h * hd;
      std::vector<double> orig(x, x + hd);
      for (size_t i = 0; i < rd / 2; ++i) {
        double freq = std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(rd));
        if (s.rope_freqs) freq /= w["rope_freqs.weight"][i];
        double a = static_cast<double>(pos) * freq;
        // NeoX (rotate_half) pairs i with i + rd/2; the normal layout pairs 2i with 2i + 1.
        size_t i0 = s.arch == "qwen2" ? i : 2 * i, i1 = s.arch == "qwen2" ? i + rd / 2 : 2 * i + 1;
        x[i0] = orig[i0] * std::cos(a) - orig[i1] * std::sin(a);
        x[i1] = orig[i0] * std::sin(a) + orig[i1] * std::cos(a);
      }
    }
  };
  std::vector<std::vector<double>> xs(n, std::vector<double>(d));
  for (size_t t = 0; t < n; ++t) {
    for (size_t j = 0; j < d; ++j) {
      xs[t][j] = w["token_embd.weight"][static_cast<size_t>(tokens[t]) * d + j] + (gpt2 ? w["position_embd.weight"][t * d + j] : 0.0);
    }
  }
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    std::vector<std::vector<double>> q(n), k(n), v(n);
    for (size_t t = 0; t < n; ++t) {
      auto x = norm(xs[t], p + "attn_norm");
      if (s.fused_qkv) {
        const std::vector<float>& W = w[p + "attn_qkv.weight"];
        const std::vector<float>* b = w.count(p + "attn_qkv.bias") ? &w[p + "attn_qkv.bias"] : nullptr;
        q[t] = matvec(W, x, d, 0, b, 0), k[t] = matvec(W, x, kv, d, b, d), v[t] = matvec(W, x, kv, d + kv, b, d + kv);
      } else {
        auto bias = [&](const char* name) { return s.qkv_bias ? &w[p + name] : nullptr; };
        q[t] = matvec(w[p + "attn_q.weight"], x, d, 0, bias("attn_q.bias"));
        k[t] = matvec(w[p + "attn_k.weight"], x, kv, 0, bias("attn_k.bias"));
        v[t] = matvec(w[p + "attn_v.weight"], x, kv, 0, bias("attn_v.bias"));
      }
      rope(q[t], static_cast<size_t>(s.heads), t);
      rope(k[t], kvh, t);
    }
    for (size_t t = 0; t < n; ++t) {
      std::vector<double> att(d, 0.0);
      for (size_t h = 0; h < static_cast<size_t>(s.heads); ++h) {
        size_t g = h / (static_cast<size_t>(s.heads) / kvh);
        std::vector<double> sc(t + 1);
        double mx = -1e300;
        for (size_t u = 0; u <= t; ++u) {
          double dot = 0;
          for (size_t i = 0; i < hd; ++i) dot += q[t][h * hd + i] * k[u][g * hd + i];
          sc[u] = dot / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, sc[u]);
        }
        double sum = 0;
        for (auto& e : sc) sum += (e = std::exp(e - mx));
        for (size_t u = 0; u <= t; ++u) {
          for (size_t i = 0; i < hd; ++i) att[h * hd + i] += sc[u] / sum * v[u][g * hd + i];
        }
      }
      auto o = matvec(w[p + "attn_output.weight"], att, d, 0, gpt2 ? &w[p + "attn_output.bias"] : nullptr);
      for (size_t j = 0; j < d; ++j) xs[t][j] += o[j];
    }
    for (size_t t = 0; t < n; ++t) {
      auto x = norm(xs[t], p + "ffn_norm");
      const size_t hid = static_cast<size_t>(s.hidden);
      auto up = matvec(w[p + "ffn_up.weight"], x, hid, 0, gpt2 ? &w[p + "ffn_up.bias"] : nullptr);
      if (gpt2) {
        for (auto& u : up) u = 0.5 * u * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u)));
      } else {
        auto gate = matvec(w[p + "ffn_gate.weight"], x, hid);
        for (size_t j = 0; j < hid; ++j) up[j] *= gate[j] / (1.0 + std::exp(-gate[j]));
      }
      auto down = matvec(w[p + "ffn_down.weight"], up, d, 0, gpt2 ? &w[p + "ffn_down.bias"] : nullptr);
      for (size_t j = 0; j < d; ++j) xs[t][j] += down[j];
    }
  }
  auto x = norm(xs[n - 1], "output_norm");
  return matvec(s.tied ? w["token_embd.weight"] : w["output.weight"], x, static_cast<size_t>(s.vocab));
}

double max_rel_error(const float* got, const std::vector<double>& want) {
  double scale = 0, err = 0;
  for (size_t i = 0; i < want.size(); ++i) scale = std::max(scale, std::fabs(want[i]));
  for (size_t i = 0; i < want.size(); ++i) err = std::max(err, std::fabs(got[i] - want[i]));
  return err / scale;
}

class Variants : public ::testing::TestWithParam<Spec> {};

TEST_P(Variants, ForwardAndPrefillMatchTheReference) {
  const Spec s = GetParam();
  llmops::test::TempDir dir;
  Tensors w = write_net(s, dir.file("m.gguf"));
  auto m = Model::load(dir.file("m.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  std::vector<int32_t> tokens = {3, 17, 42, 8, 8, 1, 49, 20, 11};
  // One token at a time.
  Session one(**m, 32);
  for (size_t t = 0; t < tokens.size(); ++t) {
    auto logits = one.forward(tokens[t], static_cast<int>(t));
    ASSERT_TRUE(logits.ok()) << logits.status().to_string();
    std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + static_cast<ptrdiff_t>(t + 1));
    EXPECT_LT(max_rel_error(*logits, reference(s, w, prefix)), 1e-4) << "position " << t;
  }
  // Chunked prefill (chunks of 4, so a sequence spans chunks) with a pool.
  ThreadPool pool(2);
  Session pre(**m, 32, &pool);
  auto logits = pre.prefill(tokens.data(), static_cast<int>(tokens.size()), 0, 4);
  ASSERT_TRUE(logits.ok()) << logits.status().to_string();
  EXPECT_LT(max_rel_error(*logits, reference(s, w, tokens)), 1e-4);
}

Spec llama() { return Spec{}; }
Spec qwen2() {
  Spec s;
  s.arch = "qwen2", s.qkv_bias = true;
  return s;
}
Spec llama3() {
  Spec s;
  s.rope_freqs = true, s.tied = true;
  return s;
}
Spec partial_rope_fused() {
  Spec s;
  s.arch = "qwen2", s.rope_dims = 8, s.fused_qkv = true, s.qkv_bias = true;
  return s;
}
Spec gpt2() {
  Spec s;
  s.arch = "gpt2", s.kv_heads = 4, s.fused_qkv = true, s.tied = true;
  return s;
}

std::string variant_name(const ::testing::TestParamInfo<Spec>& info) {
  static const char* const kNames[] = {"llama_gqa", "qwen2_bias_neox", "llama3_rope_freqs_tied", "partial_rope_fused_qkv", "gpt2"};
  return kNames[info.index];
}

INSTANTIATE_TEST_SUITE_P(Model, Variants, ::testing::Values(llama(), qwen2(), llama3(), partial_rope_fused(), gpt2()), variant_name);

TEST(Batch, SeveralSequencesAtDifferentPositionsEqualOneByOne) {
  llmops::test::TempDir dir;
  for (const Spec& s : {qwen2(), gpt2()}) {
    write_net(s, dir.file(s.arch + ".gguf"));
    auto m = std::move(Model::load(dir.file(s.arch + ".gguf"))).value();
    const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 4, 5}, {7, 7}, {9, 30, 31, 40, 12, 5, 6}};
    // Reference: each sequence alone, token by token.
    std::vector<std::vector<float>> want;
    for (const auto& p : prompts) {
      Session s1(*m, 16);
      const float* l = nullptr;
      for (size_t t = 0; t < p.size(); ++t) l = *s1.forward(p[t], static_cast<int>(t));
      want.emplace_back(l, l + m->config().vocab_size);
    }
    // Batched: the first two tokens of sequence 0 and 2 go in one batch (prefill, no logits),
    // then one batch mixes the rest of every sequence.
    ThreadPool pool(2);
    Runner runner(*m, &pool);
    std::vector<std::unique_ptr<Session>> sessions;
    for (size_t i = 0; i < prompts.size(); ++i) sessions.push_back(std::make_unique<Session>(*m, 16, &pool));
    std::vector<BatchToken> first = {{sessions[0].get(), prompts[0][0], 0, false}, {sessions[2].get(), prompts[2][0], 0, false},
                                     {sessions[0].get(), prompts[0][1], 1, false}, {sessions[2].get(), prompts[2][1], 1, false}};
    ASSERT_TRUE(runner.run(first.data(), first.size()).ok());
    EXPECT_EQ(sessions[0]->length(), 2);
    EXPECT_EQ(sessions[1]->length(), 0);
    std::vector<BatchToken> rest;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const size_t start = i == 1 ? 0 : 2;
      for (size_t t = start; t < prompts[i].size(); ++t) {
        rest.push_back({sessions[i].get(), prompts[i][t], static_cast<int>(t), t + 1 == prompts[i].size()});
      }
    }
    auto logits = runner.run(rest.data(), rest.size());
    ASSERT_TRUE(logits.ok()) << logits.status().to_string();
    for (size_t i = 0; i < prompts.size(); ++i) {
      const float* got = *logits + i * static_cast<size_t>(m->config().vocab_size);
      std::vector<double> wd(want[i].begin(), want[i].end());
      EXPECT_LT(max_rel_error(got, wd), 1e-4) << s.arch << " sequence " << i;
    }
  }
}

TEST(Batch, BadBatchesAreRefusedAndChangeNothing) {
  llmops::test::TempDir dir;
  write_net(llama(), dir.file("m.gguf"));
  auto m = std::move(Model::load(dir.file("m.gguf"))).value();
  Session a(*m, 8), b(*m, 8);
  Runner r(*m);
  BatchToken ok{&a, 1, 0, true};
  ASSERT_TRUE(r.run(&ok, 1).ok());
  auto refused = [&](std::vector<BatchToken> batch, Code code, const char* what) {
    auto res = r.run(batch.data(), batch.size());
    EXPECT_EQ(res.status().code(), code) << what << ": " << res.status().to_string();
    EXPECT_EQ(a.length(), 1) << what;
    EXPECT_EQ(b.length(), 0) << what;
  };
  refused({}, Code::kInvalidArgument, "empty");
  refused({{&a, 50, 1, true}}, Code::kInvalidArgument, "token id = vocab size");
  refused({{&a, -1, 1, true}}, Code::kInvalidArgument, "negative token id");
  refused({{&b, 1, 8, true}}, Code::kResourceExhausted, "position past the cache");
  refused({{&b, 1, 1, true}}, Code::kInvalidArgument, "position skips the empty cache");
  refused({{&a, 1, 1, false}, {&a, 1, 3, true}}, Code::kInvalidArgument, "non-consecutive positions");
  refused({{nullptr, 1, 0, true}}, Code::kInvalidArgument, "no session");
  write_net(gpt2(), dir.file("g.gguf"));
  auto other = std::move(Model::load(dir.file("g.gguf"))).value();
  Session foreign(*other, 8);
  refused({{&foreign, 1, 0, true}}, Code::kInvalidArgument, "session of another model");
  // Rewinding to an earlier position is allowed (regeneration).
  BatchToken again{&a, 2, 0, true};
  EXPECT_TRUE(r.run(&again, 1).ok());
}

TEST(Model, Gpt2SynthShapeLoadsAndRuns) {
  llmops::test::TempDir dir;
  auto shape = *find_synth_shape("gpt2-tiny");
  ASSERT_TRUE(write_synth_model(shape, GgmlType::kQ8_0, 1, dir.file("g.gguf")).ok());
  auto m = Model::load(dir.file("g.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ((*m)->config().arch, Arch::kGpt2);
  EXPECT_EQ((*m)->classifier().data, (*m)->token_embedding().data);
  Session s(**m, 8);
  auto l = s.forward(5, 0);
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(std::isfinite((*l)[0]));
  // GPT-2's learned positions end at its context: a session longer than that is refused at
  // the position that has no embedding.
  Session longer(**m, shape.config.seq_len + 4);
  std::vector<int32_t> toks(static_cast<size_t>(shape.config.seq_len) + 1, 5);
  EXPECT_EQ(longer.prefill(toks.data(), static_cast<int>(toks.size()), 0).status().code(), Code::kResourceExhausted);
}

TEST(Model, UnsupportedArchitectureAndMissingTensorsAreNamed) {
  llmops::test::TempDir dir;
  GgufWriter g;
  g.add_string("general.architecture", "mamba");
  ASSERT_TRUE(g.write(dir.file("a.gguf")).ok());
  auto m = Model::load(dir.file("a.gguf"));
  EXPECT_EQ(m.status().code(), Code::kUnimplemented);
  EXPECT_NE(m.status().message().find("mamba"), std::string::npos);

  Spec s;
  Tensors w = write_net(s, dir.file("full.gguf"));
  GgufWriter partial;
  partial.add_string("general.architecture", "llama");
  for (auto [key, v] : {std::pair<const char*, uint32_t>{"llama.context_length", 64}, {"llama.embedding_length", 64},
                        {"llama.block_count", 1}, {"llama.feed_forward_length", 96}, {"llama.attention.head_count", 4}}) {
    partial.add_u32(key, v);
  }
  const std::vector<float>* emb = &w["token_embd.weight"];
  ASSERT_TRUE(partial.add_tensor("token_embd.weight", GgmlType::kF32, {64, 50}, [emb](uint64_t r, float* out) {
                       std::copy(emb->begin() + static_cast<ptrdiff_t>(r * 64), emb->begin() + static_cast<ptrdiff_t>(r * 64 + 64), out);
                     }).ok());
  ASSERT_TRUE(partial.write(dir.file("p.gguf")).ok());
  m = Model::load(dir.file("p.gguf"));
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
  EXPECT_NE(m.status().message().find("output_norm.weight"), std::string::npos) << m.status().to_string();
}

}  // namespace
}  // namespace llmops::engine

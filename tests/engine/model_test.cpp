// The forward pass of every architecture variant against a slow, obvious reference written
// here: the test draws the weights, writes them as a GGUF, and the reference computes from its
// own copy in double precision, whole sequence at a time (no cache), following the published
// definitions (RoPE in both layouts, Llama 3 frequency factors, q/k/v biases, GPT-2's
// LayerNorm + GELU + learned positions). Also: batched forward over several sequences equals
// running them one by one, and bad batches are refused without touching any cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <map>
#include <random>

#include "engine_test_util.h"
#include "formats/gguf_writer.h"
#include "formats/safetensors.h"
#include "json.h"
#include "kernels/thread_pool.h"
#include "model/export.h"
#include "model/model.h"
#include "model/synth.h"
#include "tokenizer/tokenizer.h"
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
  bool hf = false;             // loaded from a Hugging Face directory (RoPE in the rotate-half layout)
  bool llama3_scaling = false;  // Hugging Face rope_scaling {rope_type: llama3}, original context 64
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
        if (s.llama3_scaling) {
          // Hugging Face's definition: factor 8, low 1, high 4, original context 64.
          const double wavelen = 2 * M_PI / freq, low_wavelen = 64.0 / 1.0, high_wavelen = 64.0 / 4.0;
          if (wavelen > low_wavelen) {
            freq /= 8.0;
          } else if (wavelen >= high_wavelen) {
            const double smooth = (64.0 / wavelen - 1.0) / (4.0 - 1.0);
            freq = (1 - smooth) * freq / 8.0 + smooth * freq;
          }
        }
        double a = static_cast<double>(pos) * freq;
        // NeoX (rotate_half) pairs i with i + rd/2; the normal layout pairs 2i with 2i + 1.
        const bool neox = s.arch == "qwen2" || s.hf;
        size_t i0 = neox ? i : 2 * i, i1 = neox ? i + rd / 2 : 2 * i + 1;
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

// Hidden-state output (embeddings): the classifier applied to it gives the logits.
TEST(Batch, HiddenOutputIsWhatTheClassifierReads) {
  llmops::test::TempDir dir;
  write_net(llama(), dir.file("m.gguf"));
  auto m = std::move(Model::load(dir.file("m.gguf"))).value();
  const std::vector<int32_t> tokens = {3, 17, 42};
  Session a(*m, 8), b(*m, 8);
  Runner r(*m);
  std::vector<BatchToken> ba, bb;
  for (size_t i = 0; i < tokens.size(); ++i) ba.push_back({&a, tokens[i], static_cast<int>(i), i + 1 == tokens.size()});
  for (size_t i = 0; i < tokens.size(); ++i) bb.push_back({&b, tokens[i], static_cast<int>(i), i + 1 == tokens.size()});
  auto logits = r.run(ba.data(), ba.size());
  ASSERT_TRUE(logits.ok());
  std::vector<float> want(*logits, *logits + m->config().vocab_size);
  auto hidden = r.run(bb.data(), bb.size(), Runner::Output::kHidden);
  ASSERT_TRUE(hidden.ok());
  const WeightView& cls = m->classifier();
  std::vector<float> row(static_cast<size_t>(m->config().dim));
  for (int v = 0; v < m->config().vocab_size; ++v) {
    dequantize_row(cls.type, cls.row(static_cast<uint64_t>(v)), row.data(), row.size());
    double dot = 0;
    for (size_t j = 0; j < row.size(); ++j) dot += static_cast<double>(row[j]) * (*hidden)[j];
    EXPECT_NEAR(dot, want[static_cast<size_t>(v)], 1e-3 * (1 + std::fabs(want[static_cast<size_t>(v)]))) << "token " << v;
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

// Tensors encoded side by side (llmops-synth's writer) give the file one thread writes, byte for
// byte: each tensor's rows are still produced in order, and tensors land in their order.
TEST(GgufWriter, ThreadsChangeNothingInTheFile) {
  llmops::test::TempDir dir;
  auto write = [&](int threads, const std::string& path) {
    GgufWriter g;
    g.set_threads(threads);
    g.add_string("general.architecture", "llama");
    for (int i = 0; i < 9; ++i) {
      const uint64_t cols = 256, rows = 40 + static_cast<uint64_t>(i) * 17;
      const GgmlType type = i % 3 == 0 ? GgmlType::kQ4_K : i % 3 == 1 ? GgmlType::kQ8_0 : GgmlType::kF16;
      auto step = std::make_shared<uint64_t>(0);  // state of its own, as synth's generators
      EXPECT_TRUE(g.add_tensor("t" + std::to_string(i), type, {cols, rows}, [step, i, cols](uint64_t, float* out) {
                     for (uint64_t k = 0; k < cols; ++k) out[k] = std::sin(static_cast<float>((*step)++ * (i + 1)) * 0.37f);
                   }).ok());
    }
    EXPECT_TRUE(g.write(path).ok());
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string one = write(1, dir.file("one.gguf"));
  ASSERT_GT(one.size(), 100000u);
  EXPECT_EQ(write(4, dir.file("four.gguf")), one);
  EXPECT_EQ(write(2, dir.file("two.gguf")), one);
}

// Writes the same weights as a Hugging Face directory: config.json + model.safetensors with
// Hugging Face's names; GPT-2's matrices as Conv1D ([in, out]) and q/k/v fused, as GPT-2 does.
void write_hf(const Spec& s, Tensors& w, const std::string& dir, SafetensorsDtype dtype) {
  const bool gpt2 = s.arch == "gpt2";
  Json cfg;
  if (gpt2) {
    cfg = {{"model_type", "gpt2"}, {"n_embd", s.dim}, {"n_layer", s.layers}, {"n_head", s.heads}, {"n_inner", s.hidden},
           {"n_positions", s.ctx}, {"vocab_size", s.vocab}, {"layer_norm_epsilon", 1e-5}};
  } else {
    cfg = {{"model_type", s.arch}, {"hidden_size", s.dim}, {"intermediate_size", s.hidden}, {"num_hidden_layers", s.layers},
           {"num_attention_heads", s.heads}, {"num_key_value_heads", s.kv_heads}, {"max_position_embeddings", s.ctx},
           {"vocab_size", s.vocab}, {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"tie_word_embeddings", s.tied}};
    if (s.llama3_scaling) {
      cfg["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                             {"original_max_position_embeddings", 64}};
    }
  }
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << cfg.dump();
  std::deque<std::vector<uint8_t>> store;
  std::vector<SafetensorsTensorSource> out;
  // Stores v (rows × cols, row-major) in dtype; transposed when conv1d.
  auto put = [&](const std::string& name, const std::vector<float>& v, std::vector<uint64_t> shape, bool conv1d = false) {
    std::vector<float> src = v;
    if (conv1d) {
      const uint64_t rows = shape[0], cols = shape[1];  // shape as stored: [in, out]; v is [out, in]
      for (uint64_t i = 0; i < rows; ++i) {
        for (uint64_t o = 0; o < cols; ++o) src[i * cols + o] = v[o * rows + i];
      }
    }
    std::vector<uint8_t> bytes;
    if (dtype == SafetensorsDtype::kF32) {
      bytes.resize(src.size() * 4);
      std::memcpy(bytes.data(), src.data(), bytes.size());
    } else {
      for (float f : src) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        uint16_t b = static_cast<uint16_t>(u >> 16);  // bf16 by truncation; the reference reads it back the same way
        bytes.push_back(static_cast<uint8_t>(b & 0xff)), bytes.push_back(static_cast<uint8_t>(b >> 8));
      }
    }
    store.push_back(std::move(bytes));
    out.push_back({name, dtype, shape, store.back().data()});
  };
  const uint64_t d = static_cast<uint64_t>(s.dim), h = static_cast<uint64_t>(s.hidden), v = static_cast<uint64_t>(s.vocab);
  const uint64_t kv = static_cast<uint64_t>(s.head_dim() * (gpt2 ? s.heads : s.kv_heads));
  if (gpt2) {
    put("wte.weight", w["token_embd.weight"], {v, d});
    put("wpe.weight", w["position_embd.weight"], {static_cast<uint64_t>(s.ctx), d});
    put("ln_f.weight", w["output_norm.weight"], {d});
    put("ln_f.bias", w["output_norm.bias"], {d});
  } else {
    put("model.embed_tokens.weight", w["token_embd.weight"], {v, d});
    put("model.norm.weight", w["output_norm.weight"], {d});
    if (!s.tied) put("lm_head.weight", w["output.weight"], {v, d});
  }
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    if (gpt2) {
      const std::string q = "h." + std::to_string(l) + ".";
      put(q + "ln_1.weight", w[p + "attn_norm.weight"], {d});
      put(q + "ln_1.bias", w[p + "attn_norm.bias"], {d});
      put(q + "attn.c_attn.weight", w[p + "attn_qkv.weight"], {d, d + 2 * kv}, true);
      put(q + "attn.c_attn.bias", w[p + "attn_qkv.bias"], {d + 2 * kv});
      put(q + "attn.c_proj.weight", w[p + "attn_output.weight"], {d, d}, true);
      put(q + "attn.c_proj.bias", w[p + "attn_output.bias"], {d});
      put(q + "ln_2.weight", w[p + "ffn_norm.weight"], {d});
      put(q + "ln_2.bias", w[p + "ffn_norm.bias"], {d});
      put(q + "mlp.c_fc.weight", w[p + "ffn_up.weight"], {d, h}, true);
      put(q + "mlp.c_fc.bias", w[p + "ffn_up.bias"], {h});
      put(q + "mlp.c_proj.weight", w[p + "ffn_down.weight"], {h, d}, true);
      put(q + "mlp.c_proj.bias", w[p + "ffn_down.bias"], {d});
      continue;
    }
    const std::string q = "model.layers." + std::to_string(l) + ".";
    put(q + "input_layernorm.weight", w[p + "attn_norm.weight"], {d});
    put(q + "self_attn.q_proj.weight", w[p + "attn_q.weight"], {d, d});
    put(q + "self_attn.k_proj.weight", w[p + "attn_k.weight"], {kv, d});
    put(q + "self_attn.v_proj.weight", w[p + "attn_v.weight"], {kv, d});
    if (s.qkv_bias) {
      put(q + "self_attn.q_proj.bias", w[p + "attn_q.bias"], {d});
      put(q + "self_attn.k_proj.bias", w[p + "attn_k.bias"], {kv});
      put(q + "self_attn.v_proj.bias", w[p + "attn_v.bias"], {kv});
    }
    put(q + "self_attn.o_proj.weight", w[p + "attn_output.weight"], {d, d});
    put(q + "post_attention_layernorm.weight", w[p + "ffn_norm.weight"], {d});
    put(q + "mlp.gate_proj.weight", w[p + "ffn_gate.weight"], {h, d});
    put(q + "mlp.up_proj.weight", w[p + "ffn_up.weight"], {h, d});
    put(q + "mlp.down_proj.weight", w[p + "ffn_down.weight"], {d, h});
  }
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", out).ok());
  if (dtype == SafetensorsDtype::kBF16) {
    // The reference sees what the file holds.
    for (auto& [name, values] : w) {
      for (float& f : values) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        u &= 0xffff0000u;
        std::memcpy(&f, &u, 4);
      }
    }
  }
}

class HfVariants : public ::testing::TestWithParam<Spec> {};

TEST_P(HfVariants, SafetensorsDirectoryMatchesTheReference) {
  Spec s = GetParam();
  s.hf = true;
  llmops::test::TempDir dir;
  for (SafetensorsDtype dtype : {SafetensorsDtype::kF32, SafetensorsDtype::kBF16}) {
    Tensors w = write_net(s, dir.file("unused.gguf"));
    const std::string hf = dir.file(std::string("hf-") + safetensors_dtype_name(dtype));
    write_hf(s, w, hf, dtype);
    auto m = Model::load(hf);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    EXPECT_EQ((*m)->hf_dir(), hf);
    std::vector<int32_t> tokens = {3, 17, 42, 8, 8, 1, 49};
    Session session(**m, 16);
    auto logits = session.prefill(tokens.data(), static_cast<int>(tokens.size()), 0);
    ASSERT_TRUE(logits.ok()) << logits.status().to_string();
    EXPECT_LT(max_rel_error(*logits, reference(s, w, tokens)), 1e-4) << safetensors_dtype_name(dtype);
  }
}

Spec hf_llama3() {
  Spec s;
  s.llama3_scaling = true;
  return s;
}

std::string hf_variant_name(const ::testing::TestParamInfo<Spec>& info) {
  static const char* const kNames[] = {"llama_gqa", "llama3_scaling_tied", "qwen2_bias", "gpt2_conv1d"};
  return kNames[info.index];
}

Spec tied(Spec s) {
  s.tied = true;
  return s;
}

INSTANTIATE_TEST_SUITE_P(Model, HfVariants, ::testing::Values(llama(), tied(hf_llama3()), qwen2(), gpt2()), hf_variant_name);

TEST(HfModel, BadConfigsAreNamed) {
  llmops::test::TempDir dir;
  Spec s;
  Tensors w = write_net(s, dir.file("unused.gguf"));
  write_hf(s, w, dir.file("hf"), SafetensorsDtype::kF32);
  auto load_with = [&](const std::string& config) {
    std::ofstream(dir.file("hf/config.json")) << config;
    return Model::load_hf(dir.file("hf"));
  };
  auto r = load_with(R"({"model_type": "mamba"})");
  EXPECT_EQ(r.status().code(), Code::kUnimplemented);
  EXPECT_NE(r.status().message().find("mamba"), std::string::npos);
  r = load_with(R"({"model_type": "llama", "hidden_size": 64})");
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("intermediate_size"), std::string::npos) << r.status().to_string();
  r = load_with(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 51})");
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("embed_tokens"), std::string::npos) << r.status().to_string();
  r = load_with(R"({"model_type": "llama", "hidden_size": -4})");
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  r = load_with("{not json");
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& tokens) {
  Session s(m, 16);
  const float* l = *s.prefill(tokens.data(), static_cast<int>(tokens.size()), 0);
  return std::vector<float>(l, l + m.config().vocab_size);
}

double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<double> bd(b.begin(), b.end());
  return max_rel_error(a.data(), bd);
}

// Every source (GGUF in both RoPE layouts, GPT-2, a Hugging Face directory) exported to GGUF
// and to a Hugging Face directory loads back with the same logits; q/k rows are re-ordered
// between RoPE layouts on the way.
TEST(Export, RoundTripsKeepTheLogits) {
  llmops::test::TempDir dir;
  const std::vector<int32_t> tokens = {3, 17, 42, 8, 1, 49};
  Spec hf_spec = llama();
  hf_spec.hf = true;
  struct Case {
    std::string name;
    Spec spec;
    bool from_hf;
  };
  for (const Case& c : {Case{"llama", llama(), false}, Case{"qwen2", qwen2(), false}, Case{"gpt2", gpt2(), false},
                        Case{"llama3", llama3(), false}, Case{"hf-llama", hf_spec, true}, Case{"hf-gpt2", gpt2(), true}}) {
    Tensors w = write_net(c.spec, dir.file(c.name + ".gguf"));
    std::string src = dir.file(c.name + ".gguf");
    if (c.from_hf) {
      src = dir.file(c.name + "-src");
      write_hf(c.spec, w, src, SafetensorsDtype::kF32);
    }
    auto m = std::move(Model::load(src)).value();
    const auto want = logits_of(*m, tokens);
    auto r1 = export_gguf(*m, GgmlType::kF32, dir.file(c.name + "-out.gguf"));
    ASSERT_TRUE(r1.ok()) << c.name << ": " << r1.status().to_string();
    auto g = Model::load(dir.file(c.name + "-out.gguf"));
    ASSERT_TRUE(g.ok()) << c.name << ": " << g.status().to_string();
    EXPECT_LT(rel_diff(logits_of(**g, tokens), want), 1e-5) << c.name << " → GGUF";
    auto r2 = export_hf(*m, SafetensorsDtype::kF32, dir.file(c.name + "-hf"));
    if (c.spec.rope_freqs) {
      // Per-frequency factors from a GGUF rope_freqs tensor have no config.json form.
      EXPECT_EQ(r2.status().code(), Code::kUnimplemented) << r2.status().to_string();
      continue;
    }
    ASSERT_TRUE(r2.ok()) << c.name << ": " << r2.status().to_string();
    auto h = Model::load(dir.file(c.name + "-hf"));
    ASSERT_TRUE(h.ok()) << c.name << ": " << h.status().to_string();
    EXPECT_LT(rel_diff(logits_of(**h, tokens), want), 1e-5) << c.name << " → Hugging Face";
    // And back: the Hugging Face export converted to GGUF again.
    ASSERT_TRUE(export_gguf(**h, GgmlType::kF32, dir.file(c.name + "-again.gguf")).ok());
    EXPECT_LT(rel_diff(logits_of(*std::move(Model::load(dir.file(c.name + "-again.gguf"))).value(), tokens), want), 1e-5)
        << c.name << " → Hugging Face → GGUF";
  }
}

// stories260K's llama2.c checkpoint and tok512.bin converted to one GGUF: the file carries the
// tokenizer, and greedy decoding reproduces the reference.
TEST(Export, Llama2cWithItsTokenizerBecomesAWholeGguf) {
  LLMOPS_REQUIRE_SHARED("models/stories260K/stories260K.bin");
  llmops::test::TempDir dir;
  auto m = std::move(Model::load(test::shared_path("models/stories260K/stories260K.bin"))).value();
  auto tok = Tokenizer::from_llama2c(test::shared_path("models/stories260K/tok512.bin"), m->config().vocab_size);
  ASSERT_TRUE(tok.ok());
  auto r = export_gguf(*m, GgmlType::kF32, dir.file("s.gguf"), &*tok);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->notes.empty());
  auto g = std::move(Model::load(dir.file("s.gguf"))).value();
  auto gtok = Tokenizer::from_gguf(*g->gguf());
  ASSERT_TRUE(gtok.ok()) << gtok.status().to_string();
  EXPECT_EQ(gtok->encode("Once upon a time"), tok->encode("Once upon a time"));
  std::vector<int32_t> ids = {1};
  for (int32_t id : gtok->encode("Once upon a time")) ids.push_back(id);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_LT(rel_diff(logits_of(*g, ids), logits_of(*m, ids)), 1e-6);
  EXPECT_EQ(gtok->decode({403, 407, 261, 378}), "Once upon a time");
}

TEST(Export, QuantizedGgufStaysClose) {
  llmops::test::TempDir dir;
  // A realistic weight scale (the synthetic tiny shape, N(0, 0.02)) in F32, converted.
  ASSERT_TRUE(write_synth_model(*find_synth_shape("tiny"), GgmlType::kF32, 3, dir.file("m.gguf")).ok());
  auto m = std::move(Model::load(dir.file("m.gguf"))).value();
  const std::vector<int32_t> tokens = {3, 17, 42, 8, 1, 49};
  const auto want = logits_of(*m, tokens);
  // Normalised mean squared error of the logits, with the bounds of the quantizer tests.
  auto nmse = [](const std::vector<float>& got, const std::vector<float>& ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) num += (got[i] - ref[i]) * (got[i] - ref[i]), den += ref[i] * ref[i];
    return num / den;
  };
  for (auto [type, bound] : {std::pair{GgmlType::kF16, 1e-5}, {GgmlType::kQ8_0, 1e-3}, {GgmlType::kQ6_K, 3e-3}, {GgmlType::kQ4_K, 6e-2},
                             {GgmlType::kQ4_0, 6e-2}}) {
    const std::string name = ggml_type_name(static_cast<uint32_t>(type));
    auto r = export_gguf(*m, type, dir.file(name + ".gguf"));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    auto q = std::move(Model::load(dir.file(name + ".gguf"))).value();
    EXPECT_EQ(q->layers()[0].wq.type, type) << name;
    const double err = nmse(logits_of(*q, tokens), want);
    EXPECT_LT(err, bound) << name;
    std::printf("[ info     ] export %-5s logits NMSE vs F32 %.2e (bound %.0e)\n", name.c_str(), err, bound);
  }
}

}  // namespace
}  // namespace llmops::engine

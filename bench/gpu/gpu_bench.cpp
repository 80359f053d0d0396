// GPU decode and prefill speed on real model shapes with pseudo-random weights made on the
// device, against the HBM roofline: the device's measured copy bandwidth (bytes read + written
// by a large device-to-device copy) over the weight bytes one decode step reads. Greedy decode
// through GpuRunner::run_greedy, so each step includes sampling on the GPU and the ids' trip to
// the host, as serving pays it. Medians of --reps repetitions.
//
//   bench_gpu [--shapes tinyllama-1.1B,llama-8B] [--types Q4_K,F16] [--batches 1,32]
//             [--context 128] [--steps 64] [--reps 5] [--prefill 512] [--profile 1] [--gguf DIR]
// --gguf DIR: each model from DIR/SHAPE-TYPE.gguf (as llmops-synth writes it; the file
// llama_cuda_bench decodes in the same run) instead of weights made on the device.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "formats/ggml_types.h"
#include "formats/quantize.h"
#include "bench_util.h"
#include "gpu/gpu_model.h"
#include "model/model.h"
#include "model/synth.h"

using namespace llmops;
using namespace llmops::engine;

namespace {

using bench::median;
using bench::split;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Device time of one queued operation (median of 20 after 3 warm-ups), in microseconds.
template <typename Op>
double time_us(GpuDevice& dev, Op op) {
  const llmops_driver_api& api = dev.api();
  std::vector<double> us;
  for (int r = 0; r < 23; ++r) {
    api.mark(dev.handle(), 0);
    op();
    api.mark(dev.handle(), 1);
    float ms = 0;
    api.elapsed_ms(dev.handle(), &ms);
    if (r >= 3) us.push_back(ms * 1e3);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

// Where a decode step's time goes: the largest matrices of layer 0 alone (weight bytes over
// device time, against the copy bandwidth) and attention over a context.
void profile_kernels(GpuDevice& dev, const GpuModel& m, double bandwidth) {
  const llmops_driver_api& api = dev.api();
  llmops_drv* h = dev.handle();
  const ModelConfig& c = m.config();
  const GpuLayer& L = m.layers()[0];
  const uint64_t widest = static_cast<uint64_t>(std::max(c.dim, c.hidden_dim));
  const uint64_t outs = std::max<uint64_t>(widest, static_cast<uint64_t>(c.vocab_size));
  auto x = DeviceBuffer::alloc(dev, 32 * widest * 4), y = DeviceBuffer::alloc(dev, 32 * outs * 4);
  if (!x.ok() || !y.ok()) return;
  api.fill_random(h, LLMOPS_DT_F32, x->get(), 32, widest, 5, 1.0f);
  for (const auto& [name, w] : {std::pair<const char*, const GpuWeight*>{"ffn_up", &L.w_up}, {"ffn_down", &L.w_down}, {"output", &m.classifier()}}) {
    const double bytes = static_cast<double>(*ggml_row_bytes(static_cast<GgmlType>(w->type), w->cols) * w->rows);
    for (int t : {1, 16, 32}) {
      const double us = time_us(dev, [&] { api.matmul(h, w->type, w->data, w->rows, w->cols, x->as<float>(), t, y->as<float>(), nullptr); });
      std::printf("  kernel matmul %-8s %6llux%-6llu t=%-2d %8.1f us  %6.0f GB/s of weights (%4.1f%% of copy)\n", name,
                  static_cast<unsigned long long>(w->rows), static_cast<unsigned long long>(w->cols), t, us, bytes / us / 1e3,
                  100.0 * bytes / (us * 1e-6) / bandwidth);
    }
  }
  for (int ctx : {512, 4096}) {
    auto q = DeviceBuffer::alloc(dev, 32ull * c.q_dim() * 4), o = DeviceBuffer::alloc(dev, 32ull * c.q_dim() * 4);
    auto refs = DeviceBuffer::alloc(dev, 32 * sizeof(llmops_drv_kv_ref));
    if (!q.ok() || !o.ok() || !refs.ok()) return;
    for (int t : {1, 32}) {
      // t tokens at the last position of one cache: the bytes t sequences of this context read.
      std::vector<llmops_drv_kv_ref> host(32, llmops_drv_kv_ref{nullptr, nullptr, ctx - 1, ctx});
      auto kv = DeviceBuffer::alloc(dev, 2ull * c.n_layers * c.kv_dim() * ctx * 4);
      if (!kv.ok()) return;
      api.fill_random(h, LLMOPS_DT_F32, kv->get(), 2ull * c.n_layers * c.kv_dim(), ctx, 6, 1.0f);
      for (auto& r : host) r.k = kv->as<float>(), r.v = kv->as<float>() + static_cast<uint64_t>(c.n_layers) * c.kv_dim() * ctx;
      api.upload(h, refs->get(), host.data(), host.size() * sizeof(host[0]));
      const llmops_drv_attn_shape shape{c.n_heads, c.n_kv_heads, c.head_dim, 0, 0.1f, ctx};
      const double us = time_us(dev, [&] { api.attention(h, q->as<float>(), o->as<float>(), t, refs->as<llmops_drv_kv_ref>(), &shape); });
      const double kv_bytes = 2.0 * t * c.n_heads * static_cast<double>(ctx) * c.head_dim * 4;
      std::printf("  kernel attention ctx=%-5d t=%-2d %8.1f us per layer (%6.0f GB/s of K/V read per query head)\n", ctx, t, us, kv_bytes / us / 1e3);
    }
  }
}

int die(const Status& st) {
  std::fprintf(stderr, "bench_gpu: %s\n", st.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shapes = "tinyllama-1.1B,llama-8B", types = "Q4_K,F16", batches = "1,32";
  int context = 128, steps = 64, reps = 5, prefill = 512;
  bool profile = true;
  std::string gguf_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--shapes") shapes = v;
    else if (k == "--types") types = v;
    else if (k == "--batches") batches = v;
    else if (k == "--context") context = std::stoi(v);
    else if (k == "--steps") steps = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--prefill") prefill = std::stoi(v);
    else if (k == "--profile") profile = v != "0";
    else if (k == "--gguf") gguf_dir = v;
    else {
      std::fprintf(stderr, "bench_gpu: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  auto dev_r = GpuDevice::open_default();
  if (!dev_r.ok()) return die(dev_r.status());
  GpuDevice& dev = **dev_r;
  const llmops_driver_api& api = dev.api();
  llmops_drv* h = dev.handle();
  std::printf("device: %s, %d SMs, %.1f GiB\n", dev.info().name, dev.info().multiprocessors, static_cast<double>(dev.info().total_bytes) / (1ull << 30));

  // The ceiling: a 4 GiB device-to-device copy, bytes read plus written.
  double bandwidth = 0;
  {
    const uint64_t bytes = 4ull << 30;
    auto a = DeviceBuffer::alloc(dev, bytes), b = DeviceBuffer::alloc(dev, bytes);
    if (!a.ok()) return die(a.status());
    if (!b.ok()) return die(b.status());
    api.fill_random(h, LLMOPS_DT_F32, a->get(), bytes / 4 / 1024, 1024, 1, 1.0f);
    std::vector<double> rates;
    for (int r = 0; r < 7; ++r) {
      api.mark(h, 0);
      api.copy(h, b->get(), a->get(), bytes);
      api.mark(h, 1);
      float ms = 0;
      if (int rc = api.elapsed_ms(h, &ms); rc != 0) return die(dev.check(rc, "timing a copy"));
      if (r > 0) rates.push_back(2.0 * static_cast<double>(bytes) / (ms / 1e3));
    }
    bandwidth = median(rates);
    std::printf("copy bandwidth (read+write): %.0f GB/s (median of 6)\n\n", bandwidth / 1e9);
  }

  std::printf("%-15s %-5s %5s %10s %12s %10s %10s %9s\n", "shape", "type", "batch", "graphs", "weights/tok", "steps/s", "tokens/s", "roofline");
  for (const std::string& shape_name : split(shapes)) {
    auto shape = find_synth_shape(shape_name);
    if (!shape.ok()) return die(shape.status());
    for (const std::string& type_name : split(types)) {
      auto type = writable_type_from_name(type_name);
      if (!type) return die(invalid_argument("unknown type " + type_name));
      std::unique_ptr<Model> file;  // kept while its GpuModel lives
      Result<std::unique_ptr<GpuModel>> model = invalid_argument("no model");
      if (gguf_dir.empty()) {
        model = GpuModel::random(dev, shape->config, *type, 42);
      } else {
        const std::string path = gguf_dir + "/" + shape_name + "-" + type_name + ".gguf";
        auto loaded = Model::load(path);
        if (!loaded.ok()) return die(loaded.status());
        file = std::move(*loaded);
        model = GpuModel::upload(dev, *file);
        std::printf("%s\n", path.c_str());
      }
      if (!model.ok()) return die(model.status());
      const GpuModel& m = **model;
      const double bpt = static_cast<double>(m.bytes_per_token());
      if (profile) {
        std::printf("%s %s:\n", shape_name.c_str(), type_name.c_str());
        profile_kernels(dev, m, bandwidth);
      }
      const double roof_steps = bandwidth / bpt;
      for (const std::string& bs : split(batches)) {
        const int batch = std::stoi(bs);
        for (bool graphs : {true, false}) {
          if (!graphs && batch != 1) continue;  // the launch-overhead comparison at batch 1 only
          GpuRunner runner(m, 512, graphs);
          std::vector<std::unique_ptr<GpuSession>> sessions;
          const int max_pos = context + steps * (reps + 1) + 1;
          for (int s = 0; s < batch; ++s) {
            auto sess = GpuSession::create(m, max_pos);
            if (!sess.ok()) return die(sess.status());
            sessions.push_back(std::move(*sess));
          }
          for (auto& s : sessions) {
            std::vector<GpuBatchToken> p;
            for (int i = 0; i < context; ++i) p.push_back({s.get(), (i * 7919 + 13) % shape->config.vocab_size, i, i + 1 == context});
            if (auto r = runner.run_greedy(p.data(), p.size()); !r.ok()) return die(r.status());
          }
          std::vector<GpuBatchToken> step(static_cast<size_t>(batch));
          std::vector<double> rates;
          for (int r = 0; r <= reps; ++r) {  // the first repetition warms up (and records the graph)
            const double t0 = now_s();
            for (int k = 0; k < steps; ++k) {
              for (int s = 0; s < batch; ++s) {
                GpuSession* sess = sessions[static_cast<size_t>(s)].get();
                step[static_cast<size_t>(s)] = {sess, (k * 31 + s) % shape->config.vocab_size, sess->length(), true};
              }
              if (auto ids = runner.run_greedy(step.data(), step.size()); !ids.ok()) return die(ids.status());
            }
            if (r > 0) rates.push_back(steps / (now_s() - t0));
          }
          const double sps = median(rates);
          std::printf("%-15s %-5s %5d %10s %9.0f MB %10.1f %10.1f %8.1f%%\n", shape_name.c_str(), type_name.c_str(), batch, graphs ? "on" : "off",
                      bpt / 1e6, sps, sps * batch, 100.0 * sps / roof_steps);
          std::fflush(stdout);
        }
      }
      if (prefill > 0) {
        GpuRunner runner(m, prefill);
        auto s = GpuSession::create(m, prefill);
        if (!s.ok()) return die(s.status());
        std::vector<GpuBatchToken> p;
        for (int i = 0; i < prefill; ++i) p.push_back({s->get(), (i * 7919 + 13) % shape->config.vocab_size, i, i + 1 == prefill});
        std::vector<double> rates;
        for (int r = 0; r <= reps; ++r) {
          (*s)->reset();
          const double t0 = now_s();
          if (auto ids = runner.run_greedy(p.data(), p.size()); !ids.ok()) return die(ids.status());
          if (r > 0) rates.push_back(prefill / (now_s() - t0));
        }
        std::printf("%-15s %-5s prefill of %d tokens: %.0f tokens/s\n", shape_name.c_str(), type_name.c_str(), prefill, median(rates));
      }
    }
  }
  return 0;
}

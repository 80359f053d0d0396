// GPU training throughput: full fine-tuning steps (forward, backward, AdamW) of GpuTrainer on
// random weights of the synthetic shapes, in each product precision (F32, and tensor cores with
// TF32 or BF16 inputs), as tokens/s and model FLOP utilisation. MFU = 6 × parameters ×
// tokens/s ÷ a peak: the driver's own gemm on a 8192³ product in the same precision, measured
// in the same run (the baseline), and, where --peak-tflops gives it, the device's datasheet
// figure for BF16 dense (989 on an H100/H200 SXM). Medians of --reps timed steps after warm-ups.
// A LoRA step (rank 16 on q, k, v, o; dropout 0.05) follows each full one on the same weights.
//
//   bench_gpu_train [--shapes llama-110M,gpt2-124M] [--batch 8] [--seq 1024] [--reps 5] [--precisions fp32,tf32,bf16] [--peak-tflops 989]
//                   [--gemm-n 8192]
// (A smoke run on the CPU reference driver: LLMOPS_COMPUTE_DRIVER=.../libllmops_reference.so
// bench_gpu_train --shapes llama-15M --batch 1 --seq 32 --reps 1 --gemm-n 64.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "gpu/gpu_trainer.h"
#include "model/synth.h"
#include "train/llama_train.h"

using namespace llmops;
using namespace llmops::engine;

namespace {

using bench::median;
using bench::split;

int math_of(const std::string& p) { return p == "bf16" ? LLMOPS_MATH_BF16 : p == "tf32" ? LLMOPS_MATH_TF32 : LLMOPS_MATH_F32; }

int die(const Status& st) {
  std::fprintf(stderr, "bench_gpu_train: %s\n", st.message().c_str());
  return 1;
}

// The driver's gemm at this precision on an n³ product: FLOP/s, median of 5 device-timed runs.
Result<double> gemm_flops(GpuDevice& dev, int math, int n) {
  const llmops_driver_api& api = dev.api();
  llmops_drv* h = dev.handle();
  const uint64_t bytes = static_cast<uint64_t>(n) * n * sizeof(float);
  LLMOPS_ASSIGN_OR_RETURN(DeviceBuffer a, DeviceBuffer::alloc(dev, bytes));
  LLMOPS_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::alloc(dev, bytes));
  LLMOPS_ASSIGN_OR_RETURN(DeviceBuffer c, DeviceBuffer::alloc(dev, bytes));
  LLMOPS_RETURN_IF_ERROR(dev.check(api.fill_random(h, LLMOPS_DT_F32, a.get(), n, n, 1, 1.0f), "filling"));
  LLMOPS_RETURN_IF_ERROR(dev.check(api.fill_random(h, LLMOPS_DT_F32, b.get(), n, n, 2, 1.0f), "filling"));
  LLMOPS_RETURN_IF_ERROR(dev.check(api.set_math(h, math), "set_math"));
  std::vector<double> rates;
  for (int r = 0; r < 7; ++r) {
    api.mark(h, 0);
    LLMOPS_RETURN_IF_ERROR(dev.check(api.gemm(h, 0, 1, n, n, n, 1.0f, a.as<float>(), n, b.as<float>(), n, 0.0f, c.as<float>(), n), "gemm"));
    api.mark(h, 1);
    float ms = 0;
    LLMOPS_RETURN_IF_ERROR(dev.check(api.elapsed_ms(h, &ms), "timing"));
    if (r >= 2) rates.push_back(2.0 * n * static_cast<double>(n) * n / (ms / 1e3));
  }
  LLMOPS_RETURN_IF_ERROR(dev.check(api.set_math(h, LLMOPS_MATH_F32), "set_math"));
  return median(rates);
}

}  // namespace

int main(int argc, char** argv) {
  std::string shapes = "llama-110M,gpt2-124M", precisions = "fp32,tf32,bf16";
  int batch = 8, seq = 1024, reps = 5, gemm_n = 8192;
  double peak_tflops = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--shapes") shapes = v;
    else if (k == "--batch") batch = std::stoi(v);
    else if (k == "--seq") seq = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--precisions") precisions = v;
    else if (k == "--peak-tflops") peak_tflops = std::stod(v);
    else if (k == "--gemm-n") gemm_n = std::stoi(v);
    else {
      std::fprintf(stderr, "bench_gpu_train: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  auto dev_r = GpuDevice::open_default();
  if (!dev_r.ok()) return die(dev_r.status());
  GpuDevice& dev = **dev_r;
  std::printf("device: %s, %d SMs\n", dev.info().name, dev.info().multiprocessors);
  std::printf("%-12s %-5s %6s %6s %12s %10s %10s %8s %10s %12s\n", "shape", "prec", "batch", "seq", "tokens/s", "gemm TF/s", "MFU(gemm)", "MFU(peak)",
              "step ms", "LoRA tok/s");
  for (const std::string& name : split(shapes)) {
    auto shape = find_synth_shape(name);
    if (!shape.ok()) return die(shape.status());
    ModelConfig c = shape->config;
    const int s = std::min(seq, c.seq_len);
    auto host = train::LlamaTrainer<float>::random(c, false, 1);
    if (!host.ok()) return die(host.status());
    auto adapted = train::LlamaTrainer<float>::random(c, false, 1);
    train::LoraConfig lc;
    lc.rank = 16, lc.alpha = 32, lc.dropout = 0.05;
    if (!adapted.ok() || !adapted->enable_lora(lc).ok()) return die(internal_error("LoRA setup"));
    std::vector<int32_t> tokens(static_cast<size_t>(batch) * s), targets(tokens.size());
    std::mt19937 rng(3);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(rng() % static_cast<uint32_t>(c.vocab_size));
    for (size_t i = 0; i < tokens.size(); ++i) targets[i] = tokens[(i + 1) % tokens.size()];
    const double params = static_cast<double>(host->parameter_count());
    for (const std::string& prec : split(precisions)) {
      const int math = math_of(prec);
      auto peak = gemm_flops(dev, math, gemm_n);
      if (!peak.ok()) return die(peak.status());
      auto run = [&](train::LlamaTrainer<float>& t, std::vector<double>* step_s) -> Status {
        LLMOPS_ASSIGN_OR_RETURN(auto gpu, GpuTrainer::create(dev, t));
        LLMOPS_RETURN_IF_ERROR(gpu->set_math(math));
        train::AdamWConfig oc;
        oc.lr = 1e-4, oc.total_steps = reps + 2;
        for (int r = 0; r < reps + 2; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          gpu->set_dropout_stream(static_cast<uint64_t>(r));
          LLMOPS_ASSIGN_OR_RETURN(double loss, gpu->forward(tokens.data(), targets.data(), batch, s));
          (void)loss;
          LLMOPS_RETURN_IF_ERROR(gpu->zero_grads());
          LLMOPS_RETURN_IF_ERROR(gpu->backward());
          LLMOPS_RETURN_IF_ERROR(gpu->adamw_step(oc).status());
          if (r >= 2) step_s->push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        return ok_status();
      };
      std::vector<double> full, lora;
      if (Status st = run(*host, &full); !st.ok()) return die(st);
      if (Status st = run(*adapted, &lora); !st.ok()) return die(st);
      const double tokens_step = static_cast<double>(batch) * s, step = median(full);
      const double tps = tokens_step / step, flops = 6.0 * params * tps;
      char at_peak[16] = "-";
      if (peak_tflops > 0) std::snprintf(at_peak, sizeof at_peak, "%.1f%%", 100.0 * flops / (peak_tflops * 1e12));
      std::printf("%-12s %-5s %6d %6d %12.0f %10.1f %9.1f%% %8s %10.1f %12.0f\n", name.c_str(), prec.c_str(), batch, s, tps, *peak / 1e12,
                  100.0 * flops / *peak, at_peak, step * 1e3, tokens_step / median(lora));
      std::fflush(stdout);
    }
  }
  return 0;
}

#!/bin/bash
# Every GPU check and benchmark in one run (meant to stay under 8 minutes on an H100/H200; the
# timeouts below add up to more, and no run has timed the whole yet): the driver
# parity and whole-model tests (the training ops and GpuTrainer among them), then decode/prefill
# speed against the HBM roofline, then training throughput and MFU (bench_gpu_train), and BF16
# training once more with cuDNN's attention turned off.
#   bench/gpu/run.sh DIR [bench_gpu options]
# DIR holds bin/gpu_tests, bin/bench_gpu and lib/llmops/drivers/ (a build tree, or what
# bench/gpu/pack.sh gathered); logs go to $OUT (default /tmp/llmops-gpu).
set -u
D=$(cd "${1:?usage: bench/gpu/run.sh DIR [bench_gpu options]}" && pwd)
shift
OUT=${OUT:-/tmp/llmops-gpu}
mkdir -p "$OUT"
# cuBLAS: the toolkit's, else the copy Python's CUDA wheels carry.
CUDA_LIB=
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, "cu13", "lib") + " " + os.path.join(p, "cublas", "lib") for p in nvidia.__path__))' 2>/dev/null); do
  if [ -e "$d/libcublas.so.13" ]; then CUDA_LIB=$d; break; fi
done
echo "cuBLAS from: ${CUDA_LIB:-(not found: the driver will not load)}"
export LD_LIBRARY_PATH="$D/lib:${CUDA_LIB}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -d "$D/shared" ] && export LLMOPS_SHARED_DIR="$D/shared"
export LLMOPS_INFER="$D/bin/llmops-infer"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
echo "== parity and model tests"
timeout 300 "$D/bin/gpu_tests" >"$OUT/gpu_tests.log" 2>&1
echo "gpu_tests exit $?"
grep -E '^\[  (FAILED|PASSED|SKIPPED) |nmse|GPU 0|Failure|Expected|Which is|Skipped' "$OUT/gpu_tests.log" | head -120
echo "== benchmarks"
# With llama.cpp's CUDA build carried to $L (bench/gpu/llama_cuda.sh, one call per part), both
# decode the same llmops-synth GGUF files; without it, bench_gpu makes its weights on the device.
L=${LLAMA_CUDA_DIR:-/tmp/llama-cuda}
if [ -x "$L/llama_cuda_bench" ] && [ -f "$L/libggml-cuda.so.part02" ]; then
  cat "$L"/libggml-cuda.so.part0? > "$L/libggml-cuda.so" && (cd "$L" && sha256sum -c libggml-cuda.so.sha256) || exit 1
  G=/tmp/llmops-gguf
  mkdir -p "$G"
  for f in tinyllama-1.1B-Q4_K tinyllama-1.1B-F16 llama-8B-Q4_K llama-8B-F16; do
    [ -f "$G/$f.gguf" ] || "$D/bin/llmops-synth" --arch llama --shape "${f%-*}" --type "${f##*-}" --out "$G/$f.gguf"
  done
  timeout 240 "$D/bin/bench_gpu" --gguf "$G" "$@" 2>&1 | tee "$OUT/bench_gpu.log"
  echo "== llama.cpp CUDA (node-llama-cpp@3.21.1 prebuilt) on the same files"
  for f in tinyllama-1.1B-Q4_K tinyllama-1.1B-F16 llama-8B-Q4_K llama-8B-F16; do
    timeout 75 "$L/llama_cuda_bench" --model "$G/$f.gguf" --backends "$L" --batches 1,32 --context 128 --steps 32 --reps 3 2>"$OUT/llama_cuda_$f.err" \
      | tee -a "$OUT/llama_cuda.log"
  done
else
  echo "(llama.cpp's CUDA build is not in $L: no side-by-side this run)"
  timeout 240 "$D/bin/bench_gpu" "$@" 2>&1 | tee "$OUT/bench_gpu.log"
fi
echo "== training"
# BF16 only (the figure; F32 and TF32 with --precisions fp32,tf32 when time allows).
timeout 120 "$D/bin/bench_gpu_train" --precisions bf16 --peak-tflops 989 2>&1 | tee "$OUT/bench_gpu_train.log"
# BF16 again with training attention on our kernels instead of cuDNN's flash attention: the A/B
# of the two attention paths in the same call.
echo "== training, BF16, attention on our kernels (LLMOPS_CUDNN_ATTENTION=0)"
LLMOPS_CUDNN_ATTENTION=0 timeout 90 "$D/bin/bench_gpu_train" --precisions bf16 --peak-tflops 989 2>&1 | tee "$OUT/bench_gpu_train_own_attention.log"

#!/bin/bash
# Gathers what bench/gpu/run.sh needs on a GPU machine that has the CUDA runtime but none of the
# project's build dependencies: the GPU test and bench binaries, llmops-infer and llmops-synth, the CUDA driver, the non-system
# libraries they load (OpenBLAS and its Fortran runtime) and, for the end-to-end test, the
# stories260K model from ../shared. DEST must be a folder git ignores; nothing here is committed.
#   bench/gpu/pack.sh BUILD_DIR DEST
set -euo pipefail
B=$1 D=$2
rm -rf "$D" && mkdir -p "$D/bin" "$D/lib/llmops/drivers" "$D/shared/models"
for exe in gpu_tests bench_gpu bench_gpu_train llmops-infer llmops-synth; do strip --strip-debug -o "$D/bin/$exe" "$B/bin/$exe"; done
strip --strip-debug -o "$D/lib/llmops/drivers/libllmops_cuda.so" "$B/lib/llmops/drivers/libllmops_cuda.so"
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do
  cp -L "$(ldd "$B/bin/gpu_tests" | awk -v l=$lib '$1 == l {print $3}')" "$D/lib/$lib"
done
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ -d "$here/../shared/models/stories260K" ]; then cp -r "$here/../shared/models/stories260K" "$D/shared/models/"; fi
du -sh "$D"

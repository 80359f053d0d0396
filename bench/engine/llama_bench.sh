#!/usr/bin/env bash
# Builds llama.cpp's own llama-bench, CPU only, from the llama.cpp release that node-llama-cpp@3.21.1
# carries inside its npm package (llama/gitRelease.bundle: the source its prebuilt binaries come
# from), so the engine bench can run llama.cpp at 2 threads in the same run without Node in the way
# (node-llama-cpp's own 2-thread decode collapses: ../shared/baselines/llama.cpp-cpu.md). Offline;
# about 7 minutes of compile on two cores, once. Prints the binary's path.
#   bench/engine/llama_bench.sh [DIR]     (default $LLMOPS_LLAMA_CPP_DIR or /tmp/llmops-llama.cpp)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-${LLMOPS_LLAMA_CPP_DIR:-/tmp/llmops-llama.cpp}}
bundle="$here/node_modules/node-llama-cpp/llama/gitRelease.bundle"
if [ -x "$dir/build/bin/llama-bench" ]; then echo "$dir/build/bin/llama-bench"; exit 0; fi
if [ ! -f "$bundle" ]; then
  (cd "$here" && npm install --no-audit --no-fund --no-save node-llama-cpp@3.21.1 > /dev/null)
fi
[ -d "$dir/.git" ] || git clone -q "$bundle" "$dir" 2> /dev/null
# As the prebuilt's CPU variant for this machine: the CPU's own ISA (AVX-512 VNNI here), OpenMP
# threads, no network, static.
cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF > "$dir/configure.log" 2>&1 \
  || { cat "$dir/configure.log" >&2; exit 1; }
cmake --build "$dir/build" --target llama-bench -j "${LLMOPS_JOBS:-2}" > "$dir/build.log" 2>&1 || { tail -30 "$dir/build.log" >&2; exit 1; }
echo "$dir/build/bin/llama-bench"

#!/usr/bin/env bash
# Prepares llama.cpp's CUDA build for the GPU side-by-side (bench/gpu/NOTES.md): compiles
# bench/gpu/llama_cuda_bench.cpp against llama.h of the release node-llama-cpp@3.21.1 carries (the
# source its prebuilt binaries come from: the package's gitRelease.bundle, cloned as
# bench/engine/llama_bench.sh does), links it to the linux-x64-cuda prebuilt, and splits the
# result into parts a device call can carry (the CUDA backend alone is 159 MB and xz leaves 124):
# DEST.1 ... DEST.4, each under 51 MiB. On the device, one call per part copies it into
# /tmp/llama-cuda (the machine stays warm 30 s between calls); bench/gpu/run.sh then joins and
# checks the backend and runs the comparison. DESTs must be folders git ignores.
#   bench/gpu/llama_cuda.sh DEST        (prints the parts' folders)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: bench/gpu/llama_cuda.sh DEST}
mods="$here/../engine/node_modules"
pre="$mods/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda"
bundle="$mods/node-llama-cpp/llama/gitRelease.bundle"
src=${LLMOPS_LLAMA_CPP_DIR:-/tmp/llmops-llama.cpp}
if [ ! -f "$pre/libggml-cuda.so" ]; then
  (cd "$here/../engine" && npm install --no-audit --no-fund --no-save node-llama-cpp@3.21.1 > /dev/null)
fi
[ -d "$src/.git" ] || git clone -q "$bundle" "$src" 2> /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
g++ -O2 -std=c++17 -o "$work/llama_cuda_bench" "$here/llama_cuda_bench.cpp" -I"$src/include" -I"$src/ggml/include" \
  -L"$pre" -l:libllama.cuda.v0.4.0.so -l:libggml.cuda.v0.4.0.so -l:libggml-base.so -Wl,-rpath,'$ORIGIN'
cp "$pre"/libllama.cuda.v0.4.0.so "$pre"/libggml.cuda.v0.4.0.so "$pre"/libggml-base.so "$pre"/libggml-cpu-*.so "$work/"
(cd "$pre" && sha256sum libggml-cuda.so) > "$work/libggml-cuda.so.sha256"
# Part 1: the program and the small libraries (22 MB); parts 2-4: a third of the backend each.
rm -rf "$dest".[0-9]*
mkdir -p "$dest.1" "$dest.2" "$dest.3" "$dest.4"
mv "$work"/llama_cuda_bench "$work"/*.so "$work"/libggml-cuda.so.sha256 "$dest.1/"
split -n 3 -d "$pre/libggml-cuda.so" "$work/libggml-cuda.so.part"
for i in 0 1 2; do mv "$work/libggml-cuda.so.part0$i" "$dest.$((i + 2))/"; done
for d in "$dest".[0-9]*; do echo "$d $(du -sh "$d" | cut -f1)"; done

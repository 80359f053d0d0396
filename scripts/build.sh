#!/usr/bin/env bash
# Configures and builds llmops into build/ (or $LLMOPS_BUILD_DIR). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LLMOPS_BUILD_DIR:-build}
mkdir -p "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${LLMOPS_BUILD_TYPE:-RelWithDebInfo} "$@" > "$build/configure.log" 2>&1 \
  || { cat "$build/configure.log"; exit 1; }
# LLMOPS_TARGETS (space-separated) builds only those targets.
targets=()
for t in ${LLMOPS_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "${LLMOPS_JOBS:-2}" "${targets[@]}"

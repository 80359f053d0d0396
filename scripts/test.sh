#!/usr/bin/env bash
# Sets up, builds and runs every test: unit, ABI, black-box integration, fuzz-corpus replay,
# packaging (.deb/.rpm) and systemd unit checks; then all but packaging and whole training runs
# again with the daemon, the CLI and the tests built under AddressSanitizer +
# UndefinedBehaviorSanitizer (the device tests there run on the CPU reference driver).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
(cd build && ctest --output-on-failure -j 2 --timeout 600)
if [ "${LLMOPS_SKIP_SANITIZERS:-0}" != 1 ]; then
  # Clang builds the sanitized tree in under half the time g++ takes (610 against 1460 s of
  # compile on two cores); the packages and benchmarks stay on g++.
  LLMOPS_BUILD_DIR=build-asan LLMOPS_BUILD_TYPE=Debug \
    LLMOPS_TARGETS="unit_tests abi_tests engine_tests data_tests eval_tests integration_tests gpu_tests llmopsd llmopsctl fuzz_json fuzz_http_request fuzz_config fuzz_keys fuzz_gguf fuzz_safetensors fuzz_llama2c fuzz_tokenizer_bin fuzz_tokenizer_json fuzz_chat_template fuzz_data_readers fuzz_eval_metrics" \
    ./scripts/build.sh -DLLMOPS_SANITIZE=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
  # HWLOC_COMPONENTS=-pci: hwloc's PCI plugin (libpciaccess) leaks at load, outside our code.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 HWLOC_COMPONENTS=-pci \
     ctest --output-on-failure -j 2 --timeout 900 -L 'unit|abi|integration|fuzz|gpu')
fi

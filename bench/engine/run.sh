#!/usr/bin/env bash
# Installs node-llama-cpp@3.21.1 beside this script (once; from npm), builds llama.cpp's
# llama-bench from the source it carries (once; llama_bench.sh) and runs run.mjs with it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/node-llama-cpp" ]; then
  (cd "$here" && npm install --no-audit --no-fund --no-save node-llama-cpp@3.21.1 > /dev/null)
fi
LLAMA_BENCH=${LLAMA_BENCH:-$("$here/llama_bench.sh")}
export LLAMA_BENCH
exec node "$here/run.mjs" "$@"

#!/usr/bin/env bash
# Installs node-llama-cpp@3.21.1 beside this script (once; from npm) and runs run.mjs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/node-llama-cpp" ]; then
  (cd "$here" && npm install --no-audit --no-fund --no-save node-llama-cpp@3.21.1 > /dev/null)
fi
exec node "$here/run.mjs" "$@"

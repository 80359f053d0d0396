#!/usr/bin/env bash
# Runs openai_client.mjs (the official `openai` npm package) against a real llmopsd serving
# ../shared's stories260K. Skips (exit 77) when ../shared or the npm package is unavailable.
#   run_openai_client.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
model="$src/../shared/models/stories260K/stories260K.gguf"
if [ ! -f "$model" ]; then echo "SKIP: ../shared is absent ($model not found)"; exit 77; fi
command -v node > /dev/null || { echo "SKIP: node is not installed"; exit 77; }
npmdir="$build/node-clients"
if [ ! -f "$npmdir/node_modules/openai/package.json" ]; then
  mkdir -p "$npmdir"
  if ! (cd "$npmdir" && timeout 300 npm install --no-audit --no-fund --no-save openai@4.104.0 > npm.log 2>&1); then
    echo "SKIP: could not install the openai npm package (offline?); see $npmdir/npm.log"; exit 77
  fi
fi
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
printf '[serving]\nmodel = %s\n' "$model" > "$work/llmopsd.conf"
"$build/bin/llmopsd" --config "$work/llmopsd.conf" --state-dir "$work/state" --runtime-dir "$work/run" \
  --http.listen 127.0.0.1:0 > "$work/log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f "$work/run/llmopsd.json" ] && break; sleep 0.1; done
[ -f "$work/run/llmopsd.json" ] || { cat "$work/log"; echo "llmopsd did not start"; exit 1; }
port=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$work/run/llmopsd.json')).http_port)")
cp "$src/tests/node/openai_client.mjs" "$npmdir/"
node "$npmdir/openai_client.mjs" "http://127.0.0.1:$port/v1" || { cat "$work/log"; exit 1; }

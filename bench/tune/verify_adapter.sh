#!/usr/bin/env bash
# Trains a LoRA adapter (the Zara stories of the integration tests) with llmopsd, then checks its
# GGUF adapter in llama.cpp (bench/tune/verify_adapter.mjs). Needs a build and
# bench/engine/node_modules (node-llama-cpp).
#   bench/tune/verify_adapter.sh          # on ../shared/models/stories260K (Llama)
#   bench/tune/verify_adapter.sh gpt2     # on a synthetic gpt2-tiny: the fused q/k/v adapter
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${LLMOPS_BUILD_DIR:-build}/bin
. scripts/lib/private-daemon.sh
targets=q,k,v,o,gate,up,down
if [ "${1:-}" = gpt2 ]; then
  base="$work/gpt2-tiny.gguf"
  "$BIN/llmops-synth" --arch gpt2 --shape gpt2-tiny --type F32 --out "$base" > /dev/null
  targets=q,k,v,o,up,down
else
  base=../shared/models/stories260K/stories260K.gguf
fi
[ -f "$base" ] || { echo "verify_adapter: $base is missing" >&2; exit 1; }
start_private_daemon
things=("shells" "a crab" "the waves" "a boat" "the sand" "a fish" "the lighthouse" "a seagull")
for i in $(seq 0 399); do
  echo "{\"text\":\"Once upon a time, there was a little girl named Zara. Zara lived by the sea. Every day Zara played with ${things[$((i % 8))]} on the beach. Zara loved the sea.\"}"
done > "$work/zara.jsonl"
ctl model import "$base" --name stories > /dev/null
ctl data import "$work/zara.jsonl" --name zara > /dev/null
ctl --json tune start --base stories --data zara --method lora --rank 8 --targets "$targets" --steps 100 --lr 0.005 \
  --batch 8 --seq-len 128 --merge --output stories-zara > "$work/run.json"
adapter=$(python3 -c 'import json,sys; t=open(sys.argv[1]).read(); print(json.loads(t[t.rindex("\n{"):] if "\n{" in t else t)["results"]["adapter"]["adapter.gguf"]["path"])' "$work/run.json")
merged=$(model_file stories-zara)
node bench/tune/verify_adapter.mjs "$base" "$adapter" "$merged" "Once upon a time, there was a little girl named"

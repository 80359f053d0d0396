#!/usr/bin/env bash
# Reproduces etc/default-model.gguf, the model ./scripts/run.sh serves when given none: a
# 3-million-parameter Llama-architecture model trained from scratch, by llmopsd's own tuning
# stage, on Debian's `fortunes` collection (installed by scripts/setup.sh). The recipe is
# etc/default-model.json (shape, learned vocabulary size, steps, learning rate schedule, seed).
#   ./scripts/train-default-model.sh [OUT.gguf]      (default etc/default-model.gguf)
# Takes about 16 minutes on 2 cores (700 steps of 8 × 256 tokens, 1.5 epochs: 903 s of training). The same seed and thread count give the same losses.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-etc/default-model.gguf}"
recipe="${LLMOPS_RECIPE:-etc/default-model.json}"
./scripts/setup.sh
./scripts/build.sh
src=/usr/share/games/fortunes
[ -d "$src" ] || { echo "train-default-model: $src is missing (apt-get install fortunes)" >&2; exit 1; }

BIN=./build/bin
. scripts/lib/private-daemon.sh

# The corpus: one record per fortune (the text between "%" lines), control characters
# (overstriking) dropped; the ASCII-art files are left out.
for f in "$src"/*; do
  case "$f" in *.dat | *.u8 | */art | */ascii-art) continue ;; esac
  [ -f "$f" ] && cat "$f" && printf '%%\n'
done | LC_ALL=C awk '
  function flush() {
    if (text != "") {
      gsub(/\\/, "\\\\", text); gsub(/"/, "\\\"", text); gsub(/\t/, "    ", text)
      gsub(/[\001-\011\013-\037\177]/, "", text); gsub(/\n/, "\\n", text)
      printf "{\"text\":\"%s\"}\n", text
    }
    text = ""
  }
  $0 == "%" { flush(); next }
  { sub(/[ \t\r]+$/, ""); text = (text == "" ? $0 : text "\n" $0) }
  END { flush() }' > "$work/fortunes.jsonl"
echo "corpus: $(wc -l < "$work/fortunes.jsonl") fortunes, $(wc -c < "$work/fortunes.jsonl") bytes of JSONL"

start_private_daemon

ctl data import "$work/fortunes.jsonl" --name fortunes
ctl data split fortunes@1 --train 0.98 --validation 0.02 --test 0 --seed 1
ctl tune start --data fortunes@1:train --config "$recipe" --output llmops-fortunes

# The trained weights (F32) from the store, stored as Q8_0 for the repository with the chat
# template that shows it a conversation as plain text (etc/default-model.jinja).
blob=$(model_file llmops-fortunes)
[ -n "$blob" ] || { echo "train-default-model: the trained model's file was not found" >&2; exit 1; }
./build/bin/llmops-convert --model "$blob" --type Q8_0 --chat-template etc/default-model.jinja --out "$out"
ctl --json tune show 1 > "${out%.gguf}.run.json"
echo "wrote $out ($(wc -c < "$out") bytes) and ${out%.gguf}.run.json (the run: losses, lineage, cost)"

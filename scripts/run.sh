#!/usr/bin/env bash
# The main job: set up, build, and run llmopsd in the foreground on its embedded defaults
# (state in ./llmops-data/state, admin socket in ./llmops-data/run, HTTP on 127.0.0.1:8642),
# serving a model so the first curl to /v1/chat/completions gets an answer:
#   ./scripts/run.sh [MODEL] [llmopsd flags...]
# MODEL is a GGUF file, a Hugging Face directory or a llama2.c checkpoint (then add
# --serving.tokenizer=tokenizer.bin); without one, $LLMOPS_MODEL; with neither, the project's
# own small model, etc/default-model.gguf (trained from scratch on Debian's fortunes by the
# tuning stage: scripts/train-default-model.sh); LLMOPS_MODEL=none starts without a model.
# Nothing is downloaded. Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
model="${LLMOPS_MODEL:-etc/default-model.gguf}"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
  model="$1"
  shift
fi
if [ "$model" = none ]; then
  echo "starting without a model (LLMOPS_MODEL=none)" >&2
  exec ./build/bin/llmopsd "$@"
fi
[ -e "$model" ] || { echo "run.sh: no model at $model (give a GGUF file, a Hugging Face directory or a llama2.c checkpoint)" >&2; exit 2; }
echo "serving $model"
exec ./build/bin/llmopsd "--serving.model=$model" "$@"

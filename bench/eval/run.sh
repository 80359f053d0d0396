#!/usr/bin/env bash
# The eval stage's benchmark (issue 7):
#  1. a 1,000-example generation eval with stories260K through a real llmopsd and llmopsctl
#     (greedy, --max-tokens 64, --batch 16, BLEU + ROUGE-L scored): the run's own time and the
#     wall time of the llmopsctl command, examples/s; target under 60 s on 2 cores;
#  2. metric throughput (bench_eval): BLEU, chrF and ROUGE over 100,000 generated sentence pairs
#     against the time to read the same text, as a ratio.
# Medians of --rounds rounds.
#
#   bench/eval/run.sh [--rounds 3] [--examples 1000] [--max-tokens 64]
# Needs a built tree (./scripts/build.sh) and ../shared/models/stories260K.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=3
EXAMPLES=1000
MAX_TOKENS=64
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --examples) EXAMPLES="$2"; shift 2 ;;
    --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BUILD=${LLMOPS_BUILD_DIR:-build}
BIN=$BUILD/bin
MODEL=../shared/models/stories260K/stories260K.gguf
[ -x "$BIN/bench_eval" ] || { echo "build first: ./scripts/build.sh (bench_eval missing)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "skipped: $MODEL not found (../shared is absent)" >&2; exit 0; }
WORK=$(mktemp -d /var/tmp/llmops-eval-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

python3 - "$WORK/tales.jsonl" "$EXAMPLES" <<'PY'
import json, sys
names = ["Lily", "Tom", "Ben", "Sue", "Max", "Anna", "Tim", "Mia", "Sam", "Zoe"]
things = ["a ball", "a cat", "a big tree", "a red car", "a little bird", "a toy", "the park", "a cake", "a dog", "a boat"]
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        n, t = names[i % 10], things[(i // 10) % 10]
        f.write(json.dumps({"prompt": f"Once upon a time, there was a little girl named {n}. She saw {t}",
                            "reference": f"{n} was very happy. She wanted to play with {t}. She said, I love it."}) + "\n")
PY

gen_round() {
  local state=$WORK/state run=$WORK/run
  rm -rf "$state" "$run"
  : > "$WORK/empty.conf"
  "$BIN/llmopsd" --config "$WORK/empty.conf" --state-dir "$state" --runtime-dir "$run" \
    --module-dir "$BUILD/lib/llmops/modules" --http.listen 127.0.0.1:0 > "$WORK/daemon.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do [ -S "$run/admin.sock" ] && break; sleep 0.1; done
  local ctl="$BIN/llmopsctl --socket $run/admin.sock"
  $ctl model import "$(realpath "$MODEL")" --name stories > /dev/null
  $ctl data import "$WORK/tales.jsonl" --name tales > /dev/null
  local t0 t1
  t0=$(date +%s.%N)
  $ctl --json eval run --model stories --data tales --metrics bleu,rougeL --max-tokens "$MAX_TOKENS" --batch 16 > "$WORK/run.json"
  t1=$(date +%s.%N)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$WORK/run.json" "$t0" "$t1" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
run = json.loads(text[text.rfind("\n{") + 1:])
wall = float(sys.argv[3]) - float(sys.argv[2])
print(json.dumps({"examples": run["examples"]["done"], "run_s": round(run["timing"]["seconds"], 2), "wall_s": round(wall, 2),
                  "examples_per_s": round(run["examples"]["done"] / wall, 1), "bleu": round(run["results"]["bleu"]["score"], 2),
                  "rougeL": round(run["results"]["rougeL"]["score"], 4)}))
PY
}

for r in $(seq "$ROUNDS"); do gen_round; done | tee "$WORK/gen.jsonl"
python3 - "$WORK/gen.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(json.dumps({"generation_eval_median": {k: statistics.median(r[k] for r in rows) for k in ("run_s", "wall_s", "examples_per_s")},
                  "examples": rows[0]["examples"], "target_s": 60}))
PY
"$BIN/bench_eval" --pairs 100000 --rounds "$ROUNDS" --file "$WORK/pairs.tsv"

#!/usr/bin/env bash
# Training throughput (issue 6): bench_train --rounds times (default 3) at sequence length 256 and
# 2 threads, medians per shape of tokens/s, MFU (against sgemm measured in the same run) and
# peak RSS against the bound 4.5 × fp32 weights + activations. Each round runs the trainer on its
# thread pool (as the tuning stage does) and then as before the pool (one thread, OpenBLAS's own
# threads in the products); the last line is the ratio of their median tokens/s.
#
#   bench/tune/run.sh [--rounds 3] [--threads 2] [--shapes stories260K,llama-15M,llama-110M]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=3
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) ARGS+=("$1" "$2"); shift 2 ;;
  esac
done
BIN=${LLMOPS_BUILD_DIR:-build}/bin
[ -x "$BIN/bench_train" ] || { echo "build first: ./scripts/build.sh (bench_train missing)" >&2; exit 1; }
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for _ in $(seq "$ROUNDS"); do
  for pool in 1 0; do "$BIN/bench_train" "${ARGS[@]}" --pool "$pool" | tee -a "$OUT"; done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = []
text = open(sys.argv[1]).read().replace("]\n[", ",")
for r in json.loads(text):
    rows.append(r)
shapes = []
for r in rows:
    if r["shape"] not in shapes:
        shapes.append(r["shape"])
medians = {}
for s in shapes:
    for pool in (True, False):
        rs = [r for r in rows if r["shape"] == s and r.get("pool", False) == pool]
        if not rs:
            continue
        med = {k: statistics.median(r[k] for r in rs) for k in ("tokens_per_s", "sgemm_gflops", "mfu", "peak_rss_mb", "process_base_rss_mb", "lora_tokens_per_s", "lora_vs_full")}
        medians[(s, pool)] = med
        print(json.dumps({"shape": s, "pool": pool, "rounds": len(rs), "parameters": rs[0]["parameters"], "median": med, "rss_bound_mb": rs[0]["rss_bound_mb"]}))
for s in shapes:
    if (s, True) in medians and (s, False) in medians:
        a, b = medians[(s, True)], medians[(s, False)]
        print(json.dumps({"shape": s, "pool_vs_openblas_threads": {"full": round(a["tokens_per_s"] / b["tokens_per_s"], 3), "lora": round(a["lora_tokens_per_s"] / b["lora_tokens_per_s"], 3)}}))
PY

#!/usr/bin/env bash
# The data stage's benchmark (issue 5): a generated JSONL corpus with known exact duplicates,
# near duplicates and PII, pushed through a real llmopsd with llmopsctl. Per operation it reports
# throughput (input MB / the job's own run time), the daemon's peak RSS during the job
# (VmHWM, reset before each job through /proc/PID/clear_refs), near-duplicate precision and
# recall, PII recall and the false-positive rate on decoys. The baseline measured in the same
# run is Python's json.loads + json.dumps over the same file (one core), so noisy machines
# still give comparable ratios. import_then_clean_dedup is the same three as one pass
# (data import --then clean,dedup); the three separate jobs are reported combined as well.
# Worker threads: data.threads (default: all CPUs).
#
#   bench/data/run.sh [--mb 1024] [--rounds 3] [--keep DIR]
# Needs a built tree (./scripts/build.sh). Prints one JSON summary line per round and medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
MB=1024
ROUNDS=3
WORK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mb) MB="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --keep) WORK="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BUILD=${LLMOPS_BUILD_DIR:-build}
BIN=$BUILD/bin
[ -x "$BIN/bench_data" ] || { echo "build first: ./scripts/build.sh (bench_data missing)" >&2; exit 1; }
WORK=${WORK:-$(mktemp -d /var/tmp/llmops-data-bench.XXXXXX)}
mkdir -p "$WORK"
CORPUS=$WORK/corpus.jsonl
TRUTH=$WORK/truth.json
if [ ! -s "$CORPUS" ] || [ ! -s "$TRUTH" ]; then
  "$BIN/bench_data" gen "$CORPUS" "$TRUTH" --mb "$MB"
fi
BYTES=$(stat -c %s "$CORPUS")

python_baseline() {
  python3 - "$CORPUS" <<'PY'
import json, sys, time
t = time.time()
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        json.dumps(json.loads(line))
        n += len(line)
print(n / (time.time() - t) / 1e6)
PY
}

run_round() {
  local state=$WORK/state run=$WORK/run
  rm -rf "$state" "$run"
  : > "$WORK/empty.conf"
  "$BIN/llmopsd" --config "$WORK/empty.conf" --state-dir "$state" --runtime-dir "$run" \
    --module-dir "$BUILD/lib/llmops/modules" --http.listen 127.0.0.1:0 > "$WORK/daemon.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do [ -S "$run/admin.sock" ] && break; sleep 0.1; done
  local ctl="$BIN/llmopsctl --socket $run/admin.sock"
  declare -A secs rss
  op() {  # name, then llmopsctl words
    local name=$1; shift
    echo 5 > /proc/$pid/clear_refs
    local out id
    out=$($ctl --json "$@" --detach)
    id=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"])')
    $ctl jobs watch "$id" > /dev/null
    secs[$name]=$($ctl --json jobs show "$id" | python3 -c 'import json,sys; j=json.load(sys.stdin); print((j["finished_ms"]-j["started_ms"])/1000)')
    rss[$name]=$(awk '/VmHWM/ {print $2*1024}' /proc/$pid/status)
  }
  op import data import "$CORPUS" --name corpus
  op clean data clean corpus@1 --normalize nfc
  op dedup data dedup corpus@2
  op near_dedup data near-dedup corpus@3
  op pii data pii corpus@3
  op import_then_clean_dedup data import "$CORPUS" --name fused --then clean,dedup
  $ctl data export corpus@3 --output "$WORK/deduped.jsonl" 2>/dev/null
  $ctl data export corpus@4 --output "$WORK/near.jsonl" 2>/dev/null
  $ctl data export corpus@5 --output "$WORK/pii.jsonl" 2>/dev/null
  local near pii base
  near=$("$BIN/bench_data" check-near "$TRUTH" "$WORK/deduped.jsonl" "$WORK/near.jsonl")
  pii=$("$BIN/bench_data" check-pii "$TRUTH" "$WORK/pii.jsonl")
  kill -TERM $pid; wait $pid || true
  base=$(python_baseline)
  python3 - "$BYTES" "$base" "${secs[import]}" "${secs[clean]}" "${secs[dedup]}" "${secs[near_dedup]}" "${secs[pii]}" \
    "${secs[import_then_clean_dedup]}" "${rss[import]}" "${rss[clean]}" "${rss[dedup]}" "${rss[near_dedup]}" "${rss[pii]}" \
    "${rss[import_then_clean_dedup]}" "$near" "$pii" <<'PY'
import json, sys
b = int(sys.argv[1]); base = float(sys.argv[2])
names = ["import", "clean", "dedup", "near_dedup", "pii", "import_then_clean_dedup"]
secs = dict(zip(names, map(float, sys.argv[3:9])))
rss = dict(zip(names, map(int, sys.argv[9:15])))
mbs = {k: b / 1e6 / v for k, v in secs.items()}
combined = b / 1e6 / (secs["import"] + secs["clean"] + secs["dedup"])
near = json.loads(sys.argv[15]); pii = json.loads(sys.argv[16])
print(json.dumps({"corpus_mb": round(b / 1e6, 1), "mb_per_s": {k: round(v, 1) for k, v in mbs.items()},
                  "import_clean_dedup_as_three_jobs_mb_per_s": round(combined, 1), "python_json_roundtrip_mb_per_s": round(base, 1),
                  "ratio_to_python": {k: round(v / base, 2) for k, v in mbs.items()},
                  "peak_rss_mb": {k: round(v / 2**20) for k, v in rss.items()},
                  "near_precision": round(near["precision"], 4), "near_recall": round(near["recall"], 4),
                  "near_recall_by_jaccard": {k: round(v["recall"], 3) for k, v in near["recall_by_jaccard"].items()},
                  "pii_recall": round(pii["recall"], 4), "pii_recall_by_type": {k: round(v["recall"], 4) for k, v in pii["by_type"].items()},
                  "pii_decoy_false_positive_rate": round(pii["false_positive_rate"], 4)}))
PY
}

results=()
for r in $(seq "$ROUNDS"); do
  line=$(run_round)
  echo "round $r: $line"
  results+=("$line")
done
printf '%s\n' "${results[@]}" | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
def med(get): return round(statistics.median(get(r) for r in rows), 2)
keys = rows[0]["mb_per_s"].keys()
print("median of %d round(s):" % len(rows))
print(json.dumps({"mb_per_s": {k: med(lambda r: r["mb_per_s"][k]) for k in keys},
                  "import_clean_dedup_as_three_jobs_mb_per_s": med(lambda r: r["import_clean_dedup_as_three_jobs_mb_per_s"]),
                  "python_json_roundtrip_mb_per_s": med(lambda r: r["python_json_roundtrip_mb_per_s"]),
                  "ratio_to_python": {k: med(lambda r: r["ratio_to_python"][k]) for k in keys},
                  "peak_rss_mb": {k: med(lambda r: r["peak_rss_mb"][k]) for k in keys},
                  "near_precision": med(lambda r: r["near_precision"]), "near_recall": med(lambda r: r["near_recall"]),
                  "pii_recall": med(lambda r: r["pii_recall"]),
                  "pii_decoy_false_positive_rate": med(lambda r: r["pii_decoy_false_positive_rate"])}))'
echo "work files in $WORK (remove when done)"

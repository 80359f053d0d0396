#!/usr/bin/env bash
# HTTP benchmark of llmopsd's data plane against a minimal Beast server built in the same tree,
# in the same run: wrk on loopback, 64 connections, 2 threads, ROUNDS rounds (default 3) of
# DURATION seconds (default 10) each, interleaved so drift hits both alike. Targets:
#   /healthz (no key), /v1/models with an API key (auth on every request) on llmopsd;
#   any path on the baseline (it answers everything the same).
# Prints every round, then medians of req/s and p99 latency, and llmopsd's ratio to the baseline.
# Usage: bench/http/run.sh [BUILD_DIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
rounds=${ROUNDS:-3}
duration=${DURATION:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/setup.sh installs it)"; exit 1; }
work=$(mktemp -d)
cleanup() { kill "$daemon_pid" "$base_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
daemon_pid=; base_pid=
trap cleanup EXIT

"$build/bin/llmopsd" --config /dev/null --state-dir "$work/state" --runtime-dir "$work/run" --http.listen 127.0.0.1:0 \
  --http.threads 2 --log-level warning > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -f "$work/run/llmopsd.json" ] && break; sleep 0.1; done
port=$(sed -n 's/.*"http_port": \([0-9]*\).*/\1/p' "$work/run/llmopsd.json")
key=$("$build/bin/llmopsctl" --socket "$work/run/admin.sock" --json keys create bench | sed -n 's/.*"key": "\([^"]*\)".*/\1/p')

"$build/bin/bench_minimal_beast_server" 0 2 > "$work/base.port" &
base_pid=$!
for _ in $(seq 50); do [ -s "$work/base.port" ] && break; sleep 0.1; done
base_port=$(cat "$work/base.port")

# wrk's summary → "req_per_s p99_ms"
measure() {
  local out
  out=$(wrk -t2 -c64 -d"${duration}s" --latency "$@")
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v=v/1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v=v*1000}; print v}' <<<"$out")
  local non2xx
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  [ -z "$non2xx" ] || { echo "non-2xx answers: $non2xx" >&2; echo "$out" >&2; exit 1; }
  echo "$rps $p99"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -a base_rps base_p99 health_rps health_p99 models_rps models_p99
printf "round  %-28s %-28s %-28s\n" "baseline (minimal Beast)" "llmopsd /healthz" "llmopsd /v1/models + key"
for r in $(seq "$rounds"); do
  read -r b1 b2 <<<"$(measure "http://127.0.0.1:$base_port/healthz")"
  read -r h1 h2 <<<"$(measure "http://127.0.0.1:$port/healthz")"
  read -r m1 m2 <<<"$(measure -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/models")"
  base_rps+=("$b1"); base_p99+=("$b2"); health_rps+=("$h1"); health_p99+=("$h2"); models_rps+=("$m1"); models_p99+=("$m2")
  printf "%-6s %-28s %-28s %-28s\n" "$r" "$b1 req/s, p99 $b2 ms" "$h1 req/s, p99 $h2 ms" "$m1 req/s, p99 $m2 ms"
done
mb=$(printf "%s\n" "${base_rps[@]}" | median); mbp=$(printf "%s\n" "${base_p99[@]}" | median)
mh=$(printf "%s\n" "${health_rps[@]}" | median); mhp=$(printf "%s\n" "${health_p99[@]}" | median)
mm=$(printf "%s\n" "${models_rps[@]}" | median); mmp=$(printf "%s\n" "${models_p99[@]}" | median)
echo
echo "median of $rounds rounds (wrk -t2 -c64 -d${duration}s, loopback, $(nproc) cores shared by client and server):"
printf "  baseline minimal Beast:      %10.0f req/s  p99 %s ms\n" "$mb" "$mbp"
printf "  llmopsd /healthz:            %10.0f req/s  p99 %s ms  = %.0f%% of baseline\n" "$mh" "$mhp" "$(awk -v a="$mh" -v b="$mb" 'BEGIN{print 100*a/b}')"
printf "  llmopsd /v1/models with key: %10.0f req/s  p99 %s ms  = %.0f%% of baseline\n" "$mm" "$mmp" "$(awk -v a="$mm" -v b="$mb" 'BEGIN{print 100*a/b}')"

# Sourced by scripts that drive a throwaway llmopsd: a state directory of their own, a private
# admin socket, any free HTTP port; stopped and removed when the script exits.
#   BIN=build/bin; . scripts/lib/private-daemon.sh; start_private_daemon; ctl model list
# Defines $work (the scratch directory), ctl (llmopsctl on the private socket) and model_file.
work=$(mktemp -d)
private_daemon=""
trap '[ -n "$private_daemon" ] && kill "$private_daemon" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

ctl() { "$BIN/llmopsctl" --socket "$work/admin.sock" "$@"; }

start_private_daemon() {
  "$BIN/llmopsd" --state-dir "$work/state" --admin.socket "$work/admin.sock" --http.listen 127.0.0.1:0 > "$work/llmopsd.log" 2>&1 &
  private_daemon=$!
  for _ in $(seq 100); do [ -S "$work/admin.sock" ] && return 0; sleep 0.1; done
  cat "$work/llmopsd.log" >&2
  return 1
}

# The stored weights file of a model version (its first file's blob).
model_file() {
  local sha
  sha=$(ctl --json model show "$1" | sed -n 's/.*"sha256": *"\([0-9a-f]\{64\}\)".*/\1/p' | head -1)
  find "$work/state" -path "*/${sha:0:2}/${sha:2}" -type f | head -1
}

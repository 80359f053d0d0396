#!/usr/bin/env bash
# The main job: set up, build, and run llmopsd in the foreground on its embedded defaults
# (state in ./llmops-data/state, admin socket in ./llmops-data/run, HTTP on 127.0.0.1:8642).
# Extra arguments go to llmopsd (e.g. --http.listen=127.0.0.1:9000). Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
exec ./build/bin/llmopsd "$@"

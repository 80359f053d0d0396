#!/usr/bin/env bash
# Installs every build and test dependency of llmops from Debian 12's packages. Run as root.
# Does nothing when everything is already installed.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config file
  libboost-dev libboost-program-options-dev liblmdb-dev libhwloc-dev libopenblas-dev libsystemd-dev
  nlohmann-json3-dev libssl-dev
  # the data stage: Unicode normalisation, language identification, compressed input
  libutf8proc-dev libcld2-dev zlib1g-dev libzstd-dev
  # tests, fuzzing, sanitizers, packaging checks, benchmarks
  libgtest-dev libgmock-dev clang libclang-rt-14-dev lmdb-utils hwloc curl systemd dpkg-dev rpm wrk
  # the corpus of the default model (scripts/train-default-model.sh)
  fortunes
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run this script as root (or with sudo)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"

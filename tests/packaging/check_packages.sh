#!/usr/bin/env bash
# Builds the .deb and .rpm, installs the .deb into a root directory and runs what it installed:
# --version, --check-config on the packaged config, and a short real start answering /healthz.
# Checks the maintainer scripts, the conffile and the .rpm's file list.
set -euo pipefail
build=$1
src=$2
version=$(sed -n 's/^project(llmops VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
pid=

cd "$build"
cpack -G "DEB;RPM" -B "$work/out" > "$work/cpack.log" 2>&1 || { cat "$work/cpack.log"; exit 1; }
deb="$work/out/llmops_${version}_amd64.deb"
rpm="$work/out/llmops-${version}.x86_64.rpm"
test -f "$deb" || { echo "missing $deb"; ls "$work/out"; exit 1; }
test -f "$rpm" || { echo "missing $rpm"; ls "$work/out"; exit 1; }

# The .deb: metadata, maintainer scripts, conffile.
dpkg-deb -I "$deb" > "$work/info"
grep -q "^ Package: llmops$" "$work/info"
grep -q "^ Depends:.*liblmdb0" "$work/info" || { echo "Depends lacks liblmdb0:"; cat "$work/info"; exit 1; }
grep -q "^ Depends:.*libhwloc15" "$work/info"
mkdir "$work/ctrl"
dpkg-deb -e "$deb" "$work/ctrl"
sh -n "$work/ctrl/postinst"
sh -n "$work/ctrl/postrm"
grep -qx "/etc/llmops/llmopsd.conf" "$work/ctrl/conffiles"
! grep -q "systemctl enable\|systemctl start" "$work/ctrl/postinst" || { echo "postinst must enable nothing"; exit 1; }

# Install into a root directory and run the installed binaries.
root="$work/root"
dpkg-deb -x "$deb" "$root"
for f in usr/bin/llmopsd usr/bin/llmopsctl usr/lib/systemd/system/llmopsd.service usr/lib/sysusers.d/llmops.conf \
         usr/lib/tmpfiles.d/llmops.conf etc/llmops/llmopsd.conf usr/include/llmops/module.h usr/share/doc/llmops/README.md \
         usr/share/llmops/default-model.gguf; do
  test -e "$root/$f" || { echo "the .deb lacks /$f"; exit 1; }
done
for stage in data prompts tuning eval registry serving monitor pipelines; do
  test -f "$root/usr/lib/llmops/modules/llmops_$stage.so" || { echo "the .deb lacks the $stage module"; exit 1; }
done
! find "$root" -name '*test*' -o -name '*.a' | grep -q . || { echo "test files or static libraries in the package"; exit 1; }
! find "$root" -name '*cuda*' | grep -q . || { echo "the base package must carry no CUDA"; find "$root" -name '*cuda*'; exit 1; }

# The CUDA driver ships on its own, where this build made it.
if [ -f "$build/lib/llmops/drivers/libllmops_cuda.so" ]; then
  cdeb="$work/out/llmops-cuda_${version}_amd64.deb"
  crpm="$work/out/llmops-cuda-${version}.x86_64.rpm"
  test -f "$cdeb" || { echo "missing $cdeb"; ls "$work/out"; exit 1; }
  test -f "$crpm" || { echo "missing $crpm"; ls "$work/out"; exit 1; }
  dpkg-deb -I "$cdeb" > "$work/cinfo"
  grep -q "^ Package: llmops-cuda$" "$work/cinfo"
  grep -q "^ Depends: llmops (= $version), libcublas-13-0" "$work/cinfo" || { cat "$work/cinfo"; exit 1; }
  dpkg-deb -c "$cdeb" | grep -q "./usr/lib/llmops/drivers/libllmops_cuda.so$" || { dpkg-deb -c "$cdeb"; exit 1; }
  [ "$(dpkg-deb -c "$cdeb" | grep -c '^-')" = 1 ] || { echo "llmops-cuda carries more than the driver"; dpkg-deb -c "$cdeb"; exit 1; }
  rpm -qp --requires "$crpm" 2>/dev/null | grep -q "^llmops = $version" || { rpm -qp --requires "$crpm"; exit 1; }
  rpm -qlp "$crpm" 2>/dev/null | grep -qx /usr/lib/llmops/drivers/libllmops_cuda.so
fi
"$root/usr/bin/llmopsd" --version | grep -q "llmopsd $version"
"$root/usr/bin/llmopsctl" --version | grep -q "llmopsctl $version"
# The packaged configuration serves the packaged model (here under $root instead of /).
model="$root/usr/share/llmops/default-model.gguf"
"$root/usr/bin/llmopsd" --check-config --config "$root/etc/llmops/llmopsd.conf" --module-dir "$root/usr/lib/llmops/modules" \
  --serving.model="$model" | tee "$work/check" | grep -q "configuration OK"
grep -q "8 module(s) load" "$work/check" || { cat "$work/check"; exit 1; }
# The installed binary finds its modules relative to itself (no --module-dir), and serves.
"$root/usr/bin/llmopsd" --config "$root/etc/llmops/llmopsd.conf" --module-dir "$root/usr/lib/llmops/modules" \
  --state-dir "$work/state" --runtime-dir "$work/run" --http.listen 127.0.0.1:0 --serving.model="$model" > "$work/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f "$work/run/llmopsd.json" ] && break; sleep 0.1; done
port=$(sed -n 's/.*"http_port": \([0-9]*\).*/\1/p' "$work/run/llmopsd.json")
curl -sf "http://127.0.0.1:$port/healthz" | grep -q '"ok"'
"$root/usr/bin/llmopsctl" --socket "$work/run/admin.sock" modules | grep -q "serving"
curl -sf "http://127.0.0.1:$port/v1/completions" -H 'content-type: application/json' \
  -d '{"model":"default-model","prompt":"","max_tokens":8,"temperature":0}' | grep -q '"text"' \
  || { echo "the packaged model does not answer"; cat "$work/daemon.log"; exit 1; }
kill -TERM $pid
wait $pid
pid=

# The .rpm's file list.
rpm -qlp "$rpm" 2>/dev/null > "$work/rpmfiles"
for f in /usr/bin/llmopsd /usr/bin/llmopsctl /usr/lib/llmops/modules/llmops_serving.so /usr/lib/systemd/system/llmopsd.service \
         /usr/lib/sysusers.d/llmops.conf /etc/llmops/llmopsd.conf /usr/share/llmops/default-model.gguf; do
  grep -qx "$f" "$work/rpmfiles" || { echo "the .rpm lacks $f"; cat "$work/rpmfiles"; exit 1; }
done
rpm -qp --configfiles "$rpm" 2>/dev/null | grep -qx /etc/llmops/llmopsd.conf
rpm -qp --scripts "$rpm" 2>/dev/null | grep -q "useradd -r -g llmops"
echo "packages OK: $(ls "$work/out" | grep -E '\.(deb|rpm)$' | tr '\n' ' ')"

#!/usr/bin/env bash
# systemd-analyze verify on the unit (with ExecStart pointed at the built binary, since the
# packaged path exists only once installed), and the sysusers/tmpfiles files applied to a
# scratch root.
set -euo pipefail
build=$1
src=$2
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze is not installed"; exit 0; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/usr/bin/llmopsd|$build/bin/llmopsd|" "$src/systemd/llmopsd.service" > "$work/llmopsd.service"
systemd-analyze verify "$work/llmopsd.service" 2> "$work/verify.log" || { cat "$work/verify.log"; exit 1; }
if grep -v "Unknown user\|Failed to look up user\|llmops" "$work/verify.log" | grep -q .; then
  cat "$work/verify.log"
  exit 1
fi
for key in Type=notify WatchdogSec= Restart=on-failure User=llmops StateDirectory= RuntimeDirectory= NoNewPrivileges=yes \
           ProtectSystem=strict ProtectHome=yes PrivateTmp=yes "CapabilityBoundingSet=$" DeviceAllow=char-nvidia; do
  grep -q "^$key" "$src/systemd/llmopsd.service" || { echo "llmopsd.service lacks $key"; exit 1; }
done
mkdir -p "$work/root/etc"
touch "$work/root/etc/passwd" "$work/root/etc/group"
systemd-sysusers --root="$work/root" "$src/systemd/llmops.sysusers"
grep -q "^llmops:" "$work/root/etc/passwd"
grep -q "^llmops:" "$work/root/etc/group"
systemd-tmpfiles --root="$work/root" --create "$src/systemd/llmops.tmpfiles"
test -d "$work/root/var/lib/llmops"
echo "units OK"

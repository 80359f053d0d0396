# Enables and starts nothing; makes systemd see the unit.
install -d -m 0750 -o llmops -g llmops /var/lib/llmops
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
exit 0

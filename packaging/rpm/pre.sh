# Creates the llmops user and group before the files land.
getent group llmops >/dev/null || groupadd -r llmops
getent passwd llmops >/dev/null || useradd -r -g llmops -d /var/lib/llmops -s /sbin/nologin -c "llmops appliance daemon" llmops
exit 0

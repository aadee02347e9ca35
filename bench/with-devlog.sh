#!/bin/sh
# Runs a command with a syslog receiver on /dev/log, as every real host has one (see
# bench/src/devlog.rs, which does the same for twofold-bench): the host's when /dev/log is a
# live socket; otherwise a receiver of this script's own, bound for the command's run and
# removed afterwards. A /dev/log that exists but is dead is left alone and the run refused.
set -eu
if [ -S /dev/log ] && /usr/bin/python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect("/dev/log")' 2>/dev/null; then
    exec "$@"
fi
if [ -e /dev/log ]; then
    echo "with-devlog: /dev/log exists but nothing receives on it; fix the host's syslog first" >&2
    exit 1
fi
/usr/bin/python3 -c '
import os, socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
os.chmod("/dev/log", 0o666)
print("ready", flush=True)
while True:
    s.recv(65536)
' > /tmp/with-devlog.$$ &
receiver=$!
trap 'kill $receiver 2>/dev/null || true; rm -f /dev/log /tmp/with-devlog.$$' EXIT INT TERM
for _ in $(seq 100); do grep -q ready /tmp/with-devlog.$$ 2>/dev/null && break; sleep 0.05; done
"$@"

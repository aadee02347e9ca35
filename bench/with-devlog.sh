#!/bin/sh
# Runs a command with a syslog receiver on /dev/log, as every real host has one (see
# bench/src/devlog.rs, which does the same for twofold-bench): the host's when /dev/log is a
# live socket; otherwise a receiver of this script's own, bound for the command's run and
# removed afterwards (also when this script is killed: the receiver then notices it is gone,
# removes the socket it bound and exits). A /dev/log that exists but is dead is left alone and
# the run refused.
set -eu
if [ -S /dev/log ] && /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect("/dev/log")' 2>/dev/null; then
    exec "$@"
fi
if [ -e /dev/log ]; then
    echo "with-devlog: /dev/log exists but nothing receives on it; fix the host's syslog first" >&2
    exit 1
fi
# The receiver says it is ready on a pipe (no file in a shared directory to be raced for).
ready=$(mktemp -d)
mkfifo -m 0600 "$ready/fifo"
/usr/bin/python3 -c '
import os, socket, sys
parent = int(sys.argv[1])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
ours = os.stat("/dev/log").st_ino
os.chmod("/dev/log", 0o666)
with open(sys.argv[2], "w") as f:
    f.write("ready\n")
s.settimeout(1.0)
while True:
    try:
        s.recv(65536)
    except socket.timeout:
        if os.getppid() != parent:
            try:
                if os.stat("/dev/log").st_ino == ours:
                    os.unlink("/dev/log")
            except OSError:
                pass
            sys.exit(0)
' "$$" "$ready/fifo" &
receiver=$!
trap 'kill $receiver 2>/dev/null || true; wait $receiver 2>/dev/null || true; rm -f /dev/log; rm -rf "$ready"' EXIT INT TERM
read -r _ < "$ready/fifo"
"$@"

#!/bin/sh
# Runs "$@" in the caller's private mount namespace (unshare -m) with /dev/log leading to the
# test's own datagram socket $1/log.sock. /dev is replaced, in this namespace only, by a tmpfs
# of symlinks to the real entries, plus log -> the socket. Nothing outside the namespace changes.
set -eu
T=$1
shift
mkdir -p "$T/olddev"
mount --bind /dev "$T/olddev"
mount -t tmpfs -o mode=0755 twofold-test-dev /dev
for e in "$T"/olddev/*; do
  ln -s "$e" "/dev/${e##*/}"
done
ln -sf "$T/log.sock" /dev/log
exec "$@"

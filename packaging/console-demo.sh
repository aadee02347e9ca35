#!/bin/bash
# make console-demo: the admin console (Cockpit) over a sandboxed twofold, and nothing outside
# it changes for good. As root: a private D-Bus with twofold-enrolld, cockpit-ws on 127.0.0.1
# in a private mount namespace (packaging/console-ws.sh) whose PAM service asks the password
# then twofold, an admin account (in the policy's admin group) and a plain user, both with
# printed passwords. Ctrl-C (or SIGTERM) removes all of it: processes, accounts, group,
# sandbox directory.
#
# Environment: BIN_DIR (built binaries, default target/release), CONSOLE_PORT (default 9090),
# CONSOLE_ADMIN (default tfdemo-admin), CONSOLE_USER (default tfdemo-user).
set -euo pipefail

BIN_DIR=$(realpath "${BIN_DIR:-target/release}")
PORT=${CONSOLE_PORT:-9090}
ADMIN=${CONSOLE_ADMIN:-tfdemo-admin}
USER_NAME=${CONSOLE_USER:-tfdemo-user}
GROUP=${ADMIN}s
REPO=$(pwd)
. "$REPO/packaging/demo-lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "make console-demo needs root: it creates accounts and runs cockpit-ws in a mount namespace." >&2
    exit 1
fi
for b in twofold twofold-enrolld libpam_twofold.so; do
    [ -e "$BIN_DIR/$b" ] || { echo "missing $BIN_DIR/$b: build first (make build)" >&2; exit 1; }
done
for f in /usr/lib/cockpit/cockpit-ws /etc/pam.d/cockpit /usr/share/cockpit/shell; do
    [ -e "$f" ] || { echo "missing $f: install cockpit-ws, cockpit-bridge and cockpit-system" >&2; exit 1; }
done
for u in "$ADMIN" "$USER_NAME"; do
    if getent passwd "$u" >/dev/null; then
        echo "an account named $u exists already; the demo will not touch it (set CONSOLE_ADMIN / CONSOLE_USER)." >&2
        exit 1
    fi
done
if getent group "$GROUP" >/dev/null; then
    echo "a group named $GROUP exists already; the demo will not touch it (set CONSOLE_ADMIN)." >&2
    exit 1
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "127.0.0.1:$PORT is in use (a Cockpit already?): set CONSOLE_PORT." >&2
    exit 1
fi

SANDBOX=$(mktemp -d /tmp/twofold-console-demo.XXXXXX)
chmod 0755 "$SANDBOX"
PIDS=()
MADE=()
cleanup() {
    trap - INT TERM EXIT
    # Whatever happens to the terminal meanwhile (closed, a reader gone: SIGPIPE, a write
    # error), the removal runs to its end: no exit on errors, no death by SIGPIPE, messages
    # that may fail.
    trap '' PIPE
    set +e
    { echo; echo "Stopping the console demo and removing everything it made..."; } 2>/dev/null
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    # The Cockpit sessions of the demo accounts (their bridges) go too.
    for u in "${MADE[@]}"; do pkill -KILL -u "$u" 2>/dev/null || true; done
    for u in "${MADE[@]}"; do
        for _ in $(seq 50); do pgrep -u "$u" >/dev/null || break; sleep 0.1; done
        userdel "$u" 2>/dev/null || true
    done
    groupdel "$GROUP" 2>/dev/null || true
    rm -rf "$SANDBOX"
    echo "Done: the machine is as the demo found it." 2>/dev/null
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

cat > "$SANDBOX/policy.toml" <<EOT
# The console demo's policy: 2FA optional, $GROUP manages others.
mode = "optional"
admin_group = "$GROUP"
[enrollment]
at_login = true
grace_period = "7d"
recovery_codes = 5
issuer = "twofold console demo"
EOT
chmod 0644 "$SANDBOX/policy.toml"
install -d -m 0700 "$SANDBOX/state"

# A private system bus with the product's bus policy (the console's live updates reach the
# demo's admin group through Subscribe and the unicast Changed).
install -d -m 0755 "$SANDBOX/run"

groupadd "$GROUP"
MADE+=("$ADMIN")
useradd --no-create-home --home-dir / --shell /bin/sh --groups "$GROUP" --comment "twofold console demo admin" "$ADMIN"
MADE+=("$USER_NAME")
useradd --no-create-home --home-dir / --shell /bin/sh --comment "twofold console demo user" "$USER_NAME"
ADMIN_PASSWORD=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
USER_PASSWORD=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
echo "$ADMIN:$ADMIN_PASSWORD" | chpasswd
echo "$USER_NAME:$USER_PASSWORD" | chpasswd

start_bus_and_daemon "$SANDBOX/run/system_bus_socket"

# The verification service, socket-activated as the package's unit would be, and named in the
# module's arguments as on a packaged host (for callers that are not root).
[ -e "$BIN_DIR/twofold-verifyd" ] || { echo "missing $BIN_DIR/twofold-verifyd: build first (make build)" >&2; exit 1; }
systemd-socket-activate -l "$SANDBOX/run/verify.sock" -E JOURNAL_STREAM=0:0 \
    "$BIN_DIR/twofold-verifyd" --policy "$SANDBOX/policy.toml" --state "$SANDBOX/state" \
    >/dev/null 2>"$SANDBOX/verifyd.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$SANDBOX/run/verify.sock" ] && break; sleep 0.05; done
chmod 0666 "$SANDBOX/run/verify.sock"

# Cockpit's login: the password, then twofold (a code once enrolled). Only the two demo
# accounts: the host's own accounts are not under the demo's policy and state, so for them
# this Cockpit would be a password-only login (found by the attacker review).
MODULE="$BIN_DIR/libpam_twofold.so"
ARGS="policy=$SANDBOX/policy.toml state=$SANDBOX/state verify_socket=$SANDBOX/run/verify.sock"
cat > "$SANDBOX/pam.cockpit" <<EOT
# twofold console demo (seen only inside the demo's mount namespace)
auth     requisite pam_succeed_if.so quiet user in $ADMIN:$USER_NAME
auth     requisite pam_listfile.so item=user sense=deny file=/etc/cockpit/disallowed-users onerr=succeed
auth     required  pam_unix.so
auth     required  $MODULE $ARGS
account  requisite pam_succeed_if.so quiet user in $ADMIN:$USER_NAME
account  required  pam_unix.so
account  required  $MODULE $ARGS
session  required  pam_permit.so
password required  pam_deny.so
EOT
chmod 0644 "$SANDBOX/pam.cockpit"
install -d -m 0755 "$SANDBOX/cockpit"
cp -a /usr/share/cockpit/. "$SANDBOX/cockpit/"
rm -rf "$SANDBOX/cockpit/twofold"
install -d -m 0755 "$SANDBOX/cockpit/twofold"
install -m 0644 "$REPO"/packaging/cockpit/twofold/* "$SANDBOX/cockpit/twofold/"

unshare --mount --propagation private sh "$REPO/packaging/console-ws.sh" \
    "$SANDBOX/run" "$SANDBOX/pam.cockpit" "$SANDBOX/cockpit" "$PORT" 2>"$SANDBOX/cockpit-ws.log" &
PIDS+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1
done
for _ in $(seq 100); do
    "$BIN_DIR/twofold" list >/dev/null 2>&1 && break; sleep 0.05
done

cat <<EOT

twofold console demo is running. Everything lives in $SANDBOX; Ctrl-C removes all of it.

  Open:     http://127.0.0.1:$PORT/twofold
  Admin:    $ADMIN    password: $ADMIN_PASSWORD   (in $GROUP, the policy's admin_group)
  User:     $USER_NAME    password: $USER_PASSWORD

  Log in as the admin: the users table, the distribution, require/exempt/reset, the default.
  "Your account" enrolls the account you logged in with (QR code, then a code from the app);
  from then on its login asks for a code after the password. The user sees only that page.

Change something from the command line and watch the page follow (as root, another terminal):

  export DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS
  $BIN_DIR/twofold require $USER_NAME
  $BIN_DIR/twofold list

Logs: $SANDBOX/cockpit-ws.log, $SANDBOX/enrolld.log, $SANDBOX/verifyd.log; the module logs to syslog (authpriv).
EOT

wait_until_interrupted

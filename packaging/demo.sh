#!/bin/bash
# make demo: a sandbox where twofold protects SSH logins, and nothing outside it changes for
# good. As root: a private D-Bus with twofold-enrolld, an sshd on 127.0.0.1 under its own PAM
# service name, a policy requiring 2FA and a demo account with a printed password. Ctrl-C (or
# SIGTERM) removes all of it: processes, account, PAM service file, sandbox directory.
#
# Environment: BIN_DIR (built binaries, default target/release), DEMO_PORT (default 2222),
# DEMO_USER (default twofold-demo).
set -euo pipefail

BIN_DIR=$(realpath "${BIN_DIR:-target/release}")
PORT=${DEMO_PORT:-2222}
USER_NAME=${DEMO_USER:-twofold-demo}
SERVICE=twofold-demo-sshd
REPO=$(pwd)
. "$REPO/packaging/demo-lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "make demo needs root: it creates an account and a PAM service for the sandbox." >&2
    exit 1
fi
for b in twofold twofold-enrolld libpam_twofold.so; do
    [ -e "$BIN_DIR/$b" ] || { echo "missing $BIN_DIR/$b: build first (make build)" >&2; exit 1; }
done
if getent passwd "$USER_NAME" >/dev/null; then
    echo "an account named $USER_NAME exists already; the demo will not touch it (set DEMO_USER)." >&2
    exit 1
fi
if [ -e "/etc/pam.d/$SERVICE" ]; then
    echo "/etc/pam.d/$SERVICE exists already (another demo running?); not touching it." >&2
    exit 1
fi

SANDBOX=$(mktemp -d /tmp/twofold-demo.XXXXXX)
chmod 0755 "$SANDBOX"
PIDS=()
MADE_RUN_SSHD=
cleanup() {
    trap - INT TERM EXIT
    # Whatever happens to the terminal meanwhile (closed, a reader gone: SIGPIPE, a write
    # error), the removal runs to its end: no exit on errors, no death by SIGPIPE, messages
    # that may fail.
    trap '' PIPE
    set +e
    { echo; echo "Stopping the twofold demo and removing everything it made..."; } 2>/dev/null
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    # sshd's per-connection processes (started from the sandbox's sshd) and the account's
    # processes (an open SSH session) go too.
    pkill -TERM -f "$SANDBOX/" 2>/dev/null || true
    pkill -KILL -u "$USER_NAME" 2>/dev/null || true
    for _ in $(seq 50); do pgrep -f "$SANDBOX/" >/dev/null || break; sleep 0.1; done
    pkill -KILL -f "$SANDBOX/" 2>/dev/null || true
    userdel "$USER_NAME" 2>/dev/null || true
    rm -f "/etc/pam.d/$SERVICE"
    rm -rf "$SANDBOX"
    if [ -n "$MADE_RUN_SSHD" ]; then rmdir /run/sshd 2>/dev/null || true; fi
    echo "Done: the machine is as the demo found it." 2>/dev/null
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

# Policy: 2FA required for everyone, set up inside the login, a week to do it.
cat > "$SANDBOX/policy.toml" <<'EOF'
# The demo's policy: everyone must use 2FA and sets it up at the next login.
mode = "required"
admin_group = "root"
[enrollment]
at_login = true
grace_period = "7d"
recovery_codes = 5
issuer = "twofold demo"
EOF
chmod 0644 "$SANDBOX/policy.toml"
install -d -m 0700 "$SANDBOX/state"

# A private system bus that loads the product's own bus policy.
start_bus_and_daemon "$SANDBOX/bus"

# The demo account.
PASSWORD=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
useradd --no-create-home --home-dir / --shell /bin/sh --comment "twofold demo" "$USER_NAME"
echo "$USER_NAME:$PASSWORD" | chpasswd

# sshd under its own PAM service: password (common-auth) then twofold.
MODULE="$BIN_DIR/libpam_twofold.so"
ARGS="policy=$SANDBOX/policy.toml state=$SANDBOX/state"
cat > "/etc/pam.d/$SERVICE" <<EOF
# twofold demo (removed when the demo stops)
@include common-auth
auth    required $MODULE $ARGS
@include common-account
account required $MODULE $ARGS
session required pam_permit.so
password required pam_deny.so
EOF
ssh-keygen -q -t ed25519 -N '' -f "$SANDBOX/host_key"
cat > "$SANDBOX/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $SANDBOX/host_key
PidFile none
UsePAM yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
PubkeyAuthentication no
AuthenticationMethods keyboard-interactive
PermitRootLogin no
PrintMotd no
EOF
if [ ! -d /run/sshd ]; then mkdir -p /run/sshd; MADE_RUN_SSHD=1; fi
ln -s /usr/sbin/sshd "$SANDBOX/$SERVICE"
"$SANDBOX/$SERVICE" -D -f "$SANDBOX/sshd_config" -E "$SANDBOX/sshd.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "Server listening" "$SANDBOX/sshd.log" 2>/dev/null && break; sleep 0.05; done
for _ in $(seq 100); do
    "$BIN_DIR/twofold" status >/dev/null 2>&1 && break; sleep 0.05
done

cat <<EOF

twofold demo is running. Everything lives in $SANDBOX; Ctrl-C removes all of it.

  Policy:   2FA is required for everyone; it is set up inside the first login.
  Account:  $USER_NAME    password: $PASSWORD

Log in (another terminal):

  ssh -p $PORT -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no $USER_NAME@127.0.0.1

  After the password, the login shows a QR code: scan it with an authenticator app (Aegis,
  FreeOTP, Google Authenticator, ...), type the 6-digit code, and keep the recovery codes.
  Log in again: now the password and a code from the app.

Try the admin commands against the sandbox (as root, another terminal):

  export DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS
  $BIN_DIR/twofold list
  $BIN_DIR/twofold status $USER_NAME
  $BIN_DIR/twofold reset $USER_NAME     # the next login enrolls again
  $BIN_DIR/twofold exempt $USER_NAME    # logins ask for no code
  $BIN_DIR/twofold --policy $SANDBOX/policy.toml --state $SANDBOX/state explain $USER_NAME --service $SERVICE

Logs: $SANDBOX/sshd.log, $SANDBOX/enrolld.log; the module logs to syslog (authpriv).
EOF

wait_until_interrupted

#!/bin/bash
# make fleet-demo: two "hosts" whose users' 2FA state lives in one LDAP directory (issue #23):
# enroll on one, log in on the other with the same app. As root, everything in one temporary
# directory: a private slapd (OpenLDAP with the otp overlay and twofold's schema,
# packaging/ldap/twofold.ldif, and the service account twofold binds as) on a local socket and
# on 127.0.0.1; two sshd "hosts" on 127.0.0.1 ports, each with its own PAM service name, state
# directory, private D-Bus and twofold-enrolld, and the same policy (`[store] backend = "ldap"`);
# a demo account with a printed password. Ctrl-C (or SIGTERM) removes all of it: processes,
# account, PAM service files, the directory and its data.
#
# The demo account is a local one (useradd, removed at the end, as `make demo` does) and only
# its 2FA state is in the directory: a directory user logging in with a password needs more
# than twofold (pam_ldap, or a password hash nslcd may read) and an NSS configuration in a
# namespace of its own; the system tests do that (tests/src/slapd.rs, NssHost), the demo shows
# what twofold keeps in the directory.
#
# Environment: BIN_DIR (built binaries, default target/release), FLEET_PORT_A and FLEET_PORT_B
# (the hosts' SSH ports, default 2223 and 2224), FLEET_LDAP_PORT (slapd on 127.0.0.1, default
# 3389), DEMO_USER (default twofold-fleet).
set -euo pipefail

BIN_DIR=$(realpath "${BIN_DIR:-target/release}")
PORT_A=${FLEET_PORT_A:-2223}
PORT_B=${FLEET_PORT_B:-2224}
LDAP_PORT=${FLEET_LDAP_PORT:-3389}
USER_NAME=${DEMO_USER:-twofold-fleet}
SERVICE_A=twofold-fleet-a
SERVICE_B=twofold-fleet-b
SUFFIX=dc=example,dc=org
ADMIN_DN=cn=admin,$SUFFIX
SERVICE_DN=cn=twofold,ou=services,$SUFFIX
TWOFOLD_BASE=ou=twofold,$SUFFIX
REPO=$(pwd)
. "$REPO/packaging/demo-lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "make fleet-demo needs root: it creates an account and PAM services for the sandbox." >&2
    exit 1
fi
for b in twofold twofold-enrolld libpam_twofold.so; do
    [ -e "$BIN_DIR/$b" ] || { echo "missing $BIN_DIR/$b: build first (make build)" >&2; exit 1; }
done
for t in slapd slapadd slappasswd ldapadd ldapsearch; do
    command -v "$t" >/dev/null || { echo "missing $t: install slapd and ldap-utils (make deps)" >&2; exit 1; }
done
if getent passwd "$USER_NAME" >/dev/null; then
    echo "an account named $USER_NAME exists already; the demo will not touch it (set DEMO_USER)." >&2
    exit 1
fi
for s in "$SERVICE_A" "$SERVICE_B"; do
    if [ -e "/etc/pam.d/$s" ]; then
        echo "/etc/pam.d/$s exists already (another fleet demo running?); not touching it." >&2
        exit 1
    fi
done
for p in "$PORT_A" "$PORT_B" "$LDAP_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "127.0.0.1:$p is in use: set FLEET_PORT_A, FLEET_PORT_B or FLEET_LDAP_PORT." >&2
        exit 1
    fi
done

SANDBOX=$(mktemp -d /tmp/twofold-fleet-demo.XXXXXX)
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
    { echo; echo "Stopping the twofold fleet demo and removing everything it made..."; } 2>/dev/null
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    # sshd's per-connection processes (started from the sandbox's sshds) and the account's
    # processes (an open SSH session) go too.
    pkill -TERM -f "$SANDBOX/" 2>/dev/null || true
    pkill -KILL -u "$USER_NAME" 2>/dev/null || true
    for _ in $(seq 50); do pgrep -f "$SANDBOX/" >/dev/null || break; sleep 0.1; done
    pkill -KILL -f "$SANDBOX/" 2>/dev/null || true
    userdel "$USER_NAME" 2>/dev/null || true
    rm -f "/etc/pam.d/$SERVICE_A" "/etc/pam.d/$SERVICE_B"
    rm -rf "$SANDBOX"
    if [ -n "$MADE_RUN_SSHD" ]; then rmdir /run/sshd 2>/dev/null || true; fi
    echo "Done: the machine is as the demo found it." 2>/dev/null
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

# ---- The directory: slapd's cn=config made with slapadd, as tests/src/slapd.rs does ----
install -d -m 0700 "$SANDBOX/slapd" "$SANDBOX/slapd/db" "$SANDBOX/slapd/slapd.d"
SOCKET="$SANDBOX/slapd/ldapi"
LDAPI="ldapi://${SOCKET//\//%2F}"
LDAP_URI="ldap://127.0.0.1:$LDAP_PORT/"
ldif_of() { grep -v '^#' "$1"; echo; }
{
    cat <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $SANDBOX/slapd/slapd.pid
olcArgsFile: $SANDBOX/slapd/slapd.args
olcAuthzRegexp: {0}"gidNumber=0\+uidNumber=0,cn=peercred,cn=external,cn=auth" "$ADMIN_DN"

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: {0}back_mdb
olcModuleLoad: {1}otp

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

EOF
    # The otp module defines the OATH-LDAP schema itself: never loaded again from a file.
    for s in core cosine nis inetorgperson; do ldif_of "/etc/ldap/schema/$s.ldif"; done
    ldif_of "$REPO/packaging/ldap/twofold.ldif"
    cat <<EOF
dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact="$ADMIN_DN" manage by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $SUFFIX
olcRootDN: $ADMIN_DN
olcDbDirectory: $SANDBOX/slapd/db
olcDbMaxSize: 268435456
olcDbIndex: objectClass eq
olcDbIndex: uid,cn eq
olcAccess: {0}to attrs=userPassword by self =xw by anonymous auth by * none
olcAccess: {1}to attrs=oathSecret by dn.exact="$SERVICE_DN" write by * none
olcAccess: {2}to dn.subtree="$TWOFOLD_BASE" by dn.exact="$SERVICE_DN" write by * none
olcAccess: {3}to dn.subtree="ou=people,$SUFFIX" by * read
olcAccess: {4}to dn.subtree="ou=groups,$SUFFIX" by * read
olcAccess: {5}to dn.subtree="ou=services,$SUFFIX" by self read by * none
olcAccess: {6}to dn.base="$SUFFIX" by * read
olcAccess: {7}to * by * none

dn: olcOverlay={0}otp,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
olcOverlay: {0}otp
EOF
} > "$SANDBOX/slapd/config.ldif"
slapadd -n0 -F "$SANDBOX/slapd/slapd.d" -l "$SANDBOX/slapd/config.ldif" >"$SANDBOX/slapd/slapadd.log" 2>&1 \
    || { cat "$SANDBOX/slapd/slapadd.log" >&2; exit 1; }
slapd -d stats -F "$SANDBOX/slapd/slapd.d" -h "$LDAPI $LDAP_URI" >"$SANDBOX/slapd.log" 2>&1 &
PIDS+=($!)
as_admin() { "$1" -Q -Y EXTERNAL -H "$LDAPI" "${@:2}"; }
for _ in $(seq 200); do
    as_admin ldapsearch -b "" -s base namingContexts >/dev/null 2>&1 && break
    sleep 0.05
done
# The service account's password: in a root-only file for twofold, hashed for slapd.
SERVICE_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
install -m 0600 /dev/null "$SANDBOX/ldap.secret"
printf '%s' "$SERVICE_PASSWORD" > "$SANDBOX/ldap.secret"
HASH=$(slappasswd -h '{SSHA}' -T "$SANDBOX/ldap.secret")
as_admin ldapadd >/dev/null <<EOF
dn: $SUFFIX
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,$SUFFIX
objectClass: organizationalUnit
ou: people

dn: ou=groups,$SUFFIX
objectClass: organizationalUnit
ou: groups

dn: ou=services,$SUFFIX
objectClass: organizationalUnit
ou: services

dn: $TWOFOLD_BASE
objectClass: organizationalUnit
ou: twofold

dn: ou=accounts,$TWOFOLD_BASE
objectClass: organizationalUnit
ou: accounts

dn: ou=params,$TWOFOLD_BASE
objectClass: organizationalUnit
ou: params

dn: $SERVICE_DN
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: twofold
description: what twofold hosts bind as
userPassword: $HASH
EOF

# ---- The policy, the same on both hosts ----
cat > "$SANDBOX/policy.toml" <<EOF
# The fleet demo's policy, the same on every host: everyone must use 2FA and sets it up at the
# next login; the state lives in the directory, so a user enrolls once for every host.
mode = "required"
admin_group = "root"
[enrollment]
at_login = true
grace_period = "7d"
recovery_codes = 5
issuer = "twofold fleet demo"
[store]
backend = "ldap"
[store.ldap]
# The hosts reach the directory over its local socket: plain ldap:// to a port of this host
# above 1023 is refused by the policy (another local user could listen there).
uri = "$LDAPI"
base = "$TWOFOLD_BASE"
bind_dn = "$SERVICE_DN"
bind_password_file = "$SANDBOX/ldap.secret"
EOF
chmod 0644 "$SANDBOX/policy.toml"

# The demo account (local; its 2FA state goes to the directory).
PASSWORD=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
useradd --no-create-home --home-dir / --shell /bin/sh --comment "twofold fleet demo" "$USER_NAME"
echo "$USER_NAME:$PASSWORD" | chpasswd

# ---- The hosts: state directory, daemon on a private bus, PAM service, sshd ----
if [ ! -d /run/sshd ]; then mkdir -p /run/sshd; MADE_RUN_SSHD=1; fi
MODULE="$BIN_DIR/libpam_twofold.so"
start_host() {
    local name=$1 service=$2 port=$3
    local dir="$SANDBOX/host-$name"
    install -d -m 0755 "$dir"
    install -d -m 0700 "$dir/state"
    start_bus_and_daemon "$dir/bus" "$dir/state" "$name"
    local args="policy=$SANDBOX/policy.toml state=$dir/state"
    cat > "/etc/pam.d/$service" <<EOF
# twofold fleet demo, host $name (removed when the demo stops)
@include common-auth
auth    required $MODULE $args
@include common-account
account required $MODULE $args
session required pam_permit.so
password required pam_deny.so
EOF
    ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
    cat > "$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile none
UsePAM yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
PubkeyAuthentication no
AuthenticationMethods keyboard-interactive
PermitRootLogin no
PrintMotd no
EOF
    # sshd's PAM service is its program's name.
    ln -s /usr/sbin/sshd "$dir/$service"
    "$dir/$service" -D -f "$dir/sshd_config" -E "$dir/sshd.log" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q "Server listening" "$dir/sshd.log" 2>/dev/null && break; sleep 0.05; done
    for _ in $(seq 100); do "$BIN_DIR/twofold" status >/dev/null 2>&1 && break; sleep 0.05; done
}
start_host b "$SERVICE_B" "$PORT_B"
BUS_B=$DBUS_SYSTEM_BUS_ADDRESS
start_host a "$SERVICE_A" "$PORT_A"
BUS_A=$DBUS_SYSTEM_BUS_ADDRESS

SSH_OPTS="-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"
cat <<EOF

twofold fleet demo is running. Everything lives in $SANDBOX; Ctrl-C removes all of it.

  Directory: a private slapd (OpenLDAP, the otp overlay, twofold's schema) on $LDAPI (the hosts' store) and $LDAP_URI
             and $LDAPI; twofold binds as $SERVICE_DN
  Host A:    sshd on 127.0.0.1:$PORT_A, PAM service $SERVICE_A, state $SANDBOX/host-a/state
  Host B:    sshd on 127.0.0.1:$PORT_B, PAM service $SERVICE_B, state $SANDBOX/host-b/state
  Policy:    $SANDBOX/policy.toml on both: 2FA required, set up inside the first login,
             the users' 2FA state in the directory ([store] backend = "ldap")
  Account:   $USER_NAME    password: $PASSWORD
             (a local account; its 2FA state lives in the directory)

Log in on host A (another terminal): after the password the login shows a QR code; scan it
with an authenticator app, type the 6-digit code, keep the recovery codes:

  ssh -p $PORT_A $SSH_OPTS $USER_NAME@127.0.0.1

Then on host B: no enrollment there, the password and a code from the same app (the code
host A took is refused here: it logs in once, fleet-wide; wait for the next one):

  ssh -p $PORT_B $SSH_OPTS $USER_NAME@127.0.0.1

Admin commands (as root, another terminal), through host A's daemon:

  export DBUS_SYSTEM_BUS_ADDRESS=$BUS_A
  $BIN_DIR/twofold list
  $BIN_DIR/twofold status $USER_NAME

through host B's, whose changes host A sees at once (one directory):

  DBUS_SYSTEM_BUS_ADDRESS=$BUS_B $BIN_DIR/twofold exempt $USER_NAME
  $BIN_DIR/twofold list                        # host A: exempt, set on B
  DBUS_SYSTEM_BUS_ADDRESS=$BUS_B $BIN_DIR/twofold inherit $USER_NAME
  $BIN_DIR/twofold reset $USER_NAME            # the next login on either host enrolls again

What twofold keeps in the directory (as its admin, over the local socket; oathSecret is the
TOTP secret, readable only by twofold's service account and the admin):

  ldapsearch -Q -Y EXTERNAL -H $LDAPI -LLL -b $TWOFOLD_BASE

Logs: $SANDBOX/host-a/sshd.log, $SANDBOX/host-b/sshd.log, $SANDBOX/slapd.log (every operation), $SANDBOX/enrolld-a.log, $SANDBOX/enrolld-b.log; the module logs to syslog (authpriv).
EOF

wait_until_interrupted

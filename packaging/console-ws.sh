#!/bin/sh
# cockpit-ws for the console's sandbox (make console-demo, tests/console.rs). Run it inside a
# private mount namespace (`unshare -m --propagation private sh console-ws.sh ...`): there, and
# only there, the sandbox's bus directory covers /run/dbus (cockpit-session clears the
# environment, so the bridge always talks to /run/dbus/system_bus_socket), its PAM service file
# covers /etc/pam.d/cockpit, and its copy of Cockpit's packages (with the console) covers
# /usr/share/cockpit. The host sees none of it.
#
# cockpit-ws runs as WS_USER (default cockpit-wsinstance, as Cockpit's own units run it): a
# login then goes through the setuid cockpit-session, as on a real host.
#
# Arguments: BUS_DIR PAM_FILE COCKPIT_SHARE_DIR PORT [WS_USER]
set -eu
[ $# -eq 4 ] || [ $# -eq 5 ] || { echo "usage: console-ws.sh BUS_DIR PAM_FILE COCKPIT_SHARE_DIR PORT [WS_USER]" >&2; exit 2; }
# Run by hand in the host's own mount namespace, the mounts below would cover the host's
# /run/dbus, /etc/pam.d/cockpit and /usr/share/cockpit: refused.
# (`unshare -m sh console-ws.sh` gives this shell a namespace its parent does not share.)
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink "/proc/$PPID/ns/mnt")" ]; then
    echo "console-ws.sh: not in a private mount namespace; run it as: unshare -m --propagation private sh console-ws.sh ..." >&2
    exit 2
fi
mount --bind "$1" /run/dbus
mount --bind "$2" /etc/pam.d/cockpit
mount --bind "$3" /usr/share/cockpit
# The browser test lets one account use sudo (Cockpit's administrative access) inside only.
if [ -n "${CONSOLE_SUDOERS_D:-}" ]; then mount --bind "$CONSOLE_SUDOERS_D" /etc/sudoers.d; fi
exec setpriv --reuid="${5:-cockpit-wsinstance}" --regid="${5:-cockpit-wsinstance}" --init-groups \
    /usr/lib/cockpit/cockpit-ws --no-tls --address 127.0.0.1 --port "$4"

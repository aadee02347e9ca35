# Shared by the sandboxes (demo.sh, console-demo.sh, fleet-demo.sh), sourced by bash: the
# private bus with the daemon, and the wait until Ctrl-C. Uses REPO, BIN_DIR, SANDBOX and the
# array PIDS of the script that sources it.

# A private system bus with the product's own bus policy, its socket at $1, and
# twofold-enrolld on it with the sandbox's policy and the state directory $2 (default
# $SANDBOX/state); DBUS_SYSTEM_BUS_ADDRESS exported. With $3 (a name), its files are
# bus-$3.conf, bus-$3.log and enrolld-$3.log: one bus and daemon per "host" of a fleet.
start_bus_and_daemon() {
    local socket=$1 state=${2:-$SANDBOX/state} tag=${3:+-$3}
    sed -e "s|@SOCKET@|$socket|" -e "s|@INCLUDE@|$REPO/packaging/dbus/org.twofold.Enroll1.conf|" \
        "$REPO/packaging/dbus/private-bus.conf.in" > "$SANDBOX/bus$tag.conf"
    dbus-daemon --config-file="$SANDBOX/bus$tag.conf" --nofork --nopidfile --nosyslog 2>"$SANDBOX/bus$tag.log" &
    PIDS+=($!)
    for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done
    export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$socket"
    JOURNAL_STREAM=0:0 "$BIN_DIR/twofold-enrolld" --policy "$SANDBOX/policy.toml" --state "$state" \
        2>"$SANDBOX/enrolld$tag.log" &
    PIDS+=($!)
}

# Until Ctrl-C; a component that dies ends the demo too.
wait_until_interrupted() {
    while true; do
        for p in "${PIDS[@]}"; do
            if ! kill -0 "$p" 2>/dev/null; then
                echo "a demo process ($p) stopped; see the logs in $SANDBOX" >&2
                exit 1
            fi
        done
        sleep 1
    done
}

#!/usr/bin/env bash
# stop.sh DIR  -- stop the server that start.sh started for DIR,
# by the pid in DIR/server.pid: that pid is also the process group of its
# PHP_CLI_SERVER_WORKERS children, so the whole group gets SIGTERM (then SIGKILL).
set -uo pipefail

DIR=${1:?usage: stop.sh DIR}
PIDFILE="$DIR/server.pid"
[ -f "$PIDFILE" ] || { echo "no $PIDFILE: nothing to stop"; exit 0; }
pid=$(cat "$PIDFILE")
if ! [[ $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
    echo "pid $pid not running"; rm -f "$PIDFILE"; exit 0
fi
if ! tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- ' -S 127.0.0.1:'; then
    echo "pid $pid is not a php -S server (stale pid file?): not killing it" >&2
    rm -f "$PIDFILE"; exit 1
fi
group_alive() { pgrep -g "$pid" >/dev/null 2>&1 || kill -0 "$pid" 2>/dev/null; }
kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
for _ in $(seq 1 50); do
    group_alive || break
    sleep 0.1
done
if group_alive; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    sleep 0.2
fi
rm -f "$PIDFILE"
echo "stopped server pid $pid"

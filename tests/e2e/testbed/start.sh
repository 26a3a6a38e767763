#!/usr/bin/env bash
# start.sh PORT DIR [DUMP]
#   Serve the wiki in DIR (made by setup.sh) on
#   http://127.0.0.1:PORT (loopback only) with PHP's built-in server, after
#   importing DUMP (an XML dump, e.g. from gen_dump.py) if one is given and not
#   yet imported (see import.sh). The server's pid (= its process group, shared
#   with its worker processes) goes to DIR/server.pid; stop it with stop.sh DIR.
#
# Environment:
#   MW_WORKERS=4   PHP_CLI_SERVER_WORKERS: requests served in parallel
#   MW_MISER=1     run with $wgMiserMode (as Wikipedia/Fandom do)
#   MW_QUIET=0     log every request to DIR/server.log (default: errors only)
set -euo pipefail

PORT=${1:?usage: start.sh PORT DIR [DUMP]}
DIR=${2:?usage: start.sh PORT DIR [DUMP]}
DUMP=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
MW=/usr/share/mediawiki
WORKERS=${MW_WORKERS:-4}
[[ $PORT =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || { echo "bad PORT: $PORT" >&2; exit 1; }
[ -f "$DIR/LocalSettings.php" ] || { echo "no wiki in $DIR: run setup.sh $DIR first" >&2; exit 1; }
DIR=$(cd "$DIR" && pwd)
PIDFILE="$DIR/server.pid"

is_our_server() {  # is_our_server PID: a live php -S process?
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q -- ' -S 127.0.0.1:'
}
if [ -f "$PIDFILE" ] && is_our_server "$(cat "$PIDFILE")"; then
    if [ "$(cat "$DIR/server.port" 2>/dev/null)" = "$PORT" ]; then
        [ -n "$DUMP" ] && { echo "server running: stop.sh $DIR before importing" >&2; exit 1; }
        echo "already running: pid $(cat "$PIDFILE"), http://127.0.0.1:$PORT/api.php"; exit 0
    fi
    echo "a server for $DIR already runs on port $(cat "$DIR/server.port" 2>/dev/null): stop.sh $DIR" >&2
    exit 1
fi

if [ -n "$DUMP" ]; then
    "$HERE/import.sh" "$DIR" "$DUMP"
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "port $PORT is already in use on 127.0.0.1" >&2; exit 1
fi

quiet=(-q)
[ "${MW_QUIET:-1}" = 0 ] && quiet=()
# setsid: the server gets its own process group (pgid = its pid), so stop.sh
# can end it and all its forked workers at once by that one pid.
cd "$DIR"
env PHP_CLI_SERVER_WORKERS="$WORKERS" MW_CONFIG_FILE="$DIR/LocalSettings.php" \
    MW_INSTALL_PATH=$MW MW_MISER="${MW_MISER:-}" \
    setsid php \
    -d opcache.enable_cli=1 -d opcache.memory_consumption=192 \
    -d opcache.interned_strings_buffer=16 -d opcache.max_accelerated_files=20000 \
    -d apc.enable_cli=1 -d apc.shm_size=256M \
    -d memory_limit=512M -d max_execution_time=300 -d display_errors=stderr \
    -S "127.0.0.1:$PORT" -t "$MW" "${quiet[@]}" "$HERE/router.php" \
    >> "$DIR/server.log" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$PIDFILE"
echo "$PORT" > "$DIR/server.port"

# Wait until the API answers (first request also warms opcache).
url="http://127.0.0.1:$PORT/api.php?action=query&meta=siteinfo&format=json"
answers() {  # php, not curl: php is there whenever the wiki is
    php -r '$c = stream_context_create(["http" => ["timeout" => 10]]);
            $r = @file_get_contents($argv[1], false, $c);
            exit($r !== false && strpos($r, "\"query\"") !== false ? 0 : 1);' "$url"
}
for _ in $(seq 1 150); do
    if answers; then
        echo "serving $DIR on http://127.0.0.1:$PORT/ (api: /api.php, pages: /wiki/Title) pid $pid, $WORKERS workers"
        exit 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
done
echo "server did not come up; see $DIR/server.log" >&2
tail -20 "$DIR/server.log" >&2
kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
rm -f "$PIDFILE"
exit 1

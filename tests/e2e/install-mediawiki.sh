#!/usr/bin/env bash
# install-mediawiki.sh -- install what the end-to-end tests need (Debian 12):
# MediaWiki 1.39 and the PHP CLI with SQLite, mbstring, xml, intl and APCu.
# Idempotent: does nothing when every package is already installed.
#
#   sudo tests/e2e/install-mediawiki.sh
#
# `mediawiki` depends on "apache2 | httpd", so apache2 comes along; it must
# never start (it would listen on *:80). Debian's policy-rc.d hook (exit 101)
# prevents it: one is created for the duration of the install if the system
# has none, and apache2 is stopped if it is found running anyway.
# The tests serve the wiki with PHP's built-in server on 127.0.0.1 only.
set -euo pipefail

PKGS=(mediawiki php-cli php-sqlite3 php-mbstring php-xml php-intl php-apcu)

log() { printf '[install-mediawiki] %s\n' "$*"; }

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
        || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
    log "installing: ${missing[*]}"
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    cleanup() { [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d; return 0; }
    trap cleanup EXIT
    t0=$(date +%s%N)
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${PKGS[@]}" >/dev/null
    log "packages installed in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
else
    log "packages already installed: ${PKGS[*]}"
fi

# Belt and braces: if something did start apache2, stop it (it binds *:80).
if command -v apache2ctl >/dev/null 2>&1 && pgrep -x apache2 >/dev/null 2>&1; then
    log "apache2 is running: stopping it"
    apache2ctl stop || true
fi

[ -f /usr/share/mediawiki/maintenance/install.php ] \
    || { echo "MediaWiki not found in /usr/share/mediawiki after the install" >&2; exit 1; }
php -r 'foreach (["pdo_sqlite", "mbstring", "xml", "intl", "apcu"] as $m)
            if (!extension_loaded($m)) { fwrite(STDERR, "php extension missing: $m\n"); exit(1); }' \
    || exit 1
log "ok: $(php -r 'echo PHP_VERSION;') with MediaWiki in /usr/share/mediawiki"

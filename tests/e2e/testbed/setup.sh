#!/usr/bin/env bash
# setup.sh DIR  -- create a private SQLite MediaWiki 1.39 instance in DIR, using
# Debian's MediaWiki in place (/usr/share/mediawiki). Idempotent: an existing
# instance is kept (its TestbedSettings.php is re-written); FORCE=1 rebuilds it.
#
# The instance does NOT copy MediaWiki: the code stays in /usr/share/mediawiki
# (read-only, shared) and everything that belongs to the instance lives in DIR:
#   DIR/LocalSettings.php   found by MediaWiki through MW_CONFIG_FILE
#   DIR/TestbedSettings.php the test-bed settings (included by LocalSettings.php)
#   DIR/data/*.sqlite       the databases (wiki, job queue, l10n, object cache)
#   DIR/cache/              localisation cache (PHP arrays, loaded through opcache)
#   DIR/server.pid, server.port, server.log, fake_maxlag (see README.md)
#
# Packages: with SKIP_APT=1 (what the tests use) nothing is installed and the
# script fails if MediaWiki is missing; otherwise ../install-mediawiki.sh runs
# first (apt-get, needs root; idempotent).
#
# Environment: SKIP_APT=1, FORCE=1 (recreate DIR), WIKI_NAME (default "Testwiki"),
#              ADMIN_PASS (default "testbed-admin-pass-1").
set -euo pipefail

DIR=${1:?usage: setup.sh DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
MW=/usr/share/mediawiki
WIKI_NAME=${WIKI_NAME:-Testwiki}
ADMIN_PASS=${ADMIN_PASS:-testbed-admin-pass-1}

log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }

# ---------------------------------------------------------------- packages
if [ "${SKIP_APT:-0}" != 1 ]; then
    "$HERE/../install-mediawiki.sh"
fi
if [ ! -f $MW/maintenance/install.php ]; then
    echo "MediaWiki is not installed ($MW/maintenance/install.php is missing):" \
         "run tests/e2e/install-mediawiki.sh as root" >&2
    exit 1
fi
command -v php >/dev/null 2>&1 || { echo "php is not installed: run tests/e2e/install-mediawiki.sh" >&2; exit 1; }

write_testbed_settings() {
    cat > "$DIR/TestbedSettings.php.new" <<'PHP'
<?php
## ---------------------------------------------------------------------------
## Crawler test bed settings: written by tests/e2e/testbed/setup.sh (re-written
## each time it runs), included at the end of LocalSettings.php.
## ---------------------------------------------------------------------------
# URL layout as on Fandom: /api.php, /index.php, /load.php and /wiki/Title
# (router.php maps /wiki/* onto index.php for php's built-in server).
$wgScriptPath = "";
$wgArticlePath = "/wiki/$1";
$wgUsePathInfo = true;
# Follow the host:port the request came in on (start.sh chooses the port).
# From the command line (maintenance scripts) this is http://localhost.
$wgServer = WebRequest::detectServer();
$wgCanonicalServer = $wgServer;

# Anonymous users read; nobody edits or registers through the web.
$wgGroupPermissions['*']['edit'] = false;
$wgGroupPermissions['*']['createaccount'] = false;
# No rate limits of any kind (reads are never rate-limited by MediaWiki; this
# also lifts the purge/edit/... limits). API result limits stay as on a real
# wiki: 500 for anonymous users (5000 with apihighlimits, which they lack).
$wgRateLimits = [];
$wgGroupPermissions['*']['noratelimit'] = true;

# SQLite: the main DB in WAL mode (set by setup.sh: readers never block the one
# writer) and without fsync per commit. This is a disposable test bed:
# speed over durability (import is ~2x faster).
$wgDBservers = [ [ 'host' => '', 'dbname' => $wgDBname, 'user' => '', 'password' => '',
	'type' => 'sqlite', 'flags' => DBO_DEFAULT, 'load' => 1,
	'variables' => [ 'synchronous' => 'OFF' ] ] ];

# Jobs run from start.sh/import.sh (runJobs.php), never during web requests.
$wgJobRunRate = 0;

# Caches: APCu is shared by all php -S workers (it is set up before they fork);
# parser output goes there too, so read requests never write to SQLite.
$wgMainCacheType = CACHE_ACCEL;
$wgParserCacheType = CACHE_ACCEL;
$wgMessageCacheType = CACHE_ACCEL;
$wgSessionCacheType = CACHE_ACCEL;
$wgCacheDirectory = __DIR__ . '/cache';
$wgLocalisationCacheConf['store'] = 'array';
$wgLocalisationCacheConf['storeDirectory'] = __DIR__ . '/cache/l10n';

# The synthetic history spans 2008-2024: keep all of it in recentchanges.
$wgRCMaxAge = 30 * 365 * 86400;

# Uploads through the web stay off; import.sh uploads the test bed's files (File: pages,
# ns 6) with importImages.php into DIR/images, served as /images by router.php.
$wgEnableUploads = false;
$wgUploadDirectory = __DIR__ . '/images';
$wgUploadPath = '/images';
$wgUseImageMagick = false;
$wgEnableEmail = false;
$wgEnableUserEmail = false;
$wgPingback = false;
$wgShowExceptionDetails = true;

# Miser mode (as on Wikipedia/Fandom) when the server runs with MW_MISER=1:
# some list modules may then return fewer than 'limit' results with a continue.
$wgMiserMode = (bool)getenv( 'MW_MISER' );

# maxlag. A single SQLite server has no replicas, so MediaWiki reports a lag of
# -1 and even ?maxlag=-1 would never fail; report 0 instead, so that maxlag=-1
# fails as it does on Wikimedia wikis. To simulate a lagged wiki, write a
# number of seconds into DIR/fake_maxlag: while that file exists, a request
# with maxlag=N below it fails (api.php: HTTP 200, MediaWiki-API-Error: maxlag,
# Retry-After and X-Database-Lag headers). Remove the file to stop.
$wgHooks['ApiMaxLagInfo'][] = static function ( &$lagInfo ) {
	$f = __DIR__ . '/fake_maxlag';
	if ( is_file( $f ) ) {
		$lagInfo = [ 'host' => 'db-fake-replica', 'type' => 'db',
			'lag' => (float)trim( (string)file_get_contents( $f ) ) ];
	} elseif ( $lagInfo['lag'] < 0 ) {
		$lagInfo['lag'] = 0;
		$lagInfo['host'] = $lagInfo['host'] ?: 'localhost';
	}
};
PHP
    mv "$DIR/TestbedSettings.php.new" "$DIR/TestbedSettings.php"
}

# ---------------------------------------------------------------- instance
if [ -f "$DIR/LocalSettings.php" ] && [ "${FORCE:-0}" != 1 ]; then
    DIR=$(cd "$DIR" && pwd)
    write_testbed_settings
    grep -q TestbedSettings.php "$DIR/LocalSettings.php" \
        || echo 'require_once __DIR__ . "/TestbedSettings.php";' >> "$DIR/LocalSettings.php"
    log "instance already exists in $DIR (settings refreshed; FORCE=1 to recreate)"
    exit 0
fi
if [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
    echo "a server is running for $DIR (pid $(cat "$DIR/server.pid")): run stop.sh $DIR first" >&2
    exit 1
fi
case "$DIR" in /|/usr*|/etc*|/var|/var/lib*|/home|/root) echo "refusing DIR=$DIR" >&2; exit 1;; esac
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
# Remove only what an instance owns (DIR may hold other files, e.g. the dump).
rm -rf "$DIR/data" "$DIR/cache" "$DIR/LocalSettings.php" "$DIR/TestbedSettings.php" \
    "$DIR/TestbedSettings.php.new" "$DIR/imported.sha1" "$DIR/dump_users.txt" \
    "$DIR/install.log" "$DIR/l10n.log" "$DIR/import.log" "$DIR/server.log" \
    "$DIR/server.pid" "$DIR/server.port" "$DIR/fake_maxlag" "$DIR/images" "$DIR/files"
mkdir -p "$DIR/data" "$DIR/cache"

log "running maintenance/install.php (SQLite) into $DIR"
t0=$(date +%s%N)
php $MW/maintenance/install.php --dbtype=sqlite --dbpath="$DIR/data" --dbname=my_wiki \
    --confpath="$DIR" --scriptpath="" --server="http://127.0.0.1" --lang=en \
    --pass="$ADMIN_PASS" --skins=Vector --extensions=ParserFunctions,Cite \
    "$WIKI_NAME" Admin > "$DIR/install.log" 2>&1 \
    || { cat "$DIR/install.log" >&2; exit 1; }

# The test-bed settings live in their own file, included at the end of
# LocalSettings.php; it is re-written on every run of setup.sh.
echo 'require_once __DIR__ . "/TestbedSettings.php";' >> "$DIR/LocalSettings.php"
write_testbed_settings

php -r '$d = new PDO("sqlite:" . $argv[1]); $d->exec("PRAGMA journal_mode=WAL");' \
    "$DIR/data/my_wiki.sqlite"

log "building the localisation cache (en)"
MW_CONFIG_FILE="$DIR/LocalSettings.php" php $MW/maintenance/rebuildLocalisationCache.php \
    --lang=en --force > "$DIR/l10n.log" 2>&1 || { cat "$DIR/l10n.log" >&2; exit 1; }
t1=$(date +%s%N)
log "wiki created in $(( (t1 - t0) / 1000000 )) ms: $DIR"
echo "next: $HERE/gen_dump.py 300 -o $DIR/dump.xml && $HERE/start.sh PORT $DIR $DIR/dump.xml"

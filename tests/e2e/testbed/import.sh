#!/usr/bin/env bash
# import.sh DIR DUMP  -- import a MediaWiki XML dump (.xml, .xml.gz) into the
# instance made by setup.sh in DIR, then fill every derived table the API reads:
#   pagelinks / templatelinks / categorylinks / redirect / iwlinks / externallinks
#   (prop=links, list=backlinks, list=categorymembers, prop=categories, ...),
#   recentchanges (list=recentchanges), site_stats (meta=siteinfo&siprop=statistics);
# and uploads the test bed's files (gen_files.py: File: pages with image info).
# Idempotent: a dump whose sha1 is in DIR/imported.sha1 is not imported again.
# Environment: IMPORT_JOBS (parallel refreshLinks processes, default: nproc),
#              PYTHON (the interpreter for the user-name extraction, default python3).
set -euo pipefail

DIR=${1:?usage: import.sh DIR DUMP}
DUMP=${2:?usage: import.sh DIR DUMP}
HERE=$(cd "$(dirname "$0")" && pwd)
MW=/usr/share/mediawiki
DIR=$(cd "$DIR" && pwd)
[ -f "$DIR/LocalSettings.php" ] || { echo "no wiki in $DIR: run setup.sh $DIR" >&2; exit 1; }
[ -r "$DUMP" ] || { echo "cannot read $DUMP" >&2; exit 1; }
DUMP=$(cd "$(dirname "$DUMP")" && pwd)/$(basename "$DUMP")
export MW_CONFIG_FILE="$DIR/LocalSettings.php" MW_INSTALL_PATH=$MW
JOBS=${IMPORT_JOBS:-$(nproc)}
LOG="$DIR/import.log"

T0=$(date +%s%N); TS=$T0
step() {  # step NAME: print the time taken by the previous step
    local now; now=$(date +%s%N)
    printf '[import %(%H:%M:%S)T] %-22s %7d ms\n' -1 "$1" $(( (now - TS) / 1000000 )) | tee -a "$LOG"
    TS=$now
}
sql() { php -r '$d = new PDO("sqlite:" . $argv[1]); echo $d->query($argv[2])->fetchColumn(), "\n";' \
        "$DIR/data/my_wiki.sqlite" "$1"; }

sum=$(sha1sum < "$DUMP" | cut -c1-40)
if grep -qx "$sum" "$DIR/imported.sha1" 2>/dev/null; then
    echo "[import] $DUMP already imported into $DIR" ; exit 0
fi
echo "== import $DUMP into $DIR ($(date -u +%FT%TZ))" >> "$LOG"
TS=$(date +%s%N)

# 1. accounts for the dump's contributors (else edits show as "imported>Name")
"${PYTHON:-python3}" - "$DUMP" > "$DIR/dump_users.txt" <<'PY'
import gzip, html, re, sys
p = sys.argv[1]
f = gzip.open(p, "rt", encoding="utf-8") if p.endswith(".gz") else open(p, encoding="utf-8")
names = set()
rx = re.compile(r"<username>([^<]*)</username>")
for line in f:
    if "<username>" in line:
        names.update(html.unescape(m) for m in rx.findall(line))
print("\n".join(sorted(names)))
PY
php "$HERE/create_users.php" < "$DIR/dump_users.txt" >> "$LOG" 2>&1
step "create users"

# 2. pages and revisions. --no-updates: no link tables yet (refreshLinks below
#    parses each page once, instead of once per imported revision).
php $MW/maintenance/importDump.php --no-updates --report 1000 "$DUMP" >> "$LOG" 2>&1
step "importDump.php"

# 3. link tables, in JOBS parallel processes over page_id ranges (SQLite WAL:
#    the short write transactions queue on the lock, the parsing runs in parallel)
maxid=$(sql "SELECT MAX(page_id) FROM page")
chunk=$(( (maxid + JOBS - 1) / JOBS ))
pids=()
for ((i = 0; i < JOBS; i++)); do
    s=$(( i * chunk + 1 )); e=$(( (i + 1) * chunk ))
    php $MW/maintenance/refreshLinks.php --e "$e" "$s" > "$DIR/refreshLinks.$i.log" 2>&1 &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
cat "$DIR"/refreshLinks.*.log >> "$LOG"; rm -f "$DIR"/refreshLinks.*.log
[ $rc = 0 ] || { echo "refreshLinks failed, see $LOG" >&2; exit 1; }
step "refreshLinks.php x$JOBS"

# 3b. files: small PNGs (gen_files.py) uploaded as File: pages (ns 6) into DIR/images
"${PYTHON:-python3}" "$HERE/gen_files.py" "$DIR/files"
php $MW/maintenance/importImages.php --user Admin --comment "Test bed file." \
    --extensions png "$DIR/files" >> "$LOG" 2>&1
step "importImages.php"

# 4. recentchanges (imports do not write it) and the statistics
php $MW/maintenance/rebuildrecentchanges.php >> "$LOG" 2>&1
step "rebuildrecentchanges"

# 4b. the full-text search index (importDump does not fill it): list=search finds the pages
php $MW/maintenance/rebuildtextindex.php >> "$LOG" 2>&1
step "rebuildtextindex"
php $MW/maintenance/initSiteStats.php --update >> "$LOG" 2>&1
step "initSiteStats.php"

# 5. whatever jobs the above queued (usually none with --no-updates)
php $MW/maintenance/runJobs.php --memory-limit=512M >> "$LOG" 2>&1
step "runJobs.php"

echo "$sum" >> "$DIR/imported.sha1"
printf '[import] done in %d ms: %s pages, %s revisions, %s pagelinks, %s categorylinks, %s templatelinks, %s redirects\n' \
    $(( ($(date +%s%N) - T0) / 1000000 )) "$(sql 'SELECT COUNT(*) FROM page')" \
    "$(sql 'SELECT COUNT(*) FROM revision')" "$(sql 'SELECT COUNT(*) FROM pagelinks')" \
    "$(sql 'SELECT COUNT(*) FROM categorylinks')" "$(sql 'SELECT COUNT(*) FROM templatelinks')" \
    "$(sql 'SELECT COUNT(*) FROM redirect')" | tee -a "$LOG"

#!/usr/bin/env bash
# Reports at scale (issues #6 and #7): with 1,000,000 emails and 5,000,000 events in the
# embedded SQLite database, the first page of the email report (unfiltered, by stage, by batch
# and stage), the batch report and a lead's activity must each answer in under 100 ms through
# the API, and the web UI's report page and a lead's activity page render in under 300 ms.
#
# The data is written straight into a database the release binary created (sqlite3 with
# recursive CTEs: minutes instead of hours through the API), with the same shape the service
# writes: emails across 10 batches and 100,000 leads, 5 events each, milestones and batch
# counts consistent with the events. Then `mailtrail serve` answers each request 20 times
# over HTTP (curl) and the median and worst times are printed against the target. Baseline in
# the same run: the batch report computed the naive way, by scanning the emails (sqlite3).
# The emails are queued one a second up to now, so the overview's last 7 and 30 days hold
# 604,800 and all 1,000,000 of them; the web pages measured include the overview (`/`, under
# 300 ms), the report's second and previous pages, a search by recipient and the report
# filtered by what an overview count counts. A page a build does not have prints `n/a`.
#
# Usage: bench/reports.sh [EMAILS]   (default 1000000; KEEP=1 keeps the work directory;
#        BIN=path/to/mailtrail skips the build and measures that binary)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

EMAILS=${1:-1000000}
LEADS=$((EMAILS / 10))
RUNS=20
TARGET_MS=100

command -v sqlite3 >/dev/null || install_packages sqlite3
command -v curl >/dev/null || install_packages curl
if [[ -z ${BIN:-} ]]; then
  log "building the release binary"
  cargo build --release -q -p mailtrail
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/mailtrail
fi
# The first email is queued EMAILS seconds ago, the last one now.
START_MS=$(($(date +%s) * 1000 - EMAILS * 1000))
WORK=$(mktemp -d /tmp/mailtrail-bench-reports.XXXXXX)
trap stop_all EXIT
export MAILTRAIL_DATA_DIR=$WORK/data MAILTRAIL_LOG=warn

created=$("$BIN" account create Bench --json)
ACCOUNT=$(sed -E 's/.*"id":"([^"]+)".*/\1/' <<<"$created")
KEY=$(sed -E 's/.*"api_key":"([^"]+)".*/\1/' <<<"$created")
echo "bench-password-1" | "$BIN" user create bench@mailtrail.test --account "$ACCOUNT" --role admin >/dev/null
DB=$WORK/data/mailtrail.db

log "writing $EMAILS emails, $((EMAILS * 5)) events and $LEADS leads"
start=$(date +%s)
sqlite3 "$DB" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9)
INSERT INTO contents (id, account_id, from_address, subject, text_body, created_at_ms)
SELECT printf('0190c000-0000-7000-8000-%012x', i), '$ACCOUNT', 'sales@shop.example',
       'Offer ' || i || ' for {{first_name}}', 'Hello', $START_MS FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $LEADS - 1)
INSERT INTO leads (id, account_id, address, address_key, first_name, fields, permission,
                   created_at_ms, updated_at_ms)
SELECT printf('0190d000-0000-7000-8000-%012x', i), '$ACCOUNT', 'lead' || i || '@example.com',
       'lead' || i || '@example.com', 'Lead' || i, '{}', 'yes', $START_MS, $START_MS
FROM n;
-- stage by i % 10: 0-3 delivered, 4-5 opened, 6 clicked, 7 failed, 8 sent, 9 unsubscribed.
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $EMAILS - 1)
INSERT INTO emails (id, account_id, lead_id, content_id, to_address, to_key, to_domain, fields,
                    batch, stage, status, reason, attempts, next_attempt_at_ms,
                    delivered_at_ms, created_at_ms, updated_at_ms, milestones)
SELECT printf('0190e000-0000-7000-8000-%012x', i), '$ACCOUNT',
       printf('0190d000-0000-7000-8000-%012x', i % $LEADS),
       printf('0190c000-0000-7000-8000-%012x', i * 10 / $EMAILS),
       'lead' || (i % $LEADS) || '@example.com', 'lead' || (i % $LEADS) || '@example.com',
       'example.com', '{"first_name":"Lead' || (i % $LEADS) || '"}', 'batch-' || (i * 10 / $EMAILS),
       CASE i % 10 WHEN 4 THEN 'opened' WHEN 5 THEN 'opened' WHEN 6 THEN 'clicked'
                   WHEN 7 THEN 'failed' WHEN 8 THEN 'sent' WHEN 9 THEN 'unsubscribed'
                   ELSE 'delivered' END,
       CASE i % 10 WHEN 7 THEN '550 5.1.1 User unknown' WHEN 8 THEN NULL
                   ELSE '250 2.0.0 Ok: queued' END,
       CASE i % 10 WHEN 7 THEN 'userunknown' ELSE NULL END,
       1, NULL, $START_MS + i * 1000 + 500, $START_MS + i * 1000, $START_MS + i * 1000,
       CASE i % 10 WHEN 4 THEN 17 WHEN 5 THEN 17 WHEN 6 THEN 49 WHEN 7 THEN 2 WHEN 8 THEN 0
                   WHEN 9 THEN 257 ELSE 1 END
FROM n;
INSERT INTO events (email_id, seq, account_id, kind, at_ms, detail)
SELECT e.id, k.seq, e.account_id, k.kind, e.created_at_ms + k.seq * 100, '{}'
FROM emails e JOIN (SELECT 1 AS seq, 'queued' AS kind UNION ALL SELECT 2, 'deferred'
                    UNION ALL SELECT 3, 'delivered' UNION ALL SELECT 4, 'opened'
                    UNION ALL SELECT 5, 'opened') k;
INSERT INTO batch_stats (account_id, batch, emails, delivered, failed, opened, clicked,
                         unsubscribed, open_tracking, click_tracking, first_queued_at_ms,
                         last_queued_at_ms)
SELECT account_id, batch, COUNT(*), SUM(milestones & 1 > 0), SUM(milestones & 2 > 0),
       SUM(milestones & 16 > 0), SUM(milestones & 32 > 0), SUM(milestones & 256 > 0), 1, 1,
       MIN(created_at_ms), MAX(created_at_ms)
FROM emails GROUP BY account_id, batch;
COMMIT;
SQL
# The overview's counts per day, where the build keeps them.
if [[ -n $(sqlite3 "$DB" "SELECT name FROM sqlite_master WHERE name = 'account_days'") ]]; then
  sqlite3 "$DB" <<SQL
INSERT INTO account_days (account_id, day, emails, delivered, failed, dropped, opened, clicked,
                          unsubscribed, complained, open_tracking, click_tracking)
SELECT account_id, created_at_ms / 86400000, COUNT(*), SUM(milestones & 1 > 0),
       SUM(milestones & 2 > 0), SUM(milestones & 4 > 0), SUM(milestones & 16 > 0),
       SUM(milestones & 32 > 0), SUM(milestones & 256 > 0), SUM(milestones & 512 > 0), 1, 1
FROM emails GROUP BY account_id, created_at_ms / 86400000;
SQL
fi
sqlite3 "$DB" 'ANALYZE;'
log "written in $(($(date +%s) - start)) s: $(sqlite3 "$DB" 'SELECT COUNT(*) FROM emails') emails, $(sqlite3 "$DB" 'SELECT COUNT(*) FROM events') events"

baseline_ms=$( { /usr/bin/time -f '%e' sqlite3 "$DB" "SELECT batch, COUNT(*), SUM(milestones & 1 > 0),
  SUM(milestones & 16 > 0) FROM emails WHERE account_id = '$ACCOUNT' GROUP BY batch" >/dev/null; } 2>&1 | awk '{printf "%d", $1 * 1000}')

"$BIN" serve >"$WORK/serve.out" 2>"$WORK/serve.err" &
track $!
for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -nE 's/^mailtrail listening on (.*)$/\1/p' "$WORK/serve.out")
[[ -n $BASE ]] || die "serve did not start: $(cat "$WORK/serve.err")"
LEAD=$(printf '0190d000-0000-7000-8000-%012x' 4242)
DAY=$(date -u -d '3 days ago' +%F)
WEEK=$(date -u -d '6 days ago' +%F)

# median and worst of RUNS requests, in ms
measure() {
  local url=$1 times
  curl -sf -o /dev/null -H "Authorization: Bearer $KEY" "$BASE$url" || die "GET $url failed"
  times=$(for _ in $(seq $RUNS); do
    curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $KEY" "$BASE$url"
  done | sort -n)
  awk -v runs=$RUNS '{ t[NR] = $1 * 1000 } END { printf "%.1f %.1f\n", t[int((runs + 1) / 2)], t[runs] }' <<<"$times"
}

printf '\n%-52s %10s %10s %8s\n' "request ($EMAILS emails, $((EMAILS * 5)) events)" "median ms" "worst ms" "< ${TARGET_MS} ms"
for url in "/v1/reports/emails?limit=50" \
           "/v1/reports/emails?stage=clicked&limit=50" \
           "/v1/reports/emails?batch=batch-3&stage=failed&limit=50" \
           "/v1/reports/emails?from=$DAY&to=$DAY&limit=50" \
           "/v1/reports/batches" \
           "/v1/leads/$LEAD/activity"; do
  read -r median worst < <(measure "$url")
  ok=$(awk -v m="$median" -v t=$TARGET_MS 'BEGIN { print (m < t) ? "yes" : "NO" }')
  printf '%-52s %10s %10s %8s\n' "$url" "$median" "$worst" "$ok"
done
# The web UI, signed in: the login form's CSRF token travels in a cookie and a hidden field.
JAR=$WORK/cookies
csrf=$(curl -s -c "$JAR" "$BASE/login" | sed -nE 's/.*name="csrf" value="([^"]+)".*/\1/p' | head -1)
curl -s -o /dev/null -b "$JAR" -c "$JAR" --data-urlencode "csrf=$csrf" \
  --data-urlencode "email=bench@mailtrail.test" --data-urlencode "password=bench-password-1" "$BASE/login"
# median and worst of RUNS requests of a page, in ms; `n/a` when this build has no such page
measure_page() {
  local url=$1 times
  local code
  code=$(curl -s -o /dev/null -b "$JAR" -w '%{http_code}' "$BASE$url")
  if [[ $code != 200 ]]; then
    echo "n/a n/a"
    return
  fi
  times=$(for _ in $(seq $RUNS); do
    curl -s -o /dev/null -b "$JAR" -w '%{time_total}\n' "$BASE$url"
  done | sort -n)
  awk -v runs=$RUNS '{ t[NR] = $1 * 1000 } END { printf "%.1f %.1f\n", t[int((runs + 1) / 2)], t[runs] }' <<<"$times"
}
# The href of a page's link with rel=NAME (next, prev), unescaped.
link() {
  curl -s -b "$JAR" "$BASE$1" | grep -o "<a href=\"[^\"]*\" rel=\"$2\"" | head -1 |
    sed -E 's/<a href="([^"]*)".*/\1/; s/&amp;/\&/g' || true
}
[[ $(curl -s -o /dev/null -b "$JAR" -w '%{http_code}' "$BASE/reports/emails") == 200 ]] ||
  die "the bench user could not sign in"
SECOND=$(link "/reports/emails" next)
[[ -n $SECOND ]] || die "the report's first page has no next page"
PREVIOUS=$(link "$SECOND" prev)
printf '\n%-52s %10s %10s %8s\n' "web page" "median ms" "worst ms" "< 300 ms"
for url in "/" "/reports/emails" "/reports/emails?stage=clicked" "$SECOND" ${PREVIOUS:+"$PREVIOUS"} \
           "/reports/emails?from=$DAY&to=$DAY" "/reports/emails?from=$WEEK&reached=complained" \
           "/reports/emails?from=$WEEK&reached=opened" "/reports/emails?recipient=lead4242@example.com" \
           "/leads/$LEAD" "/reports/batches"; do
  read -r median worst < <(measure_page "$url")
  ok=$(awk -v m="$median" 'BEGIN { print (m == "n/a") ? "-" : (m < 300) ? "yes" : "NO" }')
  printf '%-52s %10s %10s %8s\n' "${url:0:52}" "$median" "$worst" "$ok"
done

printf '\nbaseline: the batch report by scanning every email (sqlite3, no batch_stats): %s ms\n' "$baseline_ms"

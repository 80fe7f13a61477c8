#!/usr/bin/env bash
# Delivery throughput, in one run on one machine, of three contenders that each deliver N
# 2 KB emails over loopback to a fresh Postfix `smtp-sink`:
#
#   mailtrail  one POST /v1/emails/batch of N recipients, timed from just before the request
#              until the sink has received the N-th message;
#   ceiling    smtp-source (-d: connections reused, 20 sessions) straight into the sink;
#   postfix    a stock, private Postfix relaying the same smtp-source load to the sink, timed
#              from the first injected message until the sink has received the N-th one.
#
# Arrival is measured at the sink: it runs with `-M N` (exit after N messages), so "done" is
# the moment it exits; its `-c` counters say how many arrived if a contender falls short.
# Then a table with Mailtrail's ratio to the ceiling (target >= 40 %) and to Postfix
# (target >= 3x), and Mailtrail's peak RSS (VmHWM).
#
# Usage (as root, Debian 12):  bench/delivery.sh        N=5000 bench/delivery.sh
# Environment: N (emails, default 20000), SESSIONS (smtp-source sessions, default 20),
# CEILING_RUNS (default 3; the ceiling's median run counts),
# DEADLINE (seconds each contender may take, default 120), KEEP=1 keeps the temp dir
# (logs, sink counters, Postfix's maillog) for inspection, BUILD=0 skips `cargo build
# --release` and uses the target/release/mailtrail already there.
# HTML=1 gives Mailtrail's emails an HTML part too (the text's 25 lines as 25 links, ~4 KB);
# CLICKS=1 (implies HTML=1) also turns open and click tracking on, so every link is rewritten
# by the HTML rewriter at send time. Compare `HTML=1` with `CLICKS=1` runs for what click
# tracking costs; smtp-source and Postfix always send the plain 2 KB message.
#
# Everything it starts (sinks, smtp-source, mailtrail, the private Postfix) is stopped by PID
# on exit, including on Ctrl-C or failure. Nothing binds port 25; the system Postfix is never
# touched (the private one lives under the temp dir, `postfix -c DIR`).
set -euo pipefail

N=${N:-20000}
SESSIONS=${SESSIONS:-20}
DEADLINE=${DEADLINE:-120}
SIZE=2000 # bytes of message text
CLICKS=${CLICKS:-0}
HTML=${HTML:-$CLICKS}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive integer, not '$N'" >&2; exit 2; }
[[ $SESSIONS =~ ^[1-9][0-9]*$ ]] || { echo "SESSIONS must be a positive integer" >&2; exit 2; }
[[ $DEADLINE =~ ^[1-9][0-9]*$ ]] || { echo "DEADLINE must be a positive integer" >&2; exit 2; }
[[ ${CEILING_RUNS:-3} =~ ^[1-9]$ ]] || { echo "CEILING_RUNS must be 1 to 9" >&2; exit 2; }
[[ $CLICKS =~ ^[01]$ && $HTML =~ ^[01]$ ]] || { echo "CLICKS and HTML are 0 or 1" >&2; exit 2; }
[[ $CLICKS == 0 || $HTML == 1 ]] || { echo "CLICKS=1 needs the HTML part (HTML=1)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "run as root (smtp-sink -u, a private Postfix)" >&2; exit 2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------------------------------------
# Dependencies (Debian packages, installed only when missing; no service is started).

ensure_packages() {
  local missing=()
  [[ -x /usr/sbin/smtp-sink && -x /usr/sbin/smtp-source && -x /usr/sbin/postfix ]] ||
    missing+=(postfix)
  command -v jq >/dev/null || missing+=(jq)
  command -v curl >/dev/null || missing+=(curl)
  command -v sqlite3 >/dev/null || missing+=(sqlite3)
  command -v ss >/dev/null || missing+=(iproute2)
  install_packages "${missing[@]}"
}

# ---------------------------------------------------------------------------------------------
# Process bookkeeping: every PID we start is recorded and stopped on exit.

POSTFIX_CONFIG="" # config_directory of the private Postfix while it runs

postfix_master_pid() {
  local file=$WORK/postfix/queue/pid/master.pid
  [[ -r $file ]] && tr -d ' \n' <"$file"
}

stop_postfix() {
  [[ -n $POSTFIX_CONFIG ]] || return 0
  local master i
  master=$(postfix_master_pid || true)
  postfix -c "$POSTFIX_CONFIG" stop >/dev/null 2>&1 || true
  if [[ -n $master ]]; then
    for ((i = 0; i < 100; i++)); do alive "$master" || break; sleep 0.1; done
    alive "$master" && kill -KILL "$master" 2>/dev/null || true
  fi
  POSTFIX_CONFIG=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_postfix
  stop_all
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Helpers.

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# smtp-sink on a fresh port; exits after N messages (or is ended by `timeout` at DEADLINE).
SINK_PID="" SINK_PORT="" SINK_OUT=""
start_sink() { # name
  SINK_PORT=$(free_port)
  SINK_OUT=$WORK/$1.sink.counters
  timeout -s TERM "$DEADLINE" \
    smtp-sink -u nobody -c -M "$N" "127.0.0.1:$SINK_PORT" 1000 \
    >"$SINK_OUT" 2>"$WORK/$1.sink.err" &
  SINK_PID=$!
  track "$SINK_PID"
  wait_listening "$SINK_PORT" "$SINK_PID" "smtp-sink"
}

sink_count() { # messages the sink reported so far (its -c counters end in "mesg=K\r")
  local last
  last=$(tr '\r' '\n' <"$SINK_OUT" | grep -o 'mesg=[0-9]*' | tail -n 1 || true)
  echo "${last#mesg=}" | sed 's/^$/0/'
}

# Waits for the sink to exit (it does at the N-th message, or at DEADLINE). With a sender's
# PID (smtp-source, mailtrail), also watches the sender: if it fails first, the sink gets 5 s
# to finish and is then stopped, instead of waiting for DEADLINE. Returns 0 when the sink
# received all N.
wait_sink() { # [sender pid, sender name, sender's stderr file]
  local rc=0 done_pid="" source=${1:-} i source_failure=""
  if [[ -n $source ]]; then
    wait -n -p done_pid "$SINK_PID" "$source" || rc=$?
    if [[ $done_pid == "$source" ]]; then
      forget "$source"
      if ((rc != 0)); then
        source_failure="$2 exited with $rc: $(tail -n 3 "$3" | tr '\n' ' ')"
        for ((i = 0; i < 50; i++)); do alive "$SINK_PID" || break; sleep 0.1; done
        alive "$SINK_PID" && kill -TERM "$SINK_PID" 2>/dev/null
      fi
      rc=0
      wait "$SINK_PID" || rc=$?
    fi
  else
    wait "$SINK_PID" || rc=$?
  fi
  forget "$SINK_PID"
  SINK_PID=""
  local got
  got=$(sink_count)
  if ((rc != 0 || got != N)); then
    [[ -z $source_failure ]] || log "$source_failure"
    log "the sink received $got of $N messages (exit status $rc; 124 = DEADLINE of ${DEADLINE}s)"
    return 1
  fi
}

# 25 lines of 79 characters and a newline, less the last newline (command substitution
# drops it; the caller appends one character): 2000 characters.
message_text() {
  local line i text=""
  line=$(printf "%.0sx" {1..79})
  for ((i = 0; i < 25; i++)); do text+="${line:0:75}$(printf '%04d' "$i")"$'\n'; done
  printf '%s' "$text"
}

# The HTML part for HTML=1: each line of the text a link of its own, with a query string.
message_html() {
  local line html="<html><body><table>"
  while IFS= read -r line; do
    html+="<tr><td><a href=\"https://shop.example/p/${line: -4}?utm_source=bench&amp;id=${line: -4}\">$line</a></td></tr>"
  done <<<"$(message_text)"
  printf '%s' "$html</table></body></html>"
}

declare -A SECONDS_OF RATE_OF OK_OF COUNT_OF

report() { # name count seconds ok
  local r
  r=$(rate "$2" "$3")
  SECONDS_OF[$1]=$3
  RATE_OF[$1]=$r
  OK_OF[$1]=$4
  COUNT_OF[$1]=$2
  local note=""
  [[ $4 == 1 ]] || note="  (INCOMPLETE: only $2 of $N arrived)"
  printf '%-10s %6d emails  %7.2f s  %6d emails/s%s\n' "$1" "$2" "$3" "$r" "$note"
}

# ---------------------------------------------------------------------------------------------
# 1. Mailtrail.

MT_HWM_KB=""
bench_mailtrail() {
  if [[ ${BUILD:-1} == 1 ]]; then
    log "building mailtrail (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release"
  fi
  local bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/mailtrail data=$WORK/mailtrail-data
  [[ -x $bin ]] || die "$bin missing after the build"
  mkdir -p "$data"

  local account key
  account=$(MAILTRAIL_DATA_DIR=$data MAILTRAIL_LOG=warn "$bin" account create Bench --json) ||
    die "mailtrail account create"
  key=$(jq -er .api_key <<<"$account") || die "no api_key in: $account"

  local html=""
  [[ $HTML == 1 ]] && html=$(message_html)
  jq -n --argjson n "$N" --arg text "$(message_text)x" --arg html "$html" \
    '{from: "s@shop.test", subject: "Bench", text: $text}
      + (if $html == "" then {} else {html: $html} end)
      + {recipients: [range(0; $n) | {to: "r\(.)@bench.test"}]}' >"$WORK/batch.json"

  start_sink mailtrail
  MAILTRAIL_DATA_DIR=$data MAILTRAIL_HTTP_LISTEN=127.0.0.1:0 MAILTRAIL_LOG=warn \
    MAILTRAIL_OUTBOUND_ROUTES="bench.test=127.0.0.1:$SINK_PORT" \
    "$bin" serve >"$WORK/mailtrail.out" 2>"$WORK/mailtrail.err" &
  local pid=$!
  track "$pid"

  local i addr=""
  for ((i = 0; i < 300; i++)); do
    addr=$(sed -n '1s#^mailtrail listening on http://##p' "$WORK/mailtrail.out")
    [[ -n $addr ]] && break
    alive "$pid" || die "mailtrail serve exited: $(cat "$WORK/mailtrail.err")"
    sleep 0.05
  done
  [[ -n $addr ]] || die "mailtrail serve did not print its address within 15 s"

  if [[ $CLICKS == 1 ]]; then
    local code
    code=$(curl -sS -o "$WORK/settings.json" -w '%{http_code}' -X PATCH \
      -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
      --data "{\"open_tracking\": true, \"click_tracking\": true, \"tracking_base_url\": \"http://$addr\"}" \
      "http://$addr/v1/settings") || code="curl failed"
    [[ $code == 200 ]] || die "PATCH /v1/settings answered $code: $(cat "$WORK/settings.json")"
    log "mailtrail: open and click tracking on"
  fi

  log "mailtrail: POST /v1/emails/batch with $N recipients"
  local start accepted end code
  start=$(now)
  code=$(curl -sS --max-time "$DEADLINE" -o "$WORK/batch.response.json" -w '%{http_code}' \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    --data-binary @"$WORK/batch.json" "http://$addr/v1/emails/batch") || code="curl failed"
  accepted=$(now)
  [[ $code == 202 ]] ||
    die "batch answered $code: $(head -c 500 "$WORK/batch.response.json" 2>/dev/null)"
  local queued
  queued=$(jq '[.emails[] | select(.dropped == null)] | length' "$WORK/batch.response.json")
  ((queued == N)) || die "only $queued of $N emails queued (dropped/refused): \
$(jq -c '{refused: .refused[:3], dropped: [.emails[] | select(.dropped != null)][:3]}' \
    "$WORK/batch.response.json")"

  local ok=1
  wait_sink "$pid" "mailtrail serve" "$WORK/mailtrail.err" || ok=0
  end=$(now)
  MT_HWM_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
  local cpu sessions
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' \
    "/proc/$pid/stat" 2>/dev/null || echo "?")
  sessions=$(tr '\r' '\n' <"$SINK_OUT" | grep -o 'sess=[0-9]*' | tail -n 1 || true)
  sessions=${sessions#sess=}
  log "mailtrail: 202 after $(elapsed "$start" "$accepted") s, then $(rate "$N" \
    "$(elapsed "$accepted" "$end")") emails/s from the 202 on; ${cpu} s CPU in all; peak RSS \
${MT_HWM_KB:-?} kB; the sink saw ${sessions:-0} SMTP sessions end"

  # Cross-check against Mailtrail's own record: the sink (-M N) hangs up after receiving the
  # N-th message without answering it, so exactly N-1 are "delivered" and one is still
  # unresolved; fewer would mean the sink counted a message twice. Outcomes are written in
  # batches: allow the recorder a moment to catch up.
  local delivered=0
  for ((i = 0; i < 100; i++)); do
    delivered=$(sqlite3 "$data/mailtrail.db" \
      "select count(*) from emails where stage = 'delivered'" 2>/dev/null || echo 0)
    ((delivered >= N - 1)) && break
    sleep 0.1
  done
  log "mailtrail: database: $(sqlite3 "$data/mailtrail.db" \
    "select group_concat(stage || '=' || n, ' ') from
       (select stage, count(*) as n from emails group by stage order by stage)" 2>/dev/null)"
  ((delivered == N - 1 || delivered == N)) ||
    log "mailtrail: WARNING: $delivered delivered in its database, $((N - 1)) expected"

  stop_pid "$pid" || true
  report mailtrail "$(sink_count)" "$(elapsed "$start" "$end")" "$ok"
}

# ---------------------------------------------------------------------------------------------
# 2. The ceiling: smtp-source straight into smtp-sink.

smtp_source() { # name port: starts smtp-source in the background, sets SOURCE_PID
  timeout -s TERM "$DEADLINE" \
    smtp-source -d -s "$SESSIONS" -l "$SIZE" -m "$N" -f s@shop.test -t r@bench.test \
    "127.0.0.1:$2" >"$WORK/$1.source.out" 2>"$WORK/$1.source.err" &
  SOURCE_PID=$!
  SOURCE_ERR=$WORK/$1.source.err
  track "$SOURCE_PID"
}

# A run of under a second is noisy: CEILING_RUNS runs (default 3), each with a fresh sink; the
# median counts.
bench_ceiling() {
  local runs=${CEILING_RUNS:-3} run start end ok=1 times=() got=$N
  for ((run = 1; run <= runs; run++)); do
    start_sink "ceiling$run"
    start=$(now)
    smtp_source "ceiling$run" "$SINK_PORT"
    if ! wait_sink "$SOURCE_PID" smtp-source "$SOURCE_ERR"; then ok=0; got=$(sink_count); fi
    end=$(now)
    # The sink quits at the N-th message, so smtp-source reports a lost connection: ignored.
    stop_pid "$SOURCE_PID" || true
    times+=("$(elapsed "$start" "$end")")
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ t[NR] = $1 } END { print t[int((NR + 1) / 2)] }')
  log "ceiling: smtp-source -d -s $SESSIONS -l $SIZE -m $N -> smtp-sink: ${times[*]} s (median counts)"
  report ceiling "$got" "$median" "$ok"
}

# ---------------------------------------------------------------------------------------------
# 3. A stock Postfix relaying to the sink.

# A config file dated a minute ago: Postfix re-reads files modified within the last second.
write_config() { cat >"$1"; touch -d '1 minute ago' "$1"; }

start_postfix() { # smtpd port, sink port
  local dir=$WORK/postfix
  mkdir -p "$dir/config" "$dir/queue" "$dir/data" "$dir/log"
  chmod 755 "$dir" "$dir/config" "$dir/queue" "$dir/log"
  chown postfix: "$dir/data"
  chmod 700 "$dir/data"
  write_config "$dir/config/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file = $dir/log/maillog
maillog_file_prefixes = $dir/log
myhostname = relay.bench.invalid
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_peername_lookup = no
# Nothing is delivered locally: every message for bench.test is relayed to the sink.
mydestination =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
local_recipient_maps =
mynetworks = 127.0.0.0/8
relay_domains = bench.test
relayhost = [127.0.0.1]:$2
transport_maps = inline:{bench.test=smtp:[127.0.0.1]:$2}
EOF
  # Debian's stock services, minus chroot (5th column) and the ones a relay never uses.
  write_config "$dir/config/master.cf" <<EOF
127.0.0.1:$1 inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
EOF
  POSTFIX_CONFIG=$dir/config
  postfix -c "$POSTFIX_CONFIG" start >"$WORK/postfix.start" 2>&1 ||
    die "postfix start: $(cat "$WORK/postfix.start"; cat "$dir/log/maillog" 2>/dev/null)"
  local master="" i
  for ((i = 0; i < 100; i++)); do
    master=$(postfix_master_pid || true)
    [[ -n $master ]] && break
    sleep 0.1
  done
  [[ -n $master ]] || die "postfix wrote no master.pid: $(cat "$dir/log/maillog" 2>/dev/null)"
  wait_listening "$1" "$master" "postfix"
}

bench_postfix() {
  start_sink postfix
  local port
  port=$(free_port)
  log "postfix: private instance on 127.0.0.1:$port relaying to the sink on :$SINK_PORT"
  start_postfix "$port" "$SINK_PORT"
  log "postfix: smtp-source -d -s $SESSIONS -l $SIZE -m $N -> postfix -> smtp-sink"
  local start end ok=1
  start=$(now)
  smtp_source postfix "$port"
  wait_sink "$SOURCE_PID" smtp-source "$SOURCE_ERR" || ok=0
  end=$(now)
  stop_pid "$SOURCE_PID" || true
  if ((!ok)); then
    log "postfix: last maillog lines:"
    tail -n 5 "$WORK/postfix/log/maillog" >&2 || true
  fi
  stop_postfix
  report postfix "$(sink_count)" "$(elapsed "$start" "$end")" "$ok"
}

# ---------------------------------------------------------------------------------------------

ensure_packages
WORK=$(mktemp -d /tmp/mailtrail-bench.XXXXXX)
chmod 755 "$WORK" # Postfix's daemons (postfix, nobody) pass through it
log "N=$N emails of $SIZE bytes, $SESSIONS smtp-source sessions, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); work dir $WORK"
log "mailtrail's emails: text$([[ $HTML == 1 ]] && echo ' + HTML with 25 links')$([[ $CLICKS == 1 ]] && echo ', open and click tracking on')"

bench_mailtrail
bench_ceiling
bench_postfix

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.0f %%" : "-"), 100 * a / b }'; }
ratio_x() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.1fx" : "-"), a / b }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t ? "ok" : "BELOW TARGET") }'; }

mt=${RATE_OF[mailtrail]} ce=${RATE_OF[ceiling]} pf=${RATE_OF[postfix]}
echo
printf '%-10s %8s %9s %10s\n' contender emails seconds emails/s
for name in mailtrail ceiling postfix; do
  printf '%-10s %8s %9s %10s%s\n' "$name" "${COUNT_OF[$name]}" "${SECONDS_OF[$name]}" "${RATE_OF[$name]}" \
    "$([[ ${OK_OF[$name]} == 1 ]] || echo '  INCOMPLETE')"
done
echo
printf 'mailtrail / ceiling  %8s   (target >= 40 %%)  %s\n' "$(pct "$mt" "$ce")" \
  "$(verdict "$(awk -v a="$mt" -v b="$ce" 'BEGIN { print (b > 0 ? a / b : 0) }')" 0.40)"
printf 'mailtrail / postfix  %8s   (target >= 3x)    %s\n' "$(ratio_x "$mt" "$pf")" \
  "$(verdict "$(awk -v a="$mt" -v b="$pf" 'BEGIN { print (b > 0 ? a / b : 0) }')" 3)"
printf 'mailtrail peak RSS   %8s MB (VmHWM)\n' \
  "$(awk -v k="${MT_HWM_KB:-0}" 'BEGIN { printf "%.1f", k / 1024 }')"

all_ok=1
for name in mailtrail ceiling postfix; do [[ ${OK_OF[$name]} == 1 ]] || all_ok=0; done
((all_ok)) || die "not every contender delivered all $N emails"

#!/usr/bin/env bash
# Delivery throughput with 1, 2 and 3 Mailtrail nodes sharing one PostgreSQL (issue #9): each
# run delivers N 2 KB emails over loopback to a fresh Postfix `smtp-sink`, on a fresh database
# of one throwaway PostgreSQL server started for the benchmark.
#
# Each run starts its nodes, then POSTs the N recipients to /v1/emails/batch split evenly
# across the nodes (as a load balancer would), all at once; it is timed from just before the
# requests until the sink has received the N-th message (the sink runs with `-M N`: it exits
# there). Then a table of emails/s per node count, the scaling factor against one node, and the
# machine's core count — on one machine every node, PostgreSQL and the sink share those cores,
# so this measures contention as much as scaling.
#
# Usage (as root, Debian 12):  bench/nodes.sh [N]        (N emails per run, default 20000)
# Environment: NODES (node counts to run, default "1 2 3"), DEADLINE (seconds each run may
# take, default 300), PG_FSYNC (PostgreSQL's fsync, default on), KEEP=1 keeps the temp dir
# (logs, sink counters, PostgreSQL's log), BUILD=0 skips `cargo build --release` and uses the
# binary already in ${CARGO_TARGET_DIR:-target}/release.
#
# Everything it starts (PostgreSQL, sinks, nodes) is stopped on exit, including on Ctrl-C or
# failure; nodes and sinks by PID, PostgreSQL with `pg_ctl stop`. Nothing binds a fixed port.
set -euo pipefail

N=${1:-${N:-20000}}
NODES=${NODES:-"1 2 3"}
DEADLINE=${DEADLINE:-300}
PG_FSYNC=${PG_FSYNC:-on}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive integer, not '$N'" >&2; exit 2; }
counts='^[1-9][0-9]*( [1-9][0-9]*)*$'
[[ $NODES =~ $counts ]] || { echo "NODES must list node counts, e.g. '1 2 3'" >&2; exit 2; }
[[ $DEADLINE =~ ^[1-9][0-9]*$ ]] || { echo "DEADLINE must be a positive integer" >&2; exit 2; }
[[ $PG_FSYNC == on || $PG_FSYNC == off ]] || { echo "PG_FSYNC must be on or off" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "run as root (smtp-sink -u, PostgreSQL as nobody)" >&2; exit 2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

ensure_packages() {
  local missing=()
  [[ -x /usr/sbin/smtp-sink ]] || missing+=(postfix)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  command -v psql >/dev/null || missing+=(postgresql-client)
  command -v jq >/dev/null || missing+=(jq)
  command -v curl >/dev/null || missing+=(curl)
  command -v ss >/dev/null || missing+=(iproute2)
  install_packages "${missing[@]}"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL: one throwaway server for the whole benchmark, run as nobody.

PG_BIN="" PG_PORT="" PG_DATA=""

as_nobody() { runuser -u nobody -- "$@"; }

start_postgres() {
  PG_BIN=$(find /usr/lib/postgresql -path '*/bin/initdb' | sort -V | tail -n 1)
  PG_BIN=${PG_BIN%/initdb}
  local dir=$WORK/pg
  mkdir -p "$dir"
  chown nobody "$dir"
  as_nobody "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C \
    >"$WORK/initdb.log" 2>&1 || die "initdb: $(tail -n 3 "$WORK/initdb.log")"
  PG_PORT=$(free_port)
  PG_DATA=$dir/data
  as_nobody "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$dir/postgres.log" -w \
    -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=$PG_FSYNC" \
    start >"$WORK/pg_ctl.log" 2>&1 || die "pg_ctl start: $(tail -n 3 "$dir/postgres.log")"
}

stop_postgres() {
  [[ -n $PG_DATA ]] || return 0
  as_nobody "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m fast >/dev/null 2>&1 ||
    as_nobody "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m immediate >/dev/null 2>&1 || true
  PG_DATA=""
}

cleanup() {
  local rc=$? work=$WORK
  trap - EXIT INT TERM
  WORK="" # stop_all would remove it, and PostgreSQL's data with it, while the server runs
  stop_all # the nodes first, then their database
  stop_postgres
  if [[ -n $work && -d $work ]]; then
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

psql_at() { # database sql
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -Atc "$2"
}

# ---------------------------------------------------------------------------------------------
# Helpers.

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

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

# 25 lines of 79 characters and a newline, less the last newline: 2000 characters with the
# one the caller appends (as in bench/delivery.sh).
message_text() {
  local line i text=""
  line=$(printf "%.0sx" {1..79})
  for ((i = 0; i < 25; i++)); do text+="${line:0:75}$(printf '%04d' "$i")"$'\n'; done
  printf '%s' "$text"
}

declare -A RATE_OF SECONDS_OF COUNT_OF OK_OF AFTER_OF

# ---------------------------------------------------------------------------------------------
# One run: C nodes on a fresh database.

run_nodes() { # node count
  local c=$1 db=bench_$1 bin=$TARGET/release/mailtrail
  as_nobody "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db" ||
    die "createdb $db"
  local url=postgres://postgres@127.0.0.1:$PG_PORT/$db
  local account key
  account=$(MAILTRAIL_DATABASE_URL=$url MAILTRAIL_DATA_DIR=$WORK/data MAILTRAIL_LOG=warn \
    "$bin" account create Bench --json) || die "mailtrail account create"
  key=$(jq -er .api_key <<<"$account") || die "no api_key in: $account"

  local text i
  text="$(message_text)x"
  for ((i = 0; i < c; i++)); do # node i takes recipients i, i + c, i + 2c, …
    jq -n --argjson n "$N" --argjson c "$c" --argjson i "$i" --arg text "$text" \
      '{from: "s@shop.test", subject: "Bench", text: $text,
        recipients: [range($i; $n; $c) | {to: "r\(.)@bench.test"}]}' >"$WORK/batch$c.$i.json"
  done

  start_sink "nodes$c"
  local pids=() addrs=() pid addr j
  for ((i = 0; i < c; i++)); do
    MAILTRAIL_DATABASE_URL=$url MAILTRAIL_DATA_DIR=$WORK/data MAILTRAIL_LOG=warn \
      MAILTRAIL_HTTP_LISTEN=127.0.0.1:0 MAILTRAIL_SMTP_LISTEN=127.0.0.1:0 \
      MAILTRAIL_OUTBOUND_ROUTES="bench.test=127.0.0.1:$SINK_PORT" \
      "$bin" serve >"$WORK/node$c.$i.out" 2>"$WORK/node$c.$i.err" &
    pid=$!
    track "$pid"
    pids+=("$pid")
    addr=""
    for ((j = 0; j < 300; j++)); do
      # The node's shell may not have created its output file yet.
      addr=$(sed -n '1s#^mailtrail listening on http://##p' "$WORK/node$c.$i.out" 2>/dev/null || true)
      [[ -n $addr ]] && break
      alive "$pid" || die "node $i exited: $(tail -n 3 "$WORK/node$c.$i.err")"
      sleep 0.05
    done
    [[ -n $addr ]] || die "node $i did not print its address within 15 s"
    addrs+=("$addr")
  done

  log "$c node(s): POST /v1/emails/batch, $N recipients split across the nodes"
  local start accepted end curls=() code
  start=$(now)
  for ((i = 0; i < c; i++)); do
    curl -sS --max-time "$DEADLINE" -o "$WORK/batch$c.$i.response" -w '%{http_code}' \
      -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
      --data-binary @"$WORK/batch$c.$i.json" "http://${addrs[$i]}/v1/emails/batch" \
      >"$WORK/batch$c.$i.code" 2>&1 &
    curls+=($!)
  done
  for ((i = 0; i < c; i++)); do
    wait "${curls[$i]}" || true
    code=$(cat "$WORK/batch$c.$i.code")
    [[ $code == 202 ]] ||
      die "node $i answered $code: $(head -c 300 "$WORK/batch$c.$i.response" 2>/dev/null)"
  done
  accepted=$(now)

  local ok=1 rc=0
  wait "$SINK_PID" || rc=$?
  forget "$SINK_PID"
  end=$(now)
  local got
  got=$(sink_count)
  if ((rc != 0 || got != N)); then
    ok=0
    log "$c node(s): the sink received $got of $N (exit status $rc; 124 = DEADLINE of ${DEADLINE}s)"
  fi
  local cpu=""
  for pid in "${pids[@]}"; do
    cpu+=" $(awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.1f", ($12 + $13) / hz }' \
      "/proc/$pid/stat" 2>/dev/null || echo "?")"
  done
  for pid in "${pids[@]}"; do stop_pid "$pid" || true; done
  log "$c node(s): $got emails in $(elapsed "$start" "$end") s; 202s after $(elapsed "$start" "$accepted") s; \
CPU s per node:$cpu; database: \
$(psql_at "$db" "select string_agg(stage || '=' || n, ' ') from
    (select stage, count(*) as n from emails group by stage order by stage) s" 2>/dev/null)"

  local seconds
  seconds=$(elapsed "$start" "$end")
  SECONDS_OF[$c]=$seconds
  RATE_OF[$c]=$(rate "$got" "$seconds")
  AFTER_OF[$c]=$(rate "$got" "$(elapsed "$accepted" "$end")")
  COUNT_OF[$c]=$got
  OK_OF[$c]=$ok
}

# ---------------------------------------------------------------------------------------------

ensure_packages
if [[ ${BUILD:-1} == 1 ]]; then
  log "building mailtrail (cargo build --release) into $TARGET"
  (cd "$ROOT" && cargo build --release --quiet -p mailtrail) || die "cargo build --release"
fi
[[ -x $TARGET/release/mailtrail ]] || die "$TARGET/release/mailtrail missing"

WORK=$(mktemp -d /tmp/mailtrail-nodes.XXXXXX)
chmod 755 "$WORK" # PostgreSQL runs as nobody under it
start_postgres
log "N=$N emails of 2000 bytes per run; nodes: $NODES; PostgreSQL on :$PG_PORT (fsync=$PG_FSYNC); \
$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); work dir $WORK"

for c in $NODES; do run_nodes "$c"; done

first=${NODES%% *}
echo
printf '%5s %8s %9s %10s %16s %8s\n' nodes emails seconds emails/s "after the 202s" scaling
for c in $NODES; do
  printf '%5s %8s %9s %10s %16s %8s%s\n' "$c" "${COUNT_OF[$c]}" "${SECONDS_OF[$c]}" "${RATE_OF[$c]}" \
    "${AFTER_OF[$c]}" \
    "$(awk -v a="${RATE_OF[$c]}" -v b="${RATE_OF[$first]}" 'BEGIN { printf (b > 0 ? "%.2fx" : "-"), a / b }')" \
    "$([[ ${OK_OF[$c]} == 1 ]] || echo '  INCOMPLETE')"
done
echo "scaling is against $first node(s); $(nproc) CPU cores shared by every node, PostgreSQL and the sink"

all_ok=1
for c in $NODES; do [[ ${OK_OF[$c]} == 1 ]] || all_ok=0; done
((all_ok)) || die "not every run delivered all $N emails"

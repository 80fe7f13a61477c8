#!/usr/bin/env bash
# Open-pixel throughput and latency, in one run on one machine, of two contenders under the
# same wrk load (loopback):
#
#   mailtrail  `GET /o/{token}.gif` with valid tokens (one per email, taken from the emails
#              Mailtrail actually sent), every hit recorded as an `opened` event;
#   nginx      a private nginx serving a static empty GIF (`location = /pixel.gif { empty_gif; }`).
#
# Setup: a fresh data dir, an account, open tracking on (PATCH /v1/settings), a domain routed
# to a Postfix `smtp-sink -d` that dumps every message to a file, one POST /v1/emails/batch
# of EMAILS HTML emails; the pixel URLs are decoded (quoted-printable) from the dumped
# messages with python3. A wrk Lua script rotates over them.
#
# Each contender gets a short warm-up (WARMUP seconds), then ROUNDS rounds each run nginx and
# then Mailtrail (`wrk -t THREADS -c CONNS -d DURATION --latency`): this VM's speed drifts by
# tens of percent within a minute, so each round's ratio compares the two under the same
# conditions. Printed: requests/s and p99 of both in every round, and the medians of the
# rounds' ratios (targets: rate >= 60 % of nginx's, p99 <= 1.5x nginx's). Then Mailtrail is
# stopped with SIGTERM (a clean shutdown writes the opens still buffered) and
# `SELECT COUNT(*) FROM events WHERE kind='opened'` is compared with the 200 responses wrk
# counted over all Mailtrail runs. Requests still in flight when wrk stops (at most CONNS per
# run) may be recorded without wrk counting their response, so the database may hold up to
# CONNS more per run; fewer is a lost open.
#
# Usage (as root, Debian 12):  bench/tracking.sh      ROUNDS=9 CONNS=128 bench/tracking.sh
# Environment: EMAILS (default 100), THREADS (default 2), CONNS (default 64), ROUNDS (default
# 5), DURATION (of each run, default 5s), WARMUP (seconds, default 2; 0 = none), DEADLINE
# (seconds for setup steps,
# default 60), KEEP=1 keeps the temp dir (logs, dumps, wrk output, the database), BUILD=0
# skips `cargo build --release` and uses the target/release/mailtrail already there.
#
# Everything it starts (smtp-sink, mailtrail, nginx, wrk) is stopped by PID on exit,
# including on Ctrl-C or failure. The system nginx (its config, port 80) is never touched: the
# private one runs in the foreground (`daemon off`) from a config, pid file, error log and
# temp paths under the temp dir, with the access log off.
set -euo pipefail

EMAILS=${EMAILS:-100}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2}
DEADLINE=${DEADLINE:-60}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

[[ $EMAILS =~ ^[1-9][0-9]{0,4}$ ]] || { echo "EMAILS must be 1 to 99999, not '$EMAILS'" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "ROUNDS must be 1 to 99" >&2; exit 2; }
[[ $THREADS =~ ^[1-9][0-9]?$ ]] || { echo "THREADS must be 1 to 99" >&2; exit 2; }
[[ $CONNS =~ ^[1-9][0-9]{0,3}$ ]] || { echo "CONNS must be 1 to 9999" >&2; exit 2; }
((CONNS >= THREADS)) || { echo "CONNS must be >= THREADS" >&2; exit 2; }
[[ $DURATION =~ ^[1-9][0-9]{0,3}[sm]?$ ]] || { echo "DURATION must be like 10s or 1m" >&2; exit 2; }
[[ $WARMUP =~ ^[0-9]{1,3}$ ]] || { echo "WARMUP must be 0 to 999 seconds" >&2; exit 2; }
[[ $DEADLINE =~ ^[1-9][0-9]*$ ]] || { echo "DEADLINE must be a positive integer" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "run as root (smtp-sink -u, apt-get)" >&2; exit 2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------------------------------------
# Dependencies (Debian packages, installed only when missing; no service is started).

ensure_packages() {
  local missing=()
  [[ -x /usr/sbin/smtp-sink ]] || missing+=(postfix)
  command -v wrk >/dev/null || missing+=(wrk)
  [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  command -v jq >/dev/null || missing+=(jq)
  command -v curl >/dev/null || missing+=(curl)
  command -v sqlite3 >/dev/null || missing+=(sqlite3)
  command -v python3 >/dev/null || missing+=(python3)
  command -v ss >/dev/null || missing+=(iproute2)
  install_packages "${missing[@]}"
}

# ---------------------------------------------------------------------------------------------
# Process bookkeeping: every PID we start is recorded and stopped on exit.

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Helpers.

# The wrk script: rotates over the paths in $WORK/NAME.paths (one per line), each thread
# starting at a different place, and prints a machine-readable summary line at the end.
write_wrk_script() { # name
  local paths=$WORK/$1.paths
  {
    echo 'local paths = {'
    sed 's/.*/  "&",/' "$paths"
    echo '}'
    cat <<'EOF'
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
local i
function init(args)
  i = (id * 7919) % #paths
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKSUMMARY requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
EOF
  } >"$WORK/$1.lua"
}

# run_wrk NAME LABEL DURATION: wrk against $WORK/NAME.base with $WORK/NAME.lua; output in
# $WORK/NAME.LABEL.wrk; sets W_* from its summary line.
run_wrk() {
  local name=$1 label=$2 duration=$3 out=$WORK/$1.$2.wrk base
  base=$(cat "$WORK/$name.base")
  log "$name $label: wrk -t$THREADS -c$CONNS -d$duration --latency -s $name.lua $base (load $(cut -d' ' -f1 /proc/loadavg))"
  wrk -t"$THREADS" -c"$CONNS" -d"$duration" --latency --timeout 5s -s "$WORK/$name.lua" "$base" \
    >"$out" 2>&1 &
  local pid=$!
  track "$pid"
  local rc=0
  wait "$pid" || rc=$?
  forget "$pid"
  ((rc == 0)) || die "wrk against $name exited with $rc: $(tail -n 5 "$out")"
  local line
  line=$(grep '^WRKSUMMARY ' "$out") || die "no summary from wrk: $(tail -n 5 "$out")"
  local kv
  for kv in ${line#WRKSUMMARY }; do printf -v "W_${kv%%=*}" '%s' "${kv#*=}"; done
  W_rps=$(awk -v n="$W_requests" -v us="$W_duration_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
  W_ok=$((W_requests - W_status)) # responses with a 2xx or 3xx status
  W_socket_errors=$((W_connect + W_read + W_write + W_timeout))
  log "$name $label: $W_requests responses ($W_status non-2xx/3xx), $W_rps req/s, p50 ${W_p50_us} us, \
p99 ${W_p99_us} us, max ${W_max_us} us; socket errors connect=$W_connect read=$W_read write=$W_write \
timeout=$W_timeout"
}

ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }

# ---------------------------------------------------------------------------------------------
# Mailtrail: setup, tokens.

MT_PID="" MT_ADDR="" MT_DATA="" SINK_PID=""

start_mailtrail() {
  if [[ ${BUILD:-1} == 1 ]]; then
    log "building mailtrail (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) ||
      die "cargo build --release (BUILD=0 uses the existing target/release/mailtrail)"
  fi
  local bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/mailtrail
  [[ -x $bin ]] || die "$bin missing"
  MT_DATA=$WORK/mailtrail-data
  mkdir -p "$MT_DATA"

  local account key
  account=$(MAILTRAIL_DATA_DIR=$MT_DATA MAILTRAIL_LOG=warn "$bin" account create Bench --json) ||
    die "mailtrail account create"
  key=$(jq -er .api_key <<<"$account") || die "no api_key in: $account"

  # smtp-sink dumps each message to its own file (the template gets a random suffix); it
  # runs as nobody, so the folder must be writable by nobody.
  local sink_port dumps=$WORK/dumps
  mkdir -p "$dumps"
  chmod 777 "$dumps"
  sink_port=$(free_port)
  smtp-sink -u nobody -d "$dumps/%Y%m%d%H%M%S." "127.0.0.1:$sink_port" 100 \
    >"$WORK/sink.out" 2>"$WORK/sink.err" &
  SINK_PID=$!
  track "$SINK_PID"
  wait_listening "$sink_port" "$SINK_PID" smtp-sink "$WORK/sink.err"

  MAILTRAIL_DATA_DIR=$MT_DATA MAILTRAIL_HTTP_LISTEN=127.0.0.1:0 \
    MAILTRAIL_SMTP_LISTEN=127.0.0.1:0 MAILTRAIL_LOG=warn \
    MAILTRAIL_OUTBOUND_ROUTES="bench.test=127.0.0.1:$sink_port" \
    "$bin" serve >"$WORK/mailtrail.out" 2>"$WORK/mailtrail.err" &
  MT_PID=$!
  track "$MT_PID"
  local i
  for ((i = 0; i < 300; i++)); do
    MT_ADDR=$(sed -n 's#^mailtrail listening on http://##p' "$WORK/mailtrail.out")
    [[ -n $MT_ADDR ]] && break
    alive "$MT_PID" || die "mailtrail serve exited: $(tail -n 5 "$WORK/mailtrail.err")"
    sleep 0.05
  done
  [[ -n $MT_ADDR ]] || die "mailtrail serve did not print its address within 15 s"
  log "mailtrail on http://$MT_ADDR, smtp-sink on 127.0.0.1:$sink_port"

  local code
  code=$(curl -sS --max-time 10 -o "$WORK/settings.json" -w '%{http_code}' -X PATCH \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    --data "{\"open_tracking\": true, \"tracking_base_url\": \"http://$MT_ADDR\"}" \
    "http://$MT_ADDR/v1/settings") || code="curl failed"
  [[ $code == 200 ]] || die "PATCH /v1/settings answered $code: $(head -c 500 "$WORK/settings.json")"

  jq -n --argjson n "$EMAILS" \
    '{from: "s@shop.test", subject: "Bench", html: "<html><body>Hi</body></html>",
      recipients: [range(0; $n) | {to: "r\(.)@bench.test"}]}' >"$WORK/batch.json"
  code=$(curl -sS --max-time "$DEADLINE" -o "$WORK/batch.response.json" -w '%{http_code}' \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    --data-binary @"$WORK/batch.json" "http://$MT_ADDR/v1/emails/batch") || code="curl failed"
  [[ $code == 202 ]] ||
    die "batch answered $code: $(head -c 500 "$WORK/batch.response.json" 2>/dev/null)"

  # Delivered = the sink acknowledged the message, so its dump file is complete.
  local delivered=0
  for ((i = 0; i < DEADLINE * 10; i++)); do
    delivered=$(sqlite3 "$MT_DATA/mailtrail.db" \
      "select count(*) from emails where stage = 'delivered'" 2>/dev/null || echo 0)
    ((delivered >= EMAILS)) && break
    alive "$MT_PID" || die "mailtrail serve exited: $(tail -n 5 "$WORK/mailtrail.err")"
    sleep 0.1
  done
  ((delivered >= EMAILS)) || die "only $delivered of $EMAILS emails delivered within ${DEADLINE}s: \
$(sqlite3 "$MT_DATA/mailtrail.db" "select group_concat(stage || '=' || n, ' ') from
    (select stage, count(*) as n from emails group by stage)" 2>/dev/null)"
  stop_pid "$SINK_PID" || true
  SINK_PID=""

  # The pixel URL of every dumped message (its HTML part is quoted-printable).
  python3 - "$dumps" "$MT_ADDR" >"$WORK/mailtrail.urls" <<'EOF'
import email, email.policy, os, re, sys
folder, addr = sys.argv[1], sys.argv[2]
pattern = re.compile(r'http://' + re.escape(addr) + r'/o/[A-Za-z0-9_.~-]+?\.gif')
for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), 'rb') as f:
        message = email.message_from_binary_file(f, policy=email.policy.default)
    found = set()
    for part in message.walk():
        if part.get_content_type() == 'text/html':
            html = part.get_payload(decode=True).decode(part.get_content_charset() or 'utf-8')
            found.update(pattern.findall(html))
    if len(found) != 1:
        sys.exit(f'{name}: {len(found)} pixel URLs, expected 1: {sorted(found)}')
    print(found.pop())
EOF
  local messages urls distinct
  messages=$(find "$dumps" -type f | wc -l)
  urls=$(wc -l <"$WORK/mailtrail.urls")
  distinct=$(sort -u "$WORK/mailtrail.urls" | wc -l)
  ((messages == EMAILS && urls == EMAILS && distinct == EMAILS)) ||
    die "$messages dumped messages, $urls pixel URLs ($distinct distinct), $EMAILS expected"
  sed "s#^http://$MT_ADDR##" "$WORK/mailtrail.urls" >"$WORK/mailtrail.paths"
  echo "http://$MT_ADDR" >"$WORK/mailtrail.base"
  code=$(curl -sS --max-time 5 -o "$WORK/pixel.check" -w '%{http_code} %{content_type}' \
    "$(head -n 1 "$WORK/mailtrail.urls")") || code="curl failed"
  [[ $code == "200 image/gif" ]] || die "the first pixel URL answered '$code'"
  CHECK_OPENS=1 # that curl recorded an open
  log "mailtrail: $EMAILS emails delivered, $distinct distinct pixel URLs, e.g. $(head -n 1 "$WORK/mailtrail.urls")"
}

# ---------------------------------------------------------------------------------------------
# nginx: a private instance in the foreground.

NGINX_PID=""
start_nginx() {
  local dir=$WORK/nginx port
  mkdir -p "$dir/tmp" "$dir/logs"
  port=$(free_port)
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
user nobody nogroup;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location = /pixel.gif { empty_gif; }
    location / { return 404; }
  }
}
EOF
  # -e: the error log before the config is read (else /var/log/nginx/error.log); -p: prefix.
  nginx -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" -t >"$WORK/nginx.test" 2>&1 ||
    die "nginx -t: $(cat "$WORK/nginx.test")"
  nginx -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
    >"$WORK/nginx.out" 2>"$WORK/nginx.err" &
  NGINX_PID=$!
  track "$NGINX_PID"
  wait_listening "$port" "$NGINX_PID" nginx "$dir/logs/error.log"
  echo /pixel.gif >"$WORK/nginx.paths"
  echo "http://127.0.0.1:$port" >"$WORK/nginx.base"
  local code
  code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code} %{content_type}' \
    "http://127.0.0.1:$port/pixel.gif") || code="curl failed"
  [[ $code == "200 image/gif" ]] || die "nginx's pixel answered '$code'"
  log "nginx $(nginx -v 2>&1 | sed 's#.*/##') on http://127.0.0.1:$port (master PID $NGINX_PID)"
}

# ---------------------------------------------------------------------------------------------

ensure_packages
WORK=$(mktemp -d /tmp/mailtrail-tracking-bench.XXXXXX)
chmod 755 "$WORK"
log "wrk -t$THREADS -c$CONNS -d$DURATION, $EMAILS pixel URLs; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); work dir $WORK"

CHECK_OPENS=0
start_mailtrail
start_nginx
write_wrk_script nginx
write_wrk_script mailtrail

# Warm-ups, then ROUNDS rounds of nginx and Mailtrail in turn: this VM's speed drifts by
# tens of percent within a minute, so each round compares the two under the same conditions
# and the medians of the rounds' ratios are judged.
declare -A WARM_OK
for name in nginx mailtrail; do
  WARM_OK[$name]=0
  if ((WARMUP > 0)); then
    run_wrk "$name" warmup "${WARMUP}s"
    WARM_OK[$name]=$W_ok
  fi
done
MT_OK=0 MT_NON2XX=0 MT_SOCKERR=0 MT_RUNS=$((WARMUP > 0 ? 1 : 0))
ROUND_LINES=() RATE_RATIOS=() P99_RATIOS=()
for ((round = 1; round <= ROUNDS; round++)); do
  run_wrk nginx "run$round" "$DURATION"
  n_rps=$W_rps n_p99=$W_p99_us
  run_wrk mailtrail "run$round" "$DURATION"
  MT_OK=$((MT_OK + W_ok)) MT_NON2XX=$((MT_NON2XX + W_status))
  MT_SOCKERR=$((MT_SOCKERR + W_socket_errors)) MT_RUNS=$((MT_RUNS + 1))
  rate=$(awk -v a="$W_rps" -v b="$n_rps" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }')
  p99=$(awk -v a="$W_p99_us" -v b="$n_p99" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  RATE_RATIOS+=("$rate") P99_RATIOS+=("$p99")
  ROUND_LINES+=("$(printf '%-6s %10s %10s %12s %12s %8s %%  %7sx' "$round" "$n_rps" \
    "$(ms "$n_p99")" "$W_rps" "$(ms "$W_p99_us")" "$rate" "$p99")")
done
stop_pid "$NGINX_PID" || true

# A clean shutdown writes the opens still buffered.
log "stopping mailtrail (SIGTERM)"
mt_rc=0
stop_pid "$MT_PID" 30 || mt_rc=$?
((mt_rc == 0)) || log "WARNING: mailtrail serve exited with $mt_rc: $(tail -n 3 "$WORK/mailtrail.err")"
opens=$(sqlite3 "$MT_DATA/mailtrail.db" "SELECT COUNT(*) FROM events WHERE kind='opened'")
machine=$(sqlite3 "$MT_DATA/mailtrail.db" \
  "SELECT COUNT(*) FROM events WHERE kind='opened' AND json_extract(detail, '$.machine') IS NOT NULL")
per_email=$(sqlite3 "$MT_DATA/mailtrail.db" \
  "SELECT MIN(n) || '..' || MAX(n) FROM (SELECT COUNT(*) AS n FROM events WHERE kind='opened' GROUP BY email_id)")

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo
printf '%-6s %10s %10s %12s %12s %10s  %8s\n' round 'nginx r/s' 'p99 ms' 'mailtrail r/s' 'p99 ms' rate 'p99'
printf '%s\n' "${ROUND_LINES[@]}"
echo "mailtrail: $MT_NON2XX non-2xx responses, $MT_SOCKERR socket errors over all rounds"
echo
rate_pct=$(median "${RATE_RATIOS[@]}")
p99_x=$(median "${P99_RATIOS[@]}")
printf 'mailtrail / nginx rate  %6s %%   (median of %d rounds; target >= 60 %%)   %s\n' "$rate_pct" \
  "$ROUNDS" "$(awk -v r="$rate_pct" 'BEGIN { print (r >= 60 ? "ok" : "BELOW TARGET") }')"
printf 'mailtrail / nginx p99   %6sx    (median of %d rounds; target <= 1.5x)   %s\n' "$p99_x" \
  "$ROUNDS" "$(awk -v r="$p99_x" 'BEGIN { print (r <= 1.5 ? "ok" : "ABOVE TARGET") }')"

expected=$((WARM_OK[mailtrail] + MT_OK + CHECK_OPENS))
echo
echo "opens in the database: $opens (machine-flagged: $machine; per email: $per_email)"
echo "200s wrk counted:      $expected (warm-up ${WARM_OK[mailtrail]} + rounds $MT_OK + 1 check by curl)"
diff=$((opens - expected))
if ((diff == 0)); then
  echo "opens check: ok, exactly equal"
elif ((diff > 0 && diff <= MT_RUNS * CONNS)); then
  echo "opens check: ok within in-flight slack: $diff more in the database than 200s wrk saw \
(requests in flight when wrk stopped, at most $CONNS in each of $MT_RUNS wrk runs)"
else
  echo "opens check: MISMATCH: the database holds $diff $( ((diff < 0)) && echo '(LOST OPENS)') \
relative to the 200s wrk counted"
  exit 1
fi

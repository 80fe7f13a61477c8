#!/usr/bin/env bash
# SMTP submission acceptance rate, in one run on one machine, of two servers taking the same
# load from the same client (bench/submission_load.py): CONNECTIONS connections at once, each
# STARTTLS + AUTH PLAIN, then MESSAGES messages of ~2 KB one after another, one recipient each.
#
#   mailtrail  `mailtrail serve` with its [submission] listener (STARTTLS), logged in with a
#              credential from `mailtrail smtp-credential create`; each message is stored in
#              the data directory before its 250 and then delivered to a smtp-sink;
#   postfix    a private, stock Postfix smtpd with the same TLS and SASL (Cyrus sasldb through
#              saslpasswd2, `smtpd_tls_security_level = encrypt`, `smtpd_tls_auth_only`,
#              relaying only for a logged-in client), its queue in the same temp dir on the same
#              disk, relaying each message to a smtp-sink.
#
# Why this is fair: smtp-source cannot STARTTLS or AUTH, so both servers are loaded by one
# Python client (multiprocessing: one process per connection, so no GIL is shared). The rate
# counted is messages answered 250 / wall-clock seconds from the common start until the last
# connection ended — what an application sending through either server sees. Both keep
# delivering to their sink while they accept, as they would in production. The client's CPU
# seconds are printed beside each run: when they approach 2 x wall seconds (2 cores) the client
# is the limit, and the comparison says nothing.
#
# Then the ratio (target: Mailtrail >= Postfix). Rounds alternate (mailtrail, postfix, ...) so
# background load hits both alike; the median round counts.
#
# Usage (as root, Debian 12):  bench/submission.sh      CONNECTIONS=10 MESSAGES=100 bench/submission.sh
# Environment: CONNECTIONS (default 20), MESSAGES per connection (default 250), ROUNDS (1-9,
# default 3), ONLY=postfix or ONLY=mailtrail runs one side, KEEP=1 keeps the temp dir (logs,
# Postfix's maillog), BUILD=0 skips `cargo build --release` and uses the
# target/release/mailtrail already there.
#
# Everything it starts (sinks, mailtrail, the private Postfix) is stopped by PID on exit,
# including on Ctrl-C or failure. Nothing binds port 25 or 587; the system Postfix is never
# touched (the private one lives under the temp dir, `postfix -c DIR`).
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-20}
MESSAGES=${MESSAGES:-250}
ROUNDS=${ROUNDS:-3}
ONLY=${ONLY:-}
SIZE=2048
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOAD=$ROOT/bench/submission_load.py

[[ $CONNECTIONS =~ ^[1-9][0-9]{0,2}$ ]] || { echo "CONNECTIONS must be 1 to 999" >&2; exit 2; }
[[ $MESSAGES =~ ^[1-9][0-9]*$ ]] || { echo "MESSAGES must be a positive integer" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9]$ ]] || { echo "ROUNDS must be 1 to 9, not '$ROUNDS'" >&2; exit 2; }
[[ $ONLY =~ ^(|mailtrail|postfix)$ ]] || { echo "ONLY is mailtrail or postfix" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "run as root (smtp-sink -u, a private Postfix)" >&2; exit 2; }
N=$((CONNECTIONS * MESSAGES))

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

ensure_packages() {
  local missing=()
  [[ -x /usr/sbin/smtp-sink && -x /usr/sbin/postfix ]] || missing+=(postfix)
  [[ -x /usr/sbin/saslpasswd2 ]] || missing+=(sasl2-bin)
  ls /usr/lib/*/sasl2/libplain.so >/dev/null 2>&1 || missing+=(libsasl2-modules)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v jq >/dev/null || missing+=(jq)
  command -v sqlite3 >/dev/null || missing+=(sqlite3)
  command -v ss >/dev/null || missing+=(iproute2)
  install_packages "${missing[@]}"
}

POSTFIX_CONFIG="" # config_directory of the private Postfix while it runs

stop_postfix() {
  [[ -n $POSTFIX_CONFIG ]] || return 0
  local master="" i file=$WORK/postfix/queue/pid/master.pid
  [[ -r $file ]] && master=$(tr -d ' \n' <"$file")
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

# A config file dated a minute ago: Postfix re-reads files modified within the last second.
write_config() { cat >"$1"; touch -d '1 minute ago' "$1"; }

SINK_PID="" SINK_PORT=""
start_sink() { # name
  SINK_PORT=$(free_port)
  smtp-sink -u nobody -c "127.0.0.1:$SINK_PORT" 1000 >"$WORK/$1.sink.counters" \
    2>"$WORK/$1.sink.err" &
  SINK_PID=$!
  track "$SINK_PID"
  wait_listening "$SINK_PORT" "$SINK_PID" "smtp-sink"
}

declare -A TIMES_OF CPU_OF
load() { # name port user password
  local result accepted seconds cpu
  result=$(python3 "$LOAD" 127.0.0.1 "$2" "$3" "$4" "$CONNECTIONS" "$MESSAGES" "$SIZE" \
    bench@shop.test bench.test 2>"$WORK/$1.load.err") ||
    die "$1: the load client failed: $(tail -n 3 "$WORK/$1.load.err")"
  accepted=$(jq -r .accepted <<<"$result")
  seconds=$(jq -r .seconds <<<"$result")
  cpu=$(jq -r .client_cpu <<<"$result")
  ((accepted == N)) ||
    die "$1: only $accepted of $N messages got a 250: $(sort "$WORK/$1.load.err" | uniq -c | head -n 3)"
  TIMES_OF[$1]+="$seconds "
  CPU_OF[$1]+="$cpu "
  log "$1: $N messages accepted in $seconds s = $(rate "$N" "$seconds")/s (client CPU $cpu s)"
}

# ---------------------------------------------------------------------------------------------
# Mailtrail.

BIN=""
bench_mailtrail() { # round
  local data=$WORK/mailtrail-$1 port
  mkdir -p "$data"
  port=$(free_port)
  start_sink "mailtrail$1"
  cat >"$data/mailtrail.toml" <<EOF
[submission]
listen = "127.0.0.1:$port"
tls_certificate = "$WORK/tls/cert.pem"
tls_key = "$WORK/tls/key.pem"
EOF
  local env=(MAILTRAIL_DATA_DIR="$data" MAILTRAIL_LOG=warn)
  local account id credential user password
  account=$(env "${env[@]}" "$BIN" account create Bench --json) || die "mailtrail account create"
  id=$(jq -er .id <<<"$account") || die "no id in: $account"
  credential=$(env "${env[@]}" "$BIN" smtp-credential create --account "$id" --json \
    2>"$WORK/credential.err") || die "mailtrail smtp-credential create: $(cat "$WORK/credential.err")"
  user=$(jq -er .username <<<"$credential") || die "no username in: $credential"
  password=$(jq -er .password <<<"$credential") || die "no password in: $credential"

  env "${env[@]}" MAILTRAIL_HTTP_LISTEN=127.0.0.1:0 MAILTRAIL_SMTP_LISTEN=127.0.0.1:0 \
    MAILTRAIL_OUTBOUND_ROUTES="bench.test=127.0.0.1:$SINK_PORT" \
    "$BIN" serve --config "$data/mailtrail.toml" >"$WORK/mailtrail$1.out" \
    2>"$WORK/mailtrail$1.err" &
  local pid=$!
  track "$pid"
  wait_listening "$port" "$pid" "mailtrail serve" "$WORK/mailtrail$1.err"

  load mailtrail "$port" "$user" "$password"
  local stored
  stored=$(sqlite3 "$data/mailtrail.db" "select count(*) from emails" 2>/dev/null || echo "?")
  [[ $stored == "$N" ]] || log "mailtrail: WARNING: $stored emails in its database, $N expected"
  stop_pid "$pid" || true
  stop_pid "$SINK_PID" || true
}

# ---------------------------------------------------------------------------------------------
# Postfix's smtpd with the same TLS and SASL.

bench_postfix() { # round
  local dir=$WORK/postfix port host=relay.bench.invalid
  rm -rf "$dir"
  mkdir -p "$dir/config/sasl" "$dir/queue" "$dir/data" "$dir/log"
  chmod 755 "$dir" "$dir/config" "$dir/config/sasl" "$dir/queue" "$dir/log"
  chown postfix: "$dir/data"
  chmod 700 "$dir/data"
  port=$(free_port)
  start_sink "postfix$1"
  # Cyrus SASL reads smtpd.conf from `sasl` in the config directory (Debian's Postfix looks
  # only there); smtpd opens the sasldb as `postfix` on each AUTH.
  write_config "$dir/config/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $dir/config/sasl/sasldb2
EOF
  printf 'bench-password' | saslpasswd2 -c -p -u "$host" -f "$dir/config/sasl/sasldb2" bench ||
    die "saslpasswd2"
  chown root:postfix "$dir/config/sasl/sasldb2"
  chmod 640 "$dir/config/sasl/sasldb2"
  write_config "$dir/config/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file = $dir/log/maillog
maillog_file_prefixes = $dir/log
myhostname = $host
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_peername_lookup = no
mydestination =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
local_recipient_maps =
mynetworks =
relay_domains = bench.test
transport_maps = inline:{bench.test=smtp:[127.0.0.1]:$SINK_PORT}
# A submission service: TLS first, then AUTH, and relaying only for who logged in.
smtpd_tls_security_level = encrypt
smtpd_tls_cert_file = $WORK/tls/cert.pem
smtpd_tls_key_file = $WORK/tls/key.pem
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
cyrus_sasl_config_path = $dir/config/sasl
smtpd_sasl_local_domain = $host
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
EOF
  # Debian's stock services, minus chroot (5th column) and the ones a relay never uses.
  write_config "$dir/config/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
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
    die "postfix start: $(cat "$WORK/postfix.start" "$dir/log/maillog" 2>/dev/null)"
  local master="" i
  for ((i = 0; i < 100; i++)); do
    [[ -r $dir/queue/pid/master.pid ]] && master=$(tr -d ' \n' <"$dir/queue/pid/master.pid")
    [[ -n $master ]] && break
    sleep 0.1
  done
  [[ -n $master ]] || die "postfix wrote no master.pid: $(cat "$dir/log/maillog" 2>/dev/null)"
  wait_listening "$port" "$master" "postfix" "$dir/log/maillog"

  load postfix "$port" bench bench-password
  stop_postfix
  stop_pid "$SINK_PID" || true
}

# ---------------------------------------------------------------------------------------------

ensure_packages
if [[ $ONLY != postfix ]]; then
  if [[ ${BUILD:-1} == 1 ]]; then
    log "building mailtrail (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) ||
      die "cargo build --release (BUILD=0 uses the existing target/release/mailtrail)"
  fi
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/mailtrail
  [[ -x $BIN ]] || die "$BIN missing"
fi

WORK=$(mktemp -d /tmp/mailtrail-submission-bench.XXXXXX)
chmod 755 "$WORK" # Postfix's daemons (postfix, nobody) pass through it
mkdir -p "$WORK/tls"
openssl req -x509 -nodes -days 2 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -subj /CN=submission.bench.invalid -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" \
  2>/dev/null || die "openssl req"
# smtpd reads them as root; mailtrail too when run as root here.
chmod 644 "$WORK/tls/cert.pem"
log "$N messages of $SIZE bytes over $CONNECTIONS connections, $ROUNDS rounds; $(nproc) CPUs, \
load $(cut -d' ' -f1-3 /proc/loadavg); work dir $WORK"

for ((round = 1; round <= ROUNDS; round++)); do
  [[ $ONLY == postfix ]] || bench_mailtrail "$round"
  [[ $ONLY == mailtrail ]] || bench_postfix "$round"
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ t[NR] = $1 } END { print t[int((NR + 1) / 2)] }'; }
row() { # name
  local s
  s=$(median <<<"${TIMES_OF[$1]}")
  printf '%-10s %8d %9s %10s  %s\n' "$1" "$N" "$s" "$(rate "$N" "$s")" "${CPU_OF[$1]}"
}
echo
printf '%-10s %8s %9s %10s  %s\n' server messages 'wall s' messages/s 'client CPU s (each round)'
[[ $ONLY == postfix ]] || row mailtrail
[[ $ONLY == mailtrail ]] || row postfix
echo "(median of $ROUNDS rounds; all rounds, wall s: mailtrail ${TIMES_OF[mailtrail]:-}| postfix ${TIMES_OF[postfix]:-})"
[[ -z $ONLY ]] || exit 0
mt=$(rate "$N" "$(median <<<"${TIMES_OF[mailtrail]}")")
pf=$(rate "$N" "$(median <<<"${TIMES_OF[postfix]}")")
echo
ratio=$(awk -v a="$mt" -v b="$pf" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 1 ? "ok" : "BELOW TARGET") }')
printf 'mailtrail / postfix  %6sx   (target >= 1x)  %s\n' "$ratio" "$verdict"

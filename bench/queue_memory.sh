#!/usr/bin/env bash
# Peak memory of `mailtrail serve` with a large queue: N emails (default 1,000,000) queued in
# batches of 100,000 to a destination that refuses connections, so they all stay queued and
# the workers keep cycling through them. Prints VmHWM (peak RSS) after the queue is built and
# after a minute of retries. Target: under 200 MB.
#
# Usage: bench/queue_memory.sh       N=200000 bench/queue_memory.sh
set -euo pipefail
N=${N:-1000000}
BATCH=100000
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ ${BUILD:-1} == 0 ]] || cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/mailtrail
TMP=$(mktemp -d)
PID=
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
export MAILTRAIL_DATA_DIR=$TMP/data MAILTRAIL_LOG=warn
export MAILTRAIL_HTTP_LISTEN=127.0.0.1:0 MAILTRAIL_SMTP_LISTEN=127.0.0.1:0
# Port 1 on loopback refuses connections: every attempt is a soft bounce, retried later.
export MAILTRAIL_OUTBOUND_ROUTES="refuse.test=127.0.0.1:1"
KEY=$("$BIN" account create Memory --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
"$BIN" serve > "$TMP/serve.out" 2> "$TMP/serve.err" &
PID=$!
for _ in $(seq 50); do grep -q "listening on" "$TMP/serve.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^mailtrail listening on //p' "$TMP/serve.out")
hwm() { awk '/VmHWM/ {printf "%.1f MB", $2/1024}' "/proc/$PID/status"; }
sent=0
start=$(date +%s.%N)
while (( sent < N )); do
  count=$(( N - sent < BATCH ? N - sent : BATCH ))
  python3 - "$sent" "$count" > "$TMP/batch.json" <<'PY'
import json, sys
first, count = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({"from": "s@shop.test", "subject": "Memory", "text": "x" * 2000,
                  "recipients": [{"to": f"r{i}@refuse.test"} for i in range(first, first + count)]}))
PY
  code=$(curl -s -o "$TMP/resp.json" -w '%{http_code}' -X POST "$BASE/v1/emails/batch" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data-binary "@$TMP/batch.json")
  [[ $code == 202 ]] || { echo "batch answered $code: $(head -c 300 "$TMP/resp.json")" >&2; exit 1; }
  sent=$(( sent + count ))
  echo "queued $sent / $N   peak RSS $(hwm)" >&2
done
end=$(date +%s.%N)
echo "queued $N emails in $(python3 -c "print(round($end - $start, 1))") s; peak RSS $(hwm)"
sleep 60
echo "after a minute of retries: peak RSS $(hwm) (target < 200 MB)"

#!/usr/bin/env bash
# Bounce classification speed, in one run on one machine, of two contenders over the same
# input: the .eml files of the shared corpus ($ROOT/crates/bounce/tests/corpus/bounces, ~350 bounces,
# DSNs and ARF reports) copied COPIES times into one flat temp folder:
#
#   mailtrail  `target/release/mailtrail bounce classify DIR` (one JSON line per recipient,
#              written to a file);
#   sisimai    Debian's libsisimai-perl, `perl -MSisimai -e 'Sisimai->make($dir)'` (the
#              decoded records are counted, not printed).
#
# Each contender runs RUNS times over the folder, the runs interleaved (mailtrail, sisimai,
# mailtrail, ...) so background load hits both alike; the median run counts. Messages/s is
# files in the folder / wall-clock seconds of a whole process (start-up included). Then the
# ratio (target: Mailtrail >= 20x Sisimai).
#
# Debian's Sisimai (4.25) is older than the corpus labels (labels.tsv): this compares speed
# only, not verdicts. The record counts are printed as a sanity check that both read the
# whole input, and they need not agree.
#
# Usage (Debian 12):  bench/bounce.sh        COPIES=20 RUNS=5 bench/bounce.sh
# Environment: COPIES (default 40), RUNS (1-9, default 3), CORPUS (default the shared corpus),
# KEEP=1 keeps the temp dir (outputs, timings), BUILD=0 skips `cargo build --release` and
# uses the target/release/mailtrail already there.
#
# Nothing is left running: each contender is a foreground process; the temp dir is removed on
# exit (unless KEEP=1), including on Ctrl-C or failure.
set -euo pipefail

COPIES=${COPIES:-40}
RUNS=${RUNS:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORPUS=${CORPUS:-$ROOT/crates/bounce/tests/corpus/bounces}

[[ $COPIES =~ ^[1-9][0-9]{0,2}$ ]] || { echo "COPIES must be 1 to 999, not '$COPIES'" >&2; exit 2; }
[[ $RUNS =~ ^[1-9]$ ]] || { echo "RUNS must be 1 to 9, not '$RUNS'" >&2; exit 2; }
[[ -d $CORPUS ]] || { echo "no corpus folder at $CORPUS" >&2; exit 2; }

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] FAILED: %s\n' "$*" >&2; exit 1; }

ensure_packages() {
  local missing=()
  perl -MSisimai -e 1 2>/dev/null || missing+=(libsisimai-perl)
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}: install as root (apt-get install)"
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]}"
}

WORK=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_packages
if [[ ${BUILD:-1} == 1 ]]; then
  log "building mailtrail (cargo build --release)"
  (cd "$ROOT" && cargo build --release --quiet) ||
    die "cargo build --release (BUILD=0 uses the existing target/release/mailtrail)"
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/mailtrail
[[ -x $BIN ]] || die "$BIN missing"

WORK=$(mktemp -d /tmp/mailtrail-bounce-bench.XXXXXX)
INPUT=$WORK/input
mkdir -p "$INPUT"
shopt -s nullglob
corpus=("$CORPUS"/*.eml)
shopt -u nullglob
((${#corpus[@]} > 0)) || die "no .eml files in $CORPUS"
for ((c = 1; c <= COPIES; c++)); do
  for f in "${corpus[@]}"; do cp "$f" "$INPUT/$(printf 'c%03d' "$c")-${f##*/}"; done
done
FILES=$(find "$INPUT" -type f | wc -l)
BYTES=$(du -sb "$INPUT" | cut -f1)
# Read every file once, so neither contender pays for a cold page cache.
cat "$INPUT"/* >/dev/null

log "$FILES messages (${#corpus[@]} corpus files x $COPIES), $((BYTES / 1024)) KiB; $RUNS runs each; \
$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $(perl -MSisimai -e 'print "Sisimai $Sisimai::VERSION"')"

# timed NAME RUN CMD...: runs CMD with stdout to $WORK/NAME.RUN.out, stderr to .err; appends
# "wall user sys" to $WORK/NAME.times.
timed() {
  local name=$1 run=$2 rc=0
  shift 2
  local TIMEFORMAT='%R %U %S'
  { time "$@" >"$WORK/$name.$run.out" 2>"$WORK/$name.$run.err"; } 2>>"$WORK/$name.times" || rc=$?
  ((rc == 0)) || die "$name run $run exited with $rc: $(tail -n 3 "$WORK/$name.$run.err")"
}

SISIMAI_SCRIPT='my $v = Sisimai->make($ARGV[0]); print scalar(@{ $v || [] }), "\n";'
for ((run = 1; run <= RUNS; run++)); do
  timed mailtrail "$run" "$BIN" bounce classify "$INPUT"
  timed sisimai "$run" perl -MSisimai -e "$SISIMAI_SCRIPT" "$INPUT"
  log "run $run: mailtrail $(tail -n 1 "$WORK/mailtrail.times" | cut -d' ' -f1) s, sisimai \
$(tail -n 1 "$WORK/sisimai.times" | cut -d' ' -f1) s"
done

median() { sort -g | awk '{ t[NR] = $1 } END { print t[int((NR + 1) / 2)] }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

mt_s=$(cut -d' ' -f1 "$WORK/mailtrail.times" | median)
si_s=$(cut -d' ' -f1 "$WORK/sisimai.times" | median)
mt_cpu=$(awk '{ print $2 + $3 }' "$WORK/mailtrail.times" | median)
si_cpu=$(awk '{ print $2 + $3 }' "$WORK/sisimai.times" | median)
mt_rate=$(rate "$FILES" "$mt_s")
si_rate=$(rate "$FILES" "$si_s")
mt_records=$(wc -l <"$WORK/mailtrail.1.out")
si_records=$(tr -d ' \n' <"$WORK/sisimai.1.out")

echo
printf '%-10s %8s %9s %9s %11s %9s\n' contender messages 'wall s' 'cpu s' messages/s records
printf '%-10s %8d %9s %9s %11s %9s\n' mailtrail "$FILES" "$mt_s" "$mt_cpu" "$mt_rate" "$mt_records"
printf '%-10s %8d %9s %9s %11s %9s\n' sisimai "$FILES" "$si_s" "$si_cpu" "$si_rate" "$si_records"
echo "(median of $RUNS runs; all runs, wall s: mailtrail $(cut -d' ' -f1 "$WORK/mailtrail.times" |
  tr '\n' ' ')| sisimai $(cut -d' ' -f1 "$WORK/sisimai.times" | tr '\n' ' '))"
echo "(records: JSON lines from mailtrail, Sisimai::Data objects from Sisimai->make)"
echo
ratio=$(awk -v a="$mt_rate" -v b="$si_rate" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 20 ? "ok" : "BELOW TARGET") }')
printf 'mailtrail / sisimai  %6sx   (target >= 20x)  %s\n' "$ratio" "$verdict"

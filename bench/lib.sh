# Shared by the benchmark scripts (sourced, not run): logging, installing missing Debian
# packages without starting services, and the bookkeeping that stops every process a script
# started, however it ends. A script sets WORK (its temp dir) and tracks each PID it starts.

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] FAILED: %s\n' "$*" >&2; exit 1; }

# Installs the given Debian packages. Postfix is preseeded to "No configuration", and a
# policy-rc.d refuses every service start while the install runs: nothing binds port 25 or 80.
install_packages() {
  (($# > 0)) || return 0
  log "installing $*"
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  local policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    { [[ -n $policy ]] && rm -f "$policy"; die "apt-get install $*"; }
  [[ -n $policy ]] && rm -f "$policy"
  return 0
}

PIDS=() # processes we started and have not reaped yet
WORK=""

track() { PIDS+=("$1"); }
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
tracked() { local p; for p in "${PIDS[@]}"; do [[ $p == "$1" ]] && return 0; done; return 1; }
alive() { # running and not a zombie
  [[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

stop_pid() { # pid [seconds before KILL, default 10]: TERM, then KILL; reaps it; returns its status
  local pid=$1 wait_s=${2:-10} i rc=0
  tracked "$pid" || return 0 # already reaped: the PID may belong to someone else by now
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < wait_s * 10; i++)); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    log "PID $pid did not exit within ${wait_s}s of SIGTERM: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || rc=$?
  forget "$pid"
  return "$rc"
}

# Stops every tracked process (TERM, up to 5 s, then KILL) and removes WORK unless KEEP=1.
stop_all() {
  local p i any
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    any=0
    for p in "${PIDS[@]}"; do alive "$p" && any=1; done
    ((any)) || break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do alive "$p" && kill -KILL "$p" 2>/dev/null || true; done
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  fi
}

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

# A port nothing uses, below the ephemeral range (so no outgoing connection takes it later).
free_port() {
  local port i
  for ((i = 0; i < 200; i++)); do
    port=$((10000 + SRANDOM % 20000))
    if [[ -z $(ss -Htan "( sport = :$port or dport = :$port )") ]]; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

wait_listening() { # port pid what [log file shown if it dies]
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -n $(ss -Hltn "sport = :$1") ]] && return 0
    alive "$2" || die "$3 exited before listening on 127.0.0.1:$1: $(tail -n 3 "${4:-/dev/null}")"
    sleep 0.05
  done
  die "$3 did not listen on 127.0.0.1:$1 within 10 s"
}

#!/usr/bin/env bash
# Runs the load scenarios of docs/benchmarks.md against every server under test, side by side
# in one run: each server is started pinned to one core, `sluice-load` runs pinned to another,
# and every result is appended as one JSON object to target/bench/results.json (the table is
# printed and kept in target/bench/table.txt).
#
#   scripts/bench.sh            full run (10 s windows; rooms of 4, 10 and 25; a live ramp;
#                               10 speakers to 300 listeners)
#   scripts/bench.sh --quick    smoke run (3 s windows, small sizes)
#
# Environment: SERVERS (default "sluice"), SERVER_CORE (0), LOAD_CORE (1).
# A server is four things, one function each: start_<name> (sets SERVER_PID and SERVER_URL),
# and stop_<name>; its load-generator target kind is TARGET_<name>. Add the bare forwarder
# and Janus by writing those functions and naming them in SERVERS.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help)
      sed -n '2,16p' "$0"
      exit 0
      ;;
    *)
      echo "unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

SERVERS=${SERVERS:-sluice}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
OUT=target/bench
RESULTS=$OUT/results.json
TABLE=$OUT/table.txt

if [ "$QUICK" = 1 ]; then
  WINDOW=3 WARMUP=1
  ROOM_SIZES="4"
  LIVE_RAMP="10,20"
  AUDIO_SPEAKERS=2 AUDIO_LISTENERS=20
else
  WINDOW=10 WARMUP=2
  ROOM_SIZES="4 10 25"
  LIVE_RAMP="25,50,100,200,300,400,500,700,1000"
  AUDIO_SPEAKERS=10 AUDIO_LISTENERS=300
fi

step() { printf '\n==> %s\n' "$*"; }

# Waits until an HTTP URL answers (at most 10 s).
wait_http() {
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

SERVER_PID=""
SERVER_URL=""

# --- Sluice: one media worker on SERVER_CORE, its own ports.
TARGET_sluice=sluice
start_sluice() {
  taskset -c "$SERVER_CORE" target/release/sluice --http 127.0.0.1:18080 --udp 127.0.0.1:13478 \
    --workers 1 >"$OUT/sluice.log" 2>&1 &
  SERVER_PID=$!
  SERVER_URL=http://127.0.0.1:18080
  wait_http "$SERVER_URL/healthz"
}
stop_sluice() { stop_pid; }

# Stops the server started last (SIGTERM, then waits for it).
stop_pid() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap stop_pid EXIT

# Runs one scenario on a freshly started server; a failed scenario is noted and the run goes on.
scenario() {
  local server=$1
  shift
  local target_var="TARGET_$server"
  "start_$server"
  if ! target/release/sluice-load --target "${!target_var}" --label "$server" --url "$SERVER_URL" \
    --server-pid "$SERVER_PID" --cpu "$LOAD_CORE" --seconds "$WINDOW" --warmup "$WARMUP" \
    --json "$RESULTS" "$@" | tee -a "$TABLE"; then
    echo "# $server: $* failed" | tee -a "$TABLE"
  fi
  "stop_$server"
}

step "build (release)"
cargo build --release -p server --bin sluice -p benches --bin sluice-load

mkdir -p "$OUT"
: >"$RESULTS"
: >"$TABLE"
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -sr), $(nproc) cores:" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "# server on core $SERVER_CORE, load generator on core $LOAD_CORE, window ${WINDOW}s"
} | tee "$OUT/machine.txt"

for server in $SERVERS; do
  step "$server"
  for size in $ROOM_SIZES; do
    scenario "$server" room --size "$size"
  done
  scenario "$server" live --ramp "$LIVE_RAMP"
  scenario "$server" audio --speakers "$AUDIO_SPEAKERS" --listeners "$AUDIO_LISTENERS"
done

step "results ($RESULTS)"
cat "$OUT/machine.txt"
# One header line for the whole table.
awk '!/^target / || !seen++' "$TABLE"

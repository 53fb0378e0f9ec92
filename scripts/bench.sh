#!/usr/bin/env bash
# Runs the load scenarios of docs/benchmarks.md against every server under test, side by side
# in one run: each server is started pinned to one core, `sluice-load` runs pinned to another,
# and every result is appended as one JSON object to target/bench/results.json (the table is
# printed and kept in target/bench/table.txt).
#
#   scripts/bench.sh            full run (10 s windows; rooms of 4, 10 and 25; meetings of 10
#                               side by side, ramped; a live ramp; 10 speakers to 300 listeners)
#   scripts/bench.sh --quick    smoke run (3 s windows, small sizes)
#
# Environment: SERVERS (default "sluice bare janus janus_loops1": Sluice, the bare forwarder,
# Janus's videoroom in its default configuration and with event_loops = 1; "sluice_baseline"
# is another build of Sluice, the binary SLUICE_BASELINE names, for A/B runs against an
# earlier commit), ONLY (an extended regular expression: run only the scenarios whose
# arguments match it, e.g. ONLY='rooms|live'), SERVER_CORE (0), LOAD_CORE (1). Janus is installed from Debian's packages when missing (as root).
# A server is start_<name> (starts it pinned to SERVER_CORE, sets SERVER_PID and SERVER_URL),
# stop_<name>, TARGET_<name> (its sluice-load --target kind) and BUILD_<name> (the cargo
# arguments that build it); Janus's are in benches/janus/servers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help)
      sed -n '2,15p' "$0"
      exit 0
      ;;
    *)
      echo "unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

SERVERS=${SERVERS:-sluice bare janus janus_loops1}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
OUT=target/bench
RESULTS=$OUT/results.json
TABLE=$OUT/table.txt

if [ "$QUICK" = 1 ]; then
  WINDOW=3 WARMUP=1
  ROOM_SIZES="4"
  MEETING_RAMP="1,2"
  LIVE_RAMP="10,20"
  AUDIO_SPEAKERS=2 AUDIO_LISTENERS=20
else
  WINDOW=10 WARMUP=2
  ROOM_SIZES="4 10 25"
  MEETING_RAMP="2,4,8,12,16,20,24"
  LIVE_RAMP="25,50,100,200,300,400,500,700,1000,1500,2000,2500"
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
BUILD_sluice="-p server --bin sluice"

# --- Another build of Sluice (SLUICE_BASELINE=path/to/sluice), for A/B runs in one go.
TARGET_sluice_baseline=sluice
start_sluice_baseline() {
  if [ ! -x "${SLUICE_BASELINE:-}" ]; then
    echo "SLUICE_BASELINE must name a sluice binary" >&2
    return 1
  fi
  taskset -c "$SERVER_CORE" "$SLUICE_BASELINE" --http 127.0.0.1:18082 --udp 127.0.0.1:13480 \
    --workers 1 >"$OUT/sluice_baseline.log" 2>&1 &
  SERVER_PID=$!
  SERVER_URL=http://127.0.0.1:18082
  wait_http "$SERVER_URL/healthz"
}
stop_sluice_baseline() { stop_pid; }
BUILD_sluice_baseline=""

# --- The bare forwarder (the physical limit): same WHIP/WHEP endpoints, so the same target.
TARGET_bare=bare
start_bare() {
  taskset -c "$SERVER_CORE" target/release/bare-forwarder --http 127.0.0.1:18081 \
    --udp 127.0.0.1:13479 >"$OUT/bare.log" 2>&1 &
  SERVER_PID=$!
  SERVER_URL=http://127.0.0.1:18081
  wait_http "$SERVER_URL/healthz"
}
stop_bare() { stop_pid; }
BUILD_bare="-p benches --bin bare-forwarder"

# shellcheck source=benches/janus/servers.sh
. benches/janus/servers.sh

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
build_args=(-p benches --bin sluice-load)
for server in $SERVERS; do
  build_var="BUILD_$server"
  # shellcheck disable=SC2206 # the cargo arguments are words on purpose
  build_args+=(${!build_var:-})
done
cargo build --release "${build_args[@]}"

mkdir -p "$OUT"
: >"$RESULTS"
: >"$TABLE"
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -sr), $(nproc) cores:" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "# server on core $SERVER_CORE, load generator on core $LOAD_CORE, window ${WINDOW}s"
} | tee "$OUT/machine.txt"

# Each scenario runs on every server in turn, so the figures side by side were taken minutes
# apart on the same machine.
SCENARIOS=()
for size in $ROOM_SIZES; do
  SCENARIOS+=("room --size $size")
done
SCENARIOS+=("room --size 10 --rooms $MEETING_RAMP")
SCENARIOS+=("live --ramp $LIVE_RAMP")
SCENARIOS+=("audio --speakers $AUDIO_SPEAKERS --listeners $AUDIO_LISTENERS")
for scenario_args in "${SCENARIOS[@]}"; do
  if [ -n "${ONLY:-}" ] && ! grep -Eq -- "$ONLY" <<<"$scenario_args"; then
    continue
  fi
  step "$scenario_args"
  for server in $SERVERS; do
    # shellcheck disable=SC2086 # the scenario's arguments are words on purpose
    scenario "$server" $scenario_args
  done
done

step "results ($RESULTS)"
cat "$OUT/machine.txt"
# One header line for the whole table.
awk '!/^target / || !seen++' "$TABLE"

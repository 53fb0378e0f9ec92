#!/usr/bin/env bash
# Counts instructions with valgrind's callgrind (repeatable, unlike timings on a shared VM) and
# prints where they go: the top functions by inclusive and by self instruction count.
#
# Default workload: benches/examples/forward_profile.rs, the criterion `forward` bench's
# code path (SRTP unprotect, routing, per subscriber copy + rewrite + SRTP protect) for a fixed
# number of packets; collection is limited to `ForwardWorkload::forward`, and the script prints
# instructions per forwarded packet (per copy sent to a subscriber).
#
# Any other workload (the release `sluice` binary under the load generator, for example):
#   scripts/profile.sh --duration 20 -- ./target/release/sluice --udp 127.0.0.1:5000
# runs the command under callgrind, sends it SIGINT after the duration (0: wait for it to exit),
# and prints the same tables. Drive the server from another shell meanwhile; callgrind slows it
# about 50x, so offer it a light load.
#
# Usage: scripts/profile.sh [--packets N] [--subscribers N] [--top N] [--duration S]
#                           [--out FILE] [-- COMMAND ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."

packets=2000
subscribers=25
top=25
duration=0
out=target/callgrind.out
command=()
while [ $# -gt 0 ]; do
  case "$1" in
    --packets) packets=$2; shift 2 ;;
    --subscribers) subscribers=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; command=("$@"); break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

for tool in valgrind callgrind_annotate; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install valgrind)" >&2; exit 1; }
done
mkdir -p "$(dirname "$out")"
rm -f "$out"

if [ ${#command[@]} -eq 0 ]; then
  cargo build --release -p benches --example forward_profile
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    --toggle-collect='*ForwardWorkload*forward*' \
    ./target/release/examples/forward_profile "$packets" "$subscribers" 2>&1 | grep -v '^==' || true
  total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' || true)
  copies=$((packets * subscribers))
  echo
  echo "instructions in ForwardWorkload::forward: $total for $packets packets x $subscribers subscribers"
  echo "instructions per forwarded packet: $((total / copies))"
else
  valgrind --tool=callgrind --callgrind-out-file="$out" "${command[@]}" &
  pid=$!
  if [ "$duration" != 0 ]; then
    sleep "$duration"
    kill -INT "$pid" 2>/dev/null || true
  fi
  wait "$pid" || true
fi

echo
echo "== top $top by inclusive instructions =="
callgrind_annotate --inclusive=yes "$out" 2>/dev/null | sed -n '/^Ir/,$p' | head -n $((top + 2)) || true
echo
echo "== top $top by self instructions =="
callgrind_annotate "$out" 2>/dev/null | sed -n '/^Ir/,$p' | head -n $((top + 2)) || true

#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time (default 300 s each), two at a time, with the
# committed seed corpus as input. New inputs the fuzzer finds go to a scratch directory, so the
# committed corpus stays small; crashes are kept in fuzz/artifacts/<target>/.
# Usage: scripts/fuzz.sh [seconds] [target ...]   (needs the nightly toolchain and cargo-fuzz)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-300}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
scratch=${FUZZ_SCRATCH:-/tmp/sluice-fuzz}
mkdir -p "$scratch"
cargo +nightly fuzz build
run() {
  local target=$1
  mkdir -p "$scratch/corpus/$target"
  local status=0
  cargo +nightly fuzz run "$target" "$scratch/corpus/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$scratch/$target.log" 2>&1 || status=$?
  local runs
  runs=$(grep -E '^stat::number_of_executed_units' "$scratch/$target.log" | awk '{print $2}')
  local cov
  cov=$(grep -E '^#[0-9]+.*cov:' "$scratch/$target.log" | tail -1 | sed -E 's/.*cov: ([0-9]+).*/\1/')
  printf '%-18s %5ss  exit %s  executions %s  coverage %s\n' "$target" "$seconds" "$status" "${runs:-?}" "${cov:-?}"
}
pending=("${targets[@]}")
while [ ${#pending[@]} -gt 0 ]; do
  run "${pending[0]}" &
  if [ ${#pending[@]} -gt 1 ]; then run "${pending[1]}" & fi
  wait
  pending=("${pending[@]:2}")
done

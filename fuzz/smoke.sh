#!/usr/bin/env bash
# Runs every fuzz target in turn for SECONDS (default 60), one job, niced,
# memory-capped, and prints libFuzzer's last status line of each. Optional:
# needs the nightly toolchain and cargo-fuzz; CI (stable) does not run it.
#   fuzz/smoke.sh            # a one-minute smoke of each target
#   fuzz/smoke.sh 1800       # a long run
#   fuzz/smoke.sh 600 gossip_input   # some targets only
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
targets=(resp_parse envelope_open gossip_input stream_frames)
if (($# > 1)); then
  targets=("${@:2}")
fi
nice -n 19 cargo +nightly fuzz build >/dev/null
mkdir -p logs
status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="logs/$target.log"
  # No `ulimit -v`: AddressSanitizer maps ~16 TiB of shadow address space
  # up front and fails under any such cap. Memory is capped by libFuzzer
  # instead: resident size and any single allocation, 2 GiB each.
  if ! ( nice -n 19 cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"$log" 2>&1 ); then
    echo "$target: FAILED (see fuzz/$log and fuzz/artifacts/$target/)"
    status=1
  fi
  echo "$target: $(grep -E '^#[0-9]+' "$log" | tail -1)"
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$log" | sed "s/^/  /"
  echo "  corpus: $(ls "corpus/$target" | wc -l) inputs, $(du -sh "corpus/$target" | cut -f1)"
done
exit "$status"

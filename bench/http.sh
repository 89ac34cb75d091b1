#!/usr/bin/env bash
# Ward over HTTP on loopback, from a load generator in a second process:
# throughput beside a trivial axum handler, 100-item batches, p99 at half
# load, and a ~1 MiB policy upload while another tenant keeps deciding.
# Prints each figure and its ratio.
#
#   bench/http.sh                  # throughput and upload (about 1 minute)
#   bench/http.sh noisy            # the noisy-neighbour rounds (about 2 minutes)
#   bench/http.sh heavy            # only the CPU-heavy neighbour rounds (about 1 minute)
#   bench/http.sh noisy throughput upload
#
# Everything listens on 127.0.0.1 only; the run stops by itself and is
# killed after WARD_BENCH_TIMEOUT seconds (default 600) if it does not.
set -euo pipefail
cd "$(dirname "$0")/.."

phases=("$@")
if [ ${#phases[@]} -eq 0 ]; then
  phases=(throughput upload)
fi

# Build first, so that the time limit covers only the measurement.
cargo bench -p ward-cli --bench load --no-run
exec timeout --kill-after=10 "${WARD_BENCH_TIMEOUT:-600}" \
  cargo bench -p ward-cli --bench load -- "${phases[@]}"

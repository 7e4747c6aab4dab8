#!/usr/bin/env bash
# Benchmarks of the edge collector:
#   1. the collect core natively (criterion): validate + enrich, events/s on one core;
#   2. requests/s through the built Worker in workerd (wrk, batches of 20),
#      beside the same load straight to `clickstream serve` in the same run.
# BENCH_SECONDS (20) and BENCH_CONNECTIONS (16) tune the second.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

ensure_rust
ensure_node_tools
apt_install wrk
log "collect core (criterion)"
cargo bench --locked -p edge-worker --bench collect
log "requests through the Worker in workerd (wrk)"
bash scripts/build-worker.sh
cargo build --release --locked -p clickstream-backend --bin clickstream
CLICKSTREAM_BIN="$ROOT/target/release/clickstream" node edge-worker/bench/requests.mjs

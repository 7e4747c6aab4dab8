#!/usr/bin/env bash
# Every test: installs what it needs, then runs the Rust tests of all crates
# (with the Python Polars and DuckDB checks of the written Parquet, and
# examples/analyze.py), builds the browser tracker, runs its tests in
# headless Chromium, drives the demo shop in Chromium against a real
# `clickstream serve`, opens the dashboard of a running `clickstream demo`
# in Chromium, and runs the built edge Worker in workerd in front of serve.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

ensure_rust
ensure_python_polars

log "cargo test (all crates)"
if [ -z "${FLUVIO_SC_ADDR:-}" ]; then
  log "FLUVIO_SC_ADDR unset: the stream conformance suite and the pipeline run against Fluvio are skipped (their embedded-log runs still assert everything); set it to a cluster's SC, e.g. 127.0.0.1:9003, to run them"
fi
cargo test --locked --workspace

log "the tracker: size-optimised wasm32 build (prints its gzipped size)"
ensure_chromium
ensure_wasm_bindgen
ensure_node_tools
bash scripts/build-tracker.sh

log "the tracker in headless Chromium: its core and its glue (wasm-bindgen-test)"
ensure_wasm_target
# --lib: the unit tests (doctests would need rustdoc of the same toolchain).
(cd collector-wasm && CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner CHROMEDRIVER=/usr/bin/chromedriver \
  "$WASM_CARGO" test --locked --lib --target wasm32-unknown-unknown $WASM_BUILD_STD --target-dir "$ROOT/target/wasm" -p collector-wasm)

log "the demo shop end to end: Chromium → tracker → clickstream serve → Silver"
cargo build --locked -q -p clickstream-backend --bin clickstream
CLICKSTREAM_BIN="$ROOT/target/debug/clickstream" node --test collector-wasm/e2e/

log "the dashboard in Chromium, on a running clickstream demo"
CLICKSTREAM_BIN="$ROOT/target/debug/clickstream" node --test backend/e2e/

log "the edge Worker in workerd, in front of clickstream serve"
bash scripts/build-worker.sh
CLICKSTREAM_BIN="$ROOT/target/debug/clickstream" node --test edge-worker/e2e/

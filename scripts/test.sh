#!/usr/bin/env bash
# Every test: installs what it needs, then runs the Rust tests of all crates,
# the Python Polars checks of the written Parquet, and the wasm32 build of
# the crates that run in browsers and Workers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

ensure_rust
ensure_python_polars

log "cargo test (all crates)"
cargo test --locked --workspace

log "wasm32: the contract crate and the tracker build for browsers and Workers"
ensure_wasm_target
$WASM_CARGO build --locked --release --target wasm32-unknown-unknown \
  $WASM_BUILD_STD --target-dir "$ROOT/target/wasm" -p clickstream-schema -p collector-wasm
echo "wasm32 build: ok"

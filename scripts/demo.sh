#!/usr/bin/env bash
# The local pipeline demo: installs what it needs, builds, and runs
# `clickstream demo` (demo shop with its tracker, collector, ingest, embedded log, aggregator
# writing Parquet, synthetic traffic). Ctrl-C stops it cleanly.
# Extra arguments go to `clickstream demo` (for example --port 9090).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

ensure_rust
# What the tracker's build needs is installed first, in the foreground
# (apt may ask for a password). Then the demo shop's tracker (served at
# /t/) builds alongside clickstream: it has a target directory of its own,
# and fills the cores while the backend build is down to one long crate.
ensure_debian_wasm
ensure_wasm_bindgen
ensure_node_tools
tracker_log="$(mktemp)"
bash "$ROOT/scripts/build-tracker.sh" > "$tracker_log" 2>&1 &
tracker=$!
# The dev profile with optimised dependencies (Cargo.toml): the same build
# the tests use, so `scripts/test.sh` afterwards compiles only the tests.
log "building clickstream and the tracker (the first build takes several minutes)"
if ! cargo build --locked -p clickstream-backend --bin clickstream; then
  kill "$tracker" 2>/dev/null || true
  exit 1
fi
if ! wait "$tracker"; then
  cat "$tracker_log" >&2
  echo "error: building the tracker failed (above)" >&2
  exit 1
fi
cat "$tracker_log"
rm -f "$tracker_log"
exec "$ROOT/target/debug/clickstream" demo "$@"

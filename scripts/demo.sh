#!/usr/bin/env bash
# The local pipeline demo: installs what it needs, builds, and runs
# `clickstream demo` (demo shop with its tracker, collector, ingest, embedded log, aggregator
# writing Parquet, synthetic traffic). Ctrl-C stops it cleanly.
# Extra arguments go to `clickstream demo` (for example --port 9090).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

ensure_rust
bash "$ROOT/scripts/build-tracker.sh"   # the demo shop's tracker, served at /t/
# The dev profile with optimised dependencies (Cargo.toml): the same build
# the tests use, so `scripts/test.sh` afterwards compiles only the tests.
log "building clickstream (the first build takes several minutes)"
cargo build --locked -p clickstream-backend --bin clickstream
exec "$ROOT/target/debug/clickstream" demo "$@"

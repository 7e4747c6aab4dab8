#!/usr/bin/env bash
# Benchmarks on this machine: builds clickstream (release), installs DuckDB
# into .venv for the Gold comparison, and runs
#   bench ingest  (HTTP → durable log)
#   bench silver  (log → Bronze → Silver, and Bronze → Silver alone)
#   bench gold    (Silver → every Gold table, vs DuckDB SQL on the same Parquet,
#                  and one incremental micro-batch)
#   bench api     (response times of the dashboard's API over 10M events)
# Arguments: which benches (default: ingest silver gold api). GOLD_EVENTS sets
# the Gold sizes (default "1000000 10000000"), API_EVENTS the API's (10000000).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

ensure_rust
ensure_python_polars
log "building clickstream (release)"
cargo build --release --locked -p clickstream-backend --bin clickstream
bin="$ROOT/target/release/clickstream"

for what in "${@:-ingest silver gold api}"; do
  for w in $what; do
    case "$w" in
      ingest) "$bin" bench ingest ;;
      silver) "$bin" bench silver ;;
      gold)
        for n in ${GOLD_EVENTS:-1000000 10000000}; do
          "$bin" bench gold --events "$n" --duckdb "$CLICKSTREAM_PYTHON"
        done ;;
      api) "$bin" bench api --events "${API_EVENTS:-10000000}" ;;
      *) echo "unknown bench '$w' (ingest, silver, gold, api)" >&2; exit 2 ;;
    esac
  done
done

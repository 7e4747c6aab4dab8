#!/usr/bin/env bash
# Benchmarks on this machine: builds clickstream (release), installs DuckDB
# into .venv for the Gold comparison, and runs
#   bench ingest  (HTTP → durable log)
#   bench silver  (log → Bronze → Silver, and Bronze → Silver alone)
#   bench gold    (Silver → every Gold table, vs DuckDB SQL on the same Parquet,
#                  and one incremental micro-batch)
#   bench api     (response times of the dashboard's API over 10M events)
#   bench stream  (produce and consume events/s, 1 and 4 partitions: the
#                  embedded log, and Fluvio too when FLUVIO_SC_ADDR is set)
# Arguments: which benches (default: ingest silver gold api stream). GOLD_EVENTS sets
# the Gold sizes (default "1000000 10000000"), API_EVENTS the API's (10000000).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

ensure_rust
ensure_python_polars
log "building clickstream (release)"
cargo build --release --locked -p clickstream-backend --bin clickstream
bin="$ROOT/target/release/clickstream"

for what in "${@:-ingest silver gold api stream}"; do
  for w in $what; do
    case "$w" in
      ingest) "$bin" bench ingest ;;
      silver) "$bin" bench silver ;;
      gold)
        for n in ${GOLD_EVENTS:-1000000 10000000}; do
          "$bin" bench gold --events "$n" --duckdb "$CLICKSTREAM_PYTHON"
        done ;;
      api) "$bin" bench api --events "${API_EVENTS:-10000000}" ;;
      stream)
        for p in 1 4; do
          env -u FLUVIO_SC_ADDR "$bin" bench stream --partitions "$p"
          if [ -n "${FLUVIO_SC_ADDR:-}" ]; then
            "$bin" bench stream --partitions "$p" --fluvio-sc "$FLUVIO_SC_ADDR"
          fi
        done ;;
      *) echo "unknown bench '$w' (ingest, silver, gold, api, stream)" >&2; exit 2 ;;
    esac
  done
done

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
#   worker        (requests/s through the built Worker in workerd vs the same
#                  load straight to `serve`, in the same run; scripts/bench-worker.sh
#                  also runs the collect core's criterion bench)
#   tracker       (the tracker's wasm + JS, gzipped, against its budget)
# Arguments: which benches (default: all of them). GOLD_EVENTS sets the Gold
# sizes (default "1000000 10000000"), API_EVENTS the API's (10000000),
# BENCH_SECONDS the Worker's load per side (20).
# Ends with one table: each measured row beside its peer of the same run and
# the target of the speed issue.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

ensure_rust
ensure_python_polars
ensure_node_tools
log "building clickstream (release)"
cargo build --release --locked -p clickstream-backend --bin clickstream
bin="$ROOT/target/release/clickstream"

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
# Runs a bench, showing its output and keeping it for the summary.
keep() { "$@" 2>&1 | tee -a "$out"; }

for what in "${@:-ingest silver gold api stream worker tracker}"; do
  for w in $what; do
    case "$w" in
      ingest) keep "$bin" bench ingest ;;
      silver) keep "$bin" bench silver ;;
      gold)
        for n in ${GOLD_EVENTS:-1000000 10000000}; do
          keep "$bin" bench gold --events "$n" --duckdb "$CLICKSTREAM_PYTHON"
        done ;;
      api) keep "$bin" bench api --events "${API_EVENTS:-10000000}" ;;
      stream)
        for p in 1 4; do
          keep env -u FLUVIO_SC_ADDR "$bin" bench stream --partitions "$p"
          if [ -n "${FLUVIO_SC_ADDR:-}" ]; then
            keep "$bin" bench stream --partitions "$p" --fluvio-sc "$FLUVIO_SC_ADDR"
          fi
        done ;;
      worker)
        ensure_node_tools
        apt_install wrk
        bash scripts/build-worker.sh
        keep env CLICKSTREAM_BIN="$bin" node edge-worker/bench/requests.mjs ;;
      tracker) keep bash scripts/build-tracker.sh ;;
      *) echo "unknown bench '$w' (ingest, silver, gold, api, stream, worker, tracker)" >&2; exit 2 ;;
    esac
  done
done

# The summary: the last figure each bench printed for its row.
last() { grep -E "$1" "$out" | tail -1 || true; }
# field 'REGEX' 'REPLACEMENT' LINE: the replacement, where the line matches.
field() { sed -nE "s#$1#$2#p" <<<"$3"; }
row() { printf '%-34s %-40s %-40s %s\n' "$1" "$2" "$3" "$4"; }
echo
echo "== summary (this run) =="
row "step" "measured" "peer, same run" "target"
line=$(last '^bench ingest:')
[ -n "$line" ] && row "ingest, HTTP to durable log" \
  "$(field '.* ([0-9]+) events/s.*p99 ([0-9.]+) ms.*' '\1 events/s, p99 \2 ms' "$line")" "-" "≥ 250000 events/s, p99 < 20 ms"
line=$(last '^bench silver: 1000000 events log')
[ -n "$line" ] && row "log to Bronze to Silver, 1M events" \
  "$(field '.*: ([0-9]+) events/s.*peak RSS ([0-9]+) MiB.*' '\1 events/s, peak \2 MiB' "$line")" "-" "≥ 500000 events/s, peak < 800 MiB"
while read -r line; do
  events=$(field '.* for ([0-9]+) events in .*' '\1' "$line")
  polars=$(field '.* in ([0-9.]+) s: .*peak RSS ([0-9]+) MiB.*' 'Polars \1 s, \2 MiB' "$line")
  duck=$(awk -v l="$line" 'found && /DuckDB, same tables/ { print; exit } $0 == l { found = 1 }' "$out")
  duck=$(field '.*DuckDB, same tables .*: ([0-9.]+) s, peak RSS ([0-9]+) MiB; ratio Polars/DuckDB = ([0-9.]+).*' 'DuckDB \1 s, \2 MiB (ratio \3)' "$duck")
  row "Gold from Silver, $events events" "$polars" "${duck:--}" "ratio ≤ 0.75, peak < 1.5 GiB"
done < <(grep -E '^bench gold: Silver → all [0-9]+ Gold tables' "$out" || true)
line=$(last '^Worker path / direct:')
[ -n "$line" ] && row "Worker in workerd vs serve direct" \
  "$(field '.*/ingest +([0-9]+) req/s.*' '\1 req/s' "$(last '^Worker in workerd → serve /ingest +[0-9]')")" \
  "$(field '.*\(peer\) +([0-9]+) req/s.*' 'serve \1 req/s' "$(last '^serve POST /v1/batch \(peer\)')") ($(field 'Worker path / direct: (.*)' 'ratio \1' "$line"))" \
  "ratio ≥ 0.5"
# With FLUVIO_SC_ADDR: the Worker producing to Fluvio itself, against
# serve's own /v1/batch on the same cluster.
line=$(last '^Worker → Fluvio / Worker → /ingest:')
[ -n "$line" ] && row "Worker → Fluvio vs serve direct" \
  "$(field '.*Fluvio +([0-9]+) req/s.*' '\1 req/s' "$(last '^Worker in workerd → Fluvio +[0-9]')")" \
  "$(field '.*\(peer\) +([0-9]+) req/s.*' 'serve \1 req/s' "$(last '^serve POST /v1/batch → Fluvio \(peer\)')") ($(field '.*Worker → Fluvio / direct: (.*)' 'ratio \1' "$line"))" \
  "ratio ≥ 0.5"
line=$(last '^  total ')
[ -n "$line" ] && row "tracker, wasm + JS gzipped" "$(field '^  total +([0-9]+) bytes.*' '\1 bytes' "$line")" "-" "≤ 20000 bytes"
true

#!/usr/bin/env bash
# The chaos suite (issue 18 item 8): generator traffic, with patient retries,
# into `clickstream serve` while it is SIGKILLed and restarted at random
# (some kills aimed at a micro-batch, i.e. a Gold refresh, some at a
# maintenance round's compaction, some at a `clickstream compact` run);
# then the pipeline drains and the data is checked: every acknowledged
# event is in Silver exactly once, no event id twice, nothing in Silver that
# was never sent, rejects lose nothing, and every Gold table equals
# `clickstream gold --rebuild` row for row. Then the scaled-out layout:
# partition consumers and the Gold role SIGKILLed mid-drain, the same
# checks. Then a disk-full run: the data
# directory on a small tmpfs filled up, ingest answers 503, nothing
# acknowledged is lost, and the pipeline resumes once space returns.
#
#   bash scripts/chaos.sh --short        # CI (scripts/test.sh): ~3 minutes, >= 10 kills
#   bash scripts/chaos.sh                # by hand: 20 minutes, kills every 3-20 s
#   bash scripts/chaos.sh --duration 3600 --keep
#
# Flags: --short, --duration SECONDS (the chaos phase), --min-kills N,
# --no-disk-full, --keep (keep the work directory), --seed N.
# Uses $CLICKSTREAM_BIN, else target/debug/clickstream (built if missing).
# Prints one TAP line per check and `# pass N` / `# fail N` at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

SHORT="" DURATION="" MIN_KILLS="" DISK_FULL=1 KEEP="" SEED=$((RANDOM * 32768 + RANDOM))
while [ $# -gt 0 ]; do
  case "$1" in
    --short) SHORT=1 ;;
    --duration) DURATION="$2"; shift ;;
    --min-kills) MIN_KILLS="$2"; shift ;;
    --no-disk-full) DISK_FULL="" ;;
    --keep) KEEP=1 ;;
    --seed) SEED="$2"; shift ;;
    *) echo "usage: $0 [--short] [--duration SECONDS] [--min-kills N] [--no-disk-full] [--keep] [--seed N]" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$SHORT" ]; then
  DURATION=${DURATION:-100} MIN_KILLS=${MIN_KILLS:-10}
  PIECE_EVENTS=6000 KILL_GAP_MIN=3 KILL_GAP_MAX=7 MAINTENANCE_SECONDS=4 COMPACT_KILLS=2 SCALED_EVENTS=20000 CONSUMER_KILLS=3
else
  DURATION=${DURATION:-1200} MIN_KILLS=${MIN_KILLS:-60}
  PIECE_EVENTS=20000 KILL_GAP_MIN=3 KILL_GAP_MAX=20 MAINTENANCE_SECONDS=10 COMPACT_KILLS=10 SCALED_EVENTS=200000 CONSUMER_KILLS=10
fi
RANDOM=$SEED

BIN="${CLICKSTREAM_BIN:-$ROOT/target/debug/clickstream}"
if [ ! -x "$BIN" ]; then
  ensure_rust
  ensure_node_tools
  log "building clickstream"
  cargo build --locked -q -p clickstream-backend --bin clickstream
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/clickstream-chaos.XXXXXX")"
started_at=$(date +%s)

# Every process this script starts, so the exit trap ends exactly those.
PIDS=()
MOUNTED=""
FAILED=0 PASSED=0 N=0
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$MOUNTED" ]; then umount "$MOUNTED" 2>/dev/null || umount -l "$MOUNTED" 2>/dev/null || true; fi
  if [ -n "$KEEP" ] || [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

check() { # check DESCRIPTION COMMAND...: one TAP line
  local what="$1"; shift
  N=$((N + 1))
  if "$@"; then
    echo "ok $N - $what"; PASSED=$((PASSED + 1))
  else
    echo "not ok $N - $what"; FAILED=$((FAILED + 1))
  fi
}
ok() { N=$((N + 1)); echo "ok $N - $1"; PASSED=$((PASSED + 1)); }
not_ok() { N=$((N + 1)); echo "not ok $N - $1"; FAILED=$((FAILED + 1)); }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_serve DATA_DIR PORT CONFIG LOG [ARGS...]: starts serve in the
# background, sets SERVE_PID, waits until it answers /health.
start_serve() {
  local data="$1" port="$2" config="$3" logfile="$4"; shift 4
  RUST_LOG="info,clickstream_backend::aggregate::runner=debug" \
    "$BIN" --log-json serve --data-dir "$data" --port "$port" --config "$config" "$@" >>"$logfile" 2>&1 &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  local deadline=$(($(date +%s) + 120))
  until curl -sf -o /dev/null "http://127.0.0.1:$port/health"; do
    if ! kill -0 "$SERVE_PID" 2>/dev/null; then
      echo "serve exited at start; its log:" >&2; tail -20 "$logfile" >&2; return 1
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { echo "serve did not answer /health within 120 s" >&2; return 1; }
    sleep 0.1
  done
}

# stop_serve: SIGTERM (a clean stop drains everything acknowledged), SIGKILL
# after 120 s.
stop_serve() {
  kill -TERM "$SERVE_PID" 2>/dev/null || return 0
  local i
  for i in $(seq 1 1200); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVE_PID" 2>/dev/null || true
  wait "$SERVE_PID" 2>/dev/null || true
}

# Where in its work the log says serve was at the moment of a kill: the
# last of the debug lines around micro-batches and maintenance rounds.
serve_phase() {
  local line
  line=$(grep -aoE '"message":"(micro-batch started|micro-batch committed|maintenance round started|maintenance round done|compacted final partitions)"' "$1" | tail -1)
  case "$line" in
    *"micro-batch started"*) echo batch ;;
    *"maintenance round started"*|*"compacted final partitions"*) echo compaction ;;
    *) echo idle ;;
  esac
}

# ---------------------------------------------------------------- chaos
DATA="$WORK/data"
PORT=$(free_port)
CONFIG="$WORK/clickstream.toml"
SERVE_LOG="$WORK/serve.log"
cat >"$CONFIG" <<EOF
[aggregate]
poll_interval_ms = 200
max_records_per_partition = 2000
maintenance_every_seconds = $MAINTENANCE_SECONDS
EOF
log "chaos: seed $SEED, ${DURATION}s of traffic, serve on port $PORT, work directory $WORK"
start_serve "$DATA" "$PORT" "$CONFIG" "$SERVE_LOG"

# Traffic: generator pieces back to back until the chaos ends. Each replays
# a history ending now (so earlier hours are final and get compacted, and
# each piece's events land in hours already compacted), retrying every
# send for up to 10 minutes; --out records what the server acknowledged.
traffic() {
  local i=0 deadline=$1
  while [ "$(date +%s)" -lt "$deadline" ]; do
    i=$((i + 1))
    "$BIN" generate --target "http://127.0.0.1:$PORT" --events "$PIECE_EVENTS" --seed $((SEED + i)) \
      --out "$WORK/sent-$i.ndjson" --retry-for 600 --malformed-share 0.03 --duplicate-share 0.05 \
      >>"$WORK/generate.out" 2>>"$WORK/generate.log" || echo "generator piece $i failed" >>"$WORK/generate.out"
  done
}
chaos_end=$(($(date +%s) + DURATION))
traffic "$chaos_end" &
TRAFFIC_PID=$!
PIDS+=("$TRAFFIC_PID")

KILLS_SERVE=0 KILLS_BATCH=0 KILLS_COMPACTION=0 KILLS_COMPACT_CMD=0 COMPACT_RUNS=0
COMPACT_LOG="$WORK/compact.log"
# kill_serve: SIGKILL, noting what the log says serve was doing.
kill_serve() {
  local phase
  kill -9 "$SERVE_PID" 2>/dev/null || return 0
  wait "$SERVE_PID" 2>/dev/null || true
  phase=$(serve_phase "$SERVE_LOG")
  KILLS_SERVE=$((KILLS_SERVE + 1))
  case "$phase" in batch) KILLS_BATCH=$((KILLS_BATCH + 1)) ;; compaction) KILLS_COMPACTION=$((KILLS_COMPACTION + 1)) ;; esac
  echo "kill $KILLS_SERVE of serve at +$(($(date +%s) - started_at))s ($1; the log says: $phase)"
  echo '{"message":"chaos: SIGKILL"}' >>"$SERVE_LOG"
}
# wait_for_line PATTERN SECONDS: until a new log line matches (after the
# lines already there), or the time is up.
wait_for_line() {
  local from deadline
  from=$(wc -l <"$SERVE_LOG")
  deadline=$(($(date +%s) + $2))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    tail -n +"$((from + 1))" "$SERVE_LOG" | grep -aq "$1" && return 0
    sleep 0.05
  done
  return 1
}

compact_kills_left=$COMPACT_KILLS
while [ "$(date +%s)" -lt "$chaos_end" ] || [ "$KILLS_SERVE" -lt "$MIN_KILLS" ]; do
  sleep "$((KILL_GAP_MIN + RANDOM % (KILL_GAP_MAX - KILL_GAP_MIN + 1)))"
  case $((RANDOM % 3)) in
    0) kill_serve "at a random moment" ;;
    1) # A kill during a micro-batch: Bronze, Silver, the Gold refresh, the commit.
       if wait_for_line '"micro-batch started"' 10; then
         sleep "0.$((RANDOM % 4))"; kill_serve "just after a micro-batch started"
       else kill_serve "no micro-batch seen in 10 s"; fi ;;
    2) # A kill during a maintenance round (compaction).
       if wait_for_line '"maintenance round started"' $((MAINTENANCE_SECONDS * 3)); then
         sleep "0.0$((RANDOM % 10))"; kill_serve "just after a maintenance round started"
       else kill_serve "no maintenance round seen"; fi ;;
  esac
  # Sometimes, while serve is down, `clickstream compact` runs and is
  # killed (or finishes) too.
  if [ "$compact_kills_left" -gt 0 ] && [ $((RANDOM % 3)) -eq 0 ]; then
    compact_kills_left=$((compact_kills_left - 1))
    COMPACT_RUNS=$((COMPACT_RUNS + 1))
    "$BIN" compact --data-dir "$DATA" --config "$CONFIG" >"$COMPACT_LOG.$COMPACT_RUNS" 2>&1 &
    cpid=$!; PIDS+=("$cpid")
    sleep "0.$((RANDOM % 4))"
    kill -9 "$cpid" 2>/dev/null || true
    wait "$cpid" 2>/dev/null || true
    # (A finished run printed its report; kill -9 of a zombie "succeeds".)
    if grep -q '^compacted' "$COMPACT_LOG.$COMPACT_RUNS"; then
      echo "clickstream compact finished before its kill: $(grep '^compacted' "$COMPACT_LOG.$COMPACT_RUNS")"
    else
      KILLS_COMPACT_CMD=$((KILLS_COMPACT_CMD + 1))
      echo "kill of clickstream compact"
    fi
  fi
  sleep "0.$((RANDOM % 10))"
  start_serve "$DATA" "$PORT" "$CONFIG" "$SERVE_LOG"
done
log "chaos over after $KILLS_SERVE kills of serve; waiting for the last generator piece"
wait "$TRAFFIC_PID" || true
stop_serve
# Anything acknowledged but not yet committed is drained (a no-op after a
# clean stop, which drains itself).
"$BIN" aggregate --once --data-dir "$DATA" --config "$CONFIG" 2>>"$WORK/aggregate.log" | tee -a "$WORK/aggregate.out"

# ---------------------------------------------------------------- checks
# verify DATA_DIR SENT_FILES...: compares what the generator recorded as
# acknowledged with Silver and rejects; prints figures, one TAP line each.
verify() {
  python3 "$ROOT/scripts/check_acked.py" "$BIN" "$@"
}

# tap_lines: numbers the python's TAP lines, counts them.
tap_lines() {
  local line
  while IFS= read -r line; do
    case "$line" in
      "ok - "*) ok "${line#ok - }" ;;
      "not ok - "*) not_ok "${line#not ok - }" ;;
      *) echo "$line" ;;
    esac
  done
}

gold_rebuild() { # gold_rebuild DATA_DIR: one TAP line
  if "$BIN" gold --rebuild --data-dir "$1" --config "$CONFIG" >"$WORK/rebuild.out" 2>&1; then
    cat "$WORK/rebuild.out"; ok "every Gold table equals clickstream gold --rebuild ($(grep -c ' same' "$WORK/rebuild.out") tables)"
  else
    cat "$WORK/rebuild.out"; not_ok "every Gold table equals clickstream gold --rebuild ($(grep -c 'DIFFERS' "$WORK/rebuild.out") differ)"
  fi
}

log "checks after the chaos"
silver_files_before=$(find "$DATA/silver" -name '*.parquet' | wc -l)
tap_lines < <(verify "$DATA" "$WORK"/sent-*.ndjson)
gold_rebuild "$DATA"
# Compaction: what serve's maintenance rounds did, then one last
# `clickstream compact` (its report) and the checks once more.
python3 - "$SERVE_LOG" <<'PY'
import json, sys
rounds = before = after = parts = 0
for line in open(sys.argv[1], errors="replace"):
    try:
        f = json.loads(line).get("fields", {})
    except ValueError:
        continue
    if f.get("message") == "compacted final partitions":
        rounds += 1; before += f.get("files_before", 0); after += f.get("files_after", 0); parts += f.get("partitions", 0)
print(f"figures: serve's maintenance compacted {rounds} times: {parts} partitions, {before} files into {after}")
PY
"$BIN" compact --data-dir "$DATA" --config "$CONFIG" 2>&1 | tail -1 | tee "$WORK/compact-final.out"
silver_files_after=$(find "$DATA/silver" -name '*.parquet' | wc -l)
echo "figures: Silver files before the final compaction $silver_files_before, after $silver_files_after"
tap_lines < <(verify "$DATA" "$WORK"/sent-*.ndjson | grep -E '^(not )?ok - ' | sed 's/ - / - after the final compaction: /')
gold_rebuild "$DATA"
kills_total=$((KILLS_SERVE + KILLS_COMPACT_CMD))
check "at least $MIN_KILLS kills survived ($KILLS_SERVE of serve, $KILLS_COMPACT_CMD of clickstream compact)" \
  test "$KILLS_SERVE" -ge "$MIN_KILLS"
gen_sent=$(awk '/^sent /{s += $2} END {print s + 0}' "$WORK/generate.out")
gen_failed=$(grep -c '^generator piece' "$WORK/generate.out" || true)
gen_refused=$(awk '/^sent /{gsub(/[(,]/, " "); for (i = 1; i <= NF; i++) if ($(i+1) == "failed)") f += $i} END {print f + 0}' "$WORK/generate.out")
check "no generator piece failed, no send refused ($gen_refused refused)" test "$gen_refused" -eq 0 -a "$gen_failed" -eq 0
echo "figures: kills: serve $KILLS_SERVE ($KILLS_BATCH during a micro-batch with its Gold refresh, $KILLS_COMPACTION during a maintenance round/compaction), clickstream compact $KILLS_COMPACT_CMD of $COMPACT_RUNS runs; events generated $gen_sent"

# ------------------------------------ partition consumers and the Gold role
# The scaled-out layout: `serve --no-aggregate` only ingests; one
# `aggregate --partitions P` per partition writes Bronze, Silver and
# rejects; `clickstream gold` folds their commits into Gold. The embedded
# log has one owner at a time, so the consumers take turns (with Fluvio they
# run side by side), each SIGKILLed at random mid-drain and started again
# until it finishes, while the Gold role is SIGKILLed and restarted too.
KILLS_CONSUMER=0 KILLS_GOLD=0
committed() { # committed DATA_DIR PARTITION: the consumer's last commit number
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["seq"])' "$1/_state/manifest-p$2.json" 2>/dev/null || echo 0
}
scaled_out() {
  local data="$WORK/scaled" port config slog p k cpid rc
  port=$(free_port) config="$WORK/scaled.toml" slog="$WORK/scaled-serve.log"
  # Small micro-batches: each consumer's drain is many commits to cut into.
  printf '[aggregate]\npoll_interval_ms = 100\nmax_records_per_partition = 150\n' >"$config"
  log "scaled out: ingest only, then partition consumers and the Gold role killed at random"
  start_serve "$data" "$port" "$config" "$slog" --no-aggregate
  "$BIN" generate --target "http://127.0.0.1:$port" --events "$SCALED_EVENTS" --seed $((SEED + 2000)) \
    --out "$WORK/scaled-sent-1.ndjson" --retry-for 600 --malformed-share 0.03 --duplicate-share 0.05 \
    >>"$WORK/generate.out" 2>>"$WORK/generate.log"
  stop_serve
  start_gold() {
    RUST_LOG=info "$BIN" gold --data-dir "$data" --config "$config" >>"$WORK/gold-role.log" 2>&1 &
    GOLD_PID=$!; PIDS+=("$GOLD_PID")
  }
  start_gold
  for p in 0 1 2 3; do
    for k in $(seq 1 "$CONSUMER_KILLS"); do
      "$BIN" aggregate --partitions "$p" --data-dir "$data" --config "$config" \
        >>"$WORK/consumers.out" 2>>"$WORK/consumers.log" &
      cpid=$!; PIDS+=("$cpid")
      sleep "0.$((3 + RANDOM % 7))"
      if ! kill -0 "$cpid" 2>/dev/null; then
        rc=0; wait "$cpid" 2>/dev/null || rc=$?
        not_ok "scaled out: partition consumer $p exited on its own with $rc (see $WORK/consumers.log)"
        break
      fi
      kill -9 "$cpid"; wait "$cpid" 2>/dev/null || true
      KILLS_CONSUMER=$((KILLS_CONSUMER + 1))
      echo "kill $KILLS_CONSUMER of a partition consumer (partition $p, after its commit $(committed "$data" "$p"))"
      if [ $((k % 2)) -eq 1 ]; then
        kill -9 "$GOLD_PID" 2>/dev/null || true
        wait "$GOLD_PID" 2>/dev/null || true
        KILLS_GOLD=$((KILLS_GOLD + 1))
        echo "kill $KILLS_GOLD of the Gold role"
        start_gold
      fi
    done
  done
  # Whatever a killed run left is drained, then Gold catches up.
  for p in 0 1 2 3; do
    "$BIN" aggregate --once --partitions "$p" --data-dir "$data" --config "$config" 2>>"$WORK/consumers.log" | tail -1
  done
  kill -TERM "$GOLD_PID" 2>/dev/null || true
  wait "$GOLD_PID" 2>/dev/null || true
  "$BIN" gold --once --data-dir "$data" --config "$config" 2>>"$WORK/gold-role.log" | tail -1
  check "scaled out: kills survived: $KILLS_CONSUMER of partition consumers, $KILLS_GOLD of the Gold role" \
    test "$KILLS_CONSUMER" -ge $((4 * CONSUMER_KILLS)) -a "$KILLS_GOLD" -ge 4
  tap_lines < <(verify "$data" "$WORK"/scaled-sent-*.ndjson | sed 's/^\(\(not \)\?ok - \)/\1scaled out: /')
  gold_rebuild "$data"
}
scaled_out

# ---------------------------------------------------------------- disk full
disk_full() {
  local mnt="$WORK/full" data port config slog
  mkdir -p "$mnt"
  # The embedded log keeps every event (~1.3 KB each) until trimmed, so the
  # file system holds the whole run: 8,000 events and a ballast file.
  if ! mount -t tmpfs -o size=64m tmpfs "$mnt" 2>"$WORK/mount.err"; then
    log "disk-full run skipped: cannot mount a tmpfs here ($(cat "$WORK/mount.err")); run as root"
    echo "# skipped 1"
    return 0
  fi
  MOUNTED="$mnt"
  data="$mnt/data" port=$(free_port) config="$WORK/full.toml" slog="$WORK/full-serve.log"
  printf '[aggregate]\npoll_interval_ms = 200\nmaintenance_every_seconds = 0\n' >"$config"
  log "disk full: data directory on a 64 MB tmpfs, serve on port $port"
  # The log keeps 1 MiB written with zeros ahead of its end here (8 by
  # default): once the disk is full it takes that much more, then refuses.
  CLICKSTREAM_LOG_ZERO_AHEAD_MIB=1 start_serve "$data" "$port" "$config" "$slog"
  "$BIN" generate --target "http://127.0.0.1:$port" --events 2000 --seed $((SEED + 1000)) \
    --out "$WORK/full-sent-1.ndjson" --retry-for 600 >>"$WORK/generate.out" 2>>"$WORK/generate.log"
  # A ballast file takes all but 1 MB; traffic fills the rest.
  local avail
  avail=$(df --output=avail -B1 "$mnt" | tail -1)
  fallocate -l $((avail - 1024 * 1024)) "$mnt/ballast" 2>/dev/null || dd if=/dev/zero of="$mnt/ballast" bs=1M count=$((avail / 1048576 - 1)) 2>/dev/null || true
  # Enough to fill what is left and the log's space written ahead.
  "$BIN" generate --target "http://127.0.0.1:$port" --events 50000 --seed $((SEED + 1001)) \
    --out "$WORK/full-sent-2.ndjson" --retry-for 600 >>"$WORK/generate.out" 2>>"$WORK/generate.log" &
  local gpid=$! code="" i refused=""
  PIDS+=("$gpid")
  # Until ingest answers 503: probe with a batch of one valid event (each
  # probe answered 2xx is an acknowledged event too).
  probe() { # probe ID: prints the HTTP status
    local now; now=$(date +%s%3N)
    curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
      --data "{\"v\":1,\"site_id\":\"shop-1\",\"sent_at\":$now,\"events\":[{\"event_id\":\"$1\",\"event_type\":\"page_view\",\"ts\":$now,\"anonymous_id\":\"a-probe\",\"session_id\":\"s\",\"page\":{\"url\":\"https://shop.example/\",\"path\":\"/\"}}]}" \
      "http://127.0.0.1:$port/v1/batch" || true
  }
  acked_probe() { echo "{\"site_id\":\"shop-1\",\"expect\":\"accepted\",\"event\":{\"event_id\":\"$1\"}}" >>"$WORK/full-sent-probes.ndjson"; }
  for i in $(seq 1 600); do
    code=$(probe "probe-$SEED-$i")
    case "$code" in 2??) acked_probe "probe-$SEED-$i" ;; 503) refused="probe-$SEED-$i"; break ;; esac
    sleep 0.1
  done
  df -h "$mnt" | tail -1
  check "disk full: ingest answers 503 (got $code; $(grep -ac 'answering 503' "$slog") 503s logged)" test "$code" = 503
  grep -a 'answering 503' "$slog" | head -1 | cut -c1-400
  sleep 3
  log "disk full: freeing the space"
  rm -f "$mnt/ballast"
  df -h "$mnt" | tail -1
  # The refused probe is sent again, as a tracker would, until acknowledged.
  for i in $(seq 1 600); do
    [ -n "$refused" ] || break
    case "$(probe "$refused")" in 2??) acked_probe "$refused"; break ;; esac
    sleep 0.2
  done
  # Its sends were being refused: they go through now, or the pipeline did
  # not resume.
  for i in $(seq 1 1200); do kill -0 "$gpid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$gpid" 2>/dev/null; then
    kill -9 "$gpid"; wait "$gpid" 2>/dev/null || true
    not_ok "disk full: the refused sends went through within 120 s of space returning"
  else
    wait "$gpid" || true
    check "disk full: the refused sends went through once space returned" \
      test "$(tail -1 "$WORK/generate.out" | grep -c ' 0 failed)')" -eq 1
  fi
  "$BIN" generate --target "http://127.0.0.1:$port" --events 2000 --seed $((SEED + 1002)) \
    --out "$WORK/full-sent-3.ndjson" --retry-for 600 >>"$WORK/generate.out" 2>>"$WORK/generate.log"
  stop_serve
  "$BIN" aggregate --once --data-dir "$data" --config "$config" 2>>"$WORK/aggregate.log" | tee -a "$WORK/aggregate.out"
  check "disk full: events sent after the space returned reached Silver" \
    test "$("$BIN" query --data-dir "$data" --format csv "SELECT count(*) AS n FROM silver_events" | tail -1)" -gt 0
  tap_lines < <(verify "$data" "$WORK"/full-sent-*.ndjson | sed 's/^\(\(not \)\?ok - \)/\1disk full: /')
  gold_rebuild "$data"
}
if [ -n "$DISK_FULL" ]; then disk_full; fi

wall=$(($(date +%s) - started_at))
echo "figures: wall time ${wall}s"
echo "# pass $PASSED"
echo "# fail $FAILED"
[ "$FAILED" -eq 0 ]

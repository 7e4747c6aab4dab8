#!/usr/bin/env bash
# The backend image, built and run as a user runs it, with podman and no
# image registry: a local Debian base (debootstrap) stands in for
# debian:bookworm-slim, the Dockerfile's `prebuilt` target copies a binary
# built on the host, and the image then runs each role on one data
# directory mounted from the host:
#
#   serve --no-aggregate (ingest)  ← generator traffic, with malformed events
#                                    and duplicates, each send retried until
#                                    acknowledged
#   aggregate --partitions 0,1 / 2,3 (the embedded log has one owner at a
#                                    time, so they take turns)
#   gold                           → then Silver, rejects and Gold are
#                                    checked from the host
#
# Also checked: the HEALTHCHECK, a non-root user, JSON logs, the tracker at
# /t/, the token on /metrics; then deploy/compose.single.yaml brought up with
# podman-compose (PyPI) under traffic and down again. Prints TAP lines and
# "# pass/# fail" totals.
# Exits 3 (with the reason) when containers cannot run on this machine.
#
# Usage: scripts/container-test.sh [--keep]
#   CLICKSTREAM_BIN  the binary to put in the image (default: the debug
#                    build, built if missing; a release build gives the
#                    size users get)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

KEEP=""
[ "${1:-}" = "--keep" ] && KEEP=1
IMAGE=localhost/clickstream:test
BASE=docker.io/library/debian:bookworm-slim
PODMAN=(podman --runtime runc)
NAME="clickstream-test-$$"

skip() { echo "SKIP: $*" >&2; exit 3; }

# ------------------------------------------------------------ podman and base
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  apt_install podman runc debootstrap || skip "podman could not be installed (apt-get install podman runc debootstrap)"
fi
# runc fails on setrlimit without these (../shared/TOOLCHAIN.md, "Containers").
if ! grep -qs default_ulimits /etc/containers/containers.conf; then
  $SUDO mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\npids_limit = 0\n' | $SUDO tee -a /etc/containers/containers.conf >/dev/null
fi
if ! podman image exists "$BASE"; then
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  # apt's own mirror (deb822 or one-line sources), else Debian's.
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/clickstream-rootfs.XXXXXX")
  log "a local Debian base image: debootstrap --variant=minbase bookworm from $mirror (about a minute, once)"
  $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -5 "$rootfs.log" >&2; skip "debootstrap failed (log above)"; }
  # What the slim image leaves out too.
  $SUDO rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/*
  $SUDO tar -C "$rootfs" -c . | podman import -q - localhost/debian-min:bookworm >/dev/null
  podman tag localhost/debian-min:bookworm "$BASE"
  $SUDO rm -rf "$rootfs" "$rootfs.log"
fi
"${PODMAN[@]}" run --rm "$BASE" true 2>/dev/null || skip "podman cannot run a container here ('podman --runtime runc run $BASE true' failed)"

# ------------------------------------------------------------ what goes in
BIN="${CLICKSTREAM_BIN:-$ROOT/target/debug/clickstream}"
if [ ! -x "$BIN" ]; then
  ensure_rust
  ensure_node_tools
  log "building clickstream"
  cargo build --locked -q -p clickstream-backend --bin clickstream
fi
if [ ! -f collector-wasm/dist/clickstream.js ]; then
  log "building the tracker (the image serves it at /t/)"
  bash scripts/build-tracker.sh
fi
mkdir -p build/container
strip -o build/container/clickstream "$BIN" 2>/dev/null || cp "$BIN" build/container/clickstream

WORK="$(mktemp -d "${TMPDIR:-/tmp}/clickstream-container.XXXXXX")"
DATA="$WORK/data"
mkdir -p "$DATA"
# The image's user (uid 10001) owns the data directory, as on a volume.
$SUDO chown 10001 "$DATA"
FAILED=0 PASSED=0 N=0
COMPOSE=()
cleanup() {
  local rc=$?
  podman rm -f "$NAME-serve" >/dev/null 2>&1 || true
  if [ -n "${COMPOSE[*]:-}" ]; then "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true; fi
  if [ -n "$KEEP" ] || [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
    log "work directory kept: $WORK"
  else
    $SUDO rm -rf "$WORK"
  fi
}
trap cleanup EXIT
ok() { N=$((N + 1)); echo "ok $N - $1"; PASSED=$((PASSED + 1)); }
not_ok() { N=$((N + 1)); echo "not ok $N - $1"; FAILED=$((FAILED + 1)); }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
# relay PREFIX: counts the "ok - …" / "not ok - …" lines of check_acked.py
# as this script's own, each prefixed; passes other lines through.
relay() {
  local line
  while IFS= read -r line; do
    case "$line" in
      "ok - "*) ok "$1${line#ok - }" ;;
      "not ok - "*) not_ok "$1${line#not ok - }" ;;
      *) echo "$line" ;;
    esac
  done
}

# ------------------------------------------------------------ build
log "podman build --target prebuilt (the Dockerfile as users have it; no registry)"
if podman build -q --format docker --target prebuilt -t "$IMAGE" . >"$WORK/build.log" 2>&1; then
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  ok "the image builds from the local base: $((size / 1000000)) MB ($(du -m build/container/clickstream | cut -f1) MiB of it the binary $(basename "$BIN") from $(dirname "$BIN"))"
else
  cat "$WORK/build.log" >&2
  not_ok "the image builds"; exit 1
fi
healthcheck=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
check "the image has a HEALTHCHECK ($healthcheck)" grep -q 'clickstream' <<<"$healthcheck"
uid=$("${PODMAN[@]}" run --rm --no-healthcheck --entrypoint /usr/bin/id "$IMAGE" -u)
check "it runs as a non-root user (uid $uid)" test "$uid" != 0

# ------------------------------------------------------------ ingest
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
# The settings a deployment passes; secrets from the environment, never baked in.
ROLE=("${PODMAN[@]}" run --network host -v "$DATA:/data"
  -e CLICKSTREAM_PORT="$PORT" -e CLICKSTREAM_BIND=127.0.0.1
  -e CLICKSTREAM_API_TOKENS="$TOKEN" -e CLICKSTREAM_INGEST_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')")
log "ingest: serve --no-aggregate on port $PORT"
"${ROLE[@]}" -d --name "$NAME-serve" "$IMAGE" serve --no-aggregate >/dev/null 2>"$WORK/podman.log"
deadline=$(($(date +%s) + 60))
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/health"; do
  if [ "$(date +%s)" -gt "$deadline" ]; then podman logs "$NAME-serve" >&2; not_ok "serve answers /health"; exit 1; fi
  sleep 0.2
done
ok "serve in the container answers /health"
check "podman healthcheck run: healthy" podman healthcheck run "$NAME-serve" 2>>"$WORK/podman.log"
served=$(curl -sf "http://127.0.0.1:$PORT/t/clickstream.js" | sha256sum | cut -d' ' -f1)
check "the tracker is served at /t/ (the built one)" test "$served" = "$(sha256sum collector-wasm/dist/clickstream.js | cut -d' ' -f1)"
check "/metrics refuses a request without the token" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")" = 401
check "/metrics answers with the token" curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/metrics"

log "generator traffic: 4000 events, 3% malformed, 5% sent twice, each send retried until acknowledged"
"$BIN" generate --target "http://127.0.0.1:$PORT" --events 4000 --seed 20 --out "$WORK/sent.ndjson" \
  --retry-for 120 --malformed-share 0.03 --duplicate-share 0.05 >"$WORK/generate.out" 2>"$WORK/generate.log"
tail -1 "$WORK/generate.out"
check "serve stops cleanly on SIGTERM (podman stop)" podman stop -t 60 "$NAME-serve" >/dev/null 2>>"$WORK/podman.log"
check "serve exited 0" test "$(podman inspect --format '{{.State.ExitCode}}' "$NAME-serve")" = 0
podman logs "$NAME-serve" >"$WORK/serve.log" 2>&1
check "every log line of serve is JSON ($(wc -l <"$WORK/serve.log") lines)" python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
assert lines, "no log lines"
for l in lines: json.loads(l)' "$WORK/serve.log"
podman rm "$NAME-serve" >/dev/null

# ------------------------------------------------------------ aggregate and Gold
for partitions in 0,1 2,3; do
  log "aggregate --once --partitions $partitions"
  if "${ROLE[@]}" --rm --no-healthcheck "$IMAGE" aggregate --once --partitions "$partitions" \
      >"$WORK/aggregate.out" 2>>"$WORK/roles.log"; then
    ok "aggregate --partitions $partitions: $(tail -1 "$WORK/aggregate.out")"
  else
    not_ok "aggregate --partitions $partitions (exit $?; $WORK/roles.log)"
  fi
done
log "gold --once"
gold_out=$("${ROLE[@]}" --rm --no-healthcheck "$IMAGE" gold --once 2>>"$WORK/roles.log" | tail -1) || true
check "the Gold role folds in both consumers' Silver: $gold_out" grep -q 'Gold: folded in' <<<"$gold_out"

# ------------------------------------------------------------ from the host
relay "" < <(python3 scripts/check_acked.py "$BIN" "$DATA" "$WORK/sent.ndjson")
if "${ROLE[@]}" --rm --no-healthcheck "$IMAGE" gold --rebuild >"$WORK/rebuild.out" 2>>"$WORK/roles.log"; then
  cat "$WORK/rebuild.out"; ok "every Gold table equals clickstream gold --rebuild ($(grep -c ' same' "$WORK/rebuild.out") tables)"
else
  cat "$WORK/rebuild.out"; not_ok "every Gold table equals clickstream gold --rebuild"
fi

# ------------------------------------------------------------ compose
# deploy/compose.single.yaml (serve with the embedded log, a named volume,
# the port published on loopback) brought up with podman-compose, as a user
# would with docker compose, against the image built above.
ensure_python_polars
if [ ! -x "$ROOT/.venv/bin/podman-compose" ]; then
  log "pip install podman-compose (into .venv)"
  "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check podman-compose
fi
COMPOSE_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
COMPOSE=(env CLICKSTREAM_IMAGE="$IMAGE" CLICKSTREAM_PORT="$COMPOSE_PORT" CLICKSTREAM_API_TOKENS="$TOKEN"
  CLICKSTREAM_INGEST_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  "$ROOT/.venv/bin/podman-compose" --podman-args="--runtime runc" -p "$NAME" -f deploy/compose.single.yaml)
refused=$(env -u CLICKSTREAM_API_TOKENS "$ROOT/.venv/bin/podman-compose" -p "$NAME" -f deploy/compose.single.yaml config 2>&1 || true)
check "compose refuses to start without CLICKSTREAM_API_TOKENS" grep -q 'CLICKSTREAM_API_TOKENS' <<<"$refused"
log "podman-compose up: deploy/compose.single.yaml on port $COMPOSE_PORT"
"${COMPOSE[@]}" up -d >"$WORK/compose.log" 2>&1 || { cat "$WORK/compose.log" >&2; not_ok "podman-compose up"; }
deadline=$(($(date +%s) + 60))
until curl -sf -o /dev/null "http://127.0.0.1:$COMPOSE_PORT/health" || [ "$(date +%s)" -gt "$deadline" ]; do sleep 0.2; done
check "podman-compose up: serve answers on the published port" curl -sf -o /dev/null "http://127.0.0.1:$COMPOSE_PORT/health"
# Through the bridge every request comes from one address, so the per-client
# rate limit may answer some with 429; the generator retries them.
"$BIN" generate --target "http://127.0.0.1:$COMPOSE_PORT" --events 600 --seed 21 --out "$WORK/compose-sent.ndjson" \
  --retry-for 120 --malformed-share 0.03 --duplicate-share 0.05 >"$WORK/compose-generate.out" 2>>"$WORK/generate.log"
tail -1 "$WORK/compose-generate.out"
"${COMPOSE[@]}" stop >>"$WORK/compose.log" 2>&1
container=$(podman ps -a --filter "label=io.podman.compose.project=$NAME" --format '{{.Names}}' | head -1)
check "podman-compose stop: serve drained and exited 0" test "$(podman inspect --format '{{.State.ExitCode}}' "$container" 2>/dev/null)" = 0
volume=$(podman volume inspect --format '{{.Mountpoint}}' "${NAME}_clickstream-data")
relay "compose: " < <(python3 scripts/check_acked.py "$BIN" "$volume" "$WORK/compose-sent.ndjson")
"${COMPOSE[@]}" down -v >>"$WORK/compose.log" 2>&1 || true

echo "# pass $PASSED"
echo "# fail $FAILED"
[ "$FAILED" -eq 0 ]

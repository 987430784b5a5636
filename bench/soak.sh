#!/usr/bin/env bash
# Soak: the express app under rsup (cluster mode, 2 instances, --wait-ready)
# with steady load for the whole run, through reloads, `rsup update`s,
# instance crashes and a SIGKILL of the daemon. Loopback only; stops by
# itself.
#
#   bash bench/soak.sh                          # about 5 minutes (DURATION=300)
#   DURATION=60 RELOADS=10 UPDATES=1 CRASHES=4 bash bench/soak.sh
#
# Settings are listed at the top of soak.js. Prints a table and saves it to
# bench/results/soak-latest.txt (not tracked). Whatever ends the run, the
# daemon and every app process it started are stopped: soak.js does it, and
# this script kills whatever still carries the run's marker after it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

if ! command -v node >/dev/null 2>&1; then
  echo "node is not installed (Node 18 or later)" >&2
  exit 2
fi

# express, pinned in bench/package-lock.json, into bench/node_modules.
if [ ! -d "$here/node_modules/express" ]; then
  (cd "$here" && npm install --no-audit --no-fund)
fi

target="${CARGO_TARGET_DIR:-$repo/target}"
if [ -z "${RSUP:-}" ]; then
  (cd "$repo" && cargo build --release -p rsup --quiet)
  export RSUP="$target/release/rsup"
fi
# The preload needs the native addon beside it.
if ! ls "$repo"/npm/rsup/*.node >/dev/null 2>&1; then
  (cd "$repo" && node npm/rsup/scripts/build.js --with-cli)
fi

# Every process of the run (CLI, daemon, apps) inherits this marker.
RSUP_SOAK_RUN="$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
export RSUP_SOAK_RUN
SOAK_HOME="${SOAK_HOME:-$(mktemp -d "${TMPDIR:-/tmp}/rsup-soak-XXXXXX")}"
export SOAK_HOME

# The run's processes still alive, daemons first (so that none restarts
# an app meanwhile).
leftovers() {
  local pids=() e pid
  if [ -f "$SOAK_HOME/rsup.pid" ]; then
    pid="$(cat "$SOAK_HOME/rsup.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && grep -qsz "^RSUP_SOAK_RUN=$RSUP_SOAK_RUN\$" "/proc/$pid/environ"; then
      pids+=("$pid")
    fi
  fi
  for e in /proc/[0-9]*/environ; do
    pid="${e#/proc/}"
    pid="${pid%/environ}"
    [ "$pid" = "$$" ] && continue
    if grep -qsz "^RSUP_SOAK_RUN=$RSUP_SOAK_RUN\$" "$e"; then pids+=("$pid"); fi
  done
  echo "${pids[@]:-}"
}

finish() {
  local rc=$? pass pids
  trap - EXIT INT TERM HUP
  # soak.js has stopped everything unless it was itself killed.
  for pass in 1 2 3; do
    pids="$(leftovers)"
    [ -z "$pids" ] && break
    [ "$pass" = 1 ] && echo "[soak] killing leftover processes: $pids" >&2
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.2
  done
  if [ -z "${KEEP_HOME:-}" ]; then rm -rf "$SOAK_HOME"; fi
  exit "$rc"
}
# Run in the background so that a signal to this script is handled at once:
# passed on to soak.js, which stops the daemon and the apps, then finish().
node "$here/soak.js" &
driver=$!
stop() {
  kill -TERM "$driver" 2>/dev/null || true
  wait "$driver" 2>/dev/null || true
  exit 130
}
trap finish EXIT
trap stop INT TERM HUP
wait "$driver"

#!/usr/bin/env bash
# Long-lived connections through reloads: the ws, socket.io and server-sent
# event apps of tests/fixtures/long-lived under PM2 and rsup, many clients
# each, several reloads. Loopback only.
#
#   bash bench/long-lived-bench.sh              # about 1 minute
#   CLIENTS=100 RELOADS=5 bash bench/long-lived-bench.sh
#   ONLY=rsup KINDS=ws bash bench/long-lived-bench.sh
#
# Settings are listed at the top of long-lived-bench.js. Prints a table and
# saves it to bench/results/long-lived-latest.txt (not tracked).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

if ! command -v node >/dev/null 2>&1; then
  echo "node is not installed (Node 18 or later)" >&2
  exit 2
fi

# PM2, pinned in bench/package-lock.json; ws, socket.io and its client,
# pinned in tests/package-lock.json (the apps and clients are the tests').
if [ ! -x "$here/node_modules/.bin/pm2" ]; then
  (cd "$here" && npm install --no-audit --no-fund)
fi
if [ ! -d "$repo/tests/node_modules/socket.io-client" ]; then
  (cd "$repo/tests" && npm ci --no-audit --no-fund)
fi

if [ -z "${RSUP:-}" ] && [ "${ONLY:-}" != pm2 ]; then
  (cd "$repo" && cargo build --release -p rsup --quiet)
fi

exec node "$here/long-lived-bench.js"

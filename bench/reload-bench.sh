#!/usr/bin/env bash
# Reload benchmark: the same express app under PM2 and rsup, in cluster mode
# (-i 2) and fork mode (-i 1), wrk running while the app is reloaded.
#
#   bash bench/reload-bench.sh                  # about 4 minutes
#   DURATION=20 RELOADS=3 bash bench/reload-bench.sh
#   ONLY=rsup bash bench/reload-bench.sh
#
# Settings are listed at the top of reload-bench.js. Prints a table and saves
# it to bench/results/latest.txt (not tracked).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is not installed. On Debian/Ubuntu: sudo apt-get install -y wrk" >&2
  exit 2
fi
if ! command -v node >/dev/null 2>&1; then
  echo "node is not installed (Node 18 or later)" >&2
  exit 2
fi

# PM2 and express, pinned in bench/package-lock.json, into bench/node_modules.
if [ ! -x "$here/node_modules/.bin/pm2" ] || [ ! -d "$here/node_modules/express" ]; then
  (cd "$here" && npm install --no-audit --no-fund)
fi

if [ -z "${RSUP:-}" ] && [ "${ONLY:-}" != pm2 ]; then
  (cd "$repo" && cargo build --release -p rsup --quiet)
fi

exec node "$here/reload-bench.js"

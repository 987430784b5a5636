#!/usr/bin/env bash
# Per-request overhead: the smallest HTTP app (bench/hello/app.js) bare,
# under rsup (one fork instance, with its preload) and under PM2 (fork
# mode), measured with wrk in alternating rounds.
#
#   bash bench/overhead-bench.sh                 # about 8 minutes
#   ROUNDS=3 DURATION=5 bash bench/overhead-bench.sh
#   MODES=bare,rsup bash bench/overhead-bench.sh
#   MODES=bare,rsup,old=/tmp/old/preload.js bash bench/overhead-bench.sh  # another preload beside
#
# Settings are listed at the top of overhead-bench.js. Prints a table and
# saves it to bench/results/overhead.txt (not tracked).
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

# PM2, pinned in bench/package-lock.json, into bench/node_modules.
if [ ! -x "$here/node_modules/.bin/pm2" ]; then
  (cd "$here" && npm install --no-audit --no-fund)
fi

if [ -z "${RSUP:-}" ] && [[ ",${MODES:-rsup}," == *,rsup,* ]]; then
  (cd "$repo" && cargo build --release -p rsup --quiet)
fi
# The preload needs the package's native addon.
if ! ls "$repo"/npm/rsup/rsup.*.node >/dev/null 2>&1; then
  echo "no native addon in npm/rsup: run node npm/rsup/scripts/build.js --with-cli" >&2
  exit 2
fi

exec node "$here/overhead-bench.js"

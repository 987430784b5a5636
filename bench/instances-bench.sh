#!/usr/bin/env bash
# Cost per instance: N fork-mode instances of a shell sleeper under PM2 and
# rsup, one after the other, each in a private state directory. Prints the
# daemon's RSS (fresh, with N instances, per instance), the time to start
# them and the median `jlist` time, and saves the table to
# bench/results/instances-latest.txt (not tracked).
#
#   bash bench/instances-bench.sh             # N=1000, about a minute
#   N=200 bash bench/instances-bench.sh
#   ONLY=rsup bash bench/instances-bench.sh
#
# Settings are listed at the top of instances-bench.js.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
n="${N:-1000}"

if ! command -v node >/dev/null 2>&1; then
  echo "node is not installed (Node 18 or later)" >&2
  exit 2
fi

# Each instance holds a few descriptors in the daemon (pipes, channels):
# raise the soft limit toward the hard one if it is short.
need=$((n * 6 + 1024))
soft="$(ulimit -Sn)"
hard="$(ulimit -Hn)"
if [ "$soft" != unlimited ] && [ "$soft" -lt "$need" ]; then
  if [ "$hard" = unlimited ] || [ "$hard" -ge "$need" ]; then
    ulimit -Sn "$need"
  else
    ulimit -Sn "$hard"
    echo "warning: descriptor limit $hard is below the $need that N=$n may need" >&2
  fi
fi
pid_max="$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 0)"
if [ "$pid_max" -gt 0 ] && [ "$pid_max" -lt $((n * 3)) ]; then
  echo "warning: pid_max $pid_max is small for N=$n" >&2
fi
export BENCH_NOFILE="$(ulimit -Sn)"

if [ ! -x "$here/node_modules/.bin/pm2" ] && [ "${ONLY:-}" != rsup ]; then
  (cd "$here" && npm install --no-audit --no-fund)
fi

if [ -z "${RSUP:-}" ] && [ "${ONLY:-}" != pm2 ]; then
  (cd "$repo" && cargo build --release -p rsup --quiet)
fi

exec node "$here/instances-bench.js"

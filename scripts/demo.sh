#!/usr/bin/env bash
# The main job: the example express app (js-examples/express-rsup) under
# rsup, two instances on one port, left running. Builds rsup and its addon
# (release, into npm/rsup/native/ and beside npm/rsup/index.js) first, so it
# works on a fresh machine with Rust, Node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

node npm/rsup/scripts/build.js --with-cli
(cd js-examples/express-rsup && npm install --no-audit --no-fund --loglevel=error)

export RSUP_HOME="${RSUP_HOME:-$root/.rsup-demo}"
export PORT="${PORT:-3000}"
rsup="$root/npm/rsup/native/rsup"

cd js-examples/express-rsup
"$rsup" delete demo >/dev/null 2>&1 || true
"$rsup" start app.js --name demo -i 2 --wait-ready

echo
echo "Four requests to http://127.0.0.1:$PORT/ (answered by both instances):"
node -e '
  const port = process.env.PORT;
  (async () => {
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close" } });
      console.log(`  ${res.status} ${(await res.text()).trim()}`);
    }
  })().catch((e) => { console.error(e); process.exit(1); });
'
cat <<MSG

The app keeps running under rsup. The rsup command is $rsup
(in js-examples/express-rsup, which installed the package, also \`npx rsup\`). Try:
  export RSUP_HOME=$RSUP_HOME
  $rsup reload demo      # zero-downtime reload
  $rsup logs demo
  $rsup kill             # stop the app and the daemon
MSG

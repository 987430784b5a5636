#!/usr/bin/env bash
# npm/rsup/binding.js (the loader) and binding.d.ts (the addon's types) are
# what @napi-rs/cli generates from crates/rsup-node. They are committed, so
# building and installing rsup needs neither the CLI nor the Node 22.13+ it
# runs on; this script regenerates them with the CLI pinned in
# scripts/napi/package-lock.json, under Node 22 from the npm registry (both
# cached in target/tools/).
#
#   bash scripts/napi-binding.sh           # fails when the committed files differ
#   bash scripts/napi-binding.sh --write   # replaces them
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

node22=$(bash scripts/lib/fetch-node.sh 22)
cli_dir="$root/target/tools/napi-cli"
if ! cmp -s scripts/napi/package-lock.json "$cli_dir/package-lock.json" 2>/dev/null ||
  [ ! -d "$cli_dir/node_modules/@napi-rs/cli" ]; then
  rm -rf "$cli_dir" && mkdir -p "$cli_dir"
  cp scripts/napi/package.json scripts/napi/package-lock.json "$cli_dir/"
  (cd "$cli_dir" && npm install --no-audit --no-fund --loglevel=error >npm-install.log 2>&1) ||
    { cat "$cli_dir/npm-install.log" >&2; exit 1; }
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$node22" "$cli_dir/node_modules/@napi-rs/cli/dist/cli.js" build --platform \
  --manifest-path crates/rsup-node/Cargo.toml --package-json-path npm/rsup/package.json \
  --output-dir "$out" --js binding.js --dts binding.d.ts >"$out/build.log" 2>&1 ||
  { cat "$out/build.log" >&2; exit 1; }

status=0
for file in binding.js binding.d.ts; do
  if [ "${1:-}" = --write ]; then
    cp "$out/$file" "npm/rsup/$file"
  elif ! diff -u "npm/rsup/$file" "$out/$file" >"$out/$file.diff"; then
    head -n 40 "$out/$file.diff" >&2
    echo "npm/rsup/$file differs from what @napi-rs/cli generates: run bash scripts/napi-binding.sh --write" >&2
    status=1
  fi
done
[ $status = 0 ] && echo "npm/rsup/binding.js and binding.d.ts match @napi-rs/cli's output"
exit $status

#!/usr/bin/env bash
# Prints the path of a Node binary of the given major version, fetched once
# from the npm registry's Node packages (node-<os>-<arch>@<major>) into
# target/tools/node-<major>/ and reused from there.
#
#   bash scripts/lib/fetch-node.sh 22    # -> .../target/tools/node-22/package/bin/node
set -euo pipefail
major="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/target/tools/node-$major"
bin="$dir/package/bin/node"
if [ ! -x "$bin" ]; then
  pkg="node-$(node -p 'process.platform + "-" + process.arch')@$major"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  tarball=$(cd "$dir.tmp" && npm pack "$pkg" --silent --loglevel=error 2>/dev/null | tail -n1)
  tar -xzf "$dir.tmp/$tarball" -C "$dir.tmp"
  rm -f "$dir.tmp/$tarball"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
"$bin" --version >/dev/null
echo "$bin"

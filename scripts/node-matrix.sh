#!/usr/bin/env bash
# The addon, the preload and the CLI on the other Node releases rsup
# supports (npm test runs everything on the machine's own Node): the addon
# suites in tests/addon/ on each release, with that release first on PATH
# so the daemon starts the apps on it too (reload.test.js: start, reload
# under load, stop). PM2's API suite (pm2-api.test.js: calls relayed to the
# rsup binary) runs on the machine's Node only. Node binaries come from the
# npm registry's Node packages, cached under target/tools/. The releases run
# side by side; each one's output is in target/node-matrix/<major>.log.
#
#   bash scripts/node-matrix.sh [MAJOR...]    # default: 18 22 24
set -euo pipefail
cd "$(dirname "$0")/.."

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(18 22 24)
engines=$(node -p 'require("./npm/rsup/package.json").engines.node')
files=()
for f in tests/addon/*.test.js; do
  [ "$f" = tests/addon/pm2-api.test.js ] || files+=("$f")
done

logs=target/node-matrix
mkdir -p "$logs"
declare -A pids
for major in "${majors[@]}"; do
  case " $engines " in
    *"^$major."*) ;;
    *) echo "node-matrix: Node $major is not in npm/rsup's engines ($engines)" >&2; exit 1 ;;
  esac
  node_bin=$(bash scripts/lib/fetch-node.sh "$major")
  PATH="$(dirname "$node_bin"):$PATH" "$node_bin" --test "${files[@]}" >"$logs/$major.log" 2>&1 &
  pids[$major]=$!
done

failed=()
passes=0
fails=0
for major in "${majors[@]}"; do
  if wait "${pids[$major]}"; then status=ok; else status=FAILED; failed+=("$major"); fi
  version=$("$(bash scripts/lib/fetch-node.sh "$major")" --version)
  # TAP (18, 22) or the spec reporter (24) closes with `pass N` and `fail N`.
  summary=$(grep -E '^(#|ℹ) (pass|fail) ' "$logs/$major.log" | sed 's/^[^ ]* //' | paste -sd, - | sed 's/,/, /' || true)
  echo "node-matrix: Node $version: $status ($summary)"
  passes=$((passes + $(grep -E '^(#|ℹ) pass ' "$logs/$major.log" | grep -oE '[0-9]+' || echo 0)))
  fails=$((fails + $(grep -E '^(#|ℹ) fail ' "$logs/$major.log" | grep -oE '[0-9]+' || echo 1)))
done
for major in "${failed[@]}"; do
  echo "--- Node $major: $logs/$major.log" >&2
  grep -B2 -A30 '^not ok' "$logs/$major.log" | head -n 150 >&2 || tail -n 60 "$logs/$major.log" >&2
done
echo "node-matrix: $passes passed, $fails failed"
[ ${#failed[@]} -eq 0 ]

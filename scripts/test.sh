#!/usr/bin/env bash
# Every test of the project: Rust unit tests, the end-to-end tests that drive
# the real rsup binary and Node apps, the addon's Node test suites, the
# packed npm packages installed into a fresh app, and the addon suites on
# the other supported Node releases (fetched from the npm registry into
# target/tools/ on the first run).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace
# The addon beside npm/rsup's preload, which the daemon gives Node apps.
# The debug rsup binary stays in target/debug: a release build that
# `npm run demo` put in npm/rsup/native/ is left alone.
node npm/rsup/scripts/build.js --debug --with-cli
# ws, socket.io and its client, pinned in tests/package-lock.json, for the
# apps and clients of the long-lived connection tests.
npm ci --prefix tests --no-audit --no-fund --loglevel=error
cargo test --workspace
# The container example's manifests and Dockerfile (its image's command runs
# in the e2e tests).
bash scripts/check-kubernetes.sh
export RSUP_BIN="$PWD/target/debug/rsup"
node --test tests/addon/
node --test tests/package/
bash scripts/napi-binding.sh
bash scripts/node-matrix.sh

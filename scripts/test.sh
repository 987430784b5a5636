#!/usr/bin/env bash
# Every test of the project: Rust unit tests, the end-to-end tests that drive
# the real rsup binary and Node apps, and the addon's Node test suites.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace
# The addon and the rsup binary inside the npm package (npm/rsup/native),
# next to the preload the daemon gives Node apps.
node npm/rsup/scripts/build.js --debug --with-cli
# ws, socket.io and its client, pinned in tests/package-lock.json, for the
# apps and clients of the long-lived connection tests.
npm ci --prefix tests --no-audit --no-fund --loglevel=error
cargo test --workspace
# The container example's manifests and Dockerfile (its image's command runs
# in the e2e tests).
bash scripts/check-kubernetes.sh
node --test tests/addon/

#!/usr/bin/env bash
# Every test of the project: Rust unit tests, the end-to-end tests that drive
# the real rsup binary and Node apps, and the addon's Node test suites.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace
cargo test --workspace

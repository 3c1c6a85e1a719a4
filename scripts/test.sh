#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, checks formatting and lints, runs every test
# (unit, model-based, real-process crash, real-client), the benches in test mode, and the O_DIRECT proof.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "benches in test mode (each criterion bench runs once)"
cargo test --workspace --benches

step "segment files are opened with O_DIRECT"
scripts/check-odirect.sh

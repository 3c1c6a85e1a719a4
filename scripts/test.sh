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

# Third-party clients against the real broker (tests/clients/README.md): confluent-kafka (librdkafka),
# kafka-python, the Java kafka-clients and franz-go, and codecs (each codec from each of three clients,
# read by all three). run.sh reuses the debug build cargo test just made.
step "real clients"
scripts/install-clients.sh
tests/clients/run.sh python-confluent kafka-python go java codecs

step "benches in test mode (each criterion bench runs once)"
cargo test --workspace --benches

step "segment files are opened with O_DIRECT"
scripts/check-odirect.sh

step "the fuzz target compiles (running it: fuzz/README.md)"
cargo check -q --manifest-path fuzz/Cargo.toml

#!/usr/bin/env bash
# The one command that runs every test of the project (and what CI runs, via .ci/run):
# formatting, lints, documentation, the Rust test suites (unit, behaviour, interop with the
# real disk-objectstore 1.5.0, crash and concurrency tests in their quick mode), and the Python
# module's tests (pytest, interop, a real aiida-core profile on the compatibility package).
# It installs what it needs into the repository (.venv) and needs only cargo and python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Python venv with disk-objectstore 1.5.0 (for the interop tests)"
scripts/setup-venv.sh
export RSDOS_TEST_PYTHON="$PWD/.venv/bin/python"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p rsdos-pack-opendal --all-targets --features remote-tests -- -D warnings
cargo clippy -p rsdos-cli --all-targets --features remote-tests -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "cargo test"
cargo test --workspace

step "object-storage test servers on 127.0.0.1 (moto S3, Azurite, fake-gcs-server)"
scripts/test-servers.sh start
trap 'scripts/test-servers.sh stop' EXIT

step "cargo test: pack stores and containers on S3, Azure Blob and GCS; the CLI on S3"
cargo test -p rsdos-pack-opendal --features remote-tests
cargo test -p rsdos-cli --features remote-tests --test remote_s3

step "Python module: pytest, interop, and aiida-core on the disk_objectstore compatibility package"
if ! command -v rsync >/dev/null; then
    # disk-objectstore's and aiida-core's backups call rsync.
    (apt-get update -qq && apt-get install -y -qq rsync) >/dev/null
fi
scripts/test-python.sh

step "all tests passed"

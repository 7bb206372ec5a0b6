#!/usr/bin/env bash
# Tests of the rsdos Python module (crates/rsdos-py), in two stages:
#  1. builds the module into the repository venv (.venv, next to the real disk-objectstore
#     1.5.0) and runs crates/rsdos-py/tests: the API, streams, maintenance, threads, processes,
#     and the interoperability tests with disk-objectstore on the same folders;
#  2. installs the wheel and the compatibility package (crates/rsdos-py/compat, which provides
#     `disk_objectstore` backed by rsdos) into target/rsdos-compat-venv, with aiida-core from
#     PyPI, and runs crates/rsdos-py/compat/tests, including a real AiiDA profile on
#     core.sqlite_dos (store files, `verdi storage maintain --full`, `verdi storage backup`,
#     read back). RSDOS_SKIP_AIIDA=1 leaves aiida-core out (its test is then skipped).
# Extra arguments go to both pytest runs (e.g. `scripts/test-python.sh -x`).
# Needs cargo, python3 and rsync; installs what it needs from PyPI into the two venvs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MATURIN_VERSION="1.16.0"
PYTEST_VERSION="9.2.0"
# numpy and h5py: the streams are tested with them (the issue asks for both).
NUMPY_VERSION="2.4.6"
H5PY_VERSION="3.16.0"
AIIDA_VERSION="2.9.4"
VENV="$PWD/.venv"
PY="$VENV/bin/python"

scripts/setup-venv.sh

has_version() { # dist version
    "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null
}
if ! has_version maturin "$MATURIN_VERSION" || ! has_version pytest "$PYTEST_VERSION" \
    || ! has_version numpy "$NUMPY_VERSION" || ! has_version h5py "$H5PY_VERSION"; then
    "$PY" -m pip install --quiet --disable-pip-version-check \
        "maturin==$MATURIN_VERSION" "pytest==$PYTEST_VERSION" \
        "numpy==$NUMPY_VERSION" "h5py==$H5PY_VERSION"
fi

echo "==> maturin develop --release (rsdos Python module into .venv)"
VIRTUAL_ENV="$VENV" "$VENV/bin/maturin" develop --release --quiet \
    --manifest-path crates/rsdos-py/Cargo.toml

echo "==> pytest crates/rsdos-py/tests"
"$PY" -m pytest crates/rsdos-py/tests -q "$@"

echo "==> compatibility package (disk_objectstore backed by rsdos) in target/rsdos-compat-venv"
WHEELS="$PWD/target/rsdos-py-wheels"
rm -rf "$WHEELS"
VIRTUAL_ENV="$VENV" "$VENV/bin/maturin" build --release --quiet \
    --manifest-path crates/rsdos-py/Cargo.toml --out "$WHEELS"
CVENV="$PWD/target/rsdos-compat-venv"
CPY="$CVENV/bin/python"
if [ ! -x "$CPY" ]; then
    python3 -m venv "$CVENV"
fi
chas_version() { # dist version
    "$CPY" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null
}
if ! chas_version pytest "$PYTEST_VERSION"; then
    "$CPY" -m pip install --quiet --disable-pip-version-check "pytest==$PYTEST_VERSION"
fi
if [ "${RSDOS_SKIP_AIIDA:-0}" != "1" ] && ! chas_version aiida-core "$AIIDA_VERSION"; then
    # aiida-core brings the real disk-objectstore; the compatibility package replaces it below.
    "$CPY" -m pip install --quiet --disable-pip-version-check "aiida-core==$AIIDA_VERSION"
fi
"$CPY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
    "$WHEELS"/rsdos-*.whl ./crates/rsdos-py/compat
"$CPY" -m pip check >/dev/null

echo "==> pytest crates/rsdos-py/compat/tests"
(cd crates/rsdos-py/compat && "$CPY" -m pytest tests -q "$@")

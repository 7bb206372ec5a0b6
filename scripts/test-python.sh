#!/usr/bin/env bash
# Builds the rsdos Python module (crates/rsdos-py) into the repository venv (.venv) and runs its
# pytest suite, which includes the interoperability tests with disk-objectstore 1.5.0 on the
# same folders. Extra arguments go to pytest (e.g. `scripts/test-python.sh -k stream -x`).
# Needs only cargo and python3; installs maturin and pytest into .venv when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MATURIN_VERSION="1.16.0"
PYTEST_VERSION="9.2.0"
# numpy and h5py: the streams are tested with them (the issue asks for both).
NUMPY_VERSION="2.4.6"
H5PY_VERSION="3.16.0"
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

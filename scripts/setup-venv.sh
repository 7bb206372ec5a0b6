#!/usr/bin/env bash
# Creates <repo>/.venv with disk-objectstore 1.5.0, the reference implementation the
# interoperability tests (crates/rsdos/tests/interop_disk_objectstore.rs) run against.
# Idempotent: does nothing when the venv already has the right version. Prints nothing on
# success.
set -euo pipefail

DOS_VERSION="1.5.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REPO_ROOT}/.venv"
PY="${VENV}/bin/python"

if [ ! -x "${PY}" ]; then
    python3 -m venv "${VENV}"
fi

has_dos() {
    "${PY}" - "${DOS_VERSION}" >/dev/null 2>&1 <<'PYEOF'
import sys
import disk_objectstore
sys.exit(0 if disk_objectstore.__version__ == sys.argv[1] else 1)
PYEOF
}

if ! has_dos; then
    "${PY}" -m pip install --quiet --disable-pip-version-check "disk-objectstore==${DOS_VERSION}"
    if ! has_dos; then
        echo "setup-venv.sh: disk-objectstore ${DOS_VERSION} is still not importable from ${PY}" >&2
        exit 1
    fi
fi

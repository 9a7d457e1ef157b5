"""``pip install .`` without extras serves, with no torch installed.

A fresh virtual environment gets the package exactly as a user installs it (no extras, dependencies
from the registry). The test checks that torch and Ultralytics are not there, then runs
``actwatch serve`` from that environment on a looping file camera (vtest.avi), the real detector from
the asset cache and a model exported by this (dev) environment, and checks ``/healthz`` and that a
WebSocket client, authenticated with its first message, receives an event.

The environment is cached in ``.cache/test-packaging/`` of the repository, keyed by the hash of
pyproject.toml: the first run downloads the dependencies (a few hundred MB), later runs only reinstall
the package itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.net import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # the first run installs from the registry

REPO = Path(__file__).resolve().parents[1]
VENV_CACHE = REPO / ".cache" / "test-packaging"
TOKEN = "packaging-test-token-0123456789abcdef"
INSTALL_TIMEOUT_S = 1500  # the first run downloads ONNX Runtime, OpenCV, numpy ... from the registry
START_TIMEOUT_S = 300
EVENT_TIMEOUT_S = 300


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _pip(venv: Path, *args: str) -> None:
    cmd = [str(_venv_python(venv)), "-m", "pip", "--disable-pip-version-check", "-q", *args]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def base_venv() -> Path:
    """A virtual environment with ``pip install .`` (no extras), reused while pyproject.toml is unchanged."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    venv = VENV_CACHE / f"venv-{key}"
    stamp = venv / ".installed"
    if not stamp.exists():
        shutil.rmtree(VENV_CACHE, ignore_errors=True)  # older keys and half-made environments
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        _pip(venv, "install", ".")
        stamp.write_text(key + "\n", encoding="utf-8")
    else:
        # The dependencies are those of this pyproject.toml; only the package's own code may have changed.
        _pip(venv, "install", "--no-deps", "--force-reinstall", ".")
    return venv


def _imports(venv: Path, module: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_venv_python(venv)), "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",  # not the repository: its folder must not shadow the installed package
        check=False,
    )


def test_base_install_has_no_training_stack(base_venv: Path) -> None:
    for module in ("torch", "torchvision", "ultralytics", "tensorboard", "matplotlib"):
        result = _imports(base_venv, module)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, (module, result.stderr)
    result = _imports(base_venv, "actwatch, onnxruntime, cv2")
    assert result.returncode == 0, result.stderr
    check = subprocess.run(
        [str(_venv_python(base_venv)), "-m", "pip", "check"], capture_output=True, text=True, timeout=300, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_training_commands_name_the_extra_they_need(base_venv: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(base_venv / "bin" / "actwatch"), "init-model", "--classes", "a,b", "--out", str(tmp_path / "m.pt")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: this command needs torch, which comes with the train extra")
    assert "pip install 'actwatch[train]'" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def served(
    base_venv: Path,
    tmp_path: Path,
    assets_dir: Path,
    vtest_path: Path,
    detector_weights: Path,
    exported_model_dir: Path,
) -> Iterator[str]:
    """``actwatch serve`` from the base environment; yields its base URL and stops it afterwards."""
    port = free_port()
    config = {
        "data_dir": str(tmp_path / "data"),
        "server": {"port": port, "token": TOKEN},
        "sources": {"file_dirs": [str(vtest_path.parent)]},
        "cameras": [{"id": "clip", "url": str(vtest_path), "loop": True, "realtime": True}],
        "detector": {"weights": str(detector_weights)},
        "model": {"dir": str(exported_model_dir)},
        "pipeline": {"stride": 2},
        "alerts": {
            # Every classified window alerts (the model is untrained): an event proves the whole path ran.
            "rules": [{"label": "walking", "threshold": 0.01, "n": 1, "m": 1, "cooldown_s": 0, "min_track_age_s": 0}]
        },
    }
    config_path = tmp_path / "actwatch.yaml"
    config_path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ACTWATCH_") and k != "PYTHONPATH"}
    env["ACTWATCH_CACHE_DIR"] = str(assets_dir)  # the assets this test session fetched; nothing downloads
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(base_venv / "bin" / "actwatch"), "serve", "--config", str(config_path)],
            cwd=tmp_path,  # not the repository: the installed package must be the one that runs
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"actwatch serve exited with {process.returncode}:\n{log_path.read_text()[-6000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"actwatch serve did not answer /healthz in {START_TIMEOUT_S} s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(60)
    text = log_path.read_text(errors="replace")  # reached only when the test passed: then no traceback either
    assert process.returncode == 0 or process.returncode == -signal.SIGTERM, text[-6000:]
    assert "Traceback" not in text, text[-6000:]


def test_base_install_serves_events(base_venv: Path, served: str) -> None:
    health = httpx.get(f"{served}/healthz", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    # Nothing in the running service's environment can import torch: the base install served this.
    assert _imports(base_venv, "torch").returncode != 0

    ws_url = served.replace("http://", "ws://") + "/ws/events"
    with connect(ws_url, open_timeout=60) as ws:
        ws.send(json.dumps({"type": "auth", "token": TOKEN}))  # the first-message form: no token in the URL
        hello = json.loads(ws.recv(timeout=60))
        assert hello["type"] == "hello" and hello["cameras"] == ["clip"], hello
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no event within {EVENT_TIMEOUT_S} s"
            message = json.loads(ws.recv(timeout=remaining))
            if message["type"] == "event":
                break
    event = message["event"]
    assert event["camera_id"] == "clip" and event["label"] == "walking", message

"""Two ONNX Runtime builds in one environment: the serving commands refuse to start, with the fix.

A second build is installed for real as far as Python's package metadata goes: a ``*.dist-info`` folder
(METADATA + RECORD naming ``onnxruntime/__init__.py``) on the path, which is what pip leaves behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actwatch.errors import InstallError
from actwatch.ort_builds import (
    OnnxRuntimeBuild,
    check_one_onnxruntime_build,
    installed_onnxruntime_builds,
)


def _fake_dist(site: Path, name: str, version: str, files: list[str]) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files), encoding="utf-8")


@pytest.fixture
def second_build(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    _fake_dist(site, "onnxruntime-openvino", "1.99.0", ["onnxruntime/__init__.py", "onnxruntime/capi/x.so"])
    # Named onnxruntime* but no build (its own package): never counted.
    _fake_dist(site, "onnxruntime-extensions", "0.14.0", ["onnxruntime_extensions/__init__.py"])
    return site


def test_this_environment_has_one_build() -> None:
    builds = installed_onnxruntime_builds()
    assert len(builds) == 1 and builds[0].name in ("onnxruntime", "onnxruntime-gpu")
    check_one_onnxruntime_build()


def test_second_build_is_found(second_build: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(second_build))
    names = [b.name for b in installed_onnxruntime_builds()]
    assert "onnxruntime-openvino" in names and "onnxruntime-extensions" not in names and len(names) == 2


def test_the_fix_keeps_the_platform_build() -> None:
    builds = [OnnxRuntimeBuild("onnxruntime", "1.32.0"), OnnxRuntimeBuild("onnxruntime-gpu", "1.31.1")]
    with pytest.raises(InstallError) as info:
        check_one_onnxruntime_build(builds, python="/venv/bin/python", platform_build="onnxruntime-gpu")
    assert str(info.value).endswith(
        "/venv/bin/python -m pip uninstall -y onnxruntime onnxruntime-gpu"
        " && /venv/bin/python -m pip install onnxruntime-gpu==1.31.1"
    )
    with pytest.raises(InstallError, match=r"pip install onnxruntime==1\.32\.0$"):
        check_one_onnxruntime_build(builds, python="/venv/bin/python", platform_build="onnxruntime")


def _actwatch(args: list[str], site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    return subprocess.run(
        [sys.executable, "-m", "actwatch", *args], capture_output=True, text=True, timeout=180, env=env, check=False
    )


@pytest.mark.parametrize("command", ["serve", "demo", "bench", "predict"])
def test_serving_commands_refuse_two_builds(second_build: Path, command: str) -> None:
    result = _actwatch([command], second_build)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: 2 ONNX Runtime builds are installed:"), result.stderr
    assert "onnxruntime-openvino 1.99.0" in result.stderr and "-m pip uninstall -y" in result.stderr
    assert "Traceback" not in result.stderr


def test_other_commands_still_run(second_build: Path) -> None:
    result = _actwatch(["validate-config", "--help"], second_build)
    assert result.returncode == 0, result.stderr

"""Exactly one ONNX Runtime build per environment, checked before anything serves or predicts.

Every ONNX Runtime build (``onnxruntime``, ``onnxruntime-gpu``, ``onnxruntime-openvino``,
``onnxruntime-directml`` ...) installs the same ``onnxruntime`` package folder. With two of them the
files of whichever was installed last win, mixed with the other's, and the providers one expects
(CUDA, OpenVINO) silently go missing while ``pip check`` stays quiet. pyproject.toml picks one build per
platform; :func:`check_one_onnxruntime_build` refuses to start when an environment has more anyway
(e.g. a venv that had ``onnxruntime`` before the base dependency became ``onnxruntime-gpu``) and says
the exact command that repairs it.

Example:
    >>> found = [OnnxRuntimeBuild("onnxruntime", "1.32.0"), OnnxRuntimeBuild("onnxruntime-gpu", "1.31.1")]
    >>> check_one_onnxruntime_build(found[:1])
    >>> try:
    ...     check_one_onnxruntime_build(found, python="python3", platform_build="onnxruntime-gpu")
    ... except InstallError as exc:
    ...     print(exc)
    2 ONNX Runtime builds are installed: onnxruntime 1.32.0, onnxruntime-gpu 1.31.1. They share one \
'onnxruntime' package folder, so the providers of one of them are silently missing. Keep one: \
python3 -m pip uninstall -y onnxruntime onnxruntime-gpu && python3 -m pip install onnxruntime-gpu==1.31.1
"""

from __future__ import annotations

import platform
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

from actwatch.errors import InstallError

PACKAGE_FILE = "onnxruntime/__init__.py"
"""The file every ONNX Runtime build installs; a distribution with it is a build."""


@dataclass(frozen=True, slots=True)
class OnnxRuntimeBuild:
    """One installed distribution that provides the ``onnxruntime`` package."""

    name: str
    version: str


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_onnxruntime_builds() -> list[OnnxRuntimeBuild]:
    """The installed distributions that provide the ``onnxruntime`` package, sorted by name.

    Only distributions named ``onnxruntime*`` are opened, and only those whose files include
    ``onnxruntime/__init__.py`` count (``onnxruntime-extensions`` or ``-genai`` are not builds).
    """
    builds: dict[str, OnnxRuntimeBuild] = {}
    for dist in metadata.distributions():
        name = _normalized(dist.metadata["Name"] or "")
        if not name.startswith("onnxruntime") or name in builds:
            continue
        files = dist.files or []
        if any(str(f).replace("\\", "/") == PACKAGE_FILE for f in files):
            builds[name] = OnnxRuntimeBuild(name, dist.version)
    return sorted(builds.values(), key=lambda b: b.name)


def platform_onnxruntime_build() -> str:
    """The build pyproject.toml installs here: ``onnxruntime-gpu`` on Linux x86_64, else ``onnxruntime``."""
    if sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64"):
        return "onnxruntime-gpu"
    return "onnxruntime"


def check_one_onnxruntime_build(
    builds: Sequence[OnnxRuntimeBuild] | None = None,
    *,
    python: str | None = None,
    platform_build: str | None = None,
) -> None:
    """Raise :class:`~actwatch.errors.InstallError` when more than one ONNX Runtime build is installed.

    ``builds`` defaults to :func:`installed_onnxruntime_builds`; ``python`` (default: this interpreter)
    and ``platform_build`` (default: :func:`platform_onnxruntime_build`) only shape the fix command.
    The command uninstalls every build (they share files, so removing one breaks the other) and
    installs the one to keep at its installed version.
    """
    found = list(installed_onnxruntime_builds() if builds is None else builds)
    if len(found) <= 1:
        return
    want = platform_build or platform_onnxruntime_build()
    keep = next((b for b in found if b.name == want), found[0])
    pip = f"{shlex.quote(python or sys.executable)} -m pip"
    names = " ".join(b.name for b in found)
    listed = ", ".join(f"{b.name} {b.version}" for b in found)
    raise InstallError(
        f"{len(found)} ONNX Runtime builds are installed: {listed}. They share one 'onnxruntime' package "
        f"folder, so the providers of one of them are silently missing. Keep one: "
        f"{pip} uninstall -y {names} && {pip} install {keep.name}=={keep.version}"
    )

"""The cameras the service is configured with, changed at run time through the API, and where they are kept.

:class:`CameraRegistry` is the source of truth for ``GET /cameras`` (configuration) while the controller
reports how each running camera is doing (status). :class:`CameraFile` keeps the registry's cameras in
``<data_dir>/cameras.yaml`` (mode 0600: URLs hold credentials), written atomically after every change
made through the API, so that cameras added, changed or removed survive a restart.

Precedence at start-up (:func:`initial_cameras`): once that file exists it holds the whole camera list
and replaces the configuration file's ``cameras:`` (the file records the latest state the API left);
without it, the configuration file's cameras are used. Deleting the file goes back to the configuration.

Example:
    >>> import tempfile, pathlib
    >>> from actwatch.config import CameraConfig
    >>> reg = CameraRegistry([CameraConfig(id="door", url="rtsp://10.0.0.5/s")], max_cameras=2)
    >>> [c.id for c in reg.list()], reg.get("hall")
    (['door'], None)
    >>> saved = CameraFile(pathlib.Path(tempfile.mkdtemp()) / "cameras.yaml")
    >>> saved.load() is None
    True
    >>> saved.save(reg.list())
    >>> [c.id for c in saved.load()], oct(saved.path.stat().st_mode & 0o777)
    (['door'], '0o600')
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml
from pydantic import Field, model_validator

from actwatch.config import CameraConfig, SourcePolicy
from actwatch.errors import ConfigError, SourceError
from actwatch.fileio import atomic_write_text
from actwatch.settings import StrictModel, read_yaml, validate_settings

log = logging.getLogger(__name__)

CAMERA_FILE_NAME = "cameras.yaml"
"""The file in ``data_dir`` that keeps the cameras changed through the API."""
CAMERA_FILE_VERSION = 1

_HEADER = """\
# Cameras of actwatch, as last changed through its API (POST/PATCH/DELETE /cameras).
# Written by the service after every change; it replaces the `cameras:` of the configuration file at
# start-up. Delete this file (service stopped) to go back to the configuration file's cameras.
"""


class SavedCameras(StrictModel):
    """The content of ``<data_dir>/cameras.yaml``."""

    version: int = Field(CAMERA_FILE_VERSION, ge=1, le=CAMERA_FILE_VERSION, description="File format version.")
    cameras: list[CameraConfig] = Field(default_factory=list, description="Every configured camera, in order.")

    @model_validator(mode="after")
    def _unique_ids(self) -> SavedCameras:
        ids = [camera.id for camera in self.cameras]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"cameras: duplicate camera id '{duplicates[0]}'")
        return self


class CameraFile:
    """The camera list kept in one YAML file, written atomically with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> list[CameraConfig] | None:
        """The saved cameras, or ``None`` when there is no file.

        Raises:
            ConfigError: the file is not valid YAML or holds an invalid camera (the key is named).
        """
        if not self.path.exists():
            return None
        data = read_yaml(self.path)
        saved = validate_settings(SavedCameras, data, f"{self.path}; fix or delete it")
        return saved.cameras

    def save(self, cameras: Sequence[CameraConfig]) -> None:
        """Write ``cameras`` (the whole list) atomically; readers see the old file or the new one."""
        saved = SavedCameras(cameras=list(cameras))
        text = _HEADER + yaml.safe_dump(saved.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        atomic_write_text(self.path, text, mode=0o600)


def initial_cameras(
    configured: Sequence[CameraConfig], saved: CameraFile, max_cameras: int, policy: SourcePolicy
) -> list[CameraConfig]:
    """The cameras to start with: the saved file's when it exists, else the configuration file's.

    Saved cameras pass the camera URL ``policy`` again (the configuration file's passed it when it was
    loaded): a policy tightened since they were saved applies to them too.

    Raises:
        ConfigError: the saved file is invalid, holds more than ``max_cameras`` cameras, or a camera the
            policy does not allow.
    """
    cameras = saved.load()
    if cameras is None:
        return list(configured)
    for index, camera in enumerate(cameras):
        try:
            policy.admit(camera.url)
        except SourceError as exc:
            raise ConfigError(
                f"{saved.path}: cameras.{index}.url: {exc}; change the `sources:` policy, or remove the camera "
                "from that file"
            ) from None
    if len(cameras) > max_cameras:
        raise ConfigError(
            f"{saved.path} holds {len(cameras)} cameras, more than server.max_cameras={max_cameras}; "
            "raise server.max_cameras or delete cameras from that file"
        )
    log.info("cameras: %d from %s (saved by the API; they replace the configuration file's)", len(cameras), saved.path)
    if [c.model_dump() for c in configured] != [c.model_dump() for c in cameras]:
        log.warning(
            "the configuration file's cameras (%d) differ from %s, which wins; delete it to use the configuration's",
            len(configured),
            saved.path,
        )
    return cameras


class CameraRegistry:
    """Configured cameras in insertion order; ``lock`` serialises check-then-change sequences."""

    def __init__(self, cameras: Iterable[CameraConfig], max_cameras: int) -> None:
        self.max_cameras = max_cameras
        self.lock = threading.RLock()
        self._cameras: dict[str, CameraConfig] = {}
        self._errors: dict[str, str] = {}  # cameras the controller refused at start-up
        for camera in cameras:
            self.add(camera)

    def __len__(self) -> int:
        return len(self._cameras)

    def __contains__(self, camera_id: object) -> bool:
        return camera_id in self._cameras

    def list(self) -> list[CameraConfig]:
        with self.lock:
            return list(self._cameras.values())

    def get(self, camera_id: str) -> CameraConfig | None:
        return self._cameras.get(camera_id)

    def add(self, camera: CameraConfig) -> None:
        with self.lock:
            if camera.id in self._cameras:
                raise KeyError(f"camera '{camera.id}' already exists")
            if len(self._cameras) >= self.max_cameras:
                raise OverflowError(f"camera limit reached (server.max_cameras={self.max_cameras})")
            self._cameras[camera.id] = camera

    def replace(self, camera: CameraConfig) -> None:
        with self.lock:
            if camera.id not in self._cameras:
                raise KeyError(f"camera '{camera.id}' not found")
            self._cameras[camera.id] = camera
            self._errors.pop(camera.id, None)

    def remove(self, camera_id: str) -> CameraConfig:
        with self.lock:
            self._errors.pop(camera_id, None)
            return self._cameras.pop(camera_id)

    def set_error(self, camera_id: str, error: str | None) -> None:
        """Remember (or clear) why the controller could not start a configured camera."""
        with self.lock:
            if error is None:
                self._errors.pop(camera_id, None)
            else:
                self._errors[camera_id] = error

    def error(self, camera_id: str) -> str | None:
        return self._errors.get(camera_id)

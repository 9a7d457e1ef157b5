"""The cameras the service is configured with, changed at run time through the API.

The registry is the source of truth for ``GET /cameras`` (configuration) while the controller reports
how each running camera is doing (status). Changes are not written back to the YAML file: cameras
added through the API last until the service restarts.

Example:
    >>> from actwatch.config import CameraConfig
    >>> reg = CameraRegistry([CameraConfig(id="door", url="rtsp://10.0.0.5/s")], max_cameras=2)
    >>> [c.id for c in reg.list()], reg.get("hall")
    (['door'], None)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from actwatch.config import CameraConfig


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

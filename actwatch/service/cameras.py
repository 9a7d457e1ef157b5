"""The camera service: the one place that decides when a configured camera runs.

The API's routers and the app's start-up call :class:`CameraService`; it keeps the configured cameras
(:class:`~actwatch.service.registry.CameraRegistry`) and the running ones (the
:class:`~actwatch.service.controller.CameraController`) in step:

- start-up: every enabled camera is started; one that cannot be is remembered as failed, the rest run;
- create: an enabled camera is started before it is registered (a bad URL registers nothing);
- update: disabling stops it, enabling (or enabling again after a failed start) starts it, a new name
  or zone of a running camera is applied without reconnecting;
- delete: a running camera is stopped, then forgotten, and its metrics with it.

Every change is saved to ``<data_dir>/cameras.yaml`` (:class:`~actwatch.service.registry.CameraFile`)
before the call returns, so the cameras survive a restart; :meth:`CameraService.from_config` starts from
that file when it exists (see :mod:`actwatch.service.registry` for the precedence).

Controller errors a user caused (:class:`~actwatch.errors.ActwatchError`) become
:class:`CameraRejectedError`; anything else is logged and becomes :class:`CameraControlError`.

Example:
    >>> from actwatch.service.metrics import ServiceMetrics
    >>> from actwatch.service.registry import CameraRegistry
    >>> class Running:
    ...     def __init__(self): self.ids = []
    ...     def add_camera(self, cfg): self.ids.append(cfg.id)
    ...     def update_camera(self, cfg): pass
    ...     def remove_camera(self, camera_id): self.ids.remove(camera_id)
    ...     def statuses(self): return []
    >>> running = Running()
    >>> service = CameraService(CameraRegistry([], max_cameras=4), running, ServiceMetrics())
    >>> service.create(CameraConfig(id="door", url="rtsp://10.0.0.5/s")).config.id, running.ids
    ('door', ['door'])
    >>> service.update("door", {"enabled": False}).config.enabled, running.ids
    (False, [])
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from actwatch.config import AppConfig, CameraConfig, mask_url
from actwatch.errors import ActwatchError
from actwatch.service.controller import CameraStatusLike
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.registry import CAMERA_FILE_NAME, CameraFile, CameraRegistry, initial_cameras
from actwatch.settings import validation_problems

log = logging.getLogger(__name__)


class Cameras(Protocol):
    """The part of :class:`~actwatch.service.controller.CameraController` that runs cameras."""

    def add_camera(self, cfg: CameraConfig) -> None: ...
    def update_camera(self, cfg: CameraConfig) -> None: ...
    def remove_camera(self, camera_id: str) -> None: ...
    def statuses(self) -> Any: ...


class CameraServiceError(Exception):
    """A camera request that cannot be done; the message is safe to show (credentials masked)."""


class CameraNotFoundError(CameraServiceError):
    """No camera with that id."""


class CameraConflictError(CameraServiceError):
    """Duplicate id, or the camera limit is reached."""


class CameraRejectedError(CameraServiceError):
    """The controller refused the camera (a user mistake, e.g. an unreadable source)."""


class CameraControlError(CameraServiceError):
    """The controller failed unexpectedly (logged)."""


@dataclass(frozen=True, slots=True)
class CameraView:
    """A configured camera with its live status (``None`` while not running) and start-up error."""

    config: CameraConfig
    status: CameraStatusLike | None
    start_error: str | None = None


class CameraService:
    """Configured and running cameras kept in step; methods are called from the API's worker threads."""

    def __init__(
        self,
        registry: CameraRegistry,
        controller: Cameras,
        metrics: ServiceMetrics,
        saved: CameraFile | None = None,
    ) -> None:
        self.registry = registry
        self.controller = controller
        self.metrics = metrics
        self.saved = saved  # None: changes last until the process ends (tests, embedded use)

    @classmethod
    def from_config(cls, config: AppConfig, controller: Cameras, metrics: ServiceMetrics) -> CameraService:
        """The service's cameras: ``<data_dir>/cameras.yaml`` when the API saved one, else ``config.cameras``.

        Raises:
            ConfigError: the saved file is invalid (its path and the bad key are named).
        """
        saved = CameraFile(config.data_dir / CAMERA_FILE_NAME)
        cameras = initial_cameras(config.cameras, saved, config.server.max_cameras, config.sources)
        return cls(CameraRegistry(cameras, config.server.max_cameras), controller, metrics, saved)

    def __len__(self) -> int:
        return len(self.registry)

    # ------------------------------------------------------------------------------------- reading
    def ids(self) -> list[str]:
        return [c.id for c in self.registry.list()]

    def list(self) -> list[CameraView]:
        statuses = self._statuses()
        return [self._view(c, statuses) for c in self.registry.list()]

    def get(self, camera_id: str) -> CameraView:
        camera = self.registry.get(camera_id)
        if camera is None:
            raise CameraNotFoundError(f"camera '{camera_id}' not found")
        return self._view(camera, self._statuses())

    # ------------------------------------------------------------------------------------ changing
    def start_configured(self) -> None:
        """Start every enabled configured camera; one that fails is shown as failed, the others run."""
        for camera in self.registry.list():
            if not camera.enabled:
                continue
            try:
                self.controller.add_camera(camera)
            except Exception as exc:  # the service still starts; GET /cameras shows 'failed'
                log.error("could not start camera %s: %s", camera.id, mask_url(str(exc)))
                self.registry.set_error(camera.id, mask_url(str(exc)) or type(exc).__name__)

    def create(self, camera: CameraConfig) -> CameraView:
        """Register ``camera``, starting it first if enabled."""
        registry = self.registry
        with registry.lock:
            if camera.id in registry:
                raise CameraConflictError(f"camera '{camera.id}' already exists")
            if len(registry) >= registry.max_cameras:
                raise CameraConflictError(f"camera limit reached (server.max_cameras={registry.max_cameras})")
            if camera.enabled:
                self._control("add", camera.id, self.controller.add_camera, camera)
            registry.add(camera)
            self._save(f"camera {camera.id} was added")
        return self._view(camera, self._statuses(), with_error=False)

    def update(self, camera_id: str, changes: Mapping[str, Any]) -> CameraView:
        """Apply ``changes`` (name, zone, enabled, max_fps) and start, stop, restart or update the running
        camera (a new ``max_fps`` is a new FFmpeg command: the camera reconnects)."""
        registry = self.registry
        with registry.lock:
            old = registry.get(camera_id)
            if old is None:
                raise CameraNotFoundError(f"camera '{camera_id}' not found")
            if changes.get("name", "") is None or changes.get("enabled", False) is None:
                raise CameraRejectedError("name and enabled cannot be null")
            try:
                new = CameraConfig.model_validate({**old.model_dump(), **changes})
            except ValidationError as exc:  # e.g. a max_fps for a file camera
                raise CameraRejectedError("; ".join(validation_problems(exc, CameraConfig))) from None
            if old.enabled and not new.enabled:
                self._control("stop", camera_id, self.controller.remove_camera, camera_id)
            elif new.enabled and (not old.enabled or registry.error(camera_id)):
                # Enabling, or enabling again a camera that failed at start-up: (re)start it.
                self._control("start", camera_id, self.controller.add_camera, new)
            elif new.enabled and new.max_fps != old.max_fps:
                self._control("stop", camera_id, self.controller.remove_camera, camera_id)
                try:
                    self._control("start", camera_id, self.controller.add_camera, new)
                except CameraServiceError:
                    with contextlib.suppress(CameraServiceError):  # as it was, as far as it can be
                        self._control("start", camera_id, self.controller.add_camera, old)
                    raise
            elif new.enabled and (new.name != old.name or new.zone != old.zone):
                self._control("update", camera_id, self.controller.update_camera, new)
            registry.replace(new)
            self._save(f"camera {camera_id} was changed")
        return self._view(new, self._statuses(), with_error=False)

    def delete(self, camera_id: str) -> None:
        """Stop a running camera and forget it (its stored events stay)."""
        registry = self.registry
        with registry.lock:
            camera = registry.get(camera_id)
            if camera is None:
                raise CameraNotFoundError(f"camera '{camera_id}' not found")
            if camera.enabled:
                self._control("remove", camera_id, self.controller.remove_camera, camera_id)
            registry.remove(camera_id)
            self.metrics.remove_camera(camera_id)
            self._save(f"camera {camera_id} was removed")

    # ------------------------------------------------------------------------------------- helpers
    def _save(self, done: str) -> None:
        """Write the registry's cameras to the saved file (called under the registry's lock)."""
        if self.saved is None:
            return
        try:
            self.saved.save(self.registry.list())
        except OSError as exc:
            log.error("%s but %s could not be written: %s", done, self.saved.path, exc)
            raise CameraControlError(
                f"{done} but could not be saved to {self.saved.path} ({exc.strerror or exc}); "
                "the change is lost when the service restarts"
            ) from None

    def _statuses(self) -> dict[str, CameraStatusLike]:
        try:
            return {s.camera_id: s for s in self.controller.statuses()}
        except Exception:  # show the configuration even if the pipeline cannot report
            log.exception("controller.statuses() failed")
            return {}

    def _view(
        self, camera: CameraConfig, statuses: Mapping[str, CameraStatusLike], *, with_error: bool = True
    ) -> CameraView:
        error = self.registry.error(camera.id) if with_error else None
        return CameraView(camera, statuses.get(camera.id), error)

    @staticmethod
    def _control(action: str, camera_id: str, call: Callable[..., object], *args: object) -> None:
        """Run a controller call; user mistakes become CameraRejectedError, anything else CameraControlError."""
        try:
            call(*args)
        except ActwatchError as exc:
            raise CameraRejectedError(mask_url(str(exc))) from None
        except Exception:
            log.exception("could not %s camera %s", action, camera_id)
            raise CameraControlError(f"could not {action} camera {camera_id}; see the log") from None

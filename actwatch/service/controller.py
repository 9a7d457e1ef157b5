"""What the API needs from the compute pipeline: the :class:`CameraController` protocol.

``actwatch.service.pipeline.StreamPipeline`` implements it; tests use a small fake. The API's camera
service (:class:`~actwatch.service.cameras.CameraService`) owns the list of configured cameras and tells
the controller about *enabled* cameras only:

- at start-up, ``add_camera`` for every enabled camera of the configuration, then ``start()``;
- at run time, ``add_camera`` when a camera is created or enabled, ``remove_camera`` when it is deleted
  or disabled, ``update_camera`` when an enabled camera's name or zone changes (no reconnect needed);
- at shutdown, ``stop()``.

Methods are called from the API's worker threads, never concurrently with each other for camera changes
(the camera service serialises them). ``add_camera`` may raise an :class:`~actwatch.errors.ActwatchError`
(shown to the API client as 422); any other exception is logged and answered with 500.

Example:
    >>> isinstance(IdleController(), CameraController)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from actwatch.config import CameraConfig


@runtime_checkable
class CameraStatusLike(Protocol):
    """The fields of ``actwatch.capture.reader.CameraStatus`` the API shows (read-only attributes).

    ``state`` is a ``CameraState`` enum (its ``.value`` is shown) or a plain string; ``url`` is masked.
    """

    @property
    def camera_id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def state(self) -> Any: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def frames_read(self) -> int: ...
    @property
    def frames_dropped(self) -> int: ...
    @property
    def fps(self) -> float: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def last_frame_wall_time(self) -> float | None: ...


@runtime_checkable
class CameraController(Protocol):
    """Runs the cameras; see the module docstring for when each method is called."""

    def start(self) -> None:
        """Start the compute thread (cameras already added start reading too)."""

    def stop(self) -> None:
        """Stop reading and computing; must return within a few seconds."""

    def add_camera(self, cfg: CameraConfig) -> None:
        """Start reading ``cfg`` (enabled) and use its zone for alerts."""

    def update_camera(self, cfg: CameraConfig) -> None:
        """Apply a changed name or zone of a running camera without reconnecting."""

    def remove_camera(self, camera_id: str) -> None:
        """Stop reading the camera and drop its tracks and alert state."""

    def statuses(self) -> Sequence[CameraStatusLike]:
        """One status per running camera."""
        ...

    def ready(self) -> bool:
        """Whether models are loaded and the compute thread runs (``/readyz``)."""
        ...

    def not_ready_reasons(self) -> list[str]:
        """What keeps it from being ready, where it knows (``/readyz`` shows them while not ready): a
        compute process restarting, a hub's broker out of reach. Empty while it is just starting."""
        ...


class IdleController:
    """A controller that runs no cameras and is always ready: an API without a compute pipeline.

    Example:
        >>> IdleController().statuses()
        []
    """

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""

    def add_camera(self, cfg: CameraConfig) -> None:
        """Accept the camera without reading it."""

    def update_camera(self, cfg: CameraConfig) -> None:
        """Nothing is running to update."""

    def remove_camera(self, camera_id: str) -> None:
        """Nothing is running to remove."""

    def statuses(self) -> list[CameraStatusLike]:
        return []

    def ready(self) -> bool:
        return True

    def not_ready_reasons(self) -> list[str]:
        return []

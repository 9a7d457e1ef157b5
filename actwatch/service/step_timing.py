"""How long each phase of a compute step took and when it began, and what the step tells the metrics.

:class:`PhaseTimer` measures each phase of one batch (``detect``, ``track``, ``signals``, ``encode``,
``classify``, ``emit``) and keeps the wall-clock time each began (:class:`StageTimes`: where a frame's
time to its event went, queues included); :class:`StepMetrics` is the one owner of what the compute
loop tells :class:`~actwatch.service.metrics.ServiceMetrics`.

Example:
    >>> timer = PhaseTimer()
    >>> with timer.phase("detect"):
    ...     pass
    >>> timer.seconds("detect") >= 0.0, timer.seconds("classify"), timer.stage_times().track
    (True, 0.0, None)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from actwatch.service.metrics import ServiceMetrics

Phase = Literal["detect", "track", "signals", "encode", "classify", "emit"]
PHASES: tuple[Phase, ...] = ("detect", "track", "signals", "encode", "classify", "emit")


class PhaseTimer:
    """Seconds spent in each phase of one step (a phase not run took 0 s), and the wall-clock time each
    phase began (where a frame's time to its event went, queues included)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall = wall
        self._seconds: dict[Phase, float] = {}
        self._began: dict[Phase, float] = {}

    @contextlib.contextmanager
    def phase(self, name: Phase) -> Iterator[None]:
        if name not in self._began:
            self._began[name] = self._wall()
        start = self._clock()
        try:
            yield
        finally:
            self._seconds[name] = self._seconds.get(name, 0.0) + self._clock() - start

    def seconds(self, name: Phase) -> float:
        return self._seconds.get(name, 0.0)

    def began(self, name: Phase) -> float | None:
        """The wall-clock time (``time.time()``) the phase first began in this step; ``None``: not run."""
        return self._began.get(name)

    def stage_times(self) -> StageTimes:
        return StageTimes(self.began("detect"), self.began("track"), self.began("encode"), self.began("emit"))


@dataclass(frozen=True, slots=True)
class StageTimes:
    """When (``time.time()``) a step's batch entered each stage; ``None``: the stage did not run.

    A frame's time to its event splits at these: capture to ``detect`` (its age and the wait for the
    detector), then each stage with the wait for the next.
    """

    detect: float | None = None
    track: float | None = None
    action: float | None = None
    alert: float | None = None


@dataclass(frozen=True, slots=True)
class CameraStep:
    """What one step did for one camera, for the per-camera metrics."""

    camera_id: str
    skipped_frames: int  # older frames of the camera dropped in favour of the newest
    tracks: int
    processed_fps: float


class StepMetrics:
    """Feeds one step's phase latencies and per-camera figures to ``metrics``.

    Example:
        >>> m = ServiceMetrics()
        >>> timer = PhaseTimer()
        >>> StepMetrics(m).record(timer, [CameraStep("cam1", 2, 3, 9.5)], encoded=False, classified=False)
        >>> m.registry.get_sample_value("actwatch_camera_frames_dropped_total", {"camera": "cam1"})
        2.0
    """

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def record(self, timer: PhaseTimer, cameras: Sequence[CameraStep], *, encoded: bool, classified: bool) -> None:
        """``encoded``/``classified``: whether those phases had work (idle phases are not observed)."""
        m = self.metrics
        m.observe_stage("detect", timer.seconds("detect"))
        m.observe_stage("track", timer.seconds("track"))
        if encoded:
            m.observe_stage("encode", timer.seconds("encode"))
        if classified:
            m.observe_stage("classify", timer.seconds("classify"))
        for cam in cameras:
            m.count_skipped(cam.camera_id, cam.skipped_frames)
            m.count_processed(cam.camera_id)
            m.set_active_tracks(cam.camera_id, cam.tracks)
            m.set_processed_fps(cam.camera_id, cam.processed_fps)

    def end_tracks(self, camera_id: str, track_ids: Sequence[int]) -> None:
        """Nothing per track here; present so this is a track-end listener like the others."""

    def drop_camera(self, camera_id: str) -> None:
        self.metrics.remove_camera(camera_id)

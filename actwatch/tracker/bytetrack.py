"""One ByteTrack tracker per camera, with track ids that belong to that camera alone.

Ultralytics' ``BYTETracker`` does the association. Two of its habits do not suit a multi-camera service,
so :class:`CameraTracker` wraps it:

* **Id counters.** Older Ultralytics releases count track ids in a class attribute
  (``BaseTrack._count``) that every tracker shares and that each new tracker resets to 0; newer ones
  keep a per-tracker counter but restart it at 1 on ``reset()``. The ids we publish therefore never come
  from Ultralytics: each ``CameraTracker`` numbers its tracks itself (1, 2, 3, … per camera, never
  reused, not even after :meth:`CameraTracker.reset`) by tagging Ultralytics' track objects.
  Ultralytics' internal ids must still be unique *within* one tracker (it de-duplicates tracks by id),
  so around every call into it we swap this tracker's own value of ``BaseTrack._count`` in and out under
  :data:`_BASETRACK_COUNT_LOCK`. That lock is the one module-level object in actwatch: it guards a
  third-party global, so it has to be as global as the thing it guards.
* **Ended tracks.** :attr:`CameraTracker.removed_track_ids` lists the ids whose tracks ended in the last
  update, so per-track buffers can be freed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from actwatch.tracker.detections import Detections
from actwatch.tracker.ultralytics_env import configure_ultralytics

# Guards ultralytics.trackers.basetrack.BaseTrack._count, a class attribute shared by every tracker in
# the process (see the module docstring). Documented exception to "no module-level singletons".
_BASETRACK_COUNT_LOCK = threading.Lock()
_ID_ATTR = "_actwatch_track_id"


class TrackerSettings(BaseModel):
    """ByteTrack parameters; the defaults are Ultralytics' ``bytetrack.yaml``.

    Example:
        >>> TrackerSettings(track_buffer=60).match_thresh
        0.8
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    track_high_thresh: float = Field(
        0.25, ge=0.0, le=1.0, description="First-stage association: detections at least this confident."
    )
    track_low_thresh: float = Field(
        0.1, ge=0.0, le=1.0, description="Second-stage association: low-confidence detections above this."
    )
    new_track_thresh: float = Field(
        0.25, ge=0.0, le=1.0, description="An unmatched detection starts a new track only if this confident."
    )
    track_buffer: int = Field(
        30, ge=1, description="Frames (at 30 fps, scaled to the camera's rate) a lost track is kept."
    )
    match_thresh: float = Field(
        0.8, ge=0.0, le=1.0, description="Maximum association cost (1 - IoU, optionally score-fused)."
    )
    fuse_score: bool = Field(True, description="Fuse detection confidence into the IoU cost when matching.")


@dataclass(frozen=True, slots=True)
class _BoxesAdapter:
    """What ``BYTETracker.update`` reads from a results object: ``xyxy``, ``xywh``, ``conf``, ``cls``."""

    xyxy: np.ndarray
    conf: np.ndarray
    cls: np.ndarray

    @property
    def xywh(self) -> np.ndarray:
        out = np.empty_like(self.xyxy)
        out[:, 0] = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2
        out[:, 1] = (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2
        out[:, 2] = self.xyxy[:, 2] - self.xyxy[:, 0]
        out[:, 3] = self.xyxy[:, 3] - self.xyxy[:, 1]
        return out

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index: Any) -> _BoxesAdapter:
        return _BoxesAdapter(self.xyxy[index], self.conf[index], self.cls[index])

    @classmethod
    def from_detections(cls, det: Detections) -> _BoxesAdapter:
        return cls(
            det.xyxy.astype(np.float32, copy=False),
            det.confidence.astype(np.float32, copy=False),
            det.class_id.astype(np.float32),
        )


class CameraTracker:
    """ByteTrack for one camera; published track ids start at 1 and are never reused.

    ``update`` returns the detections that belong to a confirmed track, with ``track_id`` set. Boxes are
    the detector's measured boxes (not the Kalman estimate), so crops follow what was actually seen.

    Example (two persons seen, then nobody for longer than the lost-track buffer):
        >>> image = np.zeros((120, 160, 3), np.uint8)
        >>> two = Detections(np.array([[10, 10, 40, 80], [100, 20, 130, 90]], np.float32),
        ...                  np.array([0.9, 0.8], np.float32), np.zeros(2, np.int64), np.full(2, -1))
        >>> tracker = CameraTracker("cam1", frame_rate=10)
        >>> tracked = tracker.update(two, image)
        >>> tracked.track_id.tolist(), tracker.removed_track_ids
        ([1, 2], ())
        >>> for _ in range(12):
        ...     tracked = tracker.update(Detections.empty(), image)
        >>> tracked.track_id.tolist(), tracker.removed_track_ids
        ([], (1, 2))
    """

    def __init__(self, camera_id: str, frame_rate: float = 30.0, settings: TrackerSettings | None = None) -> None:
        self.camera_id = camera_id
        self.frame_rate = float(frame_rate)
        self.settings = settings or TrackerSettings()
        configure_ultralytics()
        from ultralytics.trackers.basetrack import BaseTrack  # lazy: environment configured first

        self._base_track: Any = BaseTrack
        self._public_ids: Iterator[int] = itertools.count(1)
        self._internal_count = 0  # this tracker's value of BaseTrack._count (old Ultralytics releases)
        self._live_ids: set[int] = set()
        self.removed_track_ids: tuple[int, ...] = ()
        self.frames_seen = 0
        self._tracker = self._new_bytetracker()

    def _new_bytetracker(self) -> Any:
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import IterableSimpleNamespace

        # track_buffer is given in frames at 30 fps (ByteTrack's convention); scaling it by the camera's
        # frame rate keeps a lost track alive for the same time whatever the camera delivers.
        params = self.settings.model_dump()
        params["track_buffer"] = max(1, round(self.settings.track_buffer * self.frame_rate / 30.0))
        args = IterableSimpleNamespace(tracker_type="bytetrack", **params)
        with self._own_counter():
            return BYTETracker(args)

    @contextmanager
    def _own_counter(self) -> Iterator[None]:
        """Swap this tracker's id counter into ``BaseTrack._count`` for the duration of the block."""
        with _BASETRACK_COUNT_LOCK:
            saved = self._base_track._count
            self._base_track._count = self._internal_count
            try:
                yield
            finally:
                self._internal_count = self._base_track._count
                self._base_track._count = saved

    def update(self, detections: Detections, image: np.ndarray | None = None) -> Detections:
        """Associate this frame's ``detections``; return the tracked ones with ``track_id`` set."""
        with self._own_counter():
            self._tracker.update(_BoxesAdapter.from_detections(detections), image)
        self.frames_seen += 1
        rows: list[int] = []
        ids: list[int] = []
        for strack in self._tracker.tracked_stracks:
            if not strack.is_activated:
                continue  # a tentative track: not yet confirmed by a second detection
            rows.append(int(strack.idx))
            ids.append(self._public_id(strack))
        live = {
            getattr(t, _ID_ATTR)
            for t in (*self._tracker.tracked_stracks, *self._tracker.lost_stracks)
            if hasattr(t, _ID_ATTR)
        }
        self.removed_track_ids = tuple(sorted(self._live_ids - live))
        self._live_ids = live
        if not rows:
            return Detections.empty()
        idx = np.asarray(rows, np.int64)
        return Detections(
            detections.xyxy[idx],
            detections.confidence[idx],
            detections.class_id[idx],
            np.asarray(ids, np.int64),
        )

    def _public_id(self, strack: Any) -> int:
        tid = getattr(strack, _ID_ATTR, None)
        if tid is None:
            tid = next(self._public_ids)
            setattr(strack, _ID_ATTR, tid)
        return int(tid)

    @property
    def live_track_ids(self) -> frozenset[int]:
        """Ids of tracks that are tracked or lost-but-recoverable after the last update."""
        return frozenset(self._live_ids)

    def reset(self) -> None:
        """Forget all tracks (e.g. after a camera reconnects); ids keep counting up, never reused."""
        self.removed_track_ids = tuple(sorted(self._live_ids))
        self._live_ids = set()
        self._tracker = self._new_bytetracker()

"""Per-track rolling windows of crops and their encoder features, bounded in count and memory.

The compute loop, per round of frames (one per camera)::

    pending = []
    for frame, tracked in per_camera:                       # tracked: CameraTracker.update(...)
        pending += store.sample(frame, tracked)             # which tracks are due; crops cut here
        store.end_tracks(frame.camera_id, tracker.removed_track_ids)
    features = runtime.encode(np.stack([p.crop for p in pending]))   # ONE batch across cameras
    store.commit(pending, features)                         # stored as given, never re-encoded
    for window in store.take_ready(stride=5):               # full windows with 5 new samples
        ...                                                 # runtime.classify(window.features[None])

Each track is sampled at the model's fps from the frames' timestamps (see
:mod:`actwatch.tracker.sampling`): a 30 fps camera contributes about every 3rd frame, a 10 fps camera
every frame, and a 5 fps camera every frame too (samples are never duplicated, so its windows span
twice the time). Storage per track is a preallocated ring of ``seq_len`` slots.

Bounds: at most ``max_tracks_per_camera`` tracks per camera (a new track evicts the one of that camera
least recently seen) and a memory cap in all, the larger of ``max_total_mb`` and ``mb_per_camera`` times
the cameras that have tracks (new tracks evict the least recently seen track of any camera; the cap grows
with the cameras, so 64 cameras do not evict each other's windows before they fill). Every operation on a
sighting costs the same whatever the number of tracks: the store keeps its tracks in least-recently-seen
order, each camera's tracks apart, and its byte count as it goes.

A track re-found after a gap of at most ``max_gap_s`` seconds of its camera's stream time keeps its window
(the service's ``pipeline.window_gap_s``); a track unseen for longer is freed, and one seen again after
such a gap starts a fresh window.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from actwatch.capture.frame import Frame
from actwatch.tracker.crops import crop_boxes
from actwatch.tracker.detections import Detections
from actwatch.tracker.sampling import FpsSampler
from actwatch.tracker.window import ReadyWindows, TrackWindow

if TYPE_CHECKING:
    from actwatch.model.config import InputSpec

TrackKey = tuple[str, int]
EVICTION_REASONS = ("track_cap", "memory", "stale", "ended", "camera_dropped")


@dataclass(frozen=True, slots=True, eq=False)
class PendingSample:
    """A crop that is due to be encoded and then committed to its track's window."""

    camera_id: str
    track_id: int
    timestamp: float  # stream seconds of the frame
    wall_time: float  # time.time() at capture
    frame_index: int
    box: tuple[float, float, float, float]
    crop: np.ndarray = field(repr=False)  # (H, W, 3) uint8 BGR
    generation: int = field(repr=False)  # which incarnation of the track buffer asked for it


class _TrackBuffer:
    """Ring storage of one track. Plain instance attributes only (no class-level state)."""

    __slots__ = (
        "boxes",
        "count",
        "crops",
        "features",
        "first_seen",
        "frame_indices",
        "generation",
        "head",
        "last_seen_t",
        "last_used",
        "sampler",
        "since_window",
        "timestamps",
        "wall_times",
    )

    def __init__(self, seq_len: int, keep_crops: bool, fps: float, generation: int) -> None:
        # References to each sample's crop, never copied: a window takes the references, and only the
        # windows that become events stack them (copying 30 crops per window per step was the action
        # thread's largest cost at 32 cameras).
        self.crops: list[np.ndarray | None] | None = [None] * seq_len if keep_crops else None
        self.features: np.ndarray | None = None  # allocated at the first commit, when D is known
        self.timestamps = np.zeros(seq_len, np.float64)
        self.wall_times = np.zeros(seq_len, np.float64)
        self.frame_indices = np.zeros(seq_len, np.int64)
        self.boxes = np.zeros((seq_len, 4), np.float32)
        self.head = 0  # next slot to write
        self.count = 0  # valid slots (<= seq_len)
        self.since_window = 0  # samples committed since the last window was taken
        self.sampler = FpsSampler(fps)
        self.first_seen = 0.0  # wall time
        self.last_seen_t = 0.0  # stream time of the camera
        self.last_used = 0  # store-wide tick of the last sighting, for least-recently-seen eviction
        self.generation = generation

    def clear_window(self) -> None:
        self.head = self.count = self.since_window = 0
        self.sampler.reset()

    def order(self) -> np.ndarray:
        """Slot indices of the valid samples, oldest first."""
        size = len(self.timestamps)
        return (self.head - self.count + np.arange(self.count)) % size


class TrackBufferStore:
    """Rolling per-track windows of ``spec.seq_len`` samples with cached encoder features.

    Example (one track seen in three frames at the model's 10 fps; the "encoder" gives 4-d features):
        >>> from actwatch.model.config import InputSpec
        >>> store = TrackBufferStore(InputSpec(seq_len=2, input_size=(32, 32), fps=10.0))
        >>> tracked = Detections(np.array([[10, 10, 40, 80]], np.float32), np.array([0.9], np.float32),
        ...                      np.array([0]), np.array([7]))
        >>> for i in range(3):
        ...     frame = Frame("cam1", i, i / 10, 0.0, np.zeros((120, 160, 3), np.uint8))
        ...     pending = store.sample(frame, tracked)
        ...     _ = store.commit(pending, np.full((len(pending), 4), i, np.float32))
        >>> [(w.track_id, w.features[:, 0].tolist()) for w in store.take_ready(stride=1)]
        [(7, [1.0, 2.0])]
    """

    def __init__(
        self,
        spec: InputSpec,
        *,
        max_tracks_per_camera: int = 32,
        max_total_mb: float = 512.0,
        mb_per_camera: float = 0.0,
        keep_crops: bool = True,
        max_gap_s: float = 2.0,
        crop_pad: float = 0.1,
        feature_dim: int | None = None,
    ) -> None:
        if max_tracks_per_camera < 1:
            raise ValueError("max_tracks_per_camera must be >= 1")
        if max_gap_s <= 0:
            raise ValueError("max_gap_s must be > 0")
        if mb_per_camera < 0:
            raise ValueError("mb_per_camera must be >= 0")
        self.spec = spec
        self.seq_len = int(spec.seq_len)
        self.crop_hw = (int(spec.input_size[0]), int(spec.input_size[1]))
        self.fps = float(spec.fps)
        self.max_tracks_per_camera = max_tracks_per_camera
        self.min_total_bytes = int(max_total_mb * 1024 * 1024)
        self.bytes_per_camera = int(mb_per_camera * 1024 * 1024)
        self.keep_crops = keep_crops
        self.max_gap_s = float(max_gap_s)
        self.crop_pad = crop_pad
        self.feature_dim = feature_dim  # learnt from the first commit when not given
        # row h: the slots of a full window whose next slot to write is h, oldest first
        self._full_orders = (np.arange(self.seq_len)[:, None] + np.arange(self.seq_len)[None, :]) % self.seq_len
        self._tracks: OrderedDict[TrackKey, _TrackBuffer] = OrderedDict()  # least recently seen first
        self._by_camera: dict[str, dict[int, _TrackBuffer]] = {}
        self._bytes = 0  # what bytes_used says, kept as tracks come and go
        self._tick = 0
        self._generation = 0
        self.evicted: dict[str, int] = dict.fromkeys(EVICTION_REASONS, 0)
        self.discarded_samples = 0  # committed for a track freed between sample() and commit()
        if self.track_nbytes() > self.min_total_bytes:
            raise ValueError(f"max_total_mb={max_total_mb} cannot hold even one track ({self.track_nbytes()} bytes)")

    # -------------------------------------------------------------------------------------- stats

    @property
    def track_count(self) -> int:
        return len(self._tracks)

    @property
    def bytes_used(self) -> int:
        """Bytes held by all track buffers (crops, features, timestamps, boxes)."""
        return self._bytes

    @property
    def max_total_bytes(self) -> int:
        """The memory cap now: ``max_total_mb``, or ``mb_per_camera`` per camera with tracks if more."""
        return self._cap(len(self._by_camera))

    def _cap(self, cameras: int) -> int:
        return max(self.min_total_bytes, self.bytes_per_camera * cameras)

    def track_nbytes(self) -> int:
        """Bytes one track needs once its features are allocated (features omitted while D is unknown)."""
        return self._base_nbytes() + self.seq_len * (self.feature_dim or 0) * 4

    def _base_nbytes(self) -> int:
        """Bytes of one track before its features: its crops (whole windows) and per-sample records."""
        t = self.seq_len
        crops = t * self.crop_hw[0] * self.crop_hw[1] * 3 if self.keep_crops else 0
        return crops + t * (8 + 8 + 8 + 16)

    def track_ids(self, camera_id: str) -> list[int]:
        return sorted(self._by_camera.get(camera_id, ()))

    def sample_count(self, camera_id: str, track_id: int) -> int:
        """Samples currently in the track's window (0 if the track is unknown)."""
        buf = self._tracks.get((camera_id, track_id))
        return buf.count if buf else 0

    def samples_since_last_window(self, camera_id: str, track_id: int) -> int:
        """Samples committed to the track since :meth:`take_ready` last returned its window."""
        buf = self._tracks.get((camera_id, track_id))
        return buf.since_window if buf else 0

    # -------------------------------------------------------------------------------------- sampling

    def sample(self, frame: Frame, tracked: Detections) -> list[PendingSample]:
        """Pick the tracks of ``frame`` due for a sample and crop them (one crop call for the frame).

        ``tracked`` are the frame's tracked detections (``track_id >= 0``; untracked ones are ignored).
        Also frees this camera's tracks unseen for more than ``max_gap_s``.
        """
        cam, t = frame.camera_id, float(frame.timestamp)
        due_rows: list[int] = []
        due_bufs: list[_TrackBuffer] = []
        for row, tid in enumerate(tracked.track_id.tolist()):
            if tid < 0:
                continue
            buf = self._sighted(cam, int(tid), t, frame.wall_time)
            if buf.sampler.due(t):
                due_rows.append(row)
                due_bufs.append(buf)
        self._free_stale(cam, t)
        if not due_rows:
            return []
        boxes = tracked.xyxy[due_rows]
        crops = crop_boxes(frame.image, boxes, self.crop_hw, self.crop_pad)
        return [
            PendingSample(
                camera_id=cam,
                track_id=int(tracked.track_id[row]),
                timestamp=t,
                wall_time=float(frame.wall_time),
                frame_index=int(frame.index),
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                crop=crops[i],
                generation=buf.generation,
            )
            for i, (row, buf, box) in enumerate(zip(due_rows, due_bufs, boxes, strict=True))
        ]

    def commit(self, pending: Sequence[PendingSample], features: np.ndarray) -> int:
        """Store ``features[i]`` (exactly as given) with ``pending[i]``; return how many were stored.

        Samples of one track must be committed in the order :meth:`sample` returned them. Samples whose
        track was freed meanwhile are dropped and counted in ``discarded_samples``.
        """
        feats = np.asarray(features)
        if len(pending) == 0:
            return 0
        if feats.ndim != 2 or feats.shape[0] != len(pending):
            raise ValueError(f"features must be ({len(pending)}, D), got {feats.shape}")
        dim = int(feats.shape[1])
        if self.feature_dim is None:
            self.feature_dim = dim
        elif dim != self.feature_dim:
            raise ValueError(f"feature dimension changed from {self.feature_dim} to {dim}")
        stored = 0
        allocated = False
        for item, row in zip(pending, feats, strict=True):
            buf = self._tracks.get((item.camera_id, item.track_id))
            if buf is None or buf.generation != item.generation:
                self.discarded_samples += 1
                continue
            if buf.features is None:
                buf.features = np.zeros((self.seq_len, dim), np.float32)
                self._bytes += buf.features.nbytes
                allocated = True
            slot = buf.head
            buf.features[slot] = row
            if buf.crops is not None:
                # its own copy: ``item.crop`` is a view of the frame's crop batch, which it would keep
                # alive whole (and the memory cap counts one crop per slot)
                buf.crops[slot] = item.crop.copy()
            buf.timestamps[slot] = item.timestamp
            buf.wall_times[slot] = item.wall_time
            buf.frame_indices[slot] = item.frame_index
            buf.boxes[slot] = item.box
            buf.head = (slot + 1) % self.seq_len
            buf.count = min(buf.count + 1, self.seq_len)
            buf.since_window += 1
            stored += 1
        if allocated:
            self._enforce_memory(protect=None)
        return stored

    # -------------------------------------------------------------------------------------- windows

    def windows(self, camera_id: str | None = None, only_full: bool = True) -> list[TrackWindow]:
        """The current window of every track (of ``camera_id``, or all), oldest sample first.

        With ``only_full=False`` tracks with at least one committed sample are included, shorter than
        ``seq_len``. Arrays are copies: later commits do not change a returned window.
        """
        out = []
        for (cam, tid), buf in sorted(self._tracks.items()):
            if camera_id is not None and cam != camera_id:
                continue
            if buf.features is None or buf.count == 0 or (only_full and buf.count < self.seq_len):
                continue
            out.append(self._window(cam, tid, buf))
        return out

    def take_ready(self, stride: int, camera_id: str | None = None) -> list[TrackWindow]:
        """Full windows of tracks with at least ``stride`` new samples since their last window.

        Resets those tracks' counters, so calling this after every commit classifies each track every
        ``stride`` samples (``stride=seq_len``: non-overlapping windows).
        """
        return list(self.take_ready_batch(stride, camera_id).windows)

    def take_ready_batch(self, stride: int, camera_id: str | None = None) -> ReadyWindows:
        """:meth:`take_ready`, with the windows' features gathered into one ``(B, T, D)`` array, the head's
        input as it is (each window's ``features`` is its row of it): one copy of the features per step,
        where stacking the windows' own copies made two (at 32 cameras, 29 MB each).

        Example:
            >>> from actwatch.model.config import InputSpec
            >>> store = TrackBufferStore(InputSpec(seq_len=2, input_size=(32, 32), fps=10.0))
            >>> tracked = Detections.from_arrays([[1, 1, 6, 7]], [0.9], [0], [3])
            >>> for i in range(3):
            ...     pending = store.sample(Frame("cam1", i, i / 10, 0.0, np.zeros((9, 9, 3), np.uint8)), tracked)
            ...     _ = store.commit(pending, np.full((len(pending), 4), i, np.float32))
            >>> ready = store.take_ready_batch(stride=1)
            >>> ready.features.shape, ready.features[0, :, 0].tolist(), ready.windows[0].features.base is ready.features
            ((1, 2, 4), [1.0, 2.0], True)
        """
        if stride < 1:
            raise ValueError("stride must be >= 1")
        ready: list[tuple[str, int, _TrackBuffer]] = []
        for (cam, tid), buf in sorted(self._tracks.items()):
            if camera_id is not None and cam != camera_id:
                continue
            if buf.features is None or buf.count < self.seq_len or buf.since_window < stride:
                continue
            buf.since_window = 0
            ready.append((cam, tid, buf))
        if not ready:
            return ReadyWindows((), np.zeros((0, self.seq_len, self.feature_dim or 0), np.float32))
        batch = np.empty((len(ready), self.seq_len, self.feature_dim or 0), np.float32)
        windows = []
        for row, (cam, tid, buf) in enumerate(ready):
            assert buf.features is not None
            head = buf.head  # a full window: its oldest sample is at the head
            order = self._full_orders[head]
            batch[row, : self.seq_len - head] = buf.features[head:]  # two slices copy faster than a gather
            batch[row, self.seq_len - head :] = buf.features[:head]
            windows.append(self._window(cam, tid, buf, order, batch[row]))
        return ReadyWindows(tuple(windows), batch)

    def _window(
        self, cam: str, tid: int, buf: _TrackBuffer, order: np.ndarray | None = None, features: np.ndarray | None = None
    ) -> TrackWindow:
        assert buf.features is not None
        order = buf.order() if order is None else order
        newest = int(order[-1])
        box = buf.boxes[newest]
        return TrackWindow(
            camera_id=cam,
            track_id=tid,
            features=buf.features[order] if features is None else features,
            timestamps=buf.timestamps[order],
            box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            first_seen=buf.first_seen,
            frame_time=float(buf.wall_times[newest]),
            frame_index=int(buf.frame_indices[newest]),
            crop_samples=tuple(buf.crops[i] for i in order.tolist()) if buf.crops is not None else None,
        )

    # -------------------------------------------------------------------------------------- freeing

    def end_tracks(self, camera_id: str, track_ids: Iterable[int]) -> int:
        """Free the buffers of tracks the tracker reported as ended; return how many were freed."""
        freed = 0
        for tid in track_ids:
            if self._remove((camera_id, int(tid)), "ended"):
                freed += 1
        return freed

    def drop_camera(self, camera_id: str) -> int:
        """Free every track of ``camera_id`` (camera removed or reconnected); return how many."""
        keys = [(camera_id, tid) for tid in self._by_camera.get(camera_id, ())]
        for key in keys:
            self._remove(key, "camera_dropped")
        return len(keys)

    def _remove(self, key: TrackKey, reason: str) -> bool:
        buf = self._tracks.pop(key, None)
        if buf is None:
            return False
        own = self._by_camera[key[0]]
        del own[key[1]]
        if not own:
            del self._by_camera[key[0]]
        self._bytes -= self._base_nbytes() + (buf.features.nbytes if buf.features is not None else 0)
        self.evicted[reason] += 1
        return True

    def _sighted(self, cam: str, tid: int, t: float, wall_time: float) -> _TrackBuffer:
        """The track's buffer (created, with eviction, if new), marked as seen now."""
        self._tick += 1
        key = (cam, tid)
        buf = self._tracks.get(key)
        if buf is None:
            self._make_room(cam)
            self._generation += 1
            buf = _TrackBuffer(self.seq_len, self.keep_crops, self.fps, self._generation)
            buf.first_seen = float(wall_time)
            self._tracks[key] = buf
            self._by_camera.setdefault(cam, {})[tid] = buf
            self._bytes += self._base_nbytes()
        else:
            self._tracks.move_to_end(key)
            if t - buf.last_seen_t > self.max_gap_s or t < buf.last_seen_t:
                # Back after a long absence, or the stream clock restarted: old samples are not this moment.
                buf.clear_window()
        buf.last_seen_t = t
        buf.last_used = self._tick
        return buf

    def _make_room(self, cam: str) -> None:
        own = self._by_camera.get(cam, {})
        while len(own) >= self.max_tracks_per_camera:
            victim = min(own, key=lambda tid: own[tid].last_used)
            self._remove((cam, victim), "track_cap")
        # the cap as it will be with this camera's track in (a camera's first track raises it)
        cap = self._cap(len(self._by_camera) + (cam not in self._by_camera))
        while self._tracks and self._bytes + self.track_nbytes() > cap:
            self._evict_oldest(protect=None)

    def _enforce_memory(self, protect: TrackKey | None) -> None:
        while len(self._tracks) > 1 and self._bytes > self.max_total_bytes:
            self._evict_oldest(protect)

    def _evict_oldest(self, protect: TrackKey | None) -> None:
        victim = next((k for k in self._tracks if k != protect), None)  # least recently seen first
        if victim is not None:
            self._remove(victim, "memory")

    def _free_stale(self, cam: str, now: float) -> None:
        own = self._by_camera.get(cam, {})
        stale = [tid for tid, b in own.items() if now - b.last_seen_t > self.max_gap_s]
        for tid in stale:
            self._remove((cam, tid), "stale")

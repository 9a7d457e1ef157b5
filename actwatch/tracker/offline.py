"""Person tracks from a finite video: detect, track and sample each person's crops at a target fps.

Used by ``actwatch predict`` and by training-data extraction. The same detector, ByteTrack wrapper,
fps sampler and crop function as the live service are used, so offline crops match live ones.

Frames come from :func:`~actwatch.capture.video_file.read_video`, the one video reader of the package.

Example (the cached detector on the first 20 frames of the sample video):
    >>> from actwatch.assets import ensure_detector, ensure_sample_video
    >>> from actwatch.tracker.detector import DetectorSettings
    >>> settings = DetectorSettings(conf=0.1, device="cpu")
    >>> det = PersonDetector(ensure_detector(fetch=False), settings)
    >>> extractor = VideoTrackExtractor(det, crop_hw=(112, 112), fps=10.0)
    >>> sequences = list(extractor.extract(ensure_sample_video(fetch=False), max_frames=20))
    >>> len(sequences) > 0, sequences[0].crops.shape[1:], extractor.stats.frames
    (True, (112, 112, 3), 20)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actwatch.capture.frame import Frame
from actwatch.capture.video_file import read_video, video_fps
from actwatch.tracker.bytetrack import CameraTracker, TrackerSettings
from actwatch.tracker.crops import crop_boxes
from actwatch.tracker.detections import Detections
from actwatch.tracker.detector import PersonDetector
from actwatch.tracker.sampling import FpsSampler
from actwatch.tracker.scene_cut import SceneCuts


@dataclass(frozen=True, slots=True, eq=False)
class TrackSequence:
    """The sampled crops of one person track (or of one segment of a long track), oldest first.

    Example:
        >>> s = TrackSequence(3, 0, np.zeros((2, 8, 8, 3), np.uint8), np.array([0.0, 0.1]),
        ...                   np.array([0, 1]), np.zeros((2, 4), np.float32), np.ones(2, np.float32), 2)
        >>> s.length, s.duration
        (2, 0.1)
    """

    track_id: int
    segment: int  # 0, 1, … when a long track is split by max_samples_per_track
    crops: np.ndarray = field(repr=False)  # (N, H, W, 3) uint8 BGR
    timestamps: np.ndarray = field(repr=False)  # (N,) stream seconds
    frame_indices: np.ndarray = field(repr=False)  # (N,)
    boxes: np.ndarray = field(repr=False)  # (N, 4) x1 y1 x2 y2
    confidences: np.ndarray = field(repr=False)  # (N,)
    frames_seen: int  # frames in which the track was tracked (before resampling)

    @property
    def length(self) -> int:
        return len(self.timestamps)

    @property
    def first_time(self) -> float:
        return float(self.timestamps[0])

    @property
    def last_time(self) -> float:
        return float(self.timestamps[-1])

    @property
    def duration(self) -> float:
        return round(self.last_time - self.first_time, 6)


class _Accumulator:
    """Samples of one track collected so far (instance state only)."""

    __slots__ = ("boxes", "confs", "crops", "frames", "frames_seen", "sampler", "segment", "times")

    def __init__(self, fps: float) -> None:
        self.sampler = FpsSampler(fps)
        self.crops: list[np.ndarray] = []
        self.times: list[float] = []
        self.frames: list[int] = []
        self.boxes: list[np.ndarray] = []
        self.confs: list[float] = []
        self.frames_seen = 0
        self.segment = 0

    def flush(self, track_id: int) -> TrackSequence:
        seq = TrackSequence(
            track_id=track_id,
            segment=self.segment,
            crops=np.stack(self.crops),
            timestamps=np.asarray(self.times, np.float64),
            frame_indices=np.asarray(self.frames, np.int64),
            boxes=np.asarray(self.boxes, np.float32).reshape(-1, 4),
            confidences=np.asarray(self.confs, np.float32),
            frames_seen=self.frames_seen,
        )
        self.crops, self.times, self.frames, self.boxes, self.confs = [], [], [], [], []
        self.frames_seen = 0
        self.segment += 1
        return seq


@dataclass(slots=True)
class ExtractionStats:
    """Counts from the last extraction."""

    frames: int = 0
    detections: int = 0
    tracks: int = 0
    sequences: int = 0
    dropped_short: int = 0


class VideoTrackExtractor:
    """Detect and track persons in a finite source; yield each track's crops sampled at ``fps``.

    * ``crop_hw``: crop size (height, width); ``crop_pad``: context added around each box.
    * ``fps``: sampling rate in stream time (a 30 fps video at ``fps=10`` gives every 3rd frame).
    * ``max_persons``: keep at most this many most-confident detections per frame.
    * ``min_confidence``: drop detections below this (on top of the detector's own threshold).
    * ``batch_size``: frames per detector call.
    * ``max_samples_per_track``: split longer tracks into segments of this many samples.
    * ``min_samples``: tracks (segments) with fewer samples are not yielded (counted as dropped_short).

    A track is yielded when the tracker ends it (also at a scene cut, ``tracker_settings.scene_cut``),
    remaining ones when the source ends (by track id).
    """

    def __init__(
        self,
        detector: PersonDetector,
        *,
        crop_hw: tuple[int, int] = (112, 112),
        fps: float = 10.0,
        tracker_settings: TrackerSettings | None = None,
        max_persons: int | None = None,
        min_confidence: float | None = None,
        crop_pad: float = 0.1,
        batch_size: int = 4,
        max_samples_per_track: int | None = None,
        min_samples: int = 1,
    ) -> None:
        if fps <= 0:
            raise ValueError("fps must be > 0")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.detector = detector
        self.crop_hw = (int(crop_hw[0]), int(crop_hw[1]))
        self.fps = float(fps)
        self.tracker_settings = tracker_settings or TrackerSettings()
        self.max_persons = max_persons
        self.min_confidence = min_confidence
        self.crop_pad = crop_pad
        self.batch_size = batch_size
        self.max_samples_per_track = max_samples_per_track
        self.min_samples = max(1, min_samples)
        self.stats = ExtractionStats()

    def extract(self, video: Path | str, *, max_frames: int | None = None) -> Iterator[TrackSequence]:
        """Tracks of a video file (see :func:`~actwatch.capture.video_file.read_video` for the errors raised)."""
        frames = read_video(video, max_frames=max_frames)
        yield from self.extract_frames(frames, frame_rate=video_fps(video))

    def extract_frames(self, frames: Iterable[Frame], frame_rate: float) -> Iterator[TrackSequence]:
        """Tracks of any finite sequence of frames of one camera delivered at ``frame_rate``."""
        self.stats = ExtractionStats()
        tracker = CameraTracker("offline", frame_rate, self.tracker_settings)
        cuts = SceneCuts(self.tracker_settings.scene_cut)
        active: dict[int, _Accumulator] = {}
        batch: list[Frame] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) >= self.batch_size:
                yield from self._process(batch, tracker, cuts, active)
                batch = []
        if batch:
            yield from self._process(batch, tracker, cuts, active)
        for tid in sorted(active):
            yield from self._emit(tid, active.pop(tid))

    def _process(
        self, batch: list[Frame], tracker: CameraTracker, cuts: SceneCuts, active: dict[int, _Accumulator]
    ) -> Iterator[TrackSequence]:
        for frame, dets in zip(batch, self.detector.detect([f.image for f in batch]), strict=True):
            self.stats.frames += 1
            if cuts.is_cut("offline", frame.image):  # a new scene: every track ends before it
                tracker.reset()
                for tid in tracker.removed_track_ids:
                    if tid in active:
                        yield from self._emit(tid, active.pop(tid))
            dets = self._filter(dets)
            self.stats.detections += len(dets)
            tracked = tracker.update(dets, frame.timestamp)
            due_rows: list[int] = []
            for row, tid in enumerate(tracked.track_id.tolist()):
                acc = active.get(tid)
                if acc is None:
                    acc = active[tid] = _Accumulator(self.fps)
                    self.stats.tracks += 1
                acc.frames_seen += 1
                if acc.sampler.due(frame.timestamp):
                    due_rows.append(row)
            if due_rows:
                crops = crop_boxes(frame.image, tracked.xyxy[due_rows], self.crop_hw, self.crop_pad)
                for crop, row in zip(crops, due_rows, strict=True):
                    tid = int(tracked.track_id[row])
                    acc = active[tid]
                    acc.crops.append(crop)
                    acc.times.append(frame.timestamp)
                    acc.frames.append(frame.index)
                    acc.boxes.append(tracked.xyxy[row])
                    acc.confs.append(float(tracked.confidence[row]))
                    if self.max_samples_per_track and len(acc.times) >= self.max_samples_per_track:
                        yield from self._emit(tid, acc)
            for tid in tracker.removed_track_ids:
                if tid in active:
                    yield from self._emit(tid, active.pop(tid))

    def _filter(self, dets: Detections) -> Detections:
        if self.min_confidence is not None and len(dets):
            dets = dets.select(dets.confidence >= self.min_confidence)
        if self.max_persons is not None and len(dets) > self.max_persons:
            keep = np.sort(np.argsort(-dets.confidence, kind="stable")[: self.max_persons])
            dets = dets.select(keep)
        return dets

    def _emit(self, tid: int, acc: _Accumulator) -> Iterator[TrackSequence]:
        if not acc.times:
            return
        if len(acc.times) < self.min_samples:
            self.stats.dropped_short += 1
            acc.flush(tid)  # discard, but keep the segment numbering consistent
            return
        self.stats.sequences += 1
        yield acc.flush(tid)

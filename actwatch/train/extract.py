"""``actwatch extract``: labelled videos -> per-person crop sequences at the model's fps and input size.

Persons are found with the service's own detector, ByteTrack wrapper, fps sampler and crop function
(:class:`~actwatch.tracker.offline.VideoTrackExtractor`), so training crops look like live ones. With
``whole_frame`` each sampled frame is resized whole (clips without detectable persons). A video that
cannot be read, is too short or shows no person is skipped with a warning and counted; the run goes on.
Finished videos get a done marker (written after their sequences), so a re-run resumes.

What is left out, and why, is counted: static tracks (a box that does not move and crops that do not
change: a cloth on the grass, a parked bike; the live service's rule) unless ``keep_static``, and tracks
shorter than ``min_frames`` (by default the shortest track ``actwatch predict`` classifies with the
default window). The run ends with the dataset report (:mod:`actwatch.train.dataset_report`):
``report.md``, ``report.json`` and ``contact_sheet.png`` beside the dataset.

Example (whole-frame mode: no detector needed):
    >>> import tempfile
    >>> from actwatch.train.synthetic import write_motion_source
    >>> root = Path(tempfile.mkdtemp())
    >>> src = write_motion_source(root / "clips", "a", videos_per_class=3, n_frames=12, size=32)
    >>> s = ExtractSettings(whole_frame=True, input_size=(32, 32), fps=10.0, min_frames=8)
    >>> summary = DatasetExtractor(s, progress=False).run(src, root / "ds")
    >>> summary.processed, summary.failed, len(summary.index.sequences)
    (6, 0, 6)
    >>> sorted(p.name for p in (root / "ds").glob("report.*")), summary.report.warnings
    (['report.json', 'report.md'], ())
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm import tqdm

from actwatch.capture.frame import Frame
from actwatch.capture.video_file import read_video, video_fps, video_frame_count
from actwatch.errors import ActwatchError
from actwatch.model.config import InputSpec
from actwatch.model.windows import min_window_samples
from actwatch.tracker.offline import TrackSequence
from actwatch.tracker.static import StaticSettings, crop_thumbnail, is_static_sequence
from actwatch.train.dataset import DatasetIndex, DatasetWriter, VideoMarker
from actwatch.train.dataset_report import DatasetReport, build_report, write_report
from actwatch.train.layouts import VideoItem, discover_videos

log = logging.getLogger(__name__)


class ExtractSettings(BaseModel):
    """Everything ``actwatch extract`` can be told.

    Example:
        >>> ExtractSettings(input_size=64).input_size
        (64, 64)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: Literal["a", "b", "c", "auto"] = Field("auto", description="Input layout of the source folder.")
    detector: Path | None = Field(
        None, description="YOLOv8 ONNX graph; default: the cached human-fall detector (`actwatch assets`)."
    )
    person_classes: list[int] | None = Field(
        None, description="Detector classes that are persons; default: inferred from the class names."
    )
    conf: float = Field(0.25, ge=0.0, le=1.0, description="Minimum detection confidence.")
    max_persons: int = Field(5, ge=1, description="Keep at most this many persons (longest tracks) per video.")
    fps: float = Field(10.0, gt=0.0, le=120.0, description="Sampling rate of the sequences (model fps).")
    input_size: tuple[int, int] = Field((112, 112), description="Stored crop size (height, width).")
    whole_frame: bool = Field(False, description="Store whole frames instead of tracked persons.")
    min_frames: int = Field(
        min_window_samples(InputSpec.model_fields["seq_len"].default),
        ge=1,
        description="Shortest sequence kept, in samples; shorter tracks are left out and counted. The default "
        "is the shortest track `actwatch predict` classifies with the default window (half of 30 samples), "
        "so that training and prediction accept the same tracks.",
    )
    keep_static: bool = Field(
        False,
        description="Keep static tracks (a box that does not move and crops that do not change: usually "
        "false detections such as a cloth or a parked bike); left out and counted by default.",
    )
    static: StaticSettings = Field(
        default_factory=StaticSettings,
        description="The static rule, the live service's (tracker.static): a lying person whose crops change "
        "is not static.",
    )
    contact_sheet: int = Field(8, ge=1, le=32, description="Sample crops per class on the contact sheet.")
    imgsz: int | None = Field(None, ge=32, description="Detector input size in pixels; unset: the model's size.")
    device: str = Field("cpu", description="Detector ONNX Runtime providers: 'cpu', 'cuda', 'cuda:0', 'auto', ...")
    crop_pad: float = Field(0.1, ge=0.0, le=1.0, description="Context added around each person box.")
    frames_fps: float = Field(30.0, gt=0.0, description="Frame rate of frame folders (layout b).")
    max_frames: int | None = Field(None, ge=1, description="Read at most this many frames of each video.")
    png: bool = Field(False, description="Store one PNG per frame instead of one .npy per sequence.")
    retry_failed: bool = Field(False, description="Retry videos that failed in an earlier run.")
    val_ratio: float = Field(0.15, ge=0.0, lt=1.0, description="Share of videos per class for validation.")
    test_ratio: float = Field(0.15, ge=0.0, lt=1.0, description="Share of videos per class for testing.")
    seed: int = Field(0, description="Seed of the split assignment.")

    @field_validator("input_size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int) else value

    def content_settings(self) -> dict[str, Any]:
        """The settings that decide what a stored sequence contains (must match when resuming)."""
        keys = ["input_size", "fps", "whole_frame", "frames_fps"] + ([] if self.whole_frame else ["crop_pad"])
        return self.model_dump(mode="json", include=set(keys))


@dataclass
class ClassSummary:
    """Per-class counts over all finished videos of the dataset (earlier runs included).

    Example:
        >>> ClassSummary(videos=3, failed=1).sequences
        0
    """

    videos: int = 0
    failed: int = 0
    persons: int = 0
    sequences: int = 0
    skipped: int = 0  # finished in an earlier run, not processed again now
    static: int = 0  # static tracks left out
    short: int = 0  # tracks shorter than min_frames left out


@dataclass
class ExtractionSummary:
    """What an extraction run did; ``format_table()`` is the table the CLI prints.

    Example:
        >>> ExtractionSummary(rows={"walk": ClassSummary(videos=2, sequences=3)}).format_table().splitlines()[2][:10]
        'walk      '
    """

    rows: dict[str, ClassSummary] = field(default_factory=dict)
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    frames_read: int = 0
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)  # video id -> reason (this run)
    index: DatasetIndex | None = None
    report: DatasetReport | None = None

    def format_table(self) -> str:
        head = (
            f"{'class':<24} {'videos':>7} {'failed':>7} {'persons':>8} {'sequences':>10} {'skipped':>8} "
            f"{'static':>7} {'short':>6}"
        )
        lines = [head, "-" * len(head)]
        total = ClassSummary()

        def row(label: str, r: ClassSummary) -> str:
            return (
                f"{label:<24} {r.videos:>7} {r.failed:>7} {r.persons:>8} {r.sequences:>10} {r.skipped:>8} "
                f"{r.static:>7} {r.short:>6}"
            )

        for label in sorted(self.rows):
            lines.append(row(label, self.rows[label]))
            for name in ("videos", "failed", "persons", "sequences", "skipped", "static", "short"):
                setattr(total, name, getattr(total, name) + getattr(self.rows[label], name))
        lines.append("-" * len(head))
        lines.append(row("total", total))
        lines.append(
            f"this run: {self.processed} processed, {self.skipped} skipped (already done), "
            f"{self.failed} failed, {self.frames_read} frames read in {self.seconds:.1f} s"
        )
        return "\n".join(lines)


def whole_frame_sequence(
    crops: np.ndarray, timestamps: np.ndarray, frame_hw: tuple[int, int], frame_indices: np.ndarray | None = None
) -> TrackSequence:
    """The sequence of whole sampled frames of a clip (track 0): its "box" is the whole frame.

    Example:
        >>> seq = whole_frame_sequence(np.zeros((4, 8, 8, 3), np.uint8), np.arange(4) / 10.0, (120, 160))
        >>> seq.track_id, seq.length, seq.boxes[0].tolist(), seq.duration
        (0, 4, [0.0, 0.0, 160.0, 120.0], 0.3)
    """
    n = len(crops)
    h, w = frame_hw
    return TrackSequence(
        track_id=0,
        segment=0,
        crops=crops,
        timestamps=np.asarray(timestamps, np.float64),
        frame_indices=np.arange(n) if frame_indices is None else np.asarray(frame_indices, np.int64),
        boxes=np.tile(np.array([0, 0, w, h], np.float32), (n, 1)),
        confidences=np.ones(n, np.float32),
        frames_seen=n,
    )


@dataclass(frozen=True)
class KeptTracks:
    """The sequences extraction keeps from one video, and what it left out.

    Example:
        >>> KeptTracks([], persons=2, static=1, short=1).why_empty(15).split(";")[0]
        'no person tracked for 15+ samples (1 static track(s) left out, 1 shorter track(s) left out'
    """

    sequences: list[TrackSequence]
    persons: int
    static: int = 0
    short: int = 0

    def why_empty(self, min_frames: int) -> str:
        """The reason recorded for a video that kept no sequence."""
        left = []
        if self.static:
            left.append(f"{self.static} static track(s) left out")
        if self.short:
            left.append(f"{self.short} shorter track(s) left out")
        context = ", ".join(left) + "; " if left else ""
        return (
            f"no person tracked for {min_frames}+ samples ({context}lower --conf, or use --whole-frame for "
            "clips without persons)"
        )


class _VideoFailed(Exception):
    """A video that yields no sequence; the message is the reason recorded in its marker."""


class _Counter:
    """Wraps a frame iterator: counts frames and the samples an fps sampler would take."""

    def __init__(self, frames: Iterator[Frame], fps: float, bar: tqdm[Any] | None = None) -> None:
        from actwatch.tracker.sampling import FpsSampler

        self._frames = frames
        self._sampler = FpsSampler(fps)
        self._bar = bar
        self.frames = 0
        self.samples = 0

    def __iter__(self) -> Iterator[Frame]:
        for frame in self._frames:
            self.frames += 1
            self.samples += int(self._sampler.due(frame.timestamp))
            if self._bar is not None:
                self._bar.update(1)
            yield frame


class DatasetExtractor:
    """Runs extraction over a source folder into a dataset folder (see module docstring).

    ``detector`` may be given (tests, benchmarks); otherwise it is loaded from ``settings.detector``
    or the asset cache on first use. Not needed in whole-frame mode.

    See the module's example.
    """

    def __init__(self, settings: ExtractSettings, detector: Any | None = None, *, progress: bool = True) -> None:
        self.settings = settings
        self._detector = detector
        self.progress = progress

    def _get_detector(self) -> Any:
        if self._detector is None:
            from actwatch.settings import validate_settings
            from actwatch.tracker.detector import DetectorSettings, PersonDetector

            weights = self.settings.detector
            if weights is None:
                from actwatch.assets import ensure_detector

                weights = ensure_detector(fetch=False)
            detector_settings = validate_settings(
                DetectorSettings,
                {
                    "person_class_ids": self.settings.person_classes,
                    "conf": self.settings.conf,
                    "imgsz": self.settings.imgsz,
                    "device": self.settings.device,
                    # square inputs whatever the device (detector.rect auto fits them on a CPU): datasets come
                    # out the same on every machine (on vtest.avi the fitted boxes made 94 labelled pieces of
                    # the tests' behaviour dataset against 113, the tracks split differently)
                    "rect": False,
                },
                "extract detector options",
            )
            self._detector = PersonDetector(weights, detector_settings)
        return self._detector

    def run(self, src: Path, out: Path) -> ExtractionSummary:
        started = time.perf_counter()
        items = discover_videos(src, self.settings.layout)
        writer = DatasetWriter(out, self.settings.content_settings(), png=self.settings.png)
        pending = [item for item in items if not writer.is_done(item.video_id)]
        if pending and not self.settings.whole_frame:
            self._get_detector()  # fail early (missing weights) rather than after the first video
        summary = ExtractionSummary()
        # One bar over the frames of every pending video: its rate is the extraction's frames per second.
        bar = tqdm(
            total=self._frame_total(pending) if self.progress else None,
            desc="extract",
            unit="frame",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        for number, item in enumerate(items, 1):
            bar.set_postfix(video=f"{number}/{len(items)}", failed=summary.failed, skipped=summary.skipped)
            if writer.is_done(item.video_id):
                old = writer.read_marker(item.video_id)
                if old.status == "ok" or not self.settings.retry_failed:
                    summary.skipped += 1
                    summary.rows.setdefault(item.label, ClassSummary()).skipped += 1
                    continue
            marker = self._process(item, writer, summary, bar)
            writer.write_marker(marker)  # last: the video counts as done only once its sequences exist
            summary.processed += 1
            if marker.status != "ok":
                summary.failed += 1
                summary.failures[item.video_id] = marker.reason
                log.warning("skipped %s: %s", item.source, marker.reason)
        bar.close()
        self._fill_rows(writer, summary, items)
        summary.seconds = time.perf_counter() - started
        if any(r.sequences for r in summary.rows.values()):
            summary.index = writer.finalize(
                val_ratio=self.settings.val_ratio, test_ratio=self.settings.test_ratio, seed=self.settings.seed
            )
            wanted = {item.video_id for item in items}
            summary.report = build_report(
                summary.index,
                [m for m in writer.markers() if m.video_id in wanted],
                min_frames=self.settings.min_frames,
                static_left_out=not self.settings.keep_static,
            )
            write_report(summary.report, summary.index, per_class=self.settings.contact_sheet)
            for warning in summary.report.warnings:
                log.warning("%s", warning)
        return summary

    @staticmethod
    def _frame_total(items: list[VideoItem]) -> int | None:
        """Frames of ``items`` as their containers state them (None when one does not say)."""
        total = 0
        for item in items:
            try:
                count = video_frame_count(item.source)
            except ActwatchError:
                count = 0  # unreadable: it fails with its reason when processed
            if count is None:
                return None
            total += count
        return total

    @staticmethod
    def _fill_rows(writer: DatasetWriter, summary: ExtractionSummary, items: list[VideoItem]) -> None:
        wanted = {item.video_id for item in items}
        for item in items:
            summary.rows.setdefault(item.label, ClassSummary())
        for m in writer.markers():
            if m.video_id not in wanted:
                continue  # a marker of a video no longer in the source folder
            row = summary.rows.setdefault(m.label, ClassSummary())
            row.videos += 1
            row.failed += int(m.status != "ok")
            row.persons += m.persons
            row.sequences += len(m.sequences)
            row.static += m.static_tracks
            row.short += m.short_tracks

    def _frames(self, item: VideoItem) -> tuple[Iterator[Frame], float]:
        if item.frame_folder:
            fps = self.settings.frames_fps
            return read_video(item.source, fps=fps, max_frames=self.settings.max_frames), fps
        if not item.source.is_file():
            raise _VideoFailed(f"video file not found: {item.source}")
        return read_video(item.source, max_frames=self.settings.max_frames), video_fps(item.source)

    def _process(
        self, item: VideoItem, writer: DatasetWriter, summary: ExtractionSummary, bar: tqdm[Any]
    ) -> VideoMarker:
        base: dict[str, Any] = {
            "video_id": item.video_id,
            "source": str(item.source),
            "label": item.label,
            "group": item.group,
            "given_split": item.split,
        }
        counter: _Counter | None = None
        try:
            frames, frame_rate = self._frames(item)
            counter = _Counter(frames, self.settings.fps, bar)
            if self.settings.whole_frame:
                kept = KeptTracks(self._whole_frame(counter), persons=1)
            else:
                kept = self._persons(counter, frame_rate)
            sequences = kept.sequences
            base |= {"static_tracks": kept.static, "short_tracks": kept.short}
            if counter.samples < self.settings.min_frames:
                raise _VideoFailed(
                    f"too short: {counter.samples} frame(s) at {self.settings.fps:g} fps, "
                    f"--min-frames is {self.settings.min_frames}"
                )
            if not sequences:
                raise _VideoFailed(kept.why_empty(self.settings.min_frames))
            stored = tuple(writer.write_sequence(item.video_id, seq) for seq in sequences)
            return VideoMarker(**base, status="ok", frames=counter.samples, persons=kept.persons, sequences=stored)
        except (_VideoFailed, ActwatchError, cv2.error, OSError) as exc:
            return VideoMarker(**base, status="failed", reason=str(exc), frames=counter.samples if counter else 0)
        finally:
            if counter is not None:
                summary.frames_read += counter.frames

    def _whole_frame(self, frames: _Counter) -> list[TrackSequence]:
        from actwatch.tracker.crops import crop_boxes
        from actwatch.tracker.sampling import FpsSampler

        sampler = FpsSampler(self.settings.fps)
        crops, times, indices = [], [], []
        frame_hw = (0, 0)
        for frame in frames:
            if sampler.due(frame.timestamp):
                frame_hw = frame.shape
                h, w = frame_hw
                box = np.array([[0, 0, w, h]], np.float32)
                crops.append(crop_boxes(frame.image, box, self.settings.input_size, pad=0.0)[0])
                times.append(frame.timestamp)
                indices.append(frame.index)
        if len(crops) < self.settings.min_frames:
            return []
        return [whole_frame_sequence(np.stack(crops), np.asarray(times), frame_hw, np.asarray(indices))]

    def _persons(self, frames: _Counter, frame_rate: float) -> KeptTracks:
        from actwatch.tracker.offline import VideoTrackExtractor

        extractor = VideoTrackExtractor(
            self._get_detector(),
            crop_hw=self.settings.input_size,
            fps=self.settings.fps,
            crop_pad=self.settings.crop_pad,
            min_samples=1,  # short tracks are counted as persons below, then dropped
        )
        tracks = list(extractor.extract_frames(frames, frame_rate=frame_rate))
        # Static tracks go first, before the longest are kept: a false detection that never moves is
        # often the longest track of a clip.
        moving = tracks if self.settings.keep_static else [s for s in tracks if not self._is_static(s)]
        static = len(tracks) - len(moving)
        # Longest tracks first (ties: lower id): the main actors of a clip, not passers-by.
        moving.sort(key=lambda s: (-s.length, s.track_id, s.segment))
        kept = moving[: self.settings.max_persons]
        persons = len({s.track_id for s in kept})
        out = [s for s in kept if s.length >= self.settings.min_frames]
        out.sort(key=lambda s: (s.track_id, s.segment))
        return KeptTracks(out, persons=persons, static=static, short=len(kept) - len(out))

    def _is_static(self, seq: TrackSequence) -> bool:
        """The live service's static rule on a whole track (its boxes, crops and times)."""
        thumbs = [crop_thumbnail(crop) for crop in seq.crops]
        return is_static_sequence(seq.boxes, thumbs, seq.timestamps, self.settings.static)

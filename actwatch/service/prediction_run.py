"""One upload job run through the live service's own stages: the same detector, tracker, buffers and model.

:func:`run_prediction` takes the :class:`~actwatch.service.stages.Stages` the live pipeline runs
(built once by :func:`~actwatch.service.stages.build_stages`) and swaps only what must belong to the
job: the reader (the uploaded file, one frame per step, none dropped), fresh track buffers and alert
state (no alerts: nothing is stored or broadcast), its own metrics (the live per-stage timings stay the
cameras'), and a sink that keeps each frame's track overlay for the annotated video. The loaded
detector and action model are *shared*, not loaded again. A
:class:`~actwatch.service.pipeline.StreamPipeline` over those stages is stepped by the job's thread.

A person's probabilities are the mean over all the windows the model classified for that track,
sorted high to low; tracks too short for one window are counted in ``unclassified_tracks``.

The result types (:class:`~actwatch.service.predictions.PersonResult`...) live with the jobs in
:mod:`actwatch.service.predictions`, which the app imports without loading the model's libraries.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actwatch.capture.frame import Frame
from actwatch.capture.handoff import DropOldestQueue
from actwatch.capture.reader import CameraStatus
from actwatch.capture.replay import ReplayReader
from actwatch.capture.video_file import VideoProbe
from actwatch.config import CameraConfig, PipelineConfig
from actwatch.model.config import InputSpec
from actwatch.model.provenance import ModelProvenance
from actwatch.model.runtime import RecognitionRuntime
from actwatch.service.alerts import AlertEngine
from actwatch.service.annotated_video import H264Writer, draw_overlay
from actwatch.service.events import AlertRecord, FrameOverlay, TrackOverlay
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.pipeline import StreamPipeline
from actwatch.service.prediction_schemas import ModelInfo
from actwatch.service.predictions import (
    JobCancelled,
    JobProgress,
    JobRunner,
    LabelScore,
    PersonResult,
    PredictionJob,
    PredictionOutcome,
)
from actwatch.service.stages import Stages
from actwatch.tracker.buffers import TrackBufferStore


class _LockStepFile:
    """The uploaded file as a camera reader: :meth:`next_frame` reads one frame and hands it on, so the
    job knows the image each step processes (for drawing) and no frame is ever dropped."""

    def __init__(self, camera_id: str, path: Path) -> None:
        self._replay = ReplayReader(camera_id, path)
        self.source = self._replay.source
        self.frames: DropOldestQueue[Frame] = DropOldestQueue(maxsize=2)

    @property
    def frame_rate(self) -> float | None:
        return self._replay.frame_rate

    def next_frame(self) -> Frame | None:
        """The next frame, also put on ``frames`` for the pipeline; ``None`` at the end."""
        if not self._replay.feed():
            self.frames.close()
            return None
        frame = self._replay.frames.get_nowait()
        assert isinstance(frame, Frame)  # feed() put exactly one frame
        self.frames.put(frame)
        return frame

    def start(self) -> None:
        """Nothing to start: frames come from :meth:`next_frame`."""

    def stop(self, timeout: float = 0.0) -> None:
        self._replay.stop(timeout)
        self.frames.close()

    def status(self) -> CameraStatus:
        return self._replay.status()


class _ProbabilityRecorder:
    """The shared runtime, unchanged, keeping the class probabilities of each classify call of a step
    (the pipeline reports the windows it classified, in the same order)."""

    def __init__(self, runtime: RecognitionRuntime) -> None:
        self._runtime = runtime
        self._probs: list[np.ndarray] = []

    @property
    def classes(self) -> Sequence[str]:
        return self._runtime.classes

    @property
    def spec(self) -> InputSpec:
        return self._runtime.spec

    @property
    def supports_feature_cache(self) -> bool:
        return self._runtime.supports_feature_cache

    def encode(self, crops: np.ndarray) -> np.ndarray:
        return self._runtime.encode(crops)

    def classify(self, features: np.ndarray) -> np.ndarray:
        return self._keep(self._runtime.classify(features))

    def classify_crops(self, windows: np.ndarray) -> np.ndarray:
        return self._keep(self._runtime.classify_crops(windows))

    def _keep(self, probs: np.ndarray) -> np.ndarray:
        self._probs.append(probs)
        return probs

    def take(self) -> np.ndarray:
        """The probabilities recorded since the last call, one row per window."""
        rows = np.concatenate(self._probs) if self._probs else np.zeros((0, len(self.classes)), np.float32)
        self._probs.clear()
        return rows


class _OverlayKeeper:
    """The job's sink: no events (uploads alert nobody); the newest overlay of the frame just processed."""

    def __init__(self) -> None:
        self.latest: FrameOverlay | None = None

    def emit_event(self, alert: AlertRecord) -> None:
        """Uploads raise no alerts: nothing is stored or broadcast."""

    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
        self.latest = overlay


@dataclass(slots=True)
class _PersonTally:
    start_s: float
    end_s: float
    windows: int = 0
    prob_sum: np.ndarray | None = None


def job_stages(live: Stages, pipeline: PipelineConfig, reader: _LockStepFile) -> Stages:
    """``live`` with the job's own reader, buffers, alert state, sink and metrics; detector, tracker
    factory and model shared."""
    runtime = _ProbabilityRecorder(live.runtime)
    return dataclasses.replace(
        live,
        reader_factory=lambda _camera: reader,
        buffers=TrackBufferStore(
            runtime.spec, max_tracks_per_camera=pipeline.max_tracks_per_camera, max_total_mb=pipeline.max_buffer_mb
        ),
        runtime=runtime,
        alerts=AlertEngine([], runtime.classes),
        sink=_OverlayKeeper(),
        metrics=ServiceMetrics(),
        publish_tracks=True,
    )


def run_prediction(
    live: Stages,
    pipeline_config: PipelineConfig,
    video: Path,
    probe: VideoProbe,
    annotated: Path,
    *,
    camera_id: str,
    on_progress: Callable[[float], None],
    pace: Callable[[float], None],
    cancelled: Callable[[], bool],
) -> PredictionOutcome:
    """Run ``video`` through ``live``'s stages; write the annotated MP4 to ``annotated``.

    ``on_progress`` gets the share of frames done (0..1) after each frame; ``pace`` gets the seconds the
    frame took and may sleep (the job's share of compute); ``cancelled`` is checked after each frame
    (then :class:`JobCancelled`). Raises :class:`~actwatch.errors.ActwatchError` for an unreadable video.
    """
    reader = _LockStepFile(camera_id, video)
    stages = job_stages(live, pipeline_config, reader)
    assert isinstance(stages.runtime, _ProbabilityRecorder) and isinstance(stages.sink, _OverlayKeeper)
    recorder, overlays = stages.runtime, stages.sink
    pipeline = StreamPipeline(stages)
    pipeline.add_camera(CameraConfig(id=camera_id, url=str(video)))
    classes = list(recorder.classes)
    tallies: dict[int, _PersonTally] = {}
    frames = 0
    compute_s = 0.0
    last_t = 0.0
    try:
        with H264Writer(annotated, fps=probe.fps, width=probe.width, height=probe.height) as writer:
            while True:
                started = time.perf_counter()
                frame = reader.next_frame()
                if frame is None:
                    break
                overlays.latest = None
                report = pipeline.step()
                for window, probs in zip(report.windows, recorder.take(), strict=True):
                    tally = tallies.setdefault(window.track_id, _PersonTally(frame.timestamp, frame.timestamp))
                    tally.windows += 1
                    tally.prob_sum = probs.astype(np.float64) + (tally.prob_sum if tally.prob_sum is not None else 0)
                overlay = overlays.latest
                tracks: tuple[TrackOverlay, ...] = overlay.tracks if overlay is not None else ()
                for track in tracks:
                    tally = tallies.setdefault(track.track_id, _PersonTally(frame.timestamp, frame.timestamp))
                    tally.start_s = min(tally.start_s, frame.timestamp)
                    tally.end_s = max(tally.end_s, frame.timestamp)
                writer.write(draw_overlay(frame.image, overlay))
                frames += 1
                last_t = frame.timestamp
                busy = time.perf_counter() - started
                compute_s += busy
                on_progress(min(frames / max(probe.frames, 1), 0.999))
                if cancelled():
                    raise JobCancelled
                pace(busy)
    finally:
        pipeline.remove_camera(camera_id)
        reader.stop()
    persons = tuple(
        PersonResult(track_id, round(t.start_s, 3), round(t.end_s, 3), t.windows, _sorted_scores(classes, t))
        for track_id, t in sorted(tallies.items(), key=lambda item: (item[1].start_s, item[0]))
        if t.prob_sum is not None
    )
    video_s = last_t + 1.0 / probe.fps if frames else 0.0
    return PredictionOutcome(persons, len(tallies) - len(persons), frames, round(video_s, 3), compute_s)


def _sorted_scores(classes: Sequence[str], tally: _PersonTally) -> tuple[LabelScore, ...]:
    assert tally.prob_sum is not None
    mean = tally.prob_sum / tally.windows
    order = np.argsort(-mean, kind="stable")
    return tuple(LabelScore(classes[i], round(float(mean[i]), 6)) for i in order)


def stages_runner(live: Stages, pipeline_config: PipelineConfig) -> JobRunner:
    """The service's :data:`~actwatch.service.predictions.JobRunner`: each job through ``live``'s stages."""

    def run(job: PredictionJob, progress: JobProgress) -> PredictionOutcome:
        return run_prediction(
            live,
            pipeline_config,
            job.video,
            job.probe,
            job.annotated,
            camera_id=job.camera_id,
            on_progress=progress.on_progress,
            pace=progress.pace,
            cancelled=progress.cancelled,
        )

    return run


def model_info(runtime: RecognitionRuntime, provenance: ModelProvenance | None) -> ModelInfo:
    """The action model as ``/system`` and the upload page describe it."""
    spec = runtime.spec
    manifest = getattr(runtime, "manifest", None)
    return ModelInfo(
        classes=list(runtime.classes),
        arch=getattr(manifest, "arch", None),
        seq_len=spec.seq_len,
        input_size=spec.input_size,
        fps=spec.fps,
        mean=spec.mean,
        std=spec.std,
        feature_cache=runtime.supports_feature_cache,
        trained=provenance.trained if provenance is not None else None,
        backbone=provenance.backbone if provenance is not None else None,
    )

"""Upload-a-video jobs: accept a file within the limits, queue it, run it, keep the result a while.

:class:`PredictionService` owns the jobs. :meth:`~PredictionService.create` streams the upload to disk
(never whole in memory), checks its size, type and duration (probed with the one video reader,
:func:`~actwatch.capture.video_file.probe_video`) and queues it; one worker thread runs the queued jobs
in turn through a :data:`JobRunner` (in the service: :func:`~actwatch.service.prediction_run.run_prediction`
over the live pipeline's own stages). The number of queued and running jobs is bounded
(``predictions.max_jobs``: one more is refused, 429), finished jobs are deleted after
``predictions.retention_s``, and a running job works at most ``predictions.compute_share`` of wall
time (:class:`ComputeShare`), so the live cameras keep the compute they need.

Jobs live in memory and in ``<data_dir>/predictions/<id>/``; a restart forgets them (and deletes the
folder's leftovers).

Example (a runner that finds nobody, instead of the real stages):
    >>> import tempfile, pathlib, io, cv2, numpy as np
    >>> from actwatch.config import PredictionsConfig
    >>> clip = pathlib.Path(tempfile.mkdtemp()) / "clip.avi"
    >>> out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    >>> for _ in range(20):
    ...     _ = out.write(np.zeros((24, 32, 3), np.uint8))
    >>> out.release()
    >>> def nobody(job, progress):
    ...     progress.on_progress(1.0)
    ...     return PredictionOutcome((), 0, job.probe.frames, job.probe.duration_s, 0.01)
    >>> service = PredictionService(PredictionsConfig(), pathlib.Path(tempfile.mkdtemp()), nobody)
    >>> service.start()
    >>> with clip.open("rb") as upload:
    ...     job = service.create(upload, "clip.avi")
    >>> service.wait_idle(timeout=10)
    True
    >>> done = service.get(job.id)
    >>> done.state.value, done.progress, done.probe.duration_s
    ('done', 1.0, 2.0)
    >>> service.stop()
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Protocol

from actwatch.capture.video_file import VideoProbe, probe_video
from actwatch.config import PredictionsConfig
from actwatch.errors import ActwatchError

log = logging.getLogger(__name__)

_COPY_CHUNK = 1 << 20
UPLOAD_NAME = "upload"  # the uploaded file in the job's folder (its extension added)
ANNOTATED_NAME = "annotated.mp4"


@dataclass(frozen=True, slots=True)
class LabelScore:
    """One class and its probability."""

    label: str
    score: float


@dataclass(frozen=True, slots=True)
class PersonResult:
    """One tracked person of an upload: where in the video (seconds) and what the model saw."""

    track_id: int
    start_s: float
    end_s: float
    windows: int  # classified windows the probabilities are the mean of
    probabilities: tuple[LabelScore, ...]  # high to low

    @property
    def top_label(self) -> str:
        return self.probabilities[0].label

    @property
    def duration_s(self) -> float:
        return round(self.end_s - self.start_s, 6)


@dataclass(frozen=True, slots=True)
class PredictionOutcome:
    """What a finished job found, and what it cost."""

    persons: tuple[PersonResult, ...]  # by first appearance
    unclassified_tracks: int
    frames: int
    video_s: float
    compute_s: float  # time the job's thread worked (its pauses for the live cameras excluded)


class JobCancelled(Exception):
    """The job was asked to stop (service shutdown)."""


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PredictionRefused(ActwatchError):
    """An upload the service does not take; ``status_code`` is the HTTP answer, the message says why and
    what the limit is."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(slots=True, eq=False)
class PredictionJob:
    """One upload and what became of it. Changed only by the service, under its lock."""

    id: str
    filename: str
    folder: Path
    video: Path
    probe: VideoProbe
    created_at: float
    state: JobState = JobState.QUEUED
    progress: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    outcome: PredictionOutcome | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def annotated(self) -> Path:
        return self.folder / ANNOTATED_NAME

    @property
    def camera_id(self) -> str:
        """The job's camera id inside the pipeline (never one of the live cameras': those have no 'upload-')."""
        return f"upload-{self.id[:12]}"


class JobProgress(Protocol):
    """What a runner reports to and asks of the service while a job runs."""

    def on_progress(self, fraction: float) -> None: ...
    def pace(self, busy_s: float) -> None: ...
    def cancelled(self) -> bool: ...


JobRunner = Callable[[PredictionJob, JobProgress], PredictionOutcome]
"""Runs one job to the end (the service: :func:`~actwatch.service.prediction_run.run_prediction`)."""


class ComputeShare:
    """Keeps a worker at most ``share`` of wall time busy: after ``busy_s`` of work it sleeps
    ``busy_s * (1 - share) / share`` (woken early by ``stop``).

    Example:
        >>> ComputeShare(0.25, threading.Event()).pause_for(0.1)
        0.3
    """

    def __init__(self, share: float, stop: threading.Event) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self._stop = stop

    def pause_for(self, busy_s: float) -> float:
        return round(max(0.0, busy_s) * (1.0 - self.share) / self.share, 9)

    def pace(self, busy_s: float) -> None:
        pause = self.pause_for(busy_s)
        if pause > 0:
            self._stop.wait(pause)


@dataclass(slots=True)
class _RunningJob:
    """A running job's side of :class:`JobProgress`."""

    service: PredictionService
    job: PredictionJob

    def on_progress(self, fraction: float) -> None:
        self.service._set_progress(self.job, fraction)

    def pace(self, busy_s: float) -> None:
        self.service.share.pace(busy_s)

    def cancelled(self) -> bool:
        return self.job.cancel.is_set() or self.service._stop.is_set()


class PredictionService:
    """The upload jobs: create (limits, 429), a worker thread, retention. ``runner=None``: the service
    has no compute pipeline (a test app) and refuses uploads with 503."""

    def __init__(
        self,
        settings: PredictionsConfig,
        folder: Path,
        runner: JobRunner | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.folder = folder
        self._runner = runner
        self._clock = clock
        self._jobs: dict[str, PredictionJob] = {}
        self._receiving = 0  # uploads being written and probed: they hold a slot
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = threading.Event()
        self.share = ComputeShare(settings.compute_share, self._stop)
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self._runner is not None and self.settings.enabled

    # ----------------------------------------------------------------------------------- life cycle
    def start(self) -> None:
        """Clear leftovers of a previous run and start the worker thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        if self.folder.is_dir():
            for leftover in self.folder.iterdir():
                if leftover.is_dir() and leftover.name not in self._jobs:
                    shutil.rmtree(leftover, ignore_errors=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._work, name="actwatch-predictions", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker; a running job is cancelled (failed: "the service stopped")."""
        with self._wake:
            self._stop.set()
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # ----------------------------------------------------------------------------------------- API
    def check_filename(self, filename: str) -> str:
        """The lower-case extension of ``filename``; 415 when it is not an accepted video type."""
        ext = Path(filename).suffix.lower()
        allowed = self.settings.allowed_extensions
        if ext not in allowed:
            raise PredictionRefused(
                415,
                f"'{ext or filename}' is not an accepted video type; upload one of: {', '.join(allowed)}",
            )
        return ext

    def create(self, upload: BinaryIO, filename: str) -> PredictionJob:
        """Write ``upload`` to a new job's folder, check it and queue it.

        Raises :class:`PredictionRefused`: 503 (no pipeline), 415 (type), 429 (too many jobs), 413 (size),
        422 (not a readable video, or too long).
        """
        if not self.settings.enabled:
            raise PredictionRefused(503, "video uploads are turned off here (predictions.enabled: false)")
        if self._runner is None:
            raise PredictionRefused(
                503, "video uploads are not available here: they need the compute pipeline (`actwatch serve`)"
            )
        ext = self.check_filename(filename)
        self._reserve_slot()
        job_id = uuid.uuid4().hex
        folder = self.folder / job_id
        try:
            folder.mkdir(parents=True, mode=0o700)
            video = folder / f"{UPLOAD_NAME}{ext}"
            self._copy_limited(upload, video)
            probe = self._probe(video)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            with self._lock:
                self._receiving -= 1
            raise
        job = PredictionJob(job_id, Path(filename).name[:255], folder, video, probe, self._clock())
        with self._wake:
            self._receiving -= 1
            self._jobs[job_id] = job
            self._wake.notify_all()
        log.info("prediction %s queued: %s, %.1f s of video", job_id, job.filename, probe.duration_s)
        return job

    def get(self, job_id: str) -> PredictionJob | None:
        self.purge_expired()
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[PredictionJob]:
        """Every kept job, newest first."""
        self.purge_expired()
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is queued or running (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._active_count() > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def purge_expired(self) -> int:
        """Delete the finished jobs older than the retention; how many were deleted."""
        cutoff = self._clock() - self.settings.retention_s
        with self._lock:
            expired = [j for j in self._jobs.values() if j.finished_at is not None and j.finished_at <= cutoff]
            for job in expired:
                del self._jobs[job.id]
        for job in expired:
            shutil.rmtree(job.folder, ignore_errors=True)
            log.info("prediction %s deleted (retention %.0f s)", job.id, self.settings.retention_s)
        return len(expired)

    # ------------------------------------------------------------------------------------- helpers
    def _active_count(self) -> int:
        return self._receiving + sum(j.state in (JobState.QUEUED, JobState.RUNNING) for j in self._jobs.values())

    def _reserve_slot(self) -> None:
        self.purge_expired()
        with self._lock:
            if self._active_count() >= self.settings.max_jobs:
                raise PredictionRefused(
                    429,
                    f"{self.settings.max_jobs} video jobs are already queued or running (predictions.max_jobs); "
                    "try again when one has finished",
                )
            self._receiving += 1

    def _copy_limited(self, upload: BinaryIO, target: Path) -> None:
        limit = self.settings.max_upload_bytes
        written = 0
        with target.open("xb") as out:
            while chunk := upload.read(_COPY_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise PredictionRefused(413, upload_too_large_message(self.settings))
                out.write(chunk)
        if written == 0:
            raise PredictionRefused(422, "the uploaded file is empty; choose a video file")

    def _probe(self, video: Path) -> VideoProbe:
        max_s = self.settings.max_duration_s
        try:
            probe = probe_video(video, max_frames=int(max_s * 1000) + 1)
        except ActwatchError:
            raise PredictionRefused(
                422, "the file is not a video that can be read (OpenCV/FFmpeg found no frame in it)"
            ) from None
        if probe.duration_s > max_s:
            raise PredictionRefused(
                422,
                f"the video is {probe.duration_s:.1f} s long; at most {max_s:g} s is accepted "
                "(predictions.max_duration_s): cut it shorter",
            )
        return probe

    def _set_progress(self, job: PredictionJob, fraction: float) -> None:
        with self._lock:
            job.progress = max(job.progress, min(1.0, fraction))

    def _next_job(self) -> PredictionJob | None:
        """The oldest queued job, marked running; None when stopping. Purges expired jobs while idle."""
        with self._wake:
            while not self._stop.is_set():
                queued = [j for j in self._jobs.values() if j.state is JobState.QUEUED]
                if queued:
                    job = min(queued, key=lambda j: j.created_at)
                    job.state, job.started_at = JobState.RUNNING, self._clock()
                    return job
                self._wake.wait(min(60.0, self.settings.retention_s))
                if not self._stop.is_set():
                    self._wake.release()
                    try:
                        self.purge_expired()
                    finally:
                        self._wake.acquire()
        return None

    def _work(self) -> None:
        assert self._runner is not None or not self._jobs
        while (job := self._next_job()) is not None:
            self._run(job)
        with self._wake:  # jobs never started: failed, so no client waits for them forever
            for job in self._jobs.values():
                if job.state in (JobState.QUEUED, JobState.RUNNING):
                    self._finish(job, error="the service stopped before the job finished")
            self._wake.notify_all()

    def _run(self, job: PredictionJob) -> None:
        assert self._runner is not None
        try:
            outcome = self._runner(job, _RunningJob(self, job))
        except JobCancelled:
            error: str | None = "the service stopped before the job finished"
            outcome = None
        except ActwatchError as exc:
            error, outcome = str(exc), None
        except Exception:
            log.exception("prediction %s failed", job.id)
            error, outcome = "the job failed on an internal error (see the service log)", None
        else:
            error = None
        with self._wake:
            self._finish(job, error=error, outcome=outcome)
            self._wake.notify_all()
        log.info("prediction %s %s", job.id, job.state.value)

    def _finish(self, job: PredictionJob, *, error: str | None, outcome: PredictionOutcome | None = None) -> None:
        job.finished_at = self._clock()
        job.error = error
        job.outcome = outcome
        if error is None:
            job.state, job.progress = JobState.DONE, 1.0
        else:
            job.state = JobState.FAILED
        job.video.unlink(missing_ok=True)  # the upload is not kept once it has been run


def upload_too_large_message(settings: PredictionsConfig) -> str:
    """The 413 text for an upload over the limit (also said by the body-size middleware).

    Example:
        >>> upload_too_large_message(PredictionsConfig(max_upload_mb=5))
        'the video is larger than 5 MiB, the most accepted (predictions.max_upload_mb): upload a shorter or smaller one'
    """
    return (
        f"the video is larger than {settings.max_upload_mb:g} MiB, the most accepted (predictions.max_upload_mb): "
        "upload a shorter or smaller one"
    )

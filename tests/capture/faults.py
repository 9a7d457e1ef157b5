"""The capture fault matrix: each case runs real readers against real faulty sources and reports rows.

Used twice: by ``tests/capture/test_faults.py`` (each row must pass) and by ``scripts/faults.sh``
(``python -m tests.capture.faults``), which prints the rows as a table and exits 1 when one fails.

Sources are real: the project's RTSP server on loopback with an ``ffmpeg`` publisher that is cut
(killed) and resumed or SIGSTOPped, :class:`~tests.support.rtsp.SilentServer` listeners that accept
and never answer, and refused ports. Only the stale-frame trickle uses a scripted capture, since no real
source can be made to repeat a frame on demand.

Every wait is for a condition, with a deadline derived from the settings (or, for recovery, the 10 s
the product promises); the deadline is what the row reports against, never a sleep.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actwatch.capture.reader import CameraReader, CameraState
from actwatch.capture.settings import CaptureSettings
from actwatch.capture.sources import SourceSpec
from tests.support.polling import wait_until
from tests.support.rtsp import RtspServer, SilentServer, free_tcp_port

SETTINGS = CaptureSettings(
    stall_timeout_s=1.5,
    open_timeout_s=3.0,
    backoff_initial_s=0.2,
    backoff_max_s=1.0,
    rtsp_transport="udp",  # the loopback server has no RTSP over TCP
    ffmpeg_options={"analyzeduration": "500000"},
)
RECOVERY_S = 10.0  # a healthy camera streams again within this long of its publisher's resume
SILENT_CAMERAS = 4
THREADS_PER_CAMERA = 2  # the reader's supervisor and its one session thread
SESSION_EXIT_BOUND_S = 10.0  # stop() returns in 5 s; its killed processes are reaped right after

Opener = Callable[..., object] | None


@dataclass(frozen=True, slots=True)
class FaultRow:
    """One line of the fault table."""

    case: str
    expected: str
    observed: str
    passed: bool


def reader_processes() -> list[int]:
    """The ids of this process's children that decode a camera (FFmpeg writing raw frames to a pipe),
    and of any child that exited and was never reaped.

    Read from ``/proc`` (the tests run on Linux): ``ppid`` is field 4 of ``/proc/PID/stat``, after the
    command name in parentheses.
    """
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == me and (b"pipe:1" in cmdline or fields[0] == "Z"):  # an unreaped child counts
            found.append(int(entry.name))
    return found


class Census:
    """The most threads and camera processes seen while sampling (every poll of a wait)."""

    def __init__(self) -> None:
        self.max_threads = 0
        self.max_processes = 0

    def sample(self) -> None:
        self.max_threads = max(self.max_threads, threading.active_count())
        self.max_processes = max(self.max_processes, len(reader_processes()))


@contextmanager
def started_readers(opener: Opener) -> Iterator[Callable[[str, str, CaptureSettings], CameraReader]]:
    """Readers made inside the block are all stopped at its end."""
    readers: list[CameraReader] = []

    def make(camera_id: str, url: str, settings: CaptureSettings) -> CameraReader:
        kwargs = {"opener": opener} if opener is not None else {}
        reader = CameraReader(camera_id, SourceSpec.parse(url), settings, **kwargs)  # type: ignore[arg-type]
        readers.append(reader)
        reader.start()
        return reader

    try:
        yield make
    finally:
        for reader in readers:
            reader.stop(timeout=5)


def streaming_again(reader: CameraReader, frames_before: int) -> bool:
    status = reader.status()
    return status.state is CameraState.STREAMING and status.frames_read > frames_before


def bad_cameras_beside_a_healthy_one(
    server: RtspServer, video: Path, *, cycles: int = 3, opener: Opener = None
) -> list[FaultRow]:
    """4 silent cameras (2 RTSP, 2 HTTP) and 1 refused beside a healthy one whose publisher is cut and
    resumed ``cycles`` times."""
    rows: list[FaultRow] = []
    census = Census()
    baseline_threads = threading.active_count()
    baseline_processes = len(reader_processes())
    publisher = server.publisher(f"healthy-{os.getpid()}-{time.monotonic_ns()}", video).start()
    with ExitStack() as stack:
        silent = [stack.enter_context(SilentServer()) for _ in range(SILENT_CAMERAS)]
        baseline_threads += SILENT_CAMERAS  # the listeners' accept threads are the test's, not the readers'
        make = stack.enter_context(started_readers(opener))
        healthy = make("healthy", server.url(publisher.path, user="admin", password="pw"), SETTINGS)
        for i, listener in enumerate(silent):  # RTSP and HTTP(S) MJPEG cameras alike
            scheme = "rtsp" if i % 2 == 0 else "http"
            make(f"silent{i}", listener.url(scheme, user="admin", password="pw"), SETTINGS)
        make("refused", f"rtsp://admin:pw@127.0.0.1:{free_tcp_port()}/stream", SETTINGS)
        cameras = SILENT_CAMERAS + 2

        def sampled(predicate: Callable[[], bool]) -> Callable[[], bool]:
            def check() -> bool:
                census.sample()
                return predicate()

            return check

        # Every silent listener has been connected to: the readers really are stuck in an open.
        first_open_s = SETTINGS.open_timeout_s + SETTINGS.stall_timeout_s + 30
        ok = wait_until(sampled(lambda: all(s.accepted >= 1 for s in silent)), first_open_s)
        ok = ok and wait_until(sampled(lambda: healthy.status().frames_read >= 3), first_open_s)
        rows.append(
            FaultRow(
                "healthy camera streams beside 4 silent + 1 refused",
                f"streaming within {first_open_s:.0f}s",
                str(healthy.status().state.value),
                ok,
            )
        )
        for cycle in range(1, cycles + 1):
            publisher.stop()
            left = wait_until(
                sampled(lambda: healthy.status().state is not CameraState.STREAMING),
                SETTINGS.stall_timeout_s + SETTINGS.open_timeout_s + 10,
            )
            frames_before = healthy.status().frames_read
            publisher.start()
            resumed_at = time.monotonic()
            recovered = wait_until(sampled(functools.partial(streaming_again, healthy, frames_before)), RECOVERY_S)
            took = time.monotonic() - resumed_at
            rows.append(
                FaultRow(
                    f"cut/resume {cycle}: healthy camera recovers",
                    f"streaming <= {RECOVERY_S:.0f}s after resume",
                    f"{took:.1f}s" if recovered else f"not after {took:.1f}s ({healthy.status().state.value})",
                    left and recovered,
                )
            )
        thread_limit = baseline_threads + THREADS_PER_CAMERA * cameras
        rows.append(
            FaultRow(
                "threads stay bounded",
                f"<= {thread_limit} ({THREADS_PER_CAMERA}/camera)",
                f"max {census.max_threads}",
                census.max_threads <= thread_limit,
            )
        )
        process_limit = baseline_processes + cameras
        rows.append(
            FaultRow(
                "camera processes stay bounded",
                f"<= {process_limit} (1/network camera)",
                f"max {census.max_processes}",
                census.max_processes <= process_limit,
            )
        )
    publisher.stop()
    # After every reader stopped: their threads and processes are gone, none abandoned.
    gone = wait_until(
        lambda: (
            threading.active_count() <= baseline_threads - SILENT_CAMERAS
            and len(reader_processes()) <= baseline_processes
        ),
        SESSION_EXIT_BOUND_S,
    )
    rows.append(
        FaultRow(
            "stopping leaves no thread or process",
            f"back to {baseline_threads - SILENT_CAMERAS} threads, {baseline_processes} processes",
            f"{threading.active_count()} threads, {len(reader_processes())} processes",
            gone,
        )
    )
    return rows


def sigstopped_publisher(server: RtspServer, video: Path, *, opener: Opener = None) -> list[FaultRow]:
    """A publisher frozen by SIGSTOP: the camera leaves ``streaming`` within the stall timeout."""
    publisher = server.publisher(f"frozen-{os.getpid()}-{time.monotonic_ns()}", video).start()
    try:
        with started_readers(opener) as make:
            reader = make("frozen", server.url(publisher.path), SETTINGS)
            streaming = wait_until(lambda: reader.status().frames_read >= 3, SETTINGS.open_timeout_s + 30)
            publisher.pause()
            stopped_at = time.monotonic()
            # The watchdog's rule: stall_timeout_s without a fresh frame; plus its poll and one frame
            # already in the pipe, which the margin covers.
            limit = SETTINGS.stall_timeout_s + 1.0
            left = wait_until(lambda: reader.status().state is not CameraState.STREAMING, limit + 10)
            took = time.monotonic() - stopped_at
            publisher.resume()
            return [
                FaultRow(
                    "SIGSTOPped publisher: camera leaves streaming",
                    f"<= {limit:.1f}s (stall_timeout_s {SETTINGS.stall_timeout_s}s)",
                    f"{took:.1f}s -> {reader.status().state.value}" if left else f"still streaming after {took:.1f}s",
                    streaming and left and took <= limit,
                )
            ]
    finally:
        publisher.stop()


class RepeatingCapture:
    """A capture that, after ``fresh`` new frames, keeps returning the last one every ``interval_s``
    (as OpenCV does during an outage) with the same stream position."""

    def __init__(self, fresh: int, interval_s: float) -> None:
        self.fresh, self.interval_s, self.reads = fresh, interval_s, 0
        self.stop = threading.Event()

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.reads += 1
        n = min(self.reads, self.fresh)
        self.stop.wait(0.02 if self.reads <= self.fresh else self.interval_s)
        return True, np.full((8, 8, 3), n % 255, np.uint8)

    def get(self, prop_id: int) -> float:
        return min(self.reads, self.fresh) * 100.0 if prop_id == 0 else 10.0

    def release(self) -> None:
        self.stop.set()


def stale_frame_trickle() -> list[FaultRow]:
    """A trickle of repeated frames (faster than the stall timeout) does not keep a camera streaming."""
    settings = SETTINGS.model_copy(update={"stall_timeout_s": 1.0})
    capture = RepeatingCapture(fresh=5, interval_s=settings.stall_timeout_s / 4)

    def opener(source: SourceSpec, s: CaptureSettings) -> RepeatingCapture:
        if capture.reads == 0:
            return capture
        raise OSError("source down")  # the reconnects after the stall find nothing

    with started_readers(opener) as make:
        reader = make("trickle", "rtsp://127.0.0.1:1/stale", settings)
        streaming = wait_until(lambda: reader.status().frames_read >= 5, 10)
        last_fresh = time.monotonic()
        limit = settings.stall_timeout_s + 1.0
        left = wait_until(lambda: reader.status().state is not CameraState.STREAMING, limit + 10)
        took = time.monotonic() - last_fresh
        status = reader.status()
        return [
            FaultRow(
                "stale-frame trickle: camera leaves streaming",
                f"<= {limit:.1f}s, repeated frames not delivered",
                f"{took:.1f}s, {status.frames_read} frames delivered, {status.state.value}",
                streaming and left and took <= limit and status.frames_read == capture.fresh,
            )
        ]


def print_table(rows: list[FaultRow]) -> None:
    head = ("case", "expected", "observed", "result")
    table = [head] + [(r.case, r.expected, r.observed, "pass" if r.passed else "FAIL") for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    for n, line in enumerate(table):
        print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the capture fault matrix and print a table.")
    parser.add_argument("--video", type=Path, default=None, help="video to publish (default: the sample)")
    parser.add_argument(
        "--opener",
        choices=["default", "opencv"],
        default="default",
        help="'opencv': every source through OpenCV's FFmpeg backend (the old path, for comparison)",
    )
    args = parser.parse_args(argv)
    if args.video is None:
        from actwatch.assets import default_cache_dir, ensure_sample_video

        args.video = ensure_sample_video(default_cache_dir())
    opener: Opener = None
    if args.opener == "opencv":
        from actwatch.capture.opencv import open_capture

        opener = open_capture
    rows: list[FaultRow] = []
    with RtspServer() as server:
        rows += bad_cameras_beside_a_healthy_one(server, args.video, opener=opener)
        rows += sigstopped_publisher(server, args.video, opener=opener)
    rows += stale_frame_trickle()
    print_table(rows)
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

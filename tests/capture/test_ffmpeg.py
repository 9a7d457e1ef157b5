"""The FFmpeg-process capture of network cameras, against real sources: an MJPEG camera on loopback,
silent TCP listeners (accept, never answer) and refused ports.

What matters: frames arrive with the right size and rate; a silent source fails within the open
timeout and its process is killed and reaped; another thread can end a blocked read at once; FFmpeg's
messages reach errors masked; a stopped reader leaves no process behind.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from actwatch.capture.ffmpeg import FfmpegCapture, FfmpegError, ffmpeg_command, hwaccel_args, start_ffmpeg
from actwatch.capture.openers import Interruptible, open_source
from actwatch.capture.reader import CameraReader, CameraState
from actwatch.capture.settings import CaptureSettings
from actwatch.capture.sources import SourceSpec
from tests.capture.faults import reader_processes
from tests.support.mjpeg import MjpegServer
from tests.support.polling import wait_until
from tests.support.rtsp import SilentServer, free_tcp_port

SECRET = "Ff-mp3g-secret"


def test_settings_map_onto_ffmpeg_input_options() -> None:
    settings = CaptureSettings(open_timeout_s=2.5, ffmpeg_options={"probesize": "32768"})
    http = ffmpeg_command(SourceSpec.parse("https://u:p@cam.local/video.mjpg"), settings)
    assert http[http.index("-rw_timeout") + 1] == "2500000" and "-rtsp_transport" not in http
    assert http.index("-probesize") < http.index("-i") and http[http.index("-probesize") + 1] == "32768"
    rtsp = ffmpeg_command(SourceSpec.parse("rtsps://cam.local/live"), settings)
    assert rtsp[rtsp.index("-rtsp_transport") + 1] == "tcp" and rtsp[rtsp.index("-timeout") + 1] == "2500000"
    assert rtsp[rtsp.index("-i") + 1] == "rtsps://cam.local/live"


def test_hardware_decode_is_asked_for_only_where_it_can_run() -> None:
    source = SourceSpec.parse("rtsp://cam.local/live")
    assert "-hwaccel" not in ffmpeg_command(source, CaptureSettings())  # the CPU unless asked
    auto = ffmpeg_command(source, CaptureSettings(hwaccel="auto"))
    assert auto[auto.index("-hwaccel") + 1] == "auto" and auto.index("-hwaccel") < auto.index("-i")
    # FFmpeg fails a stream whose -hwaccel cuda finds no device, so cuda needs a driver, else the CPU
    assert hwaccel_args("cuda", driver_found=lambda: True) == ["-hwaccel", "cuda"]
    assert hwaccel_args("cuda", driver_found=lambda: False) == []


def _numbered_clip(path: Path, frames: int, fps: float) -> Path:
    """Frame i of the clip is a flat grey of level 10 * i (MJPEG keeps a flat picture's level)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()
    return path


def _read_all(capture: FfmpegCapture) -> list[int]:
    """The frame numbers (grey level / 10) of every frame until the stream ends."""
    numbers = []
    try:
        while True:
            image = capture.read()[1]
            assert image is not None
            numbers.append(round(float(image.mean()) / 10))
    except FfmpegError:
        return numbers
    finally:
        capture.release()


def test_max_fps_passes_a_steady_share_of_the_frames_and_never_repeats_one(tmp_path: Path) -> None:
    clip = SourceSpec.parse(str(_numbered_clip(tmp_path / "numbered.avi", frames=20, fps=10)))
    assert "-vf" not in ffmpeg_command(clip, CaptureSettings())  # no filter unless asked
    every = start_ffmpeg(clip, CaptureSettings())
    assert _read_all(every) == list(range(20)) and every.get(cv2.CAP_PROP_FPS) == 10.0
    capped = start_ffmpeg(clip, CaptureSettings(max_fps=5))
    halved = _read_all(capped)
    # every second frame, at the rate the header (the trackers' and the stream clock's) now says
    assert len(halved) == 10 and all(b - a == 2 for a, b in itertools.pairwise(halved))
    assert capped.get(cv2.CAP_PROP_FPS) == 5.0
    # a cap above the camera's own rate leaves it alone: no frame is repeated to reach the cap
    above = start_ffmpeg(clip, CaptureSettings(max_fps=25))
    assert _read_all(above) == list(range(20)) and above.get(cv2.CAP_PROP_FPS) == 10.0


def test_max_fps_on_an_mjpeg_camera_slower_than_it_says_never_repeats_a_frame(vtest_path: Path) -> None:
    # MJPEG over HTTP has no timestamps and FFmpeg guesses 25 fps for this 10 fps camera: a filter that
    # filled a 15 fps cap from that would repeat about every third frame (FFmpeg's fps filter did)
    with MjpegServer(vtest_path, size=(192, 144), fps=10) as server:
        capture = start_ffmpeg(SourceSpec.parse(server.url()), CaptureSettings(open_timeout_s=20, max_fps=15))
        try:
            images = [capture.read()[1] for _ in range(15)]
        finally:
            capture.release()
    assert all(image is not None for image in images)
    assert not any(np.array_equal(a, b) for a, b in itertools.pairwise(images))  # type: ignore[arg-type]
    assert capture.get(cv2.CAP_PROP_FPS) == 15.0  # the lower of the camera's (as FFmpeg says: 25) and the cap


def test_network_sources_get_a_process_files_and_webcams_do_not(vtest_path: Path) -> None:
    capture = open_source(SourceSpec.parse(f"rtsp://127.0.0.1:{free_tcp_port()}/x"), CaptureSettings())
    try:
        assert isinstance(capture, FfmpegCapture) and isinstance(capture, Interruptible)
    finally:
        capture.release()
    video = open_source(SourceSpec.parse(str(vtest_path)), CaptureSettings())
    try:
        assert not isinstance(video, Interruptible)
    finally:
        video.release()


def test_reads_an_mjpeg_camera(vtest_path: Path) -> None:
    with MjpegServer(vtest_path, size=(192, 144), fps=10) as server:
        capture = start_ffmpeg(SourceSpec.parse(server.url()), CaptureSettings(open_timeout_s=20))
        try:
            shapes = [capture.read()[1].shape for _ in range(3)]  # type: ignore[union-attr]
            assert shapes == [(144, 192, 3)] * 3
            assert capture.get(0) > 0  # the stream position advances with every frame
        finally:
            capture.release()
        assert capture.format is not None and (capture.format.width, capture.format.height) == (192, 144)


def test_silent_source_fails_within_the_open_timeout_and_is_reaped() -> None:
    settings = CaptureSettings(open_timeout_s=1.0)
    with SilentServer() as silent:
        source = SourceSpec.parse(silent.url(user="admin", password=SECRET))
        capture = start_ffmpeg(source, settings)
        with pytest.raises(FfmpegError) as info:
            capture.read()
        capture.release()
        assert silent.accepted == 1  # it really connected and waited
    assert str(info.value).startswith("could not open rtsp source rtsp://admin:***@127.0.0.1:")
    assert "no video within 1.0s" in str(info.value) and SECRET not in str(info.value)
    assert capture.pid not in reader_processes()


def test_interrupt_ends_a_blocked_read_from_another_thread() -> None:
    # An open timeout far beyond the test's waits: only interrupt() can end this read.
    settings = CaptureSettings(open_timeout_s=600)
    with SilentServer() as silent:
        capture = start_ffmpeg(SourceSpec.parse(silent.url()), settings)
        errors: list[BaseException] = []
        ended = threading.Event()

        def read() -> None:
            try:
                capture.read()
            except FfmpegError as exc:
                errors.append(exc)
            ended.set()

        thread = threading.Thread(target=read)
        thread.start()
        assert wait_until(lambda: silent.accepted == 1, timeout_s=30)
        assert not ended.is_set()
        capture.interrupt()
        assert ended.wait(30)
        thread.join(5)
        capture.release()
        capture.interrupt()  # again, after release: harmless
    assert len(errors) == 1 and "could not open rtsp source" in str(errors[0])


def test_refused_port_error_is_masked() -> None:
    source = SourceSpec.parse(f"rtsp://admin:{SECRET}@127.0.0.1:{free_tcp_port()}/cam?token={SECRET}")
    capture = start_ffmpeg(source, CaptureSettings(open_timeout_s=20))
    with pytest.raises(FfmpegError) as info:
        capture.read()
    capture.release()
    message = str(info.value)
    assert SECRET not in message and "rtsp://admin:***@127.0.0.1:" in message
    assert message.endswith("Connection refused"), message


def test_stopping_a_reader_kills_its_process_even_while_it_opens(
    make_reader: Callable[..., CameraReader],
) -> None:
    with SilentServer() as silent:
        reader = make_reader("silent", silent.url(), CaptureSettings(open_timeout_s=600, stall_timeout_s=600))
        assert wait_until(lambda: silent.accepted == 1 and len(reader_processes()) == 1, timeout_s=30)
        reader.stop(timeout=5)
        assert reader.status().state is CameraState.STOPPED and not reader.is_alive()
        assert wait_until(lambda: not reader_processes(), timeout_s=10)

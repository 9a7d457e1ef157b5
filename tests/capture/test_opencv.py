"""The default opener: FFmpeg options through OPENCV_FFMPEG_CAPTURE_OPTIONS, timeouts, masked errors."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from actwatch.capture.opencv import (
    ENV_VAR,
    CaptureOpenError,
    FfmpegOptionsEnv,
    ffmpeg_options_for,
    open_capture,
)
from actwatch.capture.settings import CaptureSettings
from actwatch.capture.sources import SourceSpec
from tests.support.rtsp import free_tcp_port


def test_options_string_per_source_kind(vtest_path: Path) -> None:
    rtsp = SourceSpec.parse("rtsp://u:p@127.0.0.1/x")
    assert ffmpeg_options_for(rtsp, CaptureSettings()) == "rtsp_transport;tcp"  # the default
    assert ffmpeg_options_for(rtsp, CaptureSettings(rtsp_transport="udp")) == "rtsp_transport;udp"
    tcp = CaptureSettings(rtsp_transport="tcp", ffmpeg_options={"analyzeduration": "500000"})
    assert ffmpeg_options_for(rtsp, tcp) == "rtsp_transport;tcp|analyzeduration;500000"
    http = SourceSpec.parse("http://127.0.0.1/v.mjpg")
    assert ffmpeg_options_for(http, CaptureSettings()) is None
    assert ffmpeg_options_for(http, tcp) == "analyzeduration;500000"
    assert ffmpeg_options_for(SourceSpec.parse(str(vtest_path)), tcp) is None


def test_env_guard_serialises_different_values_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "user;value")
    env = FfmpegOptionsEnv()
    in_a, release_a, in_b, seen_b = threading.Event(), threading.Event(), threading.Event(), []

    def hold_a() -> None:
        with env.use("rtsp_transport;udp"):
            in_a.set()
            release_a.wait(10)

    def use_b() -> None:
        with env.use("rtsp_transport;tcp"):
            seen_b.append(os.environ[ENV_VAR])
            in_b.set()

    a = threading.Thread(target=hold_a)
    a.start()
    assert in_a.wait(5)
    with env.use("rtsp_transport;udp"):  # the same value may open at the same time
        assert os.environ[ENV_VAR] == "rtsp_transport;udp"
    b = threading.Thread(target=use_b)
    b.start()
    assert not in_b.wait(0.3)  # a different value waits for the holder...
    assert os.environ[ENV_VAR] == "rtsp_transport;udp"
    release_a.set()
    assert in_b.wait(5)  # ...and then gets its own value
    a.join(5)
    b.join(5)
    assert seen_b == ["rtsp_transport;tcp"]
    assert os.environ[ENV_VAR] == "user;value"  # the process is left as it was
    with env.use(None):
        assert ENV_VAR not in os.environ
    assert os.environ[ENV_VAR] == "user;value"


def test_open_failure_is_masked() -> None:
    source = SourceSpec.parse(f"rtsp://admin:Op3n-secret@127.0.0.1:{free_tcp_port()}/cam")
    with pytest.raises(CaptureOpenError) as info:
        open_capture(source, CaptureSettings(open_timeout_s=2))
    assert "Op3n-secret" not in str(info.value) and "rtsp://admin:***@127.0.0.1" in str(info.value)


def test_opens_a_file(vtest_path: Path) -> None:
    capture = open_capture(SourceSpec.parse(str(vtest_path)), CaptureSettings())
    try:
        ok, image = capture.read()
        assert ok and image is not None and image.shape == (576, 768, 3)
    finally:
        capture.release()


def test_an_absent_webcam_leaves_no_opencv_noise_on_stderr() -> None:
    # OpenCV logs several unformatted, unmasked lines to stderr per failed open of an absent webcam (28 in
    # 30 s of retries); the reader reports the failure itself, once per try, through logging.
    import subprocess
    import sys

    script = (
        "from actwatch.capture.opencv import open_capture\n"
        "from actwatch.capture.settings import CaptureSettings\n"
        "from actwatch.capture.sources import SourceSpec\n"
        "try:\n"
        "    open_capture(SourceSpec.parse('webcam:63'), CaptureSettings())\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.startswith("CaptureOpenError could not open webcam source"), result.stdout + result.stderr
    assert result.stderr == "", result.stderr

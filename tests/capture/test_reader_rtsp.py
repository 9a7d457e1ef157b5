"""CameraReader against a REAL RTSP server on loopback (rtsp-server-perl + an ffmpeg publisher).

The stream is vtest.avi scaled to 384x288 at 10 fps with a keyframe every 10 frames; readers use UDP
(this server has no RTSP-over-TCP), short stall timeouts and a short FFmpeg probe so each test takes
seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actwatch.capture.frame import Frame
from actwatch.capture.reader import CameraReader, CameraState
from actwatch.capture.settings import CaptureSettings
from tests.support.polling import wait_until
from tests.support.rtsp import RtspPublisher, RtspServer, free_tcp_port

SECRET = "Rt5p-pa55word"
SETTINGS = CaptureSettings(
    stall_timeout_s=1.5,
    open_timeout_s=3.0,
    backoff_initial_s=0.2,
    backoff_max_s=1.0,
    rtsp_transport="udp",
    # FFmpeg probes a live stream for 5 s by default; half a second is plenty for one H.264 track.
    ffmpeg_options={"analyzeduration": "500000"},
)


@pytest.fixture
def publisher(rtsp_server: RtspServer, vtest_path: Path, request: pytest.FixtureRequest) -> Iterator[RtspPublisher]:
    """A running publisher on a path of its own (so tests never see each other's streams)."""
    pub = rtsp_server.publisher(request.node.name.replace("[", "_").rstrip("]"), vtest_path)
    pub.start()
    yield pub
    pub.stop()


def secret_url(server: RtspServer, path: str) -> str:
    return server.url(path, user="admin", password=SECRET)


def assert_no_secret(
    readers: list[CameraReader],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str] | None = None,
) -> None:
    for reader in readers:
        assert SECRET not in repr(reader.status()) and SECRET not in repr(reader)
    messages = [record.getMessage() for record in caplog.records]
    assert messages and all(SECRET not in m for m in messages)
    if capfd is not None:  # what OpenCV/FFmpeg print themselves, below Python's logging
        out, err = capfd.readouterr()
        assert SECRET not in out and SECRET not in err


def test_reader_streams_from_the_rtsp_server(
    make_reader: Callable[..., CameraReader],
    rtsp_server: RtspServer,
    publisher: RtspPublisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="actwatch.capture")
    reader = make_reader("door", secret_url(rtsp_server, publisher.path), SETTINGS)
    first = reader.frames.get(timeout=30)
    assert isinstance(first, Frame), f"{reader.status()}\n{rtsp_server.logs()}"
    assert first.camera_id == "door" and first.shape == (288, 384)
    assert wait_until(lambda: reader.status().frames_read >= 15, timeout_s=30)
    status = reader.status()
    assert status.state is CameraState.STREAMING and status.reconnects == 0 and status.last_error is None
    assert status.url == f"rtsp://admin:***@127.0.0.1:{rtsp_server.client_port}/{publisher.path}"
    assert status.fps > 0 and status.last_frame_wall_time is not None
    assert reader.frame_rate == 10.0  # the stream's own rate, from FFmpeg's header
    later = [f for f in reader.frames.drain() if isinstance(f, Frame)]
    assert later and all(f.timestamp >= first.timestamp and f.index > first.index for f in later)
    assert_no_secret([reader], caplog)


def test_publisher_loss_reconnects_and_recovers(
    make_reader: Callable[..., CameraReader],
    rtsp_server: RtspServer,
    publisher: RtspPublisher,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="actwatch.capture")
    reader = make_reader("yard", secret_url(rtsp_server, publisher.path), SETTINGS)
    assert wait_until(lambda: reader.status().frames_read >= 5, timeout_s=30), rtsp_server.logs()

    publisher.stop()
    assert wait_until(lambda: reader.status().state is CameraState.RECONNECTING, timeout_s=30), reader.status()
    down = reader.status()
    assert down.reconnects >= 1 and down.last_error is not None
    assert "rtsp://admin:***@127.0.0.1" in down.last_error  # stall or read failure, masked either way
    # while the path is unpublished the server answers 404 and the reader keeps retrying
    assert wait_until(lambda: reader.status().reconnects >= down.reconnects + 1, timeout_s=30)
    frames_before = reader.status().frames_read

    publisher.start()
    assert wait_until(
        lambda: reader.status().state is CameraState.STREAMING and reader.status().frames_read >= frames_before + 5,
        timeout_s=40,
    ), f"{reader.status()}\n{rtsp_server.logs()}"
    reader.frames.drain()
    item = reader.frames.get(timeout=10)
    assert isinstance(item, Frame) and item.index >= frames_before and item.shape == (288, 384)
    assert_no_secret([reader], caplog, capfd)


def test_refused_camera_reconnects_and_leaves_others_alone(
    make_reader: Callable[..., CameraReader],
    rtsp_server: RtspServer,
    publisher: RtspPublisher,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="actwatch.capture")
    good = make_reader("good", secret_url(rtsp_server, publisher.path), SETTINGS)
    assert wait_until(lambda: good.status().frames_read >= 3, timeout_s=30), rtsp_server.logs()
    closed = f"rtsp://admin:{SECRET}@127.0.0.1:{free_tcp_port()}/cam1"
    bad = make_reader("bad", closed, SETTINGS)
    assert wait_until(lambda: bad.status().reconnects >= 3, timeout_s=30), bad.status()
    status = bad.status()
    assert status.state is CameraState.RECONNECTING and status.frames_read == 0
    assert status.last_error is not None and "rtsp://admin:***@127.0.0.1:" in status.last_error
    # the good camera kept streaming the whole time
    before = good.status().frames_read
    assert wait_until(lambda: good.status().frames_read >= before + 5, timeout_s=30)
    assert good.status().state is CameraState.STREAMING and good.status().reconnects == 0
    bad.stop()
    assert bad.status().state is CameraState.STOPPED
    assert_no_secret([good, bad], caplog, capfd)


def test_server_helper_reports_paths(rtsp_server: RtspServer, publisher: RtspPublisher) -> None:
    assert rtsp_server.describe(publisher.path) == 200
    assert rtsp_server.describe("never-published") == 404
    assert publisher.is_running
    publisher.stop()
    assert not publisher.is_running
    assert wait_until(lambda: rtsp_server.describe(publisher.path) == 404, timeout_s=10)


def test_transport_setting_reaches_ffmpeg(
    make_reader: Callable[..., CameraReader], rtsp_server: RtspServer, publisher: RtspPublisher
) -> None:
    # This server only does RTP over UDP: the same URL streams over udp and is refused over tcp.
    url = rtsp_server.url(publisher.path)
    tcp = make_reader("tcp", url, SETTINGS.model_copy(update={"rtsp_transport": "tcp"}))
    udp = make_reader("udp", url, SETTINGS)
    assert wait_until(lambda: udp.status().frames_read >= 3 and tcp.status().reconnects >= 2, timeout_s=30)
    assert udp.status().state is CameraState.STREAMING
    assert tcp.status().state is CameraState.RECONNECTING and tcp.status().frames_read == 0


def test_two_servers_side_by_side(
    make_reader: Callable[..., CameraReader],
    rtsp_server: RtspServer,
    publisher: RtspPublisher,
    vtest_path: Path,
) -> None:
    # Parallel test runs each start a server: their RTP ports must not collide (see support.rtsp.LAUNCHER).
    assert rtsp_server.describe("nothing-here") == 404  # a closed connection: the library resets ports
    with RtspServer() as other:
        assert other.describe("nothing-here") == 404
        other.publisher("cam1", vtest_path).start()
        readers = [
            make_reader("a", rtsp_server.url(publisher.path), SETTINGS),
            make_reader("b", other.url("cam1"), SETTINGS),
        ]
        assert wait_until(lambda: all(r.status().frames_read >= 3 for r in readers), timeout_s=30), (
            f"{[r.status() for r in readers]}\n{rtsp_server.logs()}\n{other.logs()}"
        )
        for r in readers:
            r.stop()


def test_max_fps_caps_what_a_camera_hands_on_and_the_rate_its_trackers_see(
    make_reader: Callable[..., CameraReader], rtsp_server: RtspServer, publisher: RtspPublisher
) -> None:
    url = rtsp_server.url(publisher.path)  # a 10 fps stream
    capped = make_reader("capped", url, SETTINGS.model_copy(update={"max_fps": 5.0}))
    above = make_reader("above", url, SETTINGS.model_copy(update={"max_fps": 30.0}))
    assert wait_until(lambda: capped.status().frames_read >= 3 and above.status().frames_read >= 3, timeout_s=30)
    assert capped.frame_rate == 5.0  # FFmpeg's header: the fps filter's rate
    assert above.frame_rate == 10.0  # a cap above the camera's rate leaves it alone
    assert capped.status().state is CameraState.STREAMING and capped.status().reconnects == 0

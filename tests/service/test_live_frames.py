"""LiveFrames: each camera's newest frame, encoded on request and shared by the viewers asking together."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from actwatch.service import live_frames as live_frames_module
from actwatch.service.events import FrameOverlay
from actwatch.service.live_frames import LiveFrames, LiveView


class Clock:
    """Monotonic seconds a test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sequence numbers of the frames really encoded (the real encoder, counted)."""
    seen: list[int] = []
    real = live_frames_module.render_live_jpeg

    def counted(frame: live_frames_module.LiveFrame, **kwargs: object) -> bytes:
        seen.append(frame.sequence)
        return real(frame, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(live_frames_module, "render_live_jpeg", counted)
    return seen


def put(frames: LiveFrames, level: int, camera: str = "door") -> None:
    frames.put(np.full((48, 64, 3), level, np.uint8), FrameOverlay(camera, 1.0, ()))


def brightness(jpeg: bytes) -> float:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return float(image.mean())


def test_viewers_share_an_encode_for_share_s_and_a_viewer_that_has_it_gets_the_newest(encodes: list[int]) -> None:
    clock = Clock()
    frames = LiveFrames(0.1, clock=clock)
    view = LiveView()
    put(frames, 40)
    first = frames.latest_jpeg("door", view)
    assert first is not None and first.sequence == 1 and abs(brightness(first.jpeg) - 40) < 3
    assert frames.latest_jpeg("door", view) is first  # the same frame: never encoded twice

    put(frames, 200)  # a newer frame, 50 ms after the encode
    clock.now += 0.05
    assert frames.latest_jpeg("door", view) is first  # another viewer: the shared JPEG, 50 ms old
    newest = frames.latest_jpeg("door", view, known_sequence=1)  # a viewer that has it (MJPEG): the newest
    assert newest is not None and newest.sequence == 2 and abs(brightness(newest.jpeg) - 200) < 3
    assert frames.latest_jpeg("door", view, known_sequence=2) is None  # nothing newer: nothing encoded

    put(frames, 120)
    clock.now += 0.15  # the kept JPEG is older than share_s: the next viewer gets the newest frame
    third = frames.latest_jpeg("door", view)
    assert third is not None and third.sequence == 3
    assert encodes == [1, 2, 3]

    small = frames.latest_jpeg("door", LiveView(width=32))  # another view is encoded for itself
    assert small is not None and small.sequence == 3 and encodes == [1, 2, 3, 3]


def test_share_zero_encodes_the_newest_frame_for_every_request(encodes: list[int]) -> None:
    clock = Clock()
    frames = LiveFrames(0.0, clock=clock)
    put(frames, 40)
    assert frames.latest_jpeg("door", LiveView()) is not None
    put(frames, 200)
    again = frames.latest_jpeg("door", LiveView())
    assert again is not None and again.sequence == 2 and encodes == [1, 2]


def test_viewers_asking_at_once_wait_for_one_encode(encodes: list[int]) -> None:
    frames = LiveFrames(0.1)
    put(frames, 90)
    start = threading.Barrier(8)
    got: list[int] = []

    def viewer() -> None:
        start.wait(30)
        jpeg = frames.latest_jpeg("door", LiveView(overlay=True))
        assert jpeg is not None
        got.append(id(jpeg))

    threads = [threading.Thread(target=viewer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(got) == 8 and len(set(got)) == 1 and encodes == [1]


def test_kept_jpegs_are_bounded_per_camera_and_forgotten_with_it(encodes: list[int]) -> None:
    clock = Clock()
    frames = LiveFrames(0.1, max_views=3, clock=clock)
    put(frames, 90)
    for width in (16, 20, 24, 28):  # four views, three kept: the oldest (16) goes
        clock.now += 0.01
        assert frames.latest_jpeg("door", LiveView(width=width)) is not None
    for width in (20, 24, 28, 16):
        frames.latest_jpeg("door", LiveView(width=width))
    assert encodes == [1, 1, 1, 1, 1]  # 20, 24 and 28 came from the kept ones; 16 was encoded again

    frames.forget("door")
    assert frames.latest_jpeg("door", LiveView(width=20)) is None and frames.latest("door") is None
    put(frames, 30)  # the camera back: numbered from 1 again, nothing of the old frames served
    back = frames.latest_jpeg("door", LiveView(width=20))
    assert back is not None and back.sequence == 1 and abs(brightness(back.jpeg) - 30) < 3

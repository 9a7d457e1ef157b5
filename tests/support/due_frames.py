"""A camera reader whose frames come when a test puts them, with a frame queue that records each wait
for a new frame: what the tests of the intake's wait for frames due soon control instead of timing."""

from __future__ import annotations

import threading
import time

import numpy as np

from actwatch.capture.frame import Frame
from actwatch.capture.handoff import DropOldestQueue
from actwatch.capture.reader import CameraState, CameraStatus
from actwatch.capture.sources import SourceSpec

INTERVAL_S = 100.0  # the cameras' frame interval (0.01 fps)


class RecordingQueue(DropOldestQueue[Frame]):
    """A reader's frame queue that records each wait for a new frame (its timeout) and says when one began."""

    def __init__(self) -> None:
        super().__init__(maxsize=4)
        self.waits: list[float] = []
        self.waiting = threading.Event()

    def wait_for_put(self, seen: int, timeout: float) -> bool:
        self.waits.append(timeout)
        self.waiting.set()
        return super().wait_for_put(seen, timeout)


class Reader:
    """A camera at one frame per ``INTERVAL_S`` (100 s): a frame is due soon or not by tens of seconds."""

    def __init__(self, camera_id: str) -> None:
        self.camera_id = camera_id
        self.source, self.frame_rate = SourceSpec.parse("rtsp://cam.local/1"), 1 / INTERVAL_S
        self.queue = RecordingQueue()
        self.frames: DropOldestQueue[Frame] = self.queue

    def put(self, index: int, age_s: float) -> None:
        """A frame captured ``age_s`` ago (its successor is due in ``INTERVAL_S - age_s``), its index in
        its first pixel."""
        image = np.zeros((8, 8, 3), np.uint8)
        image[0, 0, 0] = index
        self.frames.put(Frame(self.camera_id, index, index * INTERVAL_S, time.time() - age_s, image))

    def start(self) -> None:
        pass

    def stop(self, timeout: float = 0.0) -> None:
        pass

    def status(self) -> CameraStatus:
        return CameraStatus(self.camera_id, "rtsp://cam.local/1", CameraState.STREAMING, None, 0, 0, 0.0, 0, None)

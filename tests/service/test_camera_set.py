"""CameraSet: the cameras' turns at the detector, and the wait for a frame that is due soon.

The waits are controlled, not timed: each camera's frame interval is long (100 s), so a frame is "due
soon" or not by tens of seconds whatever the machine's load, and a recording queue says when the set
waits on it, and for how long at most.
"""

from __future__ import annotations

import threading

from actwatch.config import CameraConfig
from actwatch.service.camera_set import MAX_WAIT_SHARE, CameraSet
from tests.support.due_frames import INTERVAL_S, Reader

WAIT_S = 120.0  # bounds a broken build's hang; never what a test asserts


def _set(*camera_ids: str) -> tuple[CameraSet[str], dict[str, Reader]]:
    readers = {camera_id: Reader(camera_id) for camera_id in camera_ids}
    cameras: CameraSet[str] = CameraSet(lambda cfg: readers[cfg.id], lambda camera_id, fps: camera_id)
    for camera_id in camera_ids:
        cameras.add(CameraConfig(id=camera_id, url="rtsp://cam.local/1"))
    return cameras, readers


def test_a_frame_not_due_within_the_wait_is_not_waited_for() -> None:
    cameras, readers = _set("cam1")
    readers["cam1"].put(0, age_s=1.0)  # the next one is due in 99 s
    cameras.wait_for_due_frames(limit=1, within_s=10.0)
    assert readers["cam1"].queue.waits == []


def test_a_frame_already_overdue_is_not_waited_for() -> None:
    cameras, readers = _set("cam1")
    readers["cam1"].put(0, age_s=INTERVAL_S + 30)  # its successor is late: when it comes is unknown
    cameras.wait_for_due_frames(limit=1, within_s=60.0)
    assert readers["cam1"].queue.waits == []


def test_a_frame_due_past_the_share_of_its_interval_is_not_waited_for() -> None:
    cameras, readers = _set("cam1")
    readers["cam1"].put(0, age_s=INTERVAL_S / 2)  # due in 50 s: within the 100 s allowed, but a wait
    # that long would idle the detector for a sizeable share of every call (MAX_WAIT_SHARE: 30 s here)
    assert MAX_WAIT_SHARE * INTERVAL_S < INTERVAL_S / 2
    cameras.wait_for_due_frames(limit=1, within_s=INTERVAL_S)
    assert readers["cam1"].queue.waits == []


def test_no_wait_at_all_with_a_wait_of_zero() -> None:
    cameras, readers = _set("cam1")
    readers["cam1"].put(0, age_s=INTERVAL_S - 1)
    assert cameras.wait_for_due_frames(limit=1, within_s=0.0) == 0.0
    assert readers["cam1"].queue.waits == []


def test_a_frame_due_within_the_wait_is_waited_for_and_taken_when_it_comes() -> None:
    cameras, readers = _set("cam1")
    reader = readers["cam1"]
    reader.put(0, age_s=INTERVAL_S - 20)  # the next one is due in 20 s: within the 100 s allowed, and
    # within the share of its interval waited at most (30 s)

    def camera() -> None:  # delivers the next frame once the set waits for it
        assert reader.queue.waiting.wait(WAIT_S)
        reader.put(1, age_s=0.0)

    thread = threading.Thread(target=camera)
    thread.start()
    waited = cameras.wait_for_due_frames(limit=1, within_s=INTERVAL_S)
    thread.join(WAIT_S)
    # It waited for at most what was allowed, and stopped at the frame, not at the end of the allowance
    assert len(reader.queue.waits) == 1 and 0 < reader.queue.waits[0] <= INTERVAL_S
    assert waited < INTERVAL_S
    [taken] = cameras.newest_frames(limit=1)
    assert (taken.frame.index, taken.skipped) == (1, 1)


def test_only_the_camera_whose_turn_is_next_is_waited_for() -> None:
    cameras, readers = _set("cam1", "cam2")
    readers["cam1"].put(0, age_s=1.0)
    readers["cam2"].put(0, age_s=1.0)
    [first] = cameras.newest_frames(limit=1)  # cam1's turn, then cam2's
    assert first.camera_id == "cam1"
    readers["cam1"].put(1, age_s=INTERVAL_S - 5)  # cam1's next frame is due in 5 s, but it is cam2's turn
    cameras.wait_for_due_frames(limit=1, within_s=10.0)
    assert readers["cam1"].queue.waits == [] and readers["cam2"].queue.waits == []

"""The capture fault matrix (tests/capture/faults.py) as tests: every row must pass.

``scripts/faults.sh`` runs the same cases and prints them as a table.
"""

from __future__ import annotations

from pathlib import Path

from tests.capture.faults import (
    FaultRow,
    bad_cameras_beside_a_healthy_one,
    sigstopped_publisher,
    stale_frame_trickle,
)
from tests.support.rtsp import RtspServer


def assert_rows(rows: list[FaultRow], server: RtspServer | None = None) -> None:
    failed = [r for r in rows if not r.passed]
    detail = "\n".join(f"{r.case}: expected {r.expected}, observed {r.observed}" for r in failed)
    assert rows and not failed, detail + (f"\n{server.logs()}" if server is not None else "")


def test_silent_and_refused_cameras_do_not_starve_a_healthy_one(rtsp_server: RtspServer, vtest_path: Path) -> None:
    rows = bad_cameras_beside_a_healthy_one(rtsp_server, vtest_path, cycles=3)
    assert [r.case for r in rows][1:4] == [f"cut/resume {i}: healthy camera recovers" for i in (1, 2, 3)]
    assert_rows(rows, rtsp_server)


def test_sigstopped_publisher_leaves_streaming_within_the_stall_timeout(
    rtsp_server: RtspServer, vtest_path: Path
) -> None:
    assert_rows(sigstopped_publisher(rtsp_server, vtest_path), rtsp_server)


def test_stale_frame_trickle_does_not_keep_a_camera_streaming() -> None:
    assert_rows(stale_frame_trickle())

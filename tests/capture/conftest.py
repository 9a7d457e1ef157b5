"""Fixtures of the capture tests: the real loopback RTSP server and readers stopped at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from actwatch.capture.reader import CameraReader
from actwatch.capture.settings import CaptureSettings
from actwatch.capture.sources import SourceSpec
from tests.support.rtsp import rtsp_server  # noqa: F401  (fixture re-exported for this package)


@pytest.fixture
def make_reader() -> Iterator[Callable[..., CameraReader]]:
    """Build and start readers; every one is stopped at teardown even if the test failed."""
    readers: list[CameraReader] = []

    def make(camera_id: str, url: str, settings: CaptureSettings, **kwargs: object) -> CameraReader:
        reader = CameraReader(camera_id, SourceSpec.parse(url), settings, **kwargs)  # type: ignore[arg-type]
        readers.append(reader)
        reader.start()
        return reader

    yield make
    for reader in readers:
        reader.stop(timeout=5)

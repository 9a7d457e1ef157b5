"""``POST /cameras`` under the camera URL policy: the API cannot be turned against its host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from actwatch.service.app import create_app
from tests.service.conftest import FakeController, auth, make_config


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "clip.avi").write_bytes(b"x")
    return folder


@pytest.fixture
def policed(tmp_path: Path, videos: Path) -> Iterator[tuple[TestClient, FakeController]]:
    controller = FakeController()
    config = make_config(tmp_path, sources={"file_dirs": [str(videos)], "deny_hosts": ["169.254.0.0/16", "::1"]})
    with TestClient(create_app(config, controller)) as client:
        yield client, controller


def _messages(body: dict[str, object], url: str) -> list[str]:
    detail = body["detail"]
    assert isinstance(detail, list)
    return [str(d["msg"]).replace(url, "<url>") for d in detail]


@pytest.mark.parametrize("url", ["/etc/shadow", "file:///etc/passwd", "/proc/self/environ", "/etc/hostname"])
def test_host_files_are_refused_exactly_like_missing_ones(
    policed: tuple[TestClient, FakeController], url: str, videos: Path
) -> None:
    client, controller = policed
    r = client.post("/cameras", json={"id": "x", "url": url}, headers=auth())
    missing = str(videos / "missing.avi")
    m = client.post("/cameras", json={"id": "x", "url": missing}, headers=auth())
    assert r.status_code == m.status_code == 422
    shown = url.removeprefix("file://")
    assert _messages(r.json(), shown) == _messages(m.json(), missing)
    assert ("add", "x") not in controller.calls


def test_files_in_the_allowed_folder_are_cameras(policed: tuple[TestClient, FakeController], videos: Path) -> None:
    client, _ = policed
    r = client.post("/cameras", json={"id": "clip", "url": str(videos / "clip.avi")}, headers=auth())
    assert r.status_code == 201, r.text


def test_no_file_at_all_without_file_dirs(tmp_path: Path, videos: Path) -> None:
    with TestClient(create_app(make_config(tmp_path), FakeController())) as client:
        r = client.post("/cameras", json={"id": "clip", "url": str(videos / "clip.avi")}, headers=auth())
        assert r.status_code == 422 and "sources.file_dirs" in r.text


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://10.0.0.5/live\r\nX-Injected: yes",
        "rtsp://admin:pw@10.0.0.5/live\nX-Injected: yes",
        "rtsp://10.0.0.5/li\x00ve",
    ],
)
def test_header_injection_is_refused(policed: tuple[TestClient, FakeController], url: str) -> None:
    client, controller = policed
    r = client.post("/cameras", json={"id": "x", "url": url}, headers=auth())
    assert r.status_code == 422 and "control character" in r.text and "X-Injected" not in r.text
    assert ("add", "x") not in controller.calls


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "rtsp://[::1]:8554/x"])
def test_denied_networks_are_refused(policed: tuple[TestClient, FakeController], url: str) -> None:
    client, controller = policed
    r = client.post("/cameras", json={"id": "x", "url": url}, headers=auth())
    assert r.status_code == 422 and "sources.deny_hosts" in r.text
    assert r.json()["detail"][0]["loc"] == ["body", "url"]
    assert ("add", "x") not in controller.calls
    assert client.post("/cameras", json={"id": "ok", "url": "rtsp://10.0.0.5/x"}, headers=auth()).status_code == 201

"""Cameras added, changed or removed through the API survive a restart of the service.

Each test runs the real app on a real uvicorn server, stops it, and starts a new app on the same data
folder (only the camera controller is a fake: the models cannot run here in every test).
"""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from actwatch.config import AppConfig
from actwatch.errors import ConfigError
from actwatch.service.app import create_app
from actwatch.service.registry import CAMERA_FILE_NAME
from tests.service.conftest import CAMERA_PASSWORD, FakeController, LiveServer, auth, make_config


def _serve(config: AppConfig, controller: FakeController) -> LiveServer:
    return LiveServer(create_app(config, controller))


def _cameras(server: LiveServer) -> dict[str, dict[str, object]]:
    r = httpx.get(f"{server.url}/cameras", headers=auth(), timeout=30)
    r.raise_for_status()
    return {c["id"]: c for c in r.json()}


def _change_through_the_api(server: LiveServer) -> None:
    new = {
        "id": "yard",
        "name": "Yard",
        "url": "rtsp://viewer:yard-pass@10.0.0.9/live",
        "zone": [[0, 0], [9, 0], [9, 9]],
    }
    assert httpx.post(f"{server.url}/cameras", json=new, headers=auth(), timeout=30).status_code == 201
    r = httpx.patch(
        f"{server.url}/cameras/cam1", json={"name": "Back door", "enabled": False}, headers=auth(), timeout=30
    )
    assert r.status_code == 200, r.text
    assert httpx.delete(f"{server.url}/cameras/cam2", headers=auth(), timeout=30).status_code == 204


def test_api_changes_survive_a_restart(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with _serve(config, FakeController()) as first:
        _change_through_the_api(first)
        before = _cameras(first)

    restarted = FakeController()
    with _serve(config, restarted) as second:
        after = _cameras(second)
        assert after.keys() == before.keys() == {"cam1", "yard"}
        assert list(after) == ["cam1", "yard"]  # order kept
        for camera_id in after:
            for key in ("name", "url", "enabled", "zone", "loop", "realtime"):
                assert after[camera_id][key] == before[camera_id][key], (camera_id, key)
        assert after["cam1"]["name"] == "Back door" and after["cam1"]["enabled"] is False
        assert after["yard"]["zone"] == [[0, 0], [9, 0], [9, 9]]
    # Only the enabled camera was started after the restart, with its full (unmasked) URL.
    assert [c for c in restarted.calls if c[0] == "add"] == [("add", "yard")]
    assert restarted.cameras["yard"].url == "rtsp://viewer:yard-pass@10.0.0.9/live"


def test_saved_file_is_private_and_replaces_the_configuration_cameras(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    saved = config.data_dir / CAMERA_FILE_NAME
    with _serve(config, FakeController()) as server:
        assert not saved.exists()  # nothing saved until the API changes something
        _change_through_the_api(server)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600  # URLs hold credentials
    assert "yard-pass" in saved.read_text()
    assert not [p for p in saved.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no temporaries left

    # The configuration file now lists another camera: the saved file still wins ...
    changed = make_config(tmp_path, cameras=[{"id": "gate", "url": "rtsp://10.0.0.7/live"}])
    with _serve(changed, FakeController()) as server:
        assert set(_cameras(server)) == {"cam1", "yard"}
    # ... until it is deleted: then the configuration's cameras are used again.
    saved.unlink()
    with _serve(changed, FakeController()) as server:
        assert set(_cameras(server)) == {"gate"}


def test_an_invalid_saved_file_is_a_clear_error(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    saved = config.data_dir / CAMERA_FILE_NAME
    saved.parent.mkdir(parents=True)
    saved.write_text("version: 1\ncameras:\n  - id: a\n    url: ftp://x/y\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cameras\.yaml; fix or delete it\):\n  cameras\.0\.url"):
        create_app(config, FakeController())
    saved.write_text("version: 1\ncameras:\n  - id: a\n    url: rtsp://h/x\n  - id: a\n    url: rtsp://h/y\n")
    with pytest.raises(ConfigError, match="duplicate camera id 'a'"):
        create_app(config, FakeController())
    many = "".join(f"  - id: c{i}\n    url: rtsp://h/{i}\n" for i in range(3))
    saved.write_text(f"version: 1\ncameras:\n{many}")
    with pytest.raises(ConfigError, match=r"holds 3 cameras, more than server.max_cameras=2"):
        create_app(
            make_config(tmp_path, server={"token": "test-token-0123456789abcdef", "max_cameras": 2}), FakeController()
        )


def test_a_change_that_cannot_be_saved_is_reported(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    saved = config.data_dir / CAMERA_FILE_NAME
    with _serve(config, FakeController()) as server:
        saved.mkdir(parents=True)  # a folder where the file goes: the atomic rename fails
        r = httpx.patch(f"{server.url}/cameras/cam1", json={"name": "x"}, headers=auth(), timeout=30)
        assert r.status_code == 500
        detail = r.json()["detail"]
        assert "could not be saved" in detail and "lost when the service restarts" in detail
        assert CAMERA_PASSWORD not in r.text


def test_saved_cameras_pass_the_current_url_policy_again(tmp_path: Path) -> None:
    from actwatch.config import CameraConfig, SourcePolicy
    from actwatch.service.registry import CameraFile, initial_cameras

    saved = CameraFile(tmp_path / CAMERA_FILE_NAME)
    saved.save([CameraConfig(id="yard", url="rtsp://viewer:pw@10.0.0.9/live")])
    assert [c.id for c in initial_cameras([], saved, 8, SourcePolicy())] == ["yard"]
    # The policy was tightened after the camera was saved: start-up refuses it, naming the file.
    with pytest.raises(ConfigError, match=r"cameras\.yaml: cameras\.0\.url: .*10\.0\.0\.9") as raised:
        initial_cameras([], saved, 8, SourcePolicy(deny_hosts=["10.0.0.0/8"]))
    assert "pw" not in str(raised.value)

"""The REST API on the real app, store and broadcaster (TestClient runs the lifespan); fake controller."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import fastapi.routing
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute
from starlette.websockets import WebSocketDisconnect

from actwatch.errors import SourceError
from actwatch.service.app import create_app
from actwatch.service.events import AlertRecord, Event

from .conftest import CAMERA_PASSWORD, TOKEN, FakeController, auth, frame, make_config, services_of

# Routes that are served without the token, on purpose (see actwatch/service/app.py). Everything else
# found on the app must answer 401: a new route cannot be forgotten.
PUBLIC = {"/healthz", "/readyz", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/static"}


def walk_routes(app: FastAPI) -> Iterator[tuple[str, set[str], BaseRoute]]:
    """(path, methods, route) of every route, including those of included routers."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:  # FastAPI versions that flatten included routers into app.routes
        for route in app.routes:
            yield getattr(route, "path", ""), set(getattr(route, "methods", None) or ()), route
        return
    for ctx in iter_contexts(app.routes):
        yield ctx.path or "", set(ctx.methods or ()), ctx.original_route


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not an image"
    return image


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "abc", path)


# Recent on purpose: the app purges events older than the retention period at start-up, in the
# background, so old timestamps would make events vanish in the middle of a test.
T0 = float(int(time.time()) - 3600)


def emit(app: FastAPI, n: int, *, camera: str = "cam1", label: str = "fighting", t: float | None = None) -> Event:
    t = T0 + n if t is None else t
    event = Event(camera, n, label, 0.9, t - 1.0, t, (10.0, 20.0, 60.0, 110.0), id=f"ev{n:04d}")
    services_of(app).sink.emit_event(AlertRecord(event, frame(), np.zeros((4, 16, 16, 3), np.uint8)))
    return event


# ----------------------------------------------------------------------------------------------- auth
def test_every_protected_route_needs_the_token(app: FastAPI, client: TestClient) -> None:
    checked = 0
    for path, methods, route in walk_routes(app):
        if path in PUBLIC:
            continue
        if isinstance(route, APIWebSocketRoute):
            for query in ("", "?token=wrong-token-0123456789"):
                with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(path + query) as ws:
                    if not query:
                        ws.send_json({"type": "auth", "token": "wrong"})
                    ws.receive_json()
                assert info.value.code == 1008, path
            checked += 1
            continue
        assert isinstance(route, APIRoute), f"unexpected route type at {path}: {route!r}"
        for method in methods:
            url = concrete(path)
            for headers in ({}, auth("wrong-token-0123456789"), {"Authorization": f"Basic {TOKEN}"}):
                r = client.request(method, url, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.status_code)
                assert r.headers["www-authenticate"] == "Bearer"
            checked += 1
    assert checked >= 10  # cameras x5, events x4, metrics, ws


def test_auth_comes_before_body_validation(client: TestClient) -> None:
    # FastAPI parses bodies before running dependencies; the auth middleware answers first.
    r = client.post("/cameras", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    r = client.post("/cameras", content=b"x" * 10, headers={**auth("bad-token-0123456789")})
    assert r.status_code == 401


def test_route_without_the_dependency_is_still_protected(app: FastAPI) -> None:
    @app.get("/forgotten")
    def forgotten() -> dict[str, str]:
        return {"secret": "data"}

    with TestClient(app) as c:
        assert c.get("/forgotten").status_code == 401
        assert c.get("/forgotten", headers=auth()).json() == {"secret": "data"}


def test_public_routes(client: TestClient, controller: FakeController) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    controller.is_ready = False
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "starting"}
    controller.reasons = ["compute process 1 exited with code -9; restarting"]
    assert client.get("/readyz").json() == {"status": "starting", "reasons": controller.reasons}
    controller.is_ready = True  # ready: nothing said of reasons
    assert client.get("/readyz").json() == {"status": "ready"}
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/js/main.js").status_code == 200
    assert client.get("/openapi.json").json()["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_readyz_before_start(app: FastAPI) -> None:
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200
    # after shutdown the controller was stopped
    assert services_of(app).controller.ready() is False


# ------------------------------------------------------------------------------------------- cameras
def test_lifespan_adds_enabled_cameras_and_stops(app: FastAPI, controller: FakeController) -> None:
    with TestClient(app):
        assert controller.calls == [("add", "cam1"), ("start", None)]  # cam2 is disabled
    assert controller.calls[-1] == ("stop", None)


def test_camera_that_fails_at_start_up(app: FastAPI, controller: FakeController) -> None:
    controller.fail_add = SourceError(f"cannot open rtsp://admin:{CAMERA_PASSWORD}@10.0.0.5:554/live")
    with TestClient(app) as c:
        cam = c.get("/cameras/cam1", headers=auth()).json()
        assert cam["state"] == "failed" and "cannot open" in cam["last_error"]
        assert CAMERA_PASSWORD not in cam["last_error"]
        assert c.get("/readyz").status_code == 200  # the service runs without that camera
        controller.fail_add = None
        cam = c.patch("/cameras/cam1", json={"enabled": True}, headers=auth()).json()  # retry
        assert cam["state"] == "streaming" and cam["last_error"] is None


def test_list_and_get_cameras_mask_urls(client: TestClient) -> None:
    r = client.get("/cameras", headers=auth())
    assert r.status_code == 200
    cams = {c["id"]: c for c in r.json()}
    assert cams["cam1"]["state"] == "streaming" and cams["cam1"]["fps"] == 9.5
    assert cams["cam1"]["name"] == "Front door"
    assert cams["cam2"]["state"] == "disabled"
    assert CAMERA_PASSWORD not in r.text and "10.0.0.5" in cams["cam1"]["url"]
    one = client.get("/cameras/cam1", headers=auth())
    assert one.json()["id"] == "cam1" and CAMERA_PASSWORD not in one.text
    assert client.get("/cameras/nope", headers=auth()).status_code == 404
    assert client.get("/cameras/Not%20A%20Slug", headers=auth()).status_code == 422


def test_create_camera(client: TestClient, controller: FakeController) -> None:
    body = {"id": "yard", "url": "rtsp://user:pw12345@10.0.0.9/s", "zone": [[0, 0], [100, 0], [100, 100]]}
    r = client.post("/cameras", json=body, headers=auth())
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/cameras/yard"
    assert r.json()["name"] == "yard" and r.json()["state"] == "streaming" and "pw12345" not in r.text
    assert ("add", "yard") in controller.calls and controller.cameras["yard"].zone == [
        (0, 0),
        (100, 0),
        (100, 100),
    ]
    assert client.post("/cameras", json=body, headers=auth()).status_code == 409
    assert [c["id"] for c in client.get("/cameras", headers=auth()).json()] == ["cam1", "cam2", "yard"]
    disabled = client.post("/cameras", json={"id": "later", "url": "rtsp://h/x", "enabled": False}, headers=auth())
    assert disabled.status_code == 201 and ("add", "later") not in controller.calls
    assert r.json()["max_fps"] is None  # the service's capture.max_fps
    capped = client.post("/cameras", json={"id": "gate", "url": "rtsp://h/g", "max_fps": 10}, headers=auth())
    assert capped.status_code == 201 and capped.json()["max_fps"] == 10.0
    assert controller.cameras["gate"].max_fps == 10.0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"id": "x", "url": "ftp://u:secretpw@h/x"}, "ftp"),
        ({"id": "Bad Id", "url": "rtsp://h/x"}, "pattern"),
        ({"id": "x", "url": "rtsp://h/x", "zone": [[0, 0], [1, 1]]}, "3 points"),
        ({"id": "x", "url": "rtsp://h/x", "colour": "red"}, "colour"),
        ({"id": "x"}, "url"),
        ({"id": "x", "url": "/definitely/not/here.mp4"}, "does not exist"),
        ({"id": "x", "url": "0", "max_fps": 10}, "max_fps applies to network cameras"),
        ({"id": "x", "url": "rtsp://h/x", "max_fps": 0}, "greater than 0"),
    ],
)
def test_create_camera_rejects_bad_input(client: TestClient, body: dict[str, object], fragment: str) -> None:
    r = client.post("/cameras", json=body, headers=auth())
    assert r.status_code == 422, r.text
    assert fragment in r.text and "secretpw" not in r.text


def test_create_camera_malformed_json(client: TestClient) -> None:
    r = client.post("/cameras", content=b"{oops", headers={**auth(), "Content-Type": "application/json"})
    assert r.status_code == 422


def test_controller_errors(client: TestClient, controller: FakeController) -> None:
    controller.fail_add = SourceError("cannot open rtsp://u:leakedpw@h/x")
    r = client.post("/cameras", json={"id": "x", "url": "rtsp://h/x"}, headers=auth())
    assert r.status_code == 422 and "leakedpw" not in r.text
    controller.fail_add = RuntimeError("boom")
    r = client.post("/cameras", json={"id": "y", "url": "rtsp://h/x"}, headers=auth())
    assert r.status_code == 500 and "boom" not in r.text
    ids = [c["id"] for c in client.get("/cameras", headers=auth()).json()]
    assert "x" not in ids and "y" not in ids  # nothing half-added


def test_camera_limit(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, server={"token": TOKEN, "max_cameras": 2}), FakeController())
    with TestClient(app) as c:
        r = c.post("/cameras", json={"id": "third", "url": "rtsp://h/x"}, headers=auth())
        assert r.status_code == 409 and "max_cameras" in r.text


def test_patch_camera(client: TestClient, controller: FakeController) -> None:
    zone = [[0, 0], [50, 0], [50, 50], [0, 50]]
    r = client.patch("/cameras/cam1", json={"name": "Porch", "zone": zone}, headers=auth())
    assert r.status_code == 200 and r.json()["name"] == "Porch" and r.json()["zone"] == zone
    assert controller.calls[-1] == ("update", "cam1") and controller.cameras["cam1"].zone is not None
    r = client.patch("/cameras/cam1", json={"zone": None}, headers=auth())
    assert r.json()["zone"] is None and r.json()["name"] == "Porch"
    r = client.patch("/cameras/cam1", json={"enabled": False}, headers=auth())
    assert r.json()["state"] == "disabled" and controller.calls[-1] == ("remove", "cam1")
    r = client.patch("/cameras/cam2", json={"enabled": True}, headers=auth())
    assert r.json()["state"] == "streaming" and controller.calls[-1] == ("add", "cam2")
    assert client.patch("/cameras/cam2", json={"url": "rtsp://x/y"}, headers=auth()).status_code == 422
    assert client.patch("/cameras/cam2", json={"name": None}, headers=auth()).status_code == 422
    assert client.patch("/cameras/cam2", json={"zone": [[1, 1]]}, headers=auth()).status_code == 422
    assert client.patch("/cameras/none", json={"name": "x"}, headers=auth()).status_code == 404


def test_patching_a_camera_s_max_fps_reconnects_it_with_the_new_cap(
    client: TestClient, controller: FakeController
) -> None:
    r = client.patch("/cameras/cam1", json={"max_fps": 8}, headers=auth())
    assert r.status_code == 200 and r.json()["max_fps"] == 8.0
    assert controller.calls[-2:] == [("remove", "cam1"), ("add", "cam1")] and controller.cameras["cam1"].max_fps == 8
    r = client.patch("/cameras/cam1", json={"max_fps": None}, headers=auth())  # back to capture.max_fps
    assert r.json()["max_fps"] is None and controller.cameras["cam1"].max_fps is None
    calls = len(controller.calls)
    assert client.patch("/cameras/cam1", json={"max_fps": None}, headers=auth()).status_code == 200
    assert len(controller.calls) == calls  # unchanged: no reconnect
    assert client.patch("/cameras/cam1", json={"max_fps": 0}, headers=auth()).status_code == 422
    webcam = client.post("/cameras", json={"id": "desk", "url": "0", "enabled": False}, headers=auth())
    assert webcam.status_code == 201, webcam.text
    r = client.patch("/cameras/desk", json={"max_fps": 5}, headers=auth())
    assert r.status_code == 422 and "max_fps applies to network cameras" in r.text and "top level" not in r.text, r.text
    assert client.get("/cameras/desk", headers=auth()).json()["max_fps"] is None


def test_delete_camera(client: TestClient, controller: FakeController) -> None:
    assert client.delete("/cameras/cam1", headers=auth()).status_code == 204
    assert controller.calls[-1] == ("remove", "cam1")
    assert client.get("/cameras/cam1", headers=auth()).status_code == 404
    assert client.delete("/cameras/cam1", headers=auth()).status_code == 404
    assert client.delete("/cameras/cam2", headers=auth()).status_code == 204  # disabled: nothing to stop
    assert controller.calls[-1] == ("remove", "cam1")


# -------------------------------------------------------------------------------------------- events
def test_events_list_filters_and_pages(app: FastAPI, client: TestClient) -> None:
    for n in range(12):
        emit(app, n, camera="cam1" if n % 2 else "cam2", label="fighting" if n < 6 else "falling")
    r = client.get("/events", params={"limit": 5}, headers=auth())
    page = r.json()
    assert page["total"] == 12 and page["limit"] == 5 and page["offset"] == 0
    assert [e["id"] for e in page["items"]] == [f"ev{n:04d}" for n in (11, 10, 9, 8, 7)]
    page = client.get("/events", params={"limit": 5, "offset": 10}, headers=auth()).json()
    assert [e["id"] for e in page["items"]] == ["ev0001", "ev0000"]
    page = client.get("/events", params={"camera": "cam1", "label": "falling"}, headers=auth()).json()
    assert page["total"] == 3 and {e["id"] for e in page["items"]} == {"ev0007", "ev0009", "ev0011"}
    t0 = T0
    page = client.get("/events", params={"since": t0 + 3, "until": t0 + 6}, headers=auth()).json()
    assert {e["id"] for e in page["items"]} == {"ev0003", "ev0004", "ev0005"}
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 10))
    page = client.get("/events", params={"since": iso}, headers=auth()).json()
    assert {e["id"] for e in page["items"]} == {"ev0010", "ev0011"}


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"camera": "BAD ID"}, {"since": "yesterday-ish"}],
)
def test_events_bad_queries(client: TestClient, params: dict[str, object]) -> None:
    assert client.get("/events", params=params, headers=auth()).status_code == 422


def test_event_detail_snapshot_and_crops(app: FastAPI, client: TestClient) -> None:
    event = emit(app, 1)
    r = client.get(f"/events/{event.id}", headers=auth())
    body = r.json()
    assert body["label"] == "fighting" and body["bbox"] == [10.0, 20.0, 60.0, 110.0]
    assert body["snapshot_url"] == f"/events/{event.id}/snapshot"
    assert body["crops_url"] == f"/events/{event.id}/crops"
    snap = client.get(body["snapshot_url"], headers=auth())
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    assert decode(snap.content).shape == (120, 160, 3)
    crops = client.get(body["crops_url"], headers=auth())
    assert crops.headers["content-type"] == "image/png"
    assert decode(crops.content).shape == (16, 64, 3)
    assert client.get("/events/nope", headers=auth()).status_code == 404
    assert client.get("/events/nope/snapshot", headers=auth()).status_code == 404
    assert client.get("/events/..%2F..%2Fetc/snapshot", headers=auth()).status_code in (404, 422)


# ------------------------------------------------------------------------------------- limits, misc
def test_metrics_endpoint(app: FastAPI, client: TestClient) -> None:
    emit(app, 1)
    r = client.get("/metrics", headers=auth())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'actwatch_events_total{camera="cam1",label="fighting"} 1.0' in r.text
    assert 'actwatch_camera_frames_read_total{camera="cam1"} 120.0' in r.text  # from the statuses


def test_body_size_limit(client: TestClient) -> None:
    big = {"id": "x", "url": "rtsp://h/x", "name": "n" * 2_000_000}
    r = client.post("/cameras", json=big, headers=auth())
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    r = client.post("/cameras", content=chunks(), headers={**auth(), "Content-Type": "application/json"})
    assert r.status_code == 413


def test_security_headers_and_no_cors_by_default(client: TestClient) -> None:
    r = client.get("/cameras", headers={**auth(), "Origin": "http://evil.example"})
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/cameras", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_when_configured(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, server={"token": TOKEN, "cors_origins": ["http://ui.example:3000"]})
    with TestClient(create_app(cfg, FakeController())) as c:
        r = c.get("/cameras", headers={**auth(), "Origin": "http://ui.example:3000"})
        assert r.headers["access-control-allow-origin"] == "http://ui.example:3000"
        r = c.get("/cameras", headers={**auth(), "Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_generated_token(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, server={})
    shown: list[str] = []
    app = create_app(cfg, FakeController(), announce_token=shown.append)
    token_file = tmp_path / "data" / "token"
    assert token_file.exists() and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(shown) == 1 and token in shown[0] and len(token) >= 32
    create_app(cfg, FakeController(), announce_token=shown.append)
    assert len(shown) == 1  # printed once: the second start reuses the stored token
    with TestClient(app) as c:
        assert c.get("/cameras", headers=auth(token)).status_code == 200
        assert c.get("/cameras", headers=auth(TOKEN)).status_code == 401


def test_store_failure_still_broadcasts(app: FastAPI, client: TestClient) -> None:
    services = services_of(app)
    media = services.store.media_dir
    with client.websocket_connect(f"/ws/events?token={TOKEN}") as ws:
        assert ws.receive_json()["type"] == "hello"
        event = emit(app, 1)
        assert ws.receive_json()["event"]["snapshot_url"] == f"/events/{event.id}/snapshot"
        # break the media folder: a file where the shard folder "ev" should be
        shard = media / "ev"
        for p in shard.iterdir():
            p.unlink()
        shard.rmdir()
        shard.write_bytes(b"")
        emit(app, 2)
        msg = ws.receive_json()
        assert msg["event"]["id"] == "ev0002" and msg["event"]["snapshot_url"] is None
    assert services.sink.failures == 1
    assert services.metrics.registry.get_sample_value("actwatch_event_store_failures_total") == 1.0


def test_fake_controller_satisfies_the_protocol() -> None:
    from actwatch.service.controller import CameraController

    assert isinstance(FakeController(), CameraController)


# ------------------------------------------------------------------------------- schema = behaviour
def test_method_not_allowed_lists_every_method_of_the_path(client: TestClient) -> None:
    for method, path, allowed in [
        ("OPTIONS", "/cameras", "GET, POST"),
        ("PUT", "/cameras/cam1", "DELETE, GET, PATCH"),
        ("POST", "/events", "GET"),
        ("DELETE", "/healthz", "GET"),
    ]:
        r = client.request(method, path, headers=auth())
        assert r.status_code == 405 and r.headers["allow"] == allowed, (method, path, r.headers.get("allow"))


def test_error_bodies_have_the_documented_shapes(client: TestClient, controller: FakeController) -> None:
    controller.fail_add = SourceError("cannot open the source")
    r = client.post("/cameras", json={"id": "x", "url": "rtsp://h/x"}, headers=auth())
    assert r.status_code == 422
    assert r.json() == {"detail": [{"type": "value_error", "loc": ["body"], "msg": "cannot open the source"}]}
    r = client.patch("/cameras/cam1", json={"enabled": None}, headers=auth())
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "enabled"]
    r = client.get("/events", params={"limit": 501}, headers=auth())  # server.max_page_size, in the schema too
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]
    not_utf8 = b'{"name": "\xff"}'
    r = client.patch("/cameras/cam1", content=not_utf8, headers={**auth(), "Content-Type": "application/json"})
    assert r.status_code == 400 and isinstance(r.json()["detail"], str)


def test_schema_states_the_limits_and_answers(app: FastAPI) -> None:
    schema = app.openapi()
    limit = next(p for p in schema["paths"]["/events"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 500
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path not in PUBLIC:
                assert {"401", "429"} <= set(operation["responses"]), (method, path)
    update = schema["components"]["schemas"]["CameraUpdate"]["properties"]
    assert update["name"]["type"] == "string" and update["enabled"]["type"] == "boolean"  # not nullable
    zone = schema["components"]["schemas"]["CameraCreate"]["properties"]["zone"]["anyOf"][0]
    assert (zone["minItems"], zone["maxItems"]) == (3, 256)

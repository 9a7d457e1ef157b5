"""Two boxes and one hub on a real Mosquitto: the hub's API lists both boxes' events (filter by box),
ingests each event once however often it arrives, attaches snapshots, and feeds its WebSocket."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from actwatch.delivery.hub import HubConfig, create_hub_app, load_hub_config
from actwatch.errors import ConfigError
from actwatch.service.app import create_app
from actwatch.service.controller import IdleController
from tests.delivery.conftest import TOKEN, box_config, emit
from tests.support.mosquitto import MosquittoBroker
from tests.support.net import free_port
from tests.support.polling import wait_until

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _hub_config(tmp_path: Path, broker: MosquittoBroker, **extra: object) -> HubConfig:
    return HubConfig.model_validate(
        {"mqtt": {"url": broker.url}, "data_dir": str(tmp_path / "hub"), "server": {"token": TOKEN}, **extra}
    )


def _total(client: TestClient, **query: str) -> int:
    return int(client.get("/events", params=query, headers=AUTH).json()["total"])


@pytest.mark.parametrize("workers", [1, 2])
def test_two_boxes_one_hub(tmp_path: Path, broker: MosquittoBroker, workers: int) -> None:
    hub_app = create_hub_app(_hub_config(tmp_path, broker, workers=workers))
    box_a = create_app(box_config(tmp_path / "a", "box-a", broker.url), IdleController())
    box_b = create_app(box_config(tmp_path / "b", "box-b", broker.url), IdleController())
    with TestClient(hub_app) as hub, TestClient(box_a), TestClient(box_b):
        assert wait_until(lambda: hub.get("/readyz").status_code == 200, 30), hub.get("/readyz").text
        with hub.websocket_connect("/ws/events", headers=AUTH) as ws:
            assert ws.receive_json()["type"] == "hello"
            a_ids = emit(box_a, 4, prefix="aa")
            b_ids = emit(box_b, 3, label="fall", prefix="bb")
            assert wait_until(lambda: _total(hub) == 7, 60), _total(hub)
            fed = [ws.receive_json() for _ in range(7)]
        assert {m["event"]["id"] for m in fed if m["type"] == "event"} == set(a_ids + b_ids)
        page = hub.get("/events", params={"box": "box-a"}, headers=AUTH).json()
        assert page["total"] == 4 and {e["box"] for e in page["items"]} == {"box-a"}
        assert sorted(e["id"] for e in page["items"]) == a_ids
        assert _total(hub, box="box-b", label="fall") == 3
        # Snapshots travel on their own topic and are attached to the hub's copy of the event.
        assert wait_until(
            lambda: all(hub.get(f"/events/{i}", headers=AUTH).json()["snapshot_url"] for i in a_ids + b_ids), 30
        )
        jpeg = hub.get(f"/events/{b_ids[0]}/snapshot", headers=AUTH)
        assert jpeg.status_code == 200 and jpeg.content[:2] == b"\xff\xd8"


def test_a_hub_that_cannot_reach_its_broker_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    config = HubConfig.model_validate(
        {"mqtt": {"url": f"mqtt://127.0.0.1:{port}"}, "data_dir": str(tmp_path / "hub"), "server": {"token": TOKEN}}
    )
    reason = f"cannot reach the MQTT broker mqtt://127.0.0.1:{port} (retrying)"
    with caplog.at_level(logging.WARNING, logger="actwatch.delivery.hub"), TestClient(create_hub_app(config)) as hub:
        assert wait_until(lambda: hub.get("/readyz").json().get("reasons") == [reason], 30), hub.get("/readyz").text
        assert hub.get("/readyz").status_code == 503
    assert [r.getMessage() for r in caplog.records].count(f"hub: {reason}") == 1  # once per outage, not per retry


def test_ingest_is_idempotent_by_event_id(tmp_path: Path, broker: MosquittoBroker) -> None:
    hub_app = create_hub_app(_hub_config(tmp_path, broker))
    box = create_app(box_config(tmp_path / "a", "box-a", broker.url), IdleController())
    with TestClient(hub_app) as hub, TestClient(box):
        assert wait_until(lambda: hub.get("/readyz").status_code == 200, 30)
        ids = emit(box, 2, prefix="dd")
        assert wait_until(lambda: _total(hub) == 2, 60)
        # A box that resends after a restart (at-least-once): the same event ids again, plus garbage.
        first = hub.get(f"/events/{ids[0]}", headers=AUTH).json()
        sender = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        try:
            for body in (json.dumps({**first, "stored_at": 1.0}), "not json", json.dumps(first)):
                sender.publish("actwatch/box-a/events", body, qos=1).wait_for_publish(30)
            marker = emit(box, 1, prefix="zz")  # arrives after the resends: once it is in, they were handled
            assert wait_until(lambda: _total(hub) == 3, 60)
        finally:
            sender.disconnect()
            sender.loop_stop()
        assert _total(hub, box="box-a") == 3 and hub.get(f"/events/{marker[0]}", headers=AUTH).status_code == 200
        controller = hub_app.state.services.controller
        assert sum(w.duplicates for w in controller.workers) == 2
        assert sum(w.rejected for w in controller.workers) == 1


def test_hub_config_file_with_secret_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("mqtt:\n  url: mqtt://broker.lan\n  username: hub\n  password: ${HUB_PW}\nworkers: 2\n")
    monkeypatch.setenv("HUB_PW", "pw-from-env-8841")
    cfg, secrets = load_hub_config(path)
    assert cfg.mqtt.password is not None and cfg.mqtt.password.get_secret_value() == "pw-from-env-8841"
    assert "pw-from-env-8841" in secrets and cfg.group() == "actwatch-hub"
    path.write_text("mqtt:\n  url: ftp://broker.lan\n  password: ${HUB_PW}\nworkerz: 2\n")
    with pytest.raises(ConfigError) as info:
        load_hub_config(path)
    assert "mqtt.url" in str(info.value) and "workerz" in str(info.value)


def test_hub_command_user_mistakes_exit_2_without_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "hub.yaml"
    bad.write_text("mqtt: {url: 'mqtt://broker.lan', password: '${NOT_SET_ANYWHERE}'}\n")
    for args in (["--config", str(tmp_path / "missing.yaml")], ["--config", str(bad)]):
        result = subprocess.run(
            [sys.executable, "-m", "actwatch", "hub", *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "mqtt.password: ${NOT_SET_ANYWHERE} is not set" in result.stderr


def test_boxes_and_two_hub_processes_on_postgresql(tmp_path: Path, broker: MosquittoBroker) -> None:
    """A large fleet's set-up: the box's events and outbox in PostgreSQL, two hub apps (as two processes
    would) with one share group writing one PostgreSQL database; each event is stored once."""
    from tests.support.postgres import PostgresServer

    with PostgresServer() as pg:
        hub_db = pg.create_database("hub")
        box = create_app(
            box_config(tmp_path / "a", "box-a", broker.url, storage={"database_url": pg.create_database("box")}),
            IdleController(),
        )
        hubs = [
            create_hub_app(
                _hub_config(
                    tmp_path / f"hub{i}", broker, share_group="hubs", storage={"database_url": hub_db}, mqtt={
                        "url": broker.url, "client_id": f"hub-process-{i}"}
                )
            )
            for i in range(2)
        ]  # fmt: skip
        with TestClient(hubs[0]) as hub0, TestClient(hubs[1]) as hub1, TestClient(box) as box_client:
            for hub in (hub0, hub1):
                assert wait_until(lambda h=hub: h.get("/readyz").status_code == 200, 30)  # type: ignore[misc]
            ids = emit(box, 40, prefix="pg")
            assert wait_until(lambda: _total(hub0) == 40, 60), _total(hub0)
            assert box_client.get("/readyz").json()["delivery"]["mqtt"]["state"] == "ok"
            assert (
                sorted(e["id"] for e in hub1.get("/events", params={"limit": 100}, headers=AUTH).json()["items"]) == ids
            )
            split = [sum(w.ingested for w in app.state.services.controller.workers) for app in hubs]
        assert sum(split) == 40 and all(n > 0 for n in split), split  # the broker split the feed

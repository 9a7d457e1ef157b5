"""A box delivering to a real Mosquitto: topics, order across a broker outage, a backlog across a
restart of the service, and a refused login."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from actwatch.service.app import create_app
from actwatch.service.controller import IdleController
from tests.delivery.conftest import TOKEN, box_config, emit, services_of
from tests.support.mosquitto import MosquittoBroker, MqttRecorder
from tests.support.polling import wait_until

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _pending(client: TestClient) -> int:
    return int(client.get("/readyz").json()["delivery"]["mqtt"]["pending"])


def _metric(client: TestClient, line_start: str) -> float:
    for line in client.get("/metrics", headers=AUTH).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_events_states_snapshots_availability_and_discovery(tmp_path: Path, broker: MosquittoBroker) -> None:
    config = box_config(tmp_path / "box", "shop-1", broker.url)
    with MqttRecorder(broker.port, ["actwatch/#", "homeassistant/#"]) as rec:
        app = create_app(config, IdleController())
        with TestClient(app) as client:
            rec.wait_for(lambda r: len(r.on("homeassistant/binary_sensor/+/+/config")) == 2, 30, "discovery")
            ids = emit(app, 3)
            rec.wait_for(lambda r: len(r.on("actwatch/shop-1/events")) == 3, 30, "3 events")
            rec.wait_for(lambda r: len(r.on("actwatch/shop-1/door/fighting/snapshot")) == 3, 30, "3 snapshots")
            rec.wait_for(lambda r: len(_states(r, "actwatch/shop-1/door/fighting", "ON")) == 3, 30, "3 states")
            assert wait_until(lambda: _pending(client) == 0, 30)
            events = [json.loads(m.payload) for m in rec.on("actwatch/shop-1/events")]
            assert [e["id"] for e in events] == ids
            assert {e["box"] for e in events} == {"shop-1"} and events[0]["label"] == "fighting"
            assert events[0]["snapshot_url"] == f"/events/{ids[0]}/snapshot" and "stored_at" in events[0]
            snapshots = rec.on("actwatch/shop-1/door/fighting/snapshot")
            assert snapshots[-1].payload[:2] == b"\xff\xd8"
            assert [s.user_properties["event_id"] for s in snapshots] == ids
            states = [json.loads(m.payload) for m in rec.on("actwatch/shop-1/door/fighting")]
            assert states[0]["state"] == "OFF"  # said at connection, before any event
            assert states[-1] == {"state": "ON", "count": 3, "event_id": ids[-1]}
            assert rec.on("actwatch/shop-1/available")[-1].payload == b"online"
            assert _metric(client, 'actwatch_delivered_total{target="mqtt"}') == 3
            # shown at 0 before any drop, so an alert on it has a series to watch
            assert 'actwatch_outbox_dropped_total{target="mqtt"} 0.0' in client.get("/metrics", headers=AUTH).text
            ready = client.get("/readyz").json()["delivery"]["mqtt"]
            assert ready == {"state": "ok", "pending": 0}
        # A clean stop says offline (a crash leaves it to the last will).
        rec.wait_for(lambda r: r.on("actwatch/shop-1/available")[-1].payload == b"offline", 30, "offline")


def _states(rec: MqttRecorder, topic: str, state: str) -> list[dict[str, object]]:
    return [p for p in (json.loads(m.payload) for m in rec.on(topic)) if p["state"] == state]


def _retained(port: int, topic: str) -> dict[str, object]:
    """What a client subscribing now gets on ``topic``: its retained message."""
    with MqttRecorder(port, [topic]) as late:
        late.wait_for(lambda r: bool(r.on(topic)), 30, f"the retained message on {topic}")
        message = late.on(topic)[0]
    assert message.retain
    payload: dict[str, object] = json.loads(message.payload)
    return payload


def test_no_alert_state_stays_on_after_the_box_stops_or_crashed(tmp_path: Path, broker: MosquittoBroker) -> None:
    topic = "actwatch/shop-1/door/fighting"
    with MqttRecorder(broker.port, ["#"]) as crashed:  # what a box that crashed while on left retained
        crashed.client.publish(topic, json.dumps({"state": "ON", "count": 2, "event_id": "old"}), qos=1, retain=True)
        crashed.wait_for(lambda r: bool(r.on(topic)), 30, "the stale state")
    app = create_app(box_config(tmp_path / "box", "shop-1", broker.url), IdleController())
    with TestClient(app) as client:
        assert wait_until(lambda: client.get("/readyz").json()["delivery"]["mqtt"]["state"] == "ok", 30)
        assert _retained(broker.port, topic)["state"] == "OFF"  # the box said so when it connected
        emit(app, 1)
        assert wait_until(lambda: _pending(client) == 0, 30)
        assert _retained(broker.port, topic)["state"] == "ON"  # state_hold_s is 600 s here
    assert _retained(broker.port, topic) == {"state": "OFF", "count": 0, "event_id": None}  # a clean stop


def test_broker_outage_every_stored_event_arrives_in_order(tmp_path: Path, broker: MosquittoBroker) -> None:
    config = box_config(tmp_path / "box", "shop-1", broker.url)
    # A persistent session: the broker keeps queueing for this subscriber across its own restart.
    recorder = MqttRecorder(broker.port, ["actwatch/shop-1/events"], client_id="outage-recorder").start()
    app = create_app(config, IdleController())
    try:
        with TestClient(app) as client:
            before = emit(app, 20, start=0)
            recorder.wait_for(lambda r: len(r.on("actwatch/#")) >= 20, 60, "the events before the outage")
            assert wait_until(lambda: _pending(client) == 0, 60)  # acknowledged, not only received
            broker.stop()
            during = emit(app, 30, start=20)  # stored while the broker is down: they wait in the outbox
            assert wait_until(lambda: client.get("/readyz").json()["delivery"]["mqtt"]["state"] == "failing", 30)
            assert _pending(client) == 30
            assert _metric(client, 'actwatch_outbox_pending{target="mqtt"}') == 30
            assert _metric(client, 'actwatch_outbox_oldest_pending_age_seconds{target="mqtt"}') > 0
            broker.start()
            after = emit(app, 10, start=50)
            stored = before + during + after
            assert wait_until(lambda: _pending(client) == 0, 120), "the backlog was not delivered"
            recorder.wait_for(
                lambda r: {json.loads(m.payload)["id"] for m in r.on("actwatch/#")} >= set(stored), 120, "all"
            )
            failures = _metric(client, 'actwatch_delivery_failures_total{target="mqtt"}')
    finally:
        recorder.stop()
    received = [json.loads(m.payload)["id"] for m in recorder.on("actwatch/#")]
    first_seen = list(dict.fromkeys(received))  # duplicates are allowed (at-least-once); order and none missing
    assert first_seen == stored
    print(
        f"\noutage test: stored {len(stored)} (before {len(before)}, during the outage {len(during)}, after "
        f"{len(after)}); received {len(received)}, distinct {len(first_seen)}, duplicates "
        f"{len(received) - len(first_seen)}, missing {len(set(stored) - set(received))}, "
        f"failed attempts {failures:.0f}"
    )


def test_restart_with_a_backlog_delivers_it(tmp_path: Path) -> None:
    broker = MosquittoBroker()  # not started yet: the first run of the box cannot deliver
    config = box_config(tmp_path / "box", "shop-1", broker.url)
    app = create_app(config, IdleController())
    with TestClient(app) as client:
        ids = emit(app, 12)
        assert _pending(client) == 12
    with broker, MqttRecorder(broker.port, ["actwatch/shop-1/events"]) as rec:
        restarted = create_app(config, IdleController())
        with TestClient(restarted) as client:
            rec.wait_for(lambda r: len(r.on("actwatch/#")) >= 12, 60, "the backlog after the restart")
            assert wait_until(lambda: _pending(client) == 0, 30)
        assert [json.loads(m.payload)["id"] for m in rec.on("actwatch/#")][:12] == ids


def test_bad_credentials_are_a_clear_error_and_the_service_keeps_running(tmp_path: Path) -> None:
    password = "wrong-pass-9731"
    with MosquittoBroker(users={"box": "right-pass-1234"}) as broker:
        config = box_config(tmp_path / "box", "shop-1", broker.url, mqtt={"username": "box", "password": password})
        app = create_app(config, IdleController())
        with TestClient(app) as client:
            ids = emit(app, 2)
            assert wait_until(
                lambda: "refused" in (client.get("/readyz").json()["delivery"]["mqtt"]["last_error"] or ""), 30
            )
            ready = client.get("/readyz")
            state = ready.json()["delivery"]["mqtt"]
            assert state["state"] == "failing" and state["pending"] == 2
            assert "check mqtt.username and mqtt.password" in state["last_error"], state
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/events", headers=AUTH).json()["total"] == 2  # stored, waiting
            assert services_of(app).store.get(ids[0]) is not None
            for text in (
                ready.text,
                client.get("/metrics", headers=AUTH).text,
                client.get("/events", headers=AUTH).text,
            ):
                assert password not in text

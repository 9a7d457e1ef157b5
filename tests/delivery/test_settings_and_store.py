"""Delivery settings in the service configuration (secrets masked, errors named), the outbox's bound,
and the events table's new ``box`` column added to a database made before it existed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from actwatch.config import AppConfig, load_config
from actwatch.delivery.outbox import Outbox
from actwatch.delivery.settings import OutboxSettings
from actwatch.errors import ConfigError
from actwatch.service.events import Event
from actwatch.service.store import EventFilter, EventRecord, EventStore


def test_mqtt_and_webhook_secrets_come_from_variables_and_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("mqtt-secret-4411\n")
    monkeypatch.setenv("MQTT_PASSWORD_FILE", str(tmp_path / "pw"))
    monkeypatch.setenv("HOOK_SECRET", "hook-secret-7788")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "mqtt:\n  url: mqtts://broker.lan\n  box_id: shop-1\n  username: box\n  password: ${MQTT_PASSWORD}\n"
        "webhooks:\n  targets:\n    - {name: ops, url: 'https://u:p4ss@hooks.example/x', secret: '${HOOK_SECRET}'}\n"
    )
    cfg = load_config(config_file)
    assert cfg.mqtt is not None and cfg.mqtt.password is not None
    assert cfg.mqtt.password.get_secret_value() == "mqtt-secret-4411"
    assert cfg.mqtt.endpoint().tls and cfg.mqtt.endpoint().port == 8883
    shown = str(cfg.public_dict())
    for secret in ("mqtt-secret-4411", "hook-secret-7788", "p4ss"):
        assert secret not in shown


def test_password_file_variable_sets_the_mqtt_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("from-file-5120\n")
    monkeypatch.setenv("ACTWATCH_MQTT__PASSWORD_FILE", str(tmp_path / "pw"))
    config_file = tmp_path / "config.yaml"
    config_file.write_text("mqtt: {url: 'mqtt://broker.lan', box_id: b1, username: box}\n")
    cfg = load_config(config_file)
    assert cfg.mqtt is not None and cfg.mqtt.password is not None
    assert cfg.mqtt.password.get_secret_value() == "from-file-5120"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"mqtt": {"url": "http://broker", "box_id": "b"}}, "mqtt.url"),
        ({"mqtt": {"url": "mqtt://u:pw@broker", "box_id": "b"}}, "mqtt.url"),
        ({"mqtt": {"url": "mqtt://broker", "box_id": "a/b"}}, "mqtt.box_id"),
        ({"webhooks": {"targets": [{"name": "x", "url": "ftp://h/x"}]}}, "webhooks.targets.0.url"),
        ({"outbox": {"max_pending": 0}}, "outbox.max_pending"),
    ],
)
def test_bad_delivery_settings_name_their_key(tmp_path: Path, section: dict[str, object], key: str) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(section))
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    assert key in str(info.value) and "u:pw" not in str(info.value)


def test_outbox_keeps_order_and_its_bound(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/events.db", tmp_path / "media")
    outbox = Outbox(store, OutboxSettings(max_pending=5))
    for index in range(8):
        event = Event("door", index, "fall", 0.9, 1.0, 2.0 + index, (0.0, 0.0, 1.0, 1.0), id=f"o{index}")

        def enqueue(conn: sa.Connection, record: EventRecord) -> None:
            outbox.enqueue(conn, ["mqtt"], record.event.id, {})

        store.add(event, None, in_transaction=enqueue)
    assert [item.event_id for item in outbox.pending("mqtt")] == ["o3", "o4", "o5", "o6", "o7"]
    assert store.count() == 8  # the events themselves are all kept
    store.close()
    reopened = EventStore(f"sqlite:///{tmp_path}/events.db", tmp_path / "media")
    assert Outbox(reopened, OutboxSettings()).backlog("mqtt").pending == 5  # on disk
    reopened.close()


def test_event_and_outbox_rows_are_one_transaction(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/events.db", tmp_path / "media")
    outbox = Outbox(store, OutboxSettings())

    def failing_enqueue(conn: sa.Connection, _record: object) -> None:
        outbox.enqueue(conn, ["mqtt"], "x1", {})
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.add(Event("door", 1, "fall", 0.9, 1.0, 2.0, (0.0, 0.0, 1.0, 1.0), id="x1"), b"\xff\xd8jpeg", None,
                  in_transaction=failing_enqueue)  # fmt: skip
    assert store.count() == 0 and outbox.backlog("mqtt").pending == 0
    assert not list((tmp_path / "media").rglob("*.jpg"))
    store.close()


def test_a_database_from_before_the_box_column_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as db:  # the events table as issue 9 created it
        db.execute(
            "CREATE TABLE events (id VARCHAR(64) PRIMARY KEY, camera_id VARCHAR(64) NOT NULL, track_id INTEGER NOT "
            "NULL, label VARCHAR(128) NOT NULL, score FLOAT NOT NULL, start_time FLOAT NOT NULL, frame_time FLOAT "
            "NOT NULL, bbox JSON NOT NULL, snapshot_path VARCHAR(255), crops_path VARCHAR(255), created_at FLOAT "
            "NOT NULL)"
        )
        db.execute("INSERT INTO events VALUES ('old1','door',1,'fall',0.9,1.0,2.0,'[0,0,1,1]',NULL,NULL,3.0)")
    store = EventStore(f"sqlite:///{path}", tmp_path / "media")
    assert store.get("old1") is not None and store.get("old1").box is None  # type: ignore[union-attr]
    store.add(Event("door", 2, "fall", 0.9, 1.0, 5.0, (0.0, 0.0, 1.0, 1.0), id="new1", box="shop-1"), None)
    assert [e.id for e in store.query(EventFilter(box="shop-1"))[0]] == ["new1"]
    store.close()


def test_app_config_without_delivery_has_none() -> None:
    cfg = AppConfig()
    assert cfg.mqtt is None and cfg.webhooks.targets == [] and cfg.outbox.max_pending == 100_000

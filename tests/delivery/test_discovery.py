"""Home Assistant MQTT discovery: the retained config a box publishes matches Home Assistant's documented
MQTT binary sensor schema, and its templates turn the box's state messages into ON/OFF."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
from fastapi.testclient import TestClient

from actwatch.delivery.payloads import state_payload
from actwatch.service.app import create_app
from actwatch.service.controller import IdleController
from tests.delivery.conftest import box_config, emit
from tests.support.mosquitto import MosquittoBroker, MqttRecorder
from tests.support.polling import wait_until

# https://www.home-assistant.io/integrations/binary_sensor.mqtt/ (configuration variables)
BINARY_SENSOR_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
    "device", "device_class", "enabled_by_default", "encoding", "entity_category", "entity_picture",
    "expire_after", "force_update", "icon", "json_attributes_template", "json_attributes_topic", "name",
    "object_id", "off_delay", "origin", "payload_available", "payload_not_available", "payload_off",
    "payload_on", "platform", "qos", "state_topic", "unique_id", "value_template",
}  # fmt: skip
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
    "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
# https://www.home-assistant.io/integrations/binary_sensor/#device-class
BINARY_SENSOR_DEVICE_CLASSES = {"motion", "occupancy", "problem", "safety", "presence", "tamper", "running"}


def _render(template: str, payload: bytes) -> str:
    """Home Assistant renders value_template with Jinja2 and ``value_json`` = the parsed payload."""
    return jinja2.Environment(autoescape=False).from_string(template).render(value_json=json.loads(payload))


def test_discovery_payloads_match_the_schema(tmp_path: Path, broker: MosquittoBroker) -> None:
    config = box_config(tmp_path / "box", "shop-1", broker.url)
    app = create_app(config, IdleController())
    with TestClient(app) as client:
        emit(app, 1, label="fall")
        # Delivered (PUBACKs for the event, its snapshot and its state) before anyone subscribes.
        assert wait_until(lambda: client.get("/readyz").json()["delivery"]["mqtt"]["pending"] == 0, 30)
        # Subscribed after the box announced itself: what Home Assistant sees when it starts later.
        with MqttRecorder(broker.port, ["homeassistant/#", "actwatch/shop-1/door/fall"]) as rec:
            rec.wait_for(
                lambda r: len(r.on("homeassistant/#")) == 2 and bool(r.on("actwatch/#")), 30, "retained config"
            )
            configs = {m.topic: m for m in rec.on("homeassistant/#")}
            state = rec.on("actwatch/shop-1/door/fall")[-1]
    assert set(configs) == {
        "homeassistant/binary_sensor/actwatch_shop-1/door_fighting/config",
        "homeassistant/binary_sensor/actwatch_shop-1/door_fall/config",
    }
    for message in configs.values():
        assert message.retain
        payload = json.loads(message.payload)
        assert set(payload) <= BINARY_SENSOR_KEYS, set(payload) - BINARY_SENSOR_KEYS
        assert set(payload["device"]) <= DEVICE_KEYS and set(payload["origin"]) <= ORIGIN_KEYS
        assert payload["device_class"] in BINARY_SENSOR_DEVICE_CLASSES
        assert payload["device"]["identifiers"] and payload["unique_id"].startswith("actwatch_shop-1_")
        assert payload["availability_topic"] == "actwatch/shop-1/available"
        assert {payload["payload_available"], payload["payload_not_available"]} == {"online", "offline"}
    fall = json.loads(configs["homeassistant/binary_sensor/actwatch_shop-1/door_fall/config"].payload)
    assert fall["state_topic"] == state.topic and state.retain
    assert _render(fall["value_template"], state.payload) == fall["payload_on"]
    off = json.dumps(state_payload(False, 0, None)).encode()
    assert _render(fall["value_template"], off) == fall["payload_off"]
    assert len({json.loads(m.payload)["unique_id"] for m in configs.values()}) == 2

"""A box with a file camera (the real detector, a real exported model, vtest.avi played in real time)
delivers its events to a real Mosquitto and to a real webhook receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actwatch.config import AppConfig
from tests.service.live import LiveService
from tests.support.mosquitto import MosquittoBroker, MqttRecorder
from tests.support.net import free_port
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.slow


def test_a_box_with_a_file_camera_delivers_to_mqtt_and_a_webhook(
    tmp_path: Path,
    broker: MosquittoBroker,
    webhook: WebhookReceiver,
    vtest_path: Path,
    detector_weights: Path,
    exported_model_dir: Path,
) -> None:
    config = AppConfig.model_validate(
        {
            "data_dir": str(tmp_path / "box"),
            "server": {"token": "file-camera-token-0123456789", "port": free_port()},
            "cameras": [{"id": "hall", "url": str(vtest_path), "loop": True, "realtime": True}],
            "sources": {"file_dirs": [str(vtest_path.parent)]},
            "detector": {"weights": str(detector_weights), "person_class_ids": [0, 1]},
            "model": {"dir": str(exported_model_dir)},
            "pipeline": {"stride": 2},
            # The test model is untrained: every classified window of a tracked person alerts.
            "alerts": {
                "rules": [
                    {"label": "walking", "threshold": 0.01, "n": 1, "m": 1, "cooldown_s": 0, "min_track_age_s": 0}
                ]
            },
            "mqtt": {"url": broker.url, "box_id": "lobby-box"},
            "webhooks": {"targets": [{"name": "ops", "url": webhook.url, "secret": "s3cret-hook"}]},
        }
    )
    with MqttRecorder(broker.port, ["actwatch/lobby-box/#"]) as rec:
        service = LiveService(config).start()
        try:
            rec.wait_for(lambda r: len(r.on("actwatch/lobby-box/events")) >= 2, 300, "events on MQTT")
            hooks = webhook.wait_for(lambda got: len(got) >= 2, 120, "events on the webhook")
            rec.wait_for(lambda r: bool(r.on("actwatch/lobby-box/hall/walking/snapshot")), 60, "a snapshot")
            mqtt_ids = [json.loads(m.payload)["id"] for m in rec.on("actwatch/lobby-box/events")]
            hook_ids = [json.loads(r.body)["id"] for r in hooks]
            # Both are in the order the box stored them, and every one is in the box's store.
            for event_id in mqtt_ids + hook_ids:
                assert service.http.get(f"/events/{event_id}").status_code == 200
            assert hook_ids == mqtt_ids[: len(hook_ids)] or mqtt_ids == hook_ids[: len(mqtt_ids)]
            event = json.loads(rec.on("actwatch/lobby-box/events")[0].payload)
            assert event["camera_id"] == "hall" and event["label"] == "walking" and event["box"] == "lobby-box"
            assert rec.on("actwatch/lobby-box/available")[-1].payload == b"online"
        finally:
            service.stop()

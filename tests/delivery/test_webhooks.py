"""Webhooks to a real HTTP receiver: signed JSON, per-rule targets, failures counted and retried."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from fastapi.testclient import TestClient

from actwatch.delivery.payloads import verify
from actwatch.service.app import create_app
from actwatch.service.controller import IdleController
from tests.delivery.conftest import TOKEN, box_config, emit
from tests.support.polling import wait_until
from tests.support.webhook import WebhookReceiver

SECRET = "hook-secret-5521"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _metric(client: TestClient, line_start: str) -> float:
    for line in client.get("/metrics", headers=AUTH).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_signed_json_to_global_and_per_rule_targets(tmp_path: Path, webhook: WebhookReceiver) -> None:
    with WebhookReceiver() as falls_only:
        targets = [
            {"name": "all", "url": webhook.url, "secret": SECRET},
            {"name": "falls", "url": falls_only.url, "labels": ["fall"]},
        ]
        config = box_config(tmp_path / "box", None, None, webhooks={"targets": targets})
        app = create_app(config, IdleController())
        with TestClient(app) as client:
            fights = emit(app, 2, label="fighting", prefix="fi")
            falls = emit(app, 1, label="fall", prefix="fa")
            got = webhook.wait_for(lambda r: len({x.body for x in r}) == 3, 30, "3 webhook calls")
            only = falls_only.wait_for(lambda r: len(r) == 1, 30, "the fall event")
            assert wait_until(
                lambda: client.get("/readyz").json()["delivery"]["webhook:all"] == {"state": "ok", "pending": 0}, 30
            )
            public = json.dumps(client.get("/readyz").json()) + client.get("/metrics", headers=AUTH).text
            assert SECRET not in public
    assert list(dict.fromkeys(json.loads(r.body)["id"] for r in got)) == fights + falls
    assert json.loads(only[0].body)["id"] == falls[0] and "X-Actwatch-Signature" not in only[0].headers
    for request in got:
        body, headers = request.body, request.headers
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Actwatch-Event-Id"] == json.loads(body)["id"]
        # What a receiver does (the README's snippet): HMAC-SHA256 over "<timestamp>." + body.
        timestamp = headers["X-Actwatch-Timestamp"]
        expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Actwatch-Signature"], "sha256=" + expected)
        assert verify(body, SECRET, timestamp=int(timestamp), signature=headers["X-Actwatch-Signature"])
        assert not verify(body + b" ", SECRET, timestamp=int(timestamp), signature=headers["X-Actwatch-Signature"])


def test_a_failing_webhook_is_counted_retried_and_delivers_in_order(tmp_path: Path, webhook: WebhookReceiver) -> None:
    webhook.status = 503
    config = box_config(tmp_path / "box", None, None, webhooks={"targets": [{"name": "ops", "url": webhook.url}]})
    app = create_app(config, IdleController())
    with TestClient(app) as client:
        ids = emit(app, 5)
        calls = webhook.attempts
        webhook_failures = 'actwatch_delivery_failures_total{target="webhook:ops"}'
        counted = wait_until(lambda: _metric(client, webhook_failures) >= 3 and webhook.attempts > calls, 60)
        assert counted, "failures were not counted"
        state = client.get("/readyz").json()["delivery"]["webhook:ops"]
        assert state["state"] == "failing" and "HTTP 503" in state["last_error"] and state["pending"] == 5
        webhook.status = 200
        got = webhook.wait_for(
            lambda r: {json.loads(x.body)["id"] for x in r} == set(ids), 60, "the 5 events after the endpoint healed"
        )
        assert wait_until(lambda: client.get("/readyz").json()["delivery"]["webhook:ops"]["pending"] == 0, 60)
        assert _metric(client, 'actwatch_delivered_total{target="webhook:ops"}') == 5
    assert list(dict.fromkeys(json.loads(r.body)["id"] for r in got)) == ids  # in order; a resend may repeat one

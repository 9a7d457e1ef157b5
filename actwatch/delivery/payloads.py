"""What goes over the wire: the event JSON, MQTT state and Home Assistant discovery payloads, webhook
signatures. Pure functions, shared by the box's delivery and the fleet hub's ingestion.

The event payload is the API's :class:`~actwatch.service.schemas.EventPublic` (same fields, same
meaning) plus ``box`` (the sender's ``box_id``) and ``stored_at`` (Unix time the box stored it).

Example:
    >>> from actwatch.service.events import Event
    >>> e = Event("door", 3, "fall", 0.91, 10.0, 12.5, (1.0, 2.0, 30.0, 60.0), id="ev1")
    >>> body = event_payload(e, box="shop-1", stored_at=13.0, snapshot=True)
    >>> body["box"], body["label"], body["snapshot_url"]
    ('shop-1', 'fall', '/events/ev1/snapshot')
    >>> parse_event_payload(json.dumps(body).encode(), box="shop-1").event == Event(
    ...     "door", 3, "fall", 0.91, 10.0, 12.5, (1.0, 2.0, 30.0, 60.0), id="ev1", box="shop-1")
    True
    >>> sign(b'{"a":1}', "k", timestamp=1700000000)
    'sha256=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from actwatch.service.events import Event
from actwatch.service.schemas import EventPublic
from actwatch.service.store import EVENT_ID_PATTERN

SIGNATURE_HEADER = "X-Actwatch-Signature"
TIMESTAMP_HEADER = "X-Actwatch-Timestamp"
EVENT_ID_HEADER = "X-Actwatch-Event-Id"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_BOX_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def event_payload(event: Event, *, box: str, stored_at: float, snapshot: bool) -> dict[str, Any]:
    """The JSON object of ``event`` as published to ``<prefix>/<box>/events`` and POSTed to webhooks."""
    public = EventPublic.build(event, snapshot=snapshot, crops=False).model_dump(mode="json")
    public.pop("crops_url")  # crops stay on the box; the snapshot travels on its own topic
    return {**public, "box": box, "stored_at": stored_at}


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """An event as a hub received it: the event (with its box) and when the box stored it."""

    event: Event
    stored_at: float


def parse_event_payload(body: bytes, *, box: str) -> ReceivedEvent:
    """The event in an ``events`` message from ``box`` (the topic's box level wins over the body's).

    Raises ``ValueError`` (with what is wrong) for a body that is not an event payload.
    """
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("an event payload is a JSON object")
    if not _BOX_ID.match(box):
        raise ValueError(f"box id {box!r} is not a valid box id")
    event_id = str(data.get("id", ""))
    if not _EVENT_ID.match(event_id):
        raise ValueError(f"event id {event_id!r} must match {EVENT_ID_PATTERN}")
    try:
        bbox = [float(v) for v in data["bbox"]]
        if len(bbox) != 4:
            raise ValueError("bbox needs 4 numbers")
        event = Event(
            camera_id=str(data["camera_id"]),
            track_id=int(data["track_id"]),
            label=str(data["label"]),
            score=float(data["score"]),
            start_time=float(data["start_time"]),
            frame_time=float(data["frame_time"]),
            bbox=(bbox[0], bbox[1], bbox[2], bbox[3]),
            id=event_id,
            box=box,
        )
        stored_at = float(data.get("stored_at", event.frame_time))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"event payload field missing or wrong: {exc}") from None
    return ReceivedEvent(event, stored_at)


def state_payload(on: bool, count: int, event_id: str | None) -> dict[str, Any]:
    """The retained ``<prefix>/<box>/<camera>/<label>`` state: ``ON`` while alerts are recent, with how many.

    Example:
        >>> state_payload(True, 2, "ev9")
        {'state': 'ON', 'count': 2, 'event_id': 'ev9'}
    """
    return {"state": "ON" if on else "OFF", "count": count, "event_id": event_id}


def discovery_topic(discovery_prefix: str, box: str, camera_id: str, label: str) -> str:
    """Home Assistant's ``<discovery_prefix>/binary_sensor/<node_id>/<object_id>/config``."""
    return f"{discovery_prefix}/binary_sensor/actwatch_{box}/{_object_id(camera_id, label)}/config"


def _object_id(camera_id: str, label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{camera_id}_{label}")


def discovery_payload(*, prefix: str, box: str, camera_id: str, camera_name: str, label: str) -> dict[str, Any]:
    """Home Assistant MQTT discovery of one camera x label as a ``binary_sensor``.

    Keys follow Home Assistant's documented MQTT binary sensor schema (``state_topic``,
    ``value_template``, ``payload_on``/``payload_off``, ``availability_topic``, ``device`` ...).

    Example:
        >>> d = discovery_payload(prefix="actwatch", box="b1", camera_id="door", camera_name="Door", label="fall")
        >>> d["state_topic"], d["unique_id"], d["availability_topic"]
        ('actwatch/b1/door/fall', 'actwatch_b1_door_fall', 'actwatch/b1/available')
    """
    base = f"{prefix}/{box}"
    return {
        "name": f"{camera_name or camera_id} {label}",
        "unique_id": f"actwatch_{box}_{_object_id(camera_id, label)}",
        "object_id": f"actwatch_{box}_{_object_id(camera_id, label)}",
        "state_topic": f"{base}/{camera_id}/{label}",
        "value_template": "{{ value_json.state }}",
        "json_attributes_topic": f"{base}/{camera_id}/{label}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "availability_topic": f"{base}/available",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device_class": "problem",
        "device": {
            "identifiers": [f"actwatch_{box}_{camera_id}"],
            "name": f"actwatch {box} {camera_name or camera_id}",
            "manufacturer": "actwatch",
            "model": "behaviour recognition",
            "via_device": f"actwatch_{box}",
        },
        "origin": {"name": "actwatch"},
    }


def sign(body: bytes, secret: str, *, timestamp: int) -> str:
    """The ``X-Actwatch-Signature`` value: ``sha256=`` + HMAC-SHA256(secret, ``"<timestamp>." + body``).

    The timestamp (``X-Actwatch-Timestamp``) is signed too, so a receiver can refuse old replays.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(body: bytes, secret: str, *, timestamp: int, signature: str) -> bool:
    """Whether ``signature`` is :func:`sign`'s for ``body``, compared in constant time.

    Example:
        >>> verify(b"{}", "k", timestamp=5, signature=sign(b"{}", "k", timestamp=5))
        True
    """
    return hmac.compare_digest(sign(body, secret, timestamp=timestamp), signature)

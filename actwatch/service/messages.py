"""What ``WS /ws/events`` sends: one frozen dataclass per message type, serialised in :func:`encode` only.

The JSON of each is what README.md's WebSocket section documents. The broadcaster filters the
broadcast ones (:data:`BroadcastMessage`: events and track boxes) on their typed fields with
:meth:`Subscription.wants`; the others are direct replies to one client.

Example:
    >>> encode(DroppedMessage(count=3))
    '{"type":"dropped","count":3}'
    >>> Subscription.of(cameras=["door"]).wants(TracksMessage(FrameOverlay("hall", 1.0, ())))
    False
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from actwatch.service.events import FrameOverlay, TrackOverlay
from actwatch.service.schemas import EventPublic


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a client wants: ``None`` means every camera / every label; track boxes only if ``tracks``.

    Example:
        >>> Subscription(cameras=frozenset({"door"})).cameras
        frozenset({'door'})
    """

    cameras: frozenset[str] | None = None
    labels: frozenset[str] | None = None
    tracks: bool = False

    @classmethod
    def of(
        cls,
        cameras: Collection[str] | None = None,
        labels: Collection[str] | None = None,
        tracks: bool = False,
    ) -> Subscription:
        return cls(
            frozenset(cameras) if cameras is not None else None,
            frozenset(labels) if labels is not None else None,
            tracks,
        )

    def wants(self, message: BroadcastMessage) -> bool:
        """Whether a broadcast ``message`` passes this subscription's camera, label and tracks filters."""
        if isinstance(message, TracksMessage):
            if not self.tracks:
                return False
            camera_id, label = message.overlay.camera_id, None
        else:
            camera_id, label = message.event.camera_id, message.event.label
        if self.cameras is not None and camera_id not in self.cameras:
            return False
        return not (isinstance(message, EventMessage) and self.labels is not None and label not in self.labels)


@dataclass(frozen=True, slots=True)
class TrackInterest:
    """Whose track boxes some client wants: every camera's (``all_cameras``) or those in ``cameras``.

    Example:
        >>> TrackInterest.of([Subscription.of(["door"], None, True), Subscription()]).wants("hall")
        False
        >>> TrackInterest.of([Subscription.of(["door"], None, True), Subscription(tracks=True)]).wants("hall")
        True
    """

    all_cameras: bool = False
    cameras: frozenset[str] = frozenset()

    @classmethod
    def of(cls, subscriptions: Collection[Subscription]) -> TrackInterest:
        wanting = [s for s in subscriptions if s.tracks]
        if any(s.cameras is None for s in wanting):
            return cls(all_cameras=True)
        return cls(cameras=frozenset(c for s in wanting for c in (s.cameras or ())))

    def wants(self, camera_id: str) -> bool:
        return self.all_cameras or camera_id in self.cameras


# ------------------------------------------------------------------------------------ broadcasts
@dataclass(frozen=True, slots=True)
class EventMessage:
    """``{"type": "event", "event": {...}}``: an alert, as ``GET /events/{id}`` shows it."""

    event: EventPublic


@dataclass(frozen=True, slots=True)
class TracksMessage:
    """``{"type": "tracks", "camera_id": ..., "frame_time": ..., "tracks": [...]}``: live boxes of a frame."""

    overlay: FrameOverlay


BroadcastMessage = EventMessage | TracksMessage


# --------------------------------------------------------------------------------------- replies
@dataclass(frozen=True, slots=True)
class HelloMessage:
    """The first message after authentication."""

    version: str
    cameras: tuple[str, ...]
    subscription: Subscription
    queue_size: int


@dataclass(frozen=True, slots=True)
class SubscribedMessage:
    """The answer to ``subscribe``: the subscription now in force."""

    subscription: Subscription


@dataclass(frozen=True, slots=True)
class DroppedMessage:
    """``count`` messages were dropped because the client read too slowly."""

    count: int


@dataclass(frozen=True, slots=True)
class PongMessage:
    """The answer to ``ping``."""


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """A client message could not be handled; the connection stays open."""

    message: str


ReplyMessage = HelloMessage | SubscribedMessage | DroppedMessage | PongMessage | ErrorMessage
ServerMessage = BroadcastMessage | ReplyMessage


# ---------------------------------------------------------------------------------- serialisation
def _subscription(subscription: Subscription) -> dict[str, Any]:
    return {
        "cameras": sorted(subscription.cameras) if subscription.cameras is not None else None,
        "labels": sorted(subscription.labels) if subscription.labels is not None else None,
        "tracks": subscription.tracks,
    }


def _track(track: TrackOverlay) -> dict[str, Any]:
    return {
        "track_id": track.track_id,
        "bbox": list(track.bbox),
        "confidence": track.confidence,
        "label": track.label,
        "score": track.score,
        "static": track.static,
    }


def _wire(message: ServerMessage) -> dict[str, Any]:
    match message:
        case EventMessage(event=event):
            return {"type": "event", "event": event.model_dump(mode="json")}
        case TracksMessage(overlay=overlay):
            return {
                "type": "tracks",
                "camera_id": overlay.camera_id,
                "frame_time": overlay.frame_time,
                "tracks": [_track(t) for t in overlay.tracks],
            }
        case HelloMessage():
            return {
                "type": "hello",
                "version": message.version,
                "cameras": list(message.cameras),
                "subscription": _subscription(message.subscription),
                "queue_size": message.queue_size,
            }
        case SubscribedMessage(subscription=subscription):
            return {"type": "subscribed", **_subscription(subscription)}
        case DroppedMessage(count=count):
            return {"type": "dropped", "count": count}
        case PongMessage():
            return {"type": "pong"}
        case ErrorMessage(message=text):
            return {"type": "error", "message": text}
    raise TypeError(f"{type(message).__name__} is not a WebSocket message")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays may reach a message through a box or a score computed with numpy
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(message: ServerMessage) -> str:
    """The compact JSON text of ``message``: the one place WebSocket messages are serialised.

    Example:
        >>> encode(SubscribedMessage(Subscription.of(labels=["fall"])))
        '{"type":"subscribed","cameras":null,"labels":["fall"],"tracks":false}'
    """
    return json.dumps(_wire(message), default=_json_default, separators=(",", ":"), allow_nan=False)

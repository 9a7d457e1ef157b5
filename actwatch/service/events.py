"""The message the alert rules emit: one alert about one person."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Event:
    """An alert: camera ``camera_id``'s track ``track_id`` is doing ``label`` with probability ``score``.

    Times are Unix seconds: ``start_time`` is when the first agreeing window was seen, ``frame_time`` the
    frame that confirmed the alert. ``bbox`` is x1 y1 x2 y2 in frame pixels.

    Example:
        >>> e = Event(camera_id="cam1", track_id=3, label="fighting", score=0.91, start_time=1.0,
        ...           frame_time=2.0, bbox=(1.0, 2.0, 3.0, 4.0), id="abc")
        >>> e.to_json()["snapshot_url"]
        '/events/abc/snapshot'
    """

    camera_id: str
    track_id: int
    label: str
    score: float
    start_time: float
    frame_time: float
    bbox: tuple[float, float, float, float]
    id: str = field(default_factory=new_event_id)

    @property
    def snapshot_url(self) -> str:
        return f"/events/{self.id}/snapshot"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["bbox"] = list(self.bbox)
        data["snapshot_url"] = self.snapshot_url
        return data

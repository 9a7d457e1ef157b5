"""``/events``: stored alerts, filtered and paginated, with their snapshot JPEG, crops PNG and clip MP4;
their review (``PATCH``: acknowledged, false positive) and deletion.

Example:
    >>> sorted({r.path for r in router().routes})[1:]
    ['/events/{event_id}', '/events/{event_id}/clip', '/events/{event_id}/crops', '/events/{event_id}/snapshot']
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.responses import FileResponse

from actwatch.config import CAMERA_ID_PATTERN
from actwatch.service.clips import ClipStore
from actwatch.service.deps import Clips, Store, require_token
from actwatch.service.schemas import PROTECTED, EventPage, EventPublic, EventReview, error_responses
from actwatch.service.store import EVENT_ID_PATTERN, EventFilter, EventRecord, ReviewState

EventIdPath = Annotated[str, Path(pattern=EVENT_ID_PATTERN, description="Event id.")]
HARD_PAGE_CAP = 10_000  # server.max_page_size (<= this) is the configurable limit


def _unix(value: float | datetime | None) -> float | None:
    """Unix seconds of ``value``; a time without zone is UTC."""
    if value is None or isinstance(value, float):
        return value
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _public(record: EventRecord, clips: ClipStore) -> EventPublic:
    return EventPublic.build(
        record.event,
        snapshot=record.snapshot_path is not None,
        crops=record.crops_path is not None,
        clip=clips.existing(record.event.id) is not None,
        review_state=record.review_state,
    )


def _media(path: FilePath | None, media_type: str, missing: str) -> FileResponse:
    """A stored event file (cacheable: it never changes), or 404 with ``missing``."""
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=missing)
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})


def router(max_page_size: int = HARD_PAGE_CAP) -> APIRouter:
    """The routes, with ``limit`` documented (and checked) up to ``max_page_size`` (server.max_page_size)."""
    api = APIRouter(
        prefix="/events",
        tags=["events"],
        dependencies=[Depends(require_token)],
        responses=error_responses(*PROTECTED),
    )
    not_found = error_responses(404, _404="No such event (or it has no such file).")

    @api.get("", summary="Stored events, newest first")
    def list_events(
        store: Store,
        clips: Clips,
        camera: Annotated[str | None, Query(pattern=CAMERA_ID_PATTERN, description="Only this camera.")] = None,
        label: Annotated[str | None, Query(min_length=1, max_length=128, description="Only this class.")] = None,
        # Unix seconds first: a number is never read as a date.
        since: Annotated[
            float | datetime | None,
            Query(description="Frame time >= this (ISO 8601 or Unix seconds; UTC if no zone)."),
        ] = None,
        until: Annotated[
            float | datetime | None, Query(description="Frame time < this (ISO 8601 or Unix seconds).")
        ] = None,
        # A default, not an Annotated type: annotations are strings here and cannot see max_page_size.
        limit: int = Query(50, ge=1, le=max_page_size, description="Page size (at most server.max_page_size)."),
        offset: Annotated[int, Query(ge=0, le=10**9, description="Events to skip.")] = 0,
        review_state: Annotated[ReviewState | None, Query(description="Only events in this review state.")] = None,
    ) -> EventPage:
        records, total = store.query_records(
            EventFilter(
                camera_id=camera,
                label=label,
                since=_unix(since),
                until=_unix(until),
                review_state=review_state,
                limit=limit,
                offset=offset,
            )
        )
        return EventPage(items=[_public(r, clips) for r in records], total=total, limit=limit, offset=offset)

    @api.get("/{event_id}", summary="One event", responses=not_found)
    def get_event(event_id: EventIdPath, store: Store, clips: Clips) -> EventPublic:
        record = store.get_record(event_id)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"event '{event_id}' not found")
        return _public(record, clips)

    @api.patch(
        "/{event_id}",
        summary="Review an event: acknowledged, false_positive (kept for retraining) or back to new",
        responses={**not_found, **error_responses(400, 413)},
    )
    def review_event(event_id: EventIdPath, body: EventReview, store: Store, clips: Clips) -> EventPublic:
        record = store.set_review(event_id, body.review_state)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"event '{event_id}' not found")
        return _public(record, clips)

    @api.delete(
        "/{event_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Delete an event with its snapshot, crops and clip",
        responses=not_found,
    )
    def delete_event(event_id: EventIdPath, store: Store, clips: Clips) -> None:
        if not store.delete(event_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"event '{event_id}' not found")
        clips.delete(event_id)

    @api.get(
        "/{event_id}/snapshot",
        summary="The frame of the event with the box drawn (JPEG)",
        response_class=FileResponse,
        responses={200: {"content": {"image/jpeg": {}}}, **not_found},
    )
    def get_snapshot(event_id: EventIdPath, store: Store) -> FileResponse:
        return _media(store.snapshot_path(event_id), "image/jpeg", f"no snapshot for event '{event_id}'")

    @api.get(
        "/{event_id}/crops",
        summary="The crops the model classified, side by side, oldest left (PNG)",
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}}, **not_found},
    )
    def get_crops(event_id: EventIdPath, store: Store) -> FileResponse:
        return _media(store.crops_path(event_id), "image/png", f"no crops for event '{event_id}'")

    @api.get(
        "/{event_id}/clip",
        summary="A short clip around the event (H.264 MP4), once written",
        response_class=FileResponse,
        responses={200: {"content": {"video/mp4": {}}}, **not_found},
    )
    def get_clip(event_id: EventIdPath, store: Store, clips: Clips) -> FileResponse:
        path = clips.existing(event_id) if store.get_record(event_id) is not None else None
        return _media(path, "video/mp4", f"no clip for event '{event_id}'")

    return api

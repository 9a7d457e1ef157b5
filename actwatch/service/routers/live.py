"""Live frames: ``GET /cameras/{id}/latest.jpg``, ``GET /cameras/{id}/stream.mjpeg`` and ``POST /media/sign``.

A frame is encoded when a client asks for it, never before (:mod:`actwatch.service.live_frames`). The
MJPEG stream sends the newest frame at most ``media.mjpeg_max_fps`` times a second and only when it is
new; at most ``media.max_streams`` streams run at once. ``<img>`` tags cannot send the bearer token:
the dashboard asks ``POST /media/sign`` for a short-lived signed URL
(:mod:`actwatch.service.signed_urls`), which the auth middleware accepts for that path until it expires.

Example:
    >>> sorted(r.path for r in router().routes)
    ['/cameras/{camera_id}/latest.jpg', '/cameras/{camera_id}/stream.mjpeg', '/media/sign']
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from actwatch.config import CAMERA_ID_PATTERN
from actwatch.service.cameras import CameraNotFoundError
from actwatch.service.deps import Services, ServiceState, require_token
from actwatch.service.live_frames import LiveJpeg, LiveView
from actwatch.service.schemas import PROTECTED, MediaSignRequest, SignedMedia, error_responses

CameraIdPath = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="Camera id.")]
Overlay = Annotated[bool, Query(description="Draw track boxes, ids and labels.")]
Width = Annotated[int | None, Query(ge=16, le=3840, description="Shrink to this width in pixels (never enlarged).")]
BOUNDARY = "actwatchframe"


async def _latest(services: ServiceState, camera_id: str, view: LiveView) -> LiveJpeg:
    try:
        services.cameras.get(camera_id)
    except CameraNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"camera '{camera_id}' not found") from None
    frame = await asyncio.to_thread(services.live_frames.latest_jpeg, camera_id, view)
    if frame is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"camera '{camera_id}' has no processed frame yet")
    return frame


def _part(frame: LiveJpeg) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n\r\n"
    return head.encode("ascii") + frame.jpeg + b"\r\n"


async def _mjpeg(
    request: Request, services: ServiceState, camera_id: str, view: LiveView, first: LiveJpeg
) -> AsyncIterator[bytes]:
    interval = 1.0 / services.config.media.mjpeg_max_fps
    # Taken here, where the finally below is sure to run: a generator never started never releases.
    if not services.mjpeg_streams.acquire():
        return
    try:
        yield _part(first)
        sent = first.sequence
        while services.started and not await request.is_disconnected():
            await asyncio.sleep(interval)
            frame = await asyncio.to_thread(services.live_frames.latest_jpeg, camera_id, view, sent)
            if frame is not None:  # a new frame (nothing is encoded for an unchanged one)
                sent = frame.sequence
                yield _part(frame)
    finally:
        services.mjpeg_streams.release()


def _view(services: ServiceState, overlay: bool, width: int | None) -> LiveView:
    return LiveView(overlay=overlay, width=width, quality=services.config.media.jpeg_quality)


def router() -> APIRouter:
    api = APIRouter(tags=["live"], dependencies=[Depends(require_token)], responses=error_responses(*PROTECTED))
    not_found = error_responses(404, _404="No such camera, or no processed frame yet.")

    @api.get(
        "/cameras/{camera_id}/latest.jpg",
        summary="The camera's newest processed frame (JPEG)",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, **not_found},
    )
    async def latest_jpg(
        camera_id: CameraIdPath, services: Services, overlay: Overlay = False, width: Width = None
    ) -> Response:
        frame = await _latest(services, camera_id, _view(services, overlay, width))
        return Response(frame.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @api.get(
        "/cameras/{camera_id}/stream.mjpeg",
        summary="The camera's processed frames as MJPEG, at most media.mjpeg_max_fps",
        response_class=StreamingResponse,
        responses={
            200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}},
            **not_found,
            **error_responses(503, _503="Too many MJPEG streams (media.max_streams)."),
        },
    )
    async def stream_mjpeg(
        camera_id: CameraIdPath, request: Request, services: Services, overlay: Overlay = False, width: Width = None
    ) -> StreamingResponse:
        view = _view(services, overlay, width)
        first = await _latest(services, camera_id, view)
        streams = services.mjpeg_streams
        if streams.in_use >= streams.limit:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="too many MJPEG streams; try again later")
        return StreamingResponse(
            _mjpeg(request, services, camera_id, view, first),
            media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={"Cache-Control": "no-store"},
        )

    @api.post(
        "/media/sign",
        summary="A short-lived signed URL of a media path, for <img> and <video> tags",
        responses=error_responses(400, 413),
    )
    def sign_media(body: MediaSignRequest, services: Services) -> SignedMedia:
        signer = services.signer  # body.path matched the signable pattern (422 otherwise)
        url = signer.sign(body.path)
        return SignedMedia(url=url, expires=signer.expires_of(url))

    return api

"""``/cameras``: list, add, change and remove cameras at run time (through the camera service).

Example:
    >>> sorted({(m, r.path) for r in router().routes for m in r.methods})[:2]
    [('DELETE', '/cameras/{camera_id}'), ('GET', '/cameras')]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from fastapi.exceptions import RequestValidationError

from actwatch.config import CAMERA_ID_PATTERN, SourcePolicy, mask_url
from actwatch.errors import SourceError
from actwatch.service.cameras import (
    CameraConflictError,
    CameraNotFoundError,
    CameraRejectedError,
    CameraServiceError,
    CameraView,
)
from actwatch.service.deps import Cameras, Config, Services, ServiceState, require_token
from actwatch.service.schemas import PROTECTED, CameraCreate, CameraPublic, CameraUpdate, error_responses

CameraIdPath = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="Camera id.")]

_STATUS_CODES: dict[type[CameraServiceError], int] = {
    CameraNotFoundError: status.HTTP_404_NOT_FOUND,
    CameraConflictError: status.HTTP_409_CONFLICT,
    CameraRejectedError: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


@contextlib.contextmanager
def _as_http() -> Iterator[None]:
    """The camera service's errors as HTTP answers (anything unexpected: 500, already logged).

    A refused camera is 422 in the same shape as a body that failed validation (the schema documents one
    shape per status code).
    """
    try:
        yield
    except CameraServiceError as exc:
        code = _STATUS_CODES.get(type(exc), status.HTTP_500_INTERNAL_SERVER_ERROR)
        if code == status.HTTP_422_UNPROCESSABLE_CONTENT:
            problem = {"type": "value_error", "loc": ["body"], "msg": mask_url(str(exc))}
            raise HTTPException(code, detail=[problem]) from None
        raise HTTPException(code, detail=str(exc)) from None


def _admit(policy: SourcePolicy, url: str) -> None:
    """422 (shaped like any validation error of the body) unless the camera URL policy allows ``url``."""
    try:
        policy.admit(url)
    except SourceError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "url"), "msg": f"Value error, {mask_url(str(exc))}"}]
        ) from None


def _forget_frames(services: ServiceState, camera_id: str) -> None:
    """A stopped camera's newest frame and clip ring go: no stale latest.jpg, no memory held for it."""
    services.live_frames.forget(camera_id)
    services.clips.forget(camera_id)


def _public(view: CameraView) -> CameraPublic:
    return CameraPublic.build(view.config, view.status, view.start_error)


def router() -> APIRouter:
    api = APIRouter(
        prefix="/cameras",
        tags=["cameras"],
        dependencies=[Depends(require_token)],
        responses=error_responses(*PROTECTED),
    )
    not_found = error_responses(404, _404="No such camera.")

    @api.get("", summary="All cameras with their status")
    def list_cameras(cameras: Cameras) -> list[CameraPublic]:
        return [_public(view) for view in cameras.list()]

    @api.post(
        "",
        status_code=status.HTTP_201_CREATED,
        summary="Add a camera (starts reading it if enabled)",
        responses=error_responses(400, 409, 413),
    )
    def create_camera(body: CameraCreate, cameras: Cameras, config: Config, response: Response) -> CameraPublic:
        _admit(config.sources, body.url)
        with _as_http():
            view = cameras.create(body.to_config())
        response.headers["Location"] = f"/cameras/{view.config.id}"
        return _public(view)

    @api.get("/{camera_id}", summary="One camera", responses=not_found)
    def get_camera(camera_id: CameraIdPath, cameras: Cameras) -> CameraPublic:
        with _as_http():
            return _public(cameras.get(camera_id))

    @api.patch(
        "/{camera_id}",
        summary="Rename, change the zone or the frame-rate cap, enable or disable",
        responses={**not_found, **error_responses(400, 413)},
    )
    def update_camera(
        camera_id: CameraIdPath, body: CameraUpdate, cameras: Cameras, services: Services
    ) -> CameraPublic:
        with _as_http():
            view = cameras.update(camera_id, body.model_dump(exclude_unset=True))
        if not view.config.enabled:
            _forget_frames(services, camera_id)
        return _public(view)

    @api.delete(
        "/{camera_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Stop and remove a camera (its stored events stay)",
        responses=not_found,
    )
    def delete_camera(camera_id: CameraIdPath, cameras: Cameras, services: Services) -> None:
        with _as_http():
            cameras.delete(camera_id)
        _forget_frames(services, camera_id)

    return api

"""``/cameras``: list, add, change and remove cameras at run time (the controller starts/stops them).

Example:
    >>> sorted({(m, r.path) for r in router().routes for m in r.methods})[:2]
    [('DELETE', '/cameras/{camera_id}'), ('GET', '/cameras')]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import ValidationError

from actwatch.config import CAMERA_ID_PATTERN, CameraConfig, mask_url
from actwatch.errors import ActwatchError
from actwatch.service.controller import CameraController, CameraStatusLike
from actwatch.service.deps import Cameras, Controller, Metrics, require_token
from actwatch.service.schemas import CameraCreate, CameraPublic, CameraUpdate

log = logging.getLogger(__name__)

CameraIdPath = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="Camera id.")]


def _statuses(controller: CameraController) -> dict[str, CameraStatusLike]:
    try:
        return {s.camera_id: s for s in controller.statuses()}
    except Exception:  # show the configuration even if the pipeline cannot report
        log.exception("controller.statuses() failed")
        return {}


def _control(action: str, camera_id: str, call: Callable[..., object], *args: object) -> None:
    """Run a controller call; user mistakes become 422, anything else 500 (logged)."""
    try:
        call(*args)
    except ActwatchError as exc:
        raise HTTPException(422, detail=mask_url(str(exc))) from None
    except Exception:
        log.exception("could not %s camera %s", action, camera_id)
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            detail=f"could not {action} camera {camera_id}; see the log",
        ) from None


def _not_found(camera_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"camera '{camera_id}' not found")


def router() -> APIRouter:
    api = APIRouter(prefix="/cameras", tags=["cameras"], dependencies=[Depends(require_token)])
    responses_401: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid bearer token."}}

    @api.get("", summary="All cameras with their status", responses=responses_401)
    def list_cameras(cameras: Cameras, controller: Controller) -> list[CameraPublic]:
        statuses = _statuses(controller)
        return [CameraPublic.build(c, statuses.get(c.id), cameras.error(c.id)) for c in cameras.list()]

    @api.post(
        "",
        status_code=status.HTTP_201_CREATED,
        summary="Add a camera (starts reading it if enabled)",
        responses={**responses_401, 409: {"description": "Duplicate id or camera limit reached."}},
    )
    def create_camera(body: CameraCreate, cameras: Cameras, controller: Controller, response: Response) -> CameraPublic:
        camera = body.to_config()
        with cameras.lock:
            if camera.id in cameras:
                raise HTTPException(status.HTTP_409_CONFLICT, detail=f"camera '{camera.id}' already exists")
            if len(cameras) >= cameras.max_cameras:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    detail=f"camera limit reached (server.max_cameras={cameras.max_cameras})",
                )
            if camera.enabled:
                _control("add", camera.id, controller.add_camera, camera)
            cameras.add(camera)
        response.headers["Location"] = f"/cameras/{camera.id}"
        return CameraPublic.build(camera, _statuses(controller).get(camera.id))

    @api.get("/{camera_id}", summary="One camera", responses={**responses_401, 404: {}})
    def get_camera(camera_id: CameraIdPath, cameras: Cameras, controller: Controller) -> CameraPublic:
        camera = cameras.get(camera_id)
        if camera is None:
            raise _not_found(camera_id)
        return CameraPublic.build(camera, _statuses(controller).get(camera_id), cameras.error(camera_id))

    @api.patch(
        "/{camera_id}",
        summary="Rename, change the zone, enable or disable",
        responses={**responses_401, 404: {}},
    )
    def update_camera(
        camera_id: CameraIdPath, body: CameraUpdate, cameras: Cameras, controller: Controller
    ) -> CameraPublic:
        with cameras.lock:
            old = cameras.get(camera_id)
            if old is None:
                raise _not_found(camera_id)
            changes = body.model_dump(exclude_unset=True)
            if changes.get("name", "") is None or changes.get("enabled", False) is None:
                raise HTTPException(422, detail="name and enabled cannot be null")
            try:
                new = CameraConfig.model_validate({**old.model_dump(), **changes})
            except ValidationError as exc:  # cannot happen for valid bodies; keep the 422 contract anyway
                raise HTTPException(422, detail=str(exc)) from None
            if old.enabled and not new.enabled:
                _control("stop", camera_id, controller.remove_camera, camera_id)
            elif new.enabled and (not old.enabled or cameras.error(camera_id)):
                # Enabling, or {"enabled": true} again for a camera that failed at start-up: (re)start it.
                _control("start", camera_id, controller.add_camera, new)
            elif new.enabled and (new.name != old.name or new.zone != old.zone):
                _control("update", camera_id, controller.update_camera, new)
            cameras.replace(new)
        return CameraPublic.build(new, _statuses(controller).get(camera_id))

    @api.delete(
        "/{camera_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Stop and remove a camera (its stored events stay)",
        responses={**responses_401, 404: {}},
    )
    def delete_camera(camera_id: CameraIdPath, cameras: Cameras, controller: Controller, metrics: Metrics) -> None:
        with cameras.lock:
            camera = cameras.get(camera_id)
            if camera is None:
                raise _not_found(camera_id)
            if camera.enabled:
                _control("remove", camera_id, controller.remove_camera, camera_id)
            cameras.remove(camera_id)
        metrics.remove_camera(camera_id)

    return api

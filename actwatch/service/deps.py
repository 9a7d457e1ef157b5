"""The services one app runs with (a typed object on ``app.state``) and the API's dependencies.

Handlers ask for what they need with the ``Annotated`` aliases below (``Store``, ``Cameras``…) instead of
reaching into ``request.app.state``; :func:`require_token` guards every route except health checks,
the dashboard's static files and the API docs.

Example:
    >>> from fastapi import APIRouter, Depends
    >>> router = APIRouter(dependencies=[Depends(require_token)])
    >>> @router.get("/count")
    ... def count(store: Store) -> int:
    ...     return store.count()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.requests import HTTPConnection

from actwatch.config import AppConfig
from actwatch.service.auth import token_matches
from actwatch.service.broadcast import Broadcaster
from actwatch.service.cameras import CameraService
from actwatch.service.clips import ClipRecorder, ClipStore
from actwatch.service.controller import CameraController
from actwatch.service.live_frames import LiveFrameSource
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.prediction_schemas import ModelInfo
from actwatch.service.predictions import PredictionService
from actwatch.service.signed_urls import MediaSigner
from actwatch.service.sink import EventSink
from actwatch.service.store import EventStore
from actwatch.service.throttle import AuthThrottle, ConnectionSlots

if TYPE_CHECKING:
    from actwatch.delivery.service import DeliveryService
SIGNED_MEDIA_SCOPE_KEY = "actwatch.signed_media"
"""Set in the ASGI scope by the auth middleware for a GET of a media path with a valid signature."""


@dataclass(slots=True)
class ServiceState:
    """Everything the API's handlers use, created by ``create_app`` and kept on ``app.state.services``."""

    config: AppConfig
    token: SecretStr
    store: EventStore
    broadcaster: Broadcaster
    metrics: ServiceMetrics
    sink: EventSink
    cameras: CameraService
    controller: CameraController
    auth_throttle: AuthThrottle
    pending_websockets: ConnectionSlots
    live_frames: LiveFrameSource
    clips: ClipRecorder
    signer: MediaSigner
    mjpeg_streams: ConnectionSlots
    predictions: PredictionService
    model: ModelInfo | None = None  # None where no pipeline runs (a test app with a fake controller)
    delivery: DeliveryService | None = None  # MQTT and webhooks, when configured
    started: bool = False


def get_services(conn: HTTPConnection) -> ServiceState:
    services = getattr(conn.app.state, "services", None)
    if not isinstance(services, ServiceState):  # an app not built by create_app
        raise RuntimeError("app.state.services is not set; build the app with actwatch.service.app.create_app")
    return services


Services = Annotated[ServiceState, Depends(get_services)]


def get_store(services: Services) -> EventStore:
    return services.store


def get_cameras(services: Services) -> CameraService:
    return services.cameras


def get_controller(services: Services) -> CameraController:
    return services.controller


def get_metrics(services: Services) -> ServiceMetrics:
    return services.metrics


def get_config(services: Services) -> AppConfig:
    return services.config


def get_predictions(services: Services) -> PredictionService:
    return services.predictions


def get_clip_store(services: Services) -> ClipStore:
    return services.clips.store


Store = Annotated[EventStore, Depends(get_store)]
Cameras = Annotated[CameraService, Depends(get_cameras)]
Controller = Annotated[CameraController, Depends(get_controller)]
Metrics = Annotated[ServiceMetrics, Depends(get_metrics)]
Config = Annotated[AppConfig, Depends(get_config)]
Predictions = Annotated[PredictionService, Depends(get_predictions)]
Clips = Annotated[ClipStore, Depends(get_clip_store)]

# Stateless security scheme object (it also documents the bearer scheme in OpenAPI).
_bearer = HTTPBearer(auto_error=False, description="The service token (see <data_dir>/token).")


def require_token(
    conn: HTTPConnection,
    services: Services,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 with ``WWW-Authenticate: Bearer`` unless the request carries the service's bearer token (or is
    a media GET whose signed URL the auth middleware accepted)."""
    if conn.scope.get(SIGNED_MEDIA_SCOPE_KEY) is True:
        return
    given = credentials.credentials if credentials is not None else None
    if not token_matches(services.token.get_secret_value(), given):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token" if given else "bearer token required",
            headers={"WWW-Authenticate": "Bearer"},
        )

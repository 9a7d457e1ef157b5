"""Liveness (``/healthz``), readiness (``/readyz``) — both without auth — and ``/metrics`` (auth).

Example:
    >>> sorted(r.path for r in router().routes)
    ['/healthz', '/metrics', '/readyz']
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import JSONResponse

from actwatch.service.deps import Services, require_token
from actwatch.service.schemas import PROTECTED, DeliveryState, Health, ModelState, Readiness, error_responses

log = logging.getLogger(__name__)


def router() -> APIRouter:
    api = APIRouter(tags=["health"])

    @api.get("/healthz", summary="Liveness: the process answers (no auth)")
    def healthz() -> Health:
        return Health(status="ok")

    @api.get(
        "/readyz",
        summary="Readiness: models loaded and the pipeline running (no auth)",
        responses={200: {"model": Readiness}, 503: {"model": Readiness, "description": "Still starting."}},
    )
    def readyz(services: Services) -> JSONResponse:
        reasons: list[str] = []
        try:
            ready = services.started and services.controller.ready()
            if not ready:
                reasons = services.controller.not_ready_reasons()
        except Exception:
            log.exception("controller.ready() failed")
            ready = False
        code = status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
        delivery = None
        if services.delivery is not None:
            delivery = {name: DeliveryState(**asdict(s)) for name, s in services.delivery.statuses().items()}
        provenance = services.metrics.model_provenance()
        body = Readiness(
            status="ready" if ready else "starting",
            providers=services.metrics.active_providers() or None,
            delivery=delivery,
            model=ModelState(**provenance.to_json()) if provenance is not None else None,
            reasons=reasons or None,
        )
        return JSONResponse(body.model_dump(exclude_none=True), status_code=code)

    @api.get(
        "/metrics",
        summary="Prometheus metrics",
        dependencies=[Depends(require_token)],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}, **error_responses(*PROTECTED)},
    )
    def metrics(services: Services) -> Response:
        m = services.metrics
        try:
            for s in services.controller.statuses():
                m.update_camera(
                    s.camera_id,
                    frames_read=s.frames_read,
                    frames_dropped=s.frames_dropped,
                    reconnects=s.reconnects,
                    fps=s.fps,
                )
        except Exception:  # metrics must render even when the pipeline misbehaves
            log.exception("could not read camera statuses for /metrics")
        if services.delivery is not None:
            try:
                services.delivery.refresh_metrics()
            except Exception:
                log.exception("could not read the outbox for /metrics")
        return Response(m.render(), media_type=m.content_type)

    return api

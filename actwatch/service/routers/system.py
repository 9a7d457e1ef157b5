"""``/system``: what the model and system page shows (model, ONNX Runtime providers, stage timings, load,
and the compute processes where there are several).

Example:
    >>> [r.path for r in router().routes]
    ['/system']
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

import actwatch
from actwatch.service.deps import Services, require_token
from actwatch.service.metrics import STAGES
from actwatch.service.prediction_schemas import (
    ComputeProcessInfo,
    PipelineLoad,
    PredictionLimits,
    StageTiming,
    SystemInfo,
)
from actwatch.service.schemas import PROTECTED, error_responses

_LATENCY = "actwatch_stage_latency_seconds"


def router() -> APIRouter:
    api = APIRouter(tags=["system"], dependencies=[Depends(require_token)])

    @api.get(
        "/system",
        summary="The model, ONNX Runtime providers and per-stage timings",
        responses=error_responses(*PROTECTED),
    )
    def system(services: Services) -> SystemInfo:
        # the figures /metrics exports (every compute process's together), read at once
        latency = services.metrics.samples(f"{_LATENCY}_count", f"{_LATENCY}_sum")
        stages = []
        for stage in STAGES:
            count = latency.get((f"{_LATENCY}_count", (("stage", stage),)), 0.0)
            total = latency.get((f"{_LATENCY}_sum", (("stage", stage),)), 0.0)
            mean_ms = round(total / count * 1000, 3) if count else None
            stages.append(StageTiming(stage=stage, count=int(count), mean_ms=mean_ms, total_s=round(total, 6)))
        predictions = services.predictions
        counters = services.metrics.pipeline_counters()
        process_states = getattr(services.controller, "process_states", None)  # compute processes only
        processes = (
            [ComputeProcessInfo.model_validate(state, from_attributes=True) for state in process_states()]
            if process_states is not None
            else None
        )
        return SystemInfo(
            version=actwatch.__version__,
            model=services.model,
            providers=services.metrics.active_providers(),
            stages=stages,
            stride=services.config.pipeline.stride,
            cameras=len(services.cameras),
            uploads=PredictionLimits.build(predictions.settings, available=predictions.available),
            pipeline=PipelineLoad.build(counters) if counters is not None else None,
            processes=processes,
        )

    return api

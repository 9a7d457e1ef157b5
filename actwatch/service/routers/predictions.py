"""``/predictions``: upload a video, follow its job, get the people found and the annotated video.

Thin over :class:`~actwatch.service.predictions.PredictionService`, which owns the limits and the jobs.

Example:
    >>> sorted(r.path for r in router().routes)
    ['/predictions', '/predictions', '/predictions/limits', '/predictions/{job_id}', '/predictions/{job_id}/video']
"""

from __future__ import annotations

import asyncio
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, UploadFile, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse

from actwatch.service.deps import Predictions, require_token
from actwatch.service.prediction_schemas import (
    JOB_ID_PATTERN,
    PredictionCreated,
    PredictionLimits,
    PredictionPublic,
)
from actwatch.service.predictions import JobState, PredictionJob, PredictionRefused
from actwatch.service.schemas import PROTECTED, error_responses

JobIdPath = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="Job id.")]


def _job(predictions: Predictions, job_id: str) -> PredictionJob:
    job = predictions.get(job_id)
    if job is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no prediction job '{job_id}' (deleted after its retention?)"
        )
    return job


def router() -> APIRouter:
    api = APIRouter(prefix="/predictions", tags=["predictions"], dependencies=[Depends(require_token)])

    @api.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        summary="Upload a video (multipart field 'file'); it runs as a background job",
        description="422 when the file is not a readable video or is longer than predictions.max_duration_s.",
        responses=error_responses(
            *PROTECTED,
            400,
            413,
            415,
            503,
            _400="The body is not valid multipart/form-data.",
            _413="Over predictions.max_upload_mb.",
            _415="Not an accepted video type.",
            _429="Too many failed authentication attempts, or predictions.max_jobs jobs queued or running.",
            _503="This service runs no compute pipeline.",
        ),
    )
    async def create_prediction(file: UploadFile, predictions: Predictions) -> PredictionCreated:
        # The body is already on disk (Starlette spools uploads over 1 MiB to a temporary file); the
        # copy into the job's folder and the probe read files: off the event loop.
        try:
            job = await asyncio.to_thread(predictions.create, file.file, file.filename or "")
        except PredictionRefused as refused:
            if refused.status_code == status.HTTP_422_UNPROCESSABLE_CONTENT:
                # a 422 like every other: a list of problems (here: the file is not a usable video)
                raise RequestValidationError(
                    [{"type": "video", "loc": ("body", "file"), "msg": refused.message}]
                ) from None
            raise HTTPException(refused.status_code, detail=refused.message) from None
        finally:
            await file.close()
        return PredictionCreated(id=job.id)

    @api.get("", summary="Kept jobs, newest first", responses=error_responses(*PROTECTED))
    def list_predictions(predictions: Predictions) -> list[PredictionPublic]:
        return [PredictionPublic.build(job) for job in predictions.jobs()]

    @api.get("/limits", summary="What an upload may be", responses=error_responses(*PROTECTED))
    def prediction_limits(predictions: Predictions) -> PredictionLimits:
        return PredictionLimits.build(predictions.settings, available=predictions.available)

    @api.get(
        "/{job_id}",
        summary="A job's state, progress and, once done, the people found",
        responses=error_responses(*PROTECTED, 404, _404="No such job."),
    )
    def get_prediction(job_id: JobIdPath, predictions: Predictions) -> PredictionPublic:
        return PredictionPublic.build(_job(predictions, job_id))

    @api.get(
        "/{job_id}/video",
        summary="The annotated video (MP4, H.264): boxes, track ids and labels",
        response_class=FileResponse,
        responses={
            200: {"content": {"video/mp4": {}}},
            **error_responses(*PROTECTED, 404, 409, _404="No such job.", _409="The job is not done."),
        },
    )
    def get_prediction_video(
        job_id: JobIdPath,
        predictions: Predictions,
        download: Annotated[bool, Query(description="Answer as an attachment (save the file).")] = False,
    ) -> FileResponse:
        job = _job(predictions, job_id)
        if job.state is not JobState.DONE or not job.annotated.is_file():
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"the job is {job.state.value}: no video yet")
        name = f"{FilePath(job.filename).stem or 'video'}-annotated.mp4"
        return FileResponse(
            job.annotated,
            media_type="video/mp4",
            filename=name,
            content_disposition_type="attachment" if download else "inline",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    return api

"""How the capture stage reads, paces and recovers: its one settings model, the ``capture:`` section.

The service configuration composes it as it is (``AppConfig.capture``); per-camera choices (``loop``,
``realtime``) are fields of the camera and are given to each :class:`~actwatch.capture.reader.CameraReader`
as arguments. It lives in a module of its own so the reader and the OpenCV opener both depend on it
rather than on each other. Network cameras map these settings onto FFmpeg arguments
(:func:`~actwatch.capture.ffmpeg.ffmpeg_command`).

Example:
    >>> settings = CaptureSettings(stall_timeout_s=2, backoff_jitter=0)
    >>> settings.rtsp_transport, settings.queue_size
    ('tcp', 2)
    >>> [settings.backoff_delay(attempt, random.Random(0)) for attempt in (1, 2, 3)]
    [0.5, 1.0, 2.0]
"""

from __future__ import annotations

import random
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from actwatch.settings import StrictModel

_FFMPEG_OPTION = re.compile(r"[a-z][a-z0-9_]*")


class CaptureSettings(StrictModel):
    """Defaults of every camera reader: stall watchdog, reconnect backoff, RTSP/FFmpeg options."""

    stall_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Reconnect when a live stream delivers no frame for this long (seconds).",
    )
    open_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds allowed to open a network source: until its first frame has arrived.",
    )
    backoff_initial_s: float = Field(0.5, gt=0, le=600, description="Delay before the first reconnect attempt.")
    backoff_max_s: float = Field(30.0, gt=0, le=3600, description="Upper bound of the reconnect delay.")
    backoff_factor: float = Field(
        2.0, ge=1.0, le=10.0, description="Growth factor of the reconnect delay per failed attempt."
    )
    backoff_jitter: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Random +/- fraction applied to each delay so cameras do not retry in step.",
    )
    max_attempts: int | None = Field(
        None,
        ge=1,
        description="Failed connections in a row before a camera is 'failed'; unset: retry forever.",
    )
    queue_size: int = Field(
        2, ge=1, le=2, description="Frames held for the consumer per camera; the oldest is dropped."
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        "tcp", description="RTSP transport: 'tcp' (survives lossy networks and NAT) or 'udp'."
    )
    hwaccel: Literal["none", "cuda", "auto"] = Field(
        "none",
        description="Hardware video decoding of network cameras (FFmpeg -hwaccel): none (the CPU), cuda "
        "(NVDEC; the CPU where no NVIDIA driver is found, with a warning) or auto (FFmpeg's pick, else the CPU).",
    )
    max_fps: float | None = Field(
        None,
        gt=0,
        le=240,
        description="Frames per second at most that FFmpeg hands on from a network camera: it still decodes "
        "every frame but converts and pipes only the first of each 1/max_fps second (a 30 fps camera at 10: a "
        "third of the conversion and copying), never repeating one. Keep it at or above the model's sampling "
        "rate (its manifest's fps, 10 by default). Unset: every frame, at the camera's own rate.",
    )
    ffmpeg_options: dict[str, str] = Field(
        default_factory=dict,
        description="Extra FFmpeg input options for network sources (-key value before -i), "
        "e.g. {'analyzeduration': '500000'}.",
    )

    @field_validator("ffmpeg_options")
    @classmethod
    def _input_options_only(cls, options: dict[str, str]) -> dict[str, str]:
        # Each pair becomes `-key value` on FFmpeg's command line before `-i`: a name only, no second input.
        for key, value in options.items():
            if not _FFMPEG_OPTION.fullmatch(key) or key == "i":
                raise ValueError(f"ffmpeg_options: {key!r} is not an FFmpeg input option name (e.g. 'analyzeduration')")
            if "\x00" in value:
                raise ValueError(f"ffmpeg_options: the value of {key!r} contains a NUL character")
        return options

    @model_validator(mode="after")
    def _backoff_order(self) -> CaptureSettings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self

    def backoff_delay(self, attempt: int, rng: random.Random) -> float:
        """Delay before reconnect number ``attempt`` (1-based) of a run of failures, jitter included."""
        base = min(self.backoff_max_s, self.backoff_initial_s * self.backoff_factor ** max(0, attempt - 1))
        return max(0.0, base * (1.0 + rng.uniform(-self.backoff_jitter, self.backoff_jitter)))

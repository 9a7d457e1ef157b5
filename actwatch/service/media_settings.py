"""The ``media:`` section: live frames (``latest.jpg``, MJPEG), signed media URLs and event clips.

Example:
    >>> MediaSettings().clips.pre_roll_s, MediaSettings(signed_url_ttl_s=30).signed_url_ttl_s
    (3.0, 30.0)
"""

from __future__ import annotations

from pydantic import Field

from actwatch.settings import StrictModel


class ClipSettings(StrictModel):
    """Short MP4 clips around each event, from a bounded ring of recent frames per camera."""

    enabled: bool = Field(True, description="Write a clip for each event.")
    pre_roll_s: float = Field(3.0, ge=0, le=30, description="Seconds of video before the confirming frame.")
    post_roll_s: float = Field(3.0, ge=0, le=30, description="Seconds of video after the confirming frame.")
    fps: float = Field(
        8.0, gt=0, le=30, description="Frames per second kept in the ring and written (fewer than the camera's)."
    )
    max_width: int = Field(
        640, ge=64, le=3840, description="Frames wider than this are shrunk before they enter the ring."
    )
    retention_days: float = Field(7.0, gt=0, le=36500, description="Clips older than this are deleted.")
    max_pending: int = Field(
        4, ge=1, le=64, description="Clips being collected or written at a time; an event beyond that gets none."
    )
    crf: int = Field(28, ge=0, le=51, description="H.264 quality (x264 CRF: lower is better and larger).")


class MediaSettings(StrictModel):
    """How live frames and evidence media are served."""

    signed_url_ttl_s: float = Field(
        60.0, gt=0, le=3600, description="Lifetime of a signed media URL (POST /media/sign) in seconds."
    )
    jpeg_quality: int = Field(80, ge=10, le=100, description="JPEG quality of latest.jpg and MJPEG frames.")
    mjpeg_max_fps: float = Field(5.0, gt=0, le=30, description="Most frames per second an MJPEG stream sends.")
    max_streams: int = Field(16, ge=1, le=1024, description="MJPEG streams served at once; more get 503.")
    live_share_ms: float = Field(
        100.0,
        ge=0,
        le=2000,
        description=(
            "A live JPEG (latest.jpg, MJPEG) of a camera and view is served to other viewers for this many ms "
            "after a newer frame came, so many viewers cost one encode; 0: only requests for the same frame share one."
        ),
    )
    clips: ClipSettings = Field(default_factory=ClipSettings, description="Event clips.")

"""What ``actwatch demo`` runs: OpenCV's vtest.avi as a looping camera with a zone, behaviour-signal rules
that fire on what happens in the clip, and the untrained action head, marked as such.

Measured on vtest.avi with the default detector and tracker (the figures the settings below come from):

* **loitering**: in :data:`VTEST_ZONE` (the walkway around the lamp post, where two people stand and
  talk at the start) one person stays over 15 s (one track with the default tracker); another stops to
  talk right of the sign and passes 10 s there at about 16 s. ``min_dwell_s`` 10 alerts for the first at
  about 11 s of stream time, whatever rate the demo is processed at.
* **running**: nobody runs in vtest.avi. Walking speeds are 0.41 body heights per second (median),
  0.8 (90th percentile), 1.24 (fastest); the service's default ``min_speed`` of 1.5 never fires here. The
  demo lowers it to 0.8, so brisk walkers show the path (first alert at 12-17 s of stream time).
* **fallen**: the detector's own ``Fall`` class. Nobody falls in the clip; the yellow cloth lying on the
  grass is classed ``Fall``, but it lies outside the zone, so it does not alert.
* the untrained action head still runs, and its labels say so: every class is named ``untrained-…``
  (:data:`~actwatch.demo_model.DEMO_CLASSES`) in events, the store and the dashboard's overlay.

Example:
    >>> [rule["label"] for rule in demo_rules("untrained-walking")]
    ['loitering', 'running', 'fallen', 'untrained-walking']
    >>> demo_signals()["running"]["min_speed"]
    0.8
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from actwatch.demo_model import low_bar_rule, offline_detector_section

if TYPE_CHECKING:
    from actwatch.config import AppConfig

DEMO_CAMERA_ID = "vtest"
VTEST_ZONE: tuple[tuple[int, int], ...] = ((330, 170), (560, 140), (560, 300), (330, 310))
"""The demo camera's zone, pixels of vtest.avi (768x576): the walkway around the lamp post."""
LOITERING_MIN_DWELL_S = 10.0
RUNNING_MIN_SPEED = 0.8  # brisk walking: nobody runs in vtest.avi (see the module docstring)


def demo_signals() -> dict[str, Any]:
    """The ``signals:`` section of the demo (see the module docstring for why these values)."""
    return {"loitering": {"min_dwell_s": LOITERING_MIN_DWELL_S}, "running": {"min_speed": RUNNING_MIN_SPEED}}


def demo_rules(model_label: str) -> list[dict[str, Any]]:
    """The demo's alert rules: the three behaviour signals, and ``model_label`` of the untrained head
    (a low bar: its probabilities are near-uniform, and the demo shows the whole path)."""
    return [
        {"label": "loitering", "threshold": 1.0, "n": 1, "m": 1, "cooldown_s": 120, "min_track_age_s": 1},
        {"label": "running", "threshold": 1.0, "n": 3, "m": 5, "cooldown_s": 30, "min_track_age_s": 1},
        {"label": "fallen", "threshold": 0.6, "n": 3, "m": 5, "cooldown_s": 120, "min_track_age_s": 1},
        low_bar_rule(model_label, cooldown_s=60, min_track_age_s=2),
    ]


def demo_app_config(
    *,
    data_dir: Path,
    sample: Path,
    detector: Path,
    model_dir: Path,
    model_label: str,
    server: dict[str, Any] | None = None,
    imgsz: int | None = None,
) -> AppConfig:
    """The whole service configuration of ``actwatch demo``: ``sample`` (vtest.avi) as camera
    :data:`DEMO_CAMERA_ID`, looping in real time, with :data:`VTEST_ZONE` and :func:`demo_rules`."""
    from actwatch.config import AppConfig

    return AppConfig.model_validate(
        {
            "data_dir": str(data_dir),
            "server": server or {},
            # The sample's folder only: files elsewhere stay closed to API clients, as in `serve`.
            "sources": {"file_dirs": [str(Path(sample).resolve().parent)]},
            "cameras": [
                {
                    "id": DEMO_CAMERA_ID,
                    "name": "OpenCV vtest.avi",
                    "url": str(sample),
                    "loop": True,
                    "realtime": True,
                    "zone": [list(point) for point in VTEST_ZONE],
                }
            ],
            "detector": offline_detector_section(detector, imgsz),
            "model": {"dir": str(model_dir)},
            "signals": demo_signals(),
            "alerts": {"rules": demo_rules(model_label)},
        }
    )

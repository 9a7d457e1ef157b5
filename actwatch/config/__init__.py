"""The service's configuration: one strict pydantic model tree, from YAML plus ``ACTWATCH_…`` variables.

Five modules: :mod:`~actwatch.config.sections` (the service's own sections: server, cameras, model,
alerts, storage), :mod:`~actwatch.config.pipeline` (``pipeline:``, the compute loop),
:mod:`~actwatch.config.app` (:class:`AppConfig`, which composes those and the stages' own settings
models: ``capture:`` is :class:`~actwatch.capture.settings.CaptureSettings`, ``detector:`` is
:class:`~actwatch.tracker.detector.DetectorSettings`, ``tracker:`` is
:class:`~actwatch.tracker.bytetrack.TrackerSettings`, ``signals:`` is
:class:`~actwatch.signals.settings.SignalsSettings`), :mod:`~actwatch.config.loading`
(:func:`load_config`) and :mod:`~actwatch.config.secrets` (``${VAR}`` in the YAML and ``*_FILE``
variables: where camera credentials, the token and the database URL come from, masked when shown).

:func:`load_config` reads a YAML file (optional) and the environment; environment variables override
the file. Variables use the ``ACTWATCH_`` prefix and ``__`` between nested keys, e.g.
``ACTWATCH_SERVER__PORT=9000`` or ``ACTWATCH_DETECTOR__DEVICE=cuda:0``; list values are JSON
(``ACTWATCH_SERVER__CORS_ORIGINS='["http://localhost:3000"]'``). Every section forbids unknown keys, and
every error names the key that is wrong (``cameras.0.url: unsupported scheme 'ftp'``).

Relative paths are relative to the working directory of the process. Camera zones are polygons in
**pixels** of that camera's frames (the alert engine compares them with detector boxes in pixels).

Example:
    >>> cfg = AppConfig(cameras=[{"id": "door", "url": "rtsp://user:pw@10.0.0.5/stream"}])
    >>> cfg.server.port, cfg.cameras[0].name
    (8000, 'door')
    >>> "pw" in cfg.public_dict()["cameras"][0]["url"]
    False
"""

from actwatch.capture.settings import CaptureSettings
from actwatch.capture.source_policy import SourcePolicy
from actwatch.config.app import ENV_PREFIX, AppConfig, LogLevel
from actwatch.config.loading import load_config, unknown_env_variables
from actwatch.config.pipeline import PipelineConfig
from actwatch.config.sections import (
    CAMERA_ID_PATTERN,
    MAX_ZONE_POINTS,
    AlertRuleConfig,
    AlertsConfig,
    CameraConfig,
    CameraId,
    Coordinate,
    ModelSection,
    Point,
    PredictionsConfig,
    ServerConfig,
    SourceUrl,
    StorageConfig,
    Zone,
    mask_url,
    validate_source_url,
)
from actwatch.errors import ConfigError
from actwatch.settings import StrictModel, format_validation_error
from actwatch.signals.settings import SignalsSettings
from actwatch.tracker.bytetrack import TrackerSettings
from actwatch.tracker.detector import DetectorSettings

__all__ = [
    "CAMERA_ID_PATTERN",
    "ENV_PREFIX",
    "MAX_ZONE_POINTS",
    "AlertRuleConfig",
    "AlertsConfig",
    "AppConfig",
    "CameraConfig",
    "CameraId",
    "CaptureSettings",
    "ConfigError",
    "Coordinate",
    "DetectorSettings",
    "LogLevel",
    "ModelSection",
    "PipelineConfig",
    "Point",
    "PredictionsConfig",
    "ServerConfig",
    "SignalsSettings",
    "SourcePolicy",
    "SourceUrl",
    "StorageConfig",
    "StrictModel",
    "TrackerSettings",
    "Zone",
    "format_validation_error",
    "load_config",
    "mask_url",
    "unknown_env_variables",
    "validate_source_url",
]

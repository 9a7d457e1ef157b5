"""User-facing errors.

Anything a user can cause (a bad path, a corrupt file, a missing asset, a bad config value) raises a
subclass of :class:`ActwatchError` whose message says what was wrong and what to do. The CLI prints the
message and exits with status 2 instead of showing a traceback.

Example:
    >>> raise AssetMissingError("detector weights not found at /x.pt; run `actwatch assets`")
    Traceback (most recent call last):
    ...
    actwatch.errors.AssetMissingError: detector weights not found at /x.pt; run `actwatch assets`
"""


class ActwatchError(Exception):
    """Base class of errors caused by user input or the environment, shown without a traceback."""


class ConfigError(ActwatchError):
    """A configuration file or value is invalid."""


class AssetMissingError(ActwatchError):
    """A model, detector or sample file is not where it should be."""


class CheckpointError(ActwatchError):
    """A model checkpoint is truncated, foreign or inconsistent."""


class ManifestError(ActwatchError):
    """An exported model folder (manifest.json + ONNX graphs) is missing, corrupt or inconsistent."""


class SourceError(ActwatchError):
    """A camera/video source URL is malformed or uses an unsupported scheme."""

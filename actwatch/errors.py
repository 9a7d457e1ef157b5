"""User-facing errors: every :class:`ActwatchError` subclass of the package, in one place.

Anything a user can cause (a bad path, a corrupt file, a missing asset, a bad config value) raises a
subclass of :class:`ActwatchError` whose message says what was wrong and what to do. The CLI prints the
message and exits with status 2 instead of showing a traceback. :class:`ConfigError` is for settings
(a file or a value the user configured); data on disk and stored state have their own classes.

Example:
    >>> raise AssetMissingError("detector weights not found at /x.pt; run `actwatch assets`")
    Traceback (most recent call last):
    ...
    actwatch.errors.AssetMissingError: detector weights not found at /x.pt; run `actwatch assets`
"""


class ActwatchError(Exception):
    """Base class of errors caused by user input or the environment, shown without a traceback."""


class ConfigError(ActwatchError):
    """A configuration file, a setting or a command-line option is invalid."""


class AssetMissingError(ActwatchError):
    """A model, detector or sample file is not where it should be."""


class CheckpointError(ActwatchError):
    """A model checkpoint is truncated, foreign or inconsistent."""


class ManifestError(ActwatchError):
    """An exported model folder (manifest.json + ONNX graphs) is missing, corrupt or inconsistent."""


class SourceError(ActwatchError):
    """A camera/video source URL is malformed, uses an unsupported scheme, or a video cannot be read."""


class DatasetError(ActwatchError):
    """A dataset folder is missing, incomplete, corrupt or was extracted with other settings."""


class LayoutError(ActwatchError):
    """The source folder does not match the requested (or any) input layout."""


class StateError(ActwatchError):
    """Stored state (a training run to resume, a stored API token) is missing, foreign or unusable."""


class FeatureCacheUnsupportedError(ActwatchError):
    """The model has no separate encoder/head (R3D-18), so crops cannot be encoded one by one."""


class ExportError(ActwatchError):
    """An export could not be written or did not reproduce the PyTorch outputs."""


class InstallError(ActwatchError):
    """The installed packages cannot work together (e.g. two ONNX Runtime builds in one environment)."""

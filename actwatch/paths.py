"""Where actwatch keeps files of its own: the asset cache folder.

The lowest layer of the package (it imports nothing from actwatch), so both the asset fetcher
(:mod:`actwatch.assets`) and the Ultralytics set-up (:mod:`actwatch.tracker.ultralytics_env`) can use it.

Example:
    >>> import os
    >>> os.environ["ACTWATCH_CACHE_DIR"] = "/tmp/aw-cache"
    >>> default_cache_dir()
    PosixPath('/tmp/aw-cache')
    >>> ultralytics_config_dir()
    PosixPath('/tmp/aw-cache/ultralytics')
    >>> del os.environ["ACTWATCH_CACHE_DIR"]
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "ACTWATCH_CACHE_DIR"
"""The environment variable that moves the cache."""
SAMPLE_VIDEO_ENV = "ACTWATCH_SAMPLE_VIDEO"
"""The environment variable naming a local copy of the sample video (see actwatch.assets)."""
PROJECT_ENV_VARS = frozenset({CACHE_DIR_ENV, SAMPLE_VIDEO_ENV})
"""``ACTWATCH_`` variables that are not configuration keys (``load_config`` does not warn about them)."""


def default_cache_dir() -> Path:
    """``$ACTWATCH_CACHE_DIR`` if set, else ``~/.cache/actwatch``."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "actwatch"


def ultralytics_config_dir(cache_dir: Path | None = None) -> Path:
    """Ultralytics' settings folder inside the cache (``cache_dir`` or :func:`default_cache_dir`)."""
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "ultralytics"

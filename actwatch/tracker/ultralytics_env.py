"""Keep Ultralytics offline, quiet and out of the user's home.

Ultralytics reads its switches from the environment once, when ``ultralytics.utils`` is first imported:
``YOLO_OFFLINE`` (no DNS probe, no analytics, no downloads), ``YOLO_AUTOINSTALL`` (``check_requirements``
would otherwise ``pip install`` missing packages at run time), ``YOLO_VERBOSE`` and ``YOLO_CONFIG_DIR``
(where ``settings.json`` is written at import). ``ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS`` makes
``check_requirements`` return at once, so no version probing or install attempt happens at all; a
genuinely missing package then fails with a plain ``ImportError`` instead of a silent install.

Only the ``train`` extra's work needs Ultralytics (fetching or exporting a ``.pt`` detector, training);
serving never imports it (the tracker is :mod:`actwatch.tracker.bytetrack`, on numpy). Every actwatch
module that needs Ultralytics imports it lazily, right after calling :func:`configure_ultralytics`. If
something imported Ultralytics earlier (a notebook, a test plugin), the module-level copies of those
switches are patched as well, so the guarantees still hold.

Example:
    >>> from actwatch.tracker.ultralytics_env import configure_ultralytics
    >>> cfg = configure_ultralytics()
    >>> import os; os.environ["YOLO_OFFLINE"]
    '1'
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from actwatch.errors import ActwatchError
from actwatch.paths import CACHE_DIR_ENV, ultralytics_config_dir

log = logging.getLogger(__name__)

# Values forced regardless of what the user's environment says: run-time installs and downloads are never
# acceptable in this service.
FORCED_ENV: dict[str, str] = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS": "1",
}


def configure_ultralytics(config_dir: Path | None = None) -> Path:
    """Set the environment Ultralytics reads at import; return the settings folder used.

    ``config_dir`` defaults to ``<actwatch cache>/ultralytics``. ``YOLO_VERBOSE`` is set to ``false``
    unless the user set it. Safe to call many times. An unwritable folder is an
    :class:`~actwatch.errors.ActwatchError` that says what to set.
    """
    config_dir = Path(config_dir).expanduser() if config_dir is not None else ultralytics_config_dir()
    try:
        config_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a cache inside a root-owned image folder, run as an unprivileged user
        raise ActwatchError(
            f"cannot create Ultralytics' settings folder {config_dir}: {exc.strerror or exc}; "
            f"set {CACHE_DIR_ENV} to a writable folder"
        ) from exc

    os.environ.update(FORCED_ENV)
    os.environ.setdefault("YOLO_VERBOSE", "false")
    already = "ultralytics.utils" in sys.modules
    if not already:
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    else:
        # Too late for the settings file location (it was opened at import), but not for the switches.
        _patch_imported_ultralytics()
    return config_dir


def _patch_imported_ultralytics() -> None:
    """Force the offline/no-install switches in an Ultralytics imported before we configured it."""
    for name in ("ultralytics.utils", "ultralytics.utils.checks", "ultralytics.utils.events"):
        module = sys.modules.get(name)
        if module is None:
            continue
        for flag in ("ONLINE", "AUTOINSTALL"):
            if hasattr(module, flag):
                setattr(module, flag, False)
        tracker = getattr(module, "events", None)  # the analytics sender decided `enabled` at import
        if tracker is not None and hasattr(tracker, "enabled"):
            tracker.enabled = False
    log.debug("ultralytics was imported before configure_ultralytics(); patched ONLINE/AUTOINSTALL in place")

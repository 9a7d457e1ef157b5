"""The API's bearer token: configured, or generated once and kept in ``<data_dir>/token`` (mode 0600).

Example:
    >>> import tempfile, pathlib
    >>> from actwatch.config import AppConfig
    >>> cfg = AppConfig(data_dir=pathlib.Path(tempfile.mkdtemp()))
    >>> shown = []
    >>> token = resolve_token(cfg, announce=shown.append)
    >>> resolve_token(cfg, announce=shown.append) == token, len(shown), token_matches(token, token)
    (True, 1, True)
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from actwatch.config import AppConfig
from actwatch.errors import StateError

log = logging.getLogger(__name__)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_token(config: AppConfig, announce: Callable[[str], None] = _stderr) -> str:
    """The configured token, else the stored one, else a new one (stored 0600 and announced once).

    The generated token goes to ``announce`` (stderr by default), never to the log.
    """
    if config.server.token is not None:
        return config.server.token.get_secret_value()
    path = config.token_path
    if path.exists():
        return _stored_token(path)
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two services starting at once must not overwrite each other's token.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return resolve_token(config, announce)
    except OSError as exc:
        raise StateError(
            f"cannot store the generated API token in {path}: {exc.strerror or exc}; give the service's user "
            "write access to data_dir, or set server.token"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    announce(f"actwatch: generated API token (stored in {path}): {token}")
    return token


def _stored_token(path: Path) -> str:
    """The token kept in ``path``; :class:`StateError` when it cannot be read or is not a usable token."""
    fix = f"delete {path} to generate a new token, or set server.token"
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        data = path.read_bytes()
    except OSError as exc:  # a folder named token, no read access
        raise StateError(f"cannot read the stored API token {path}: {exc.strerror or exc}; {fix}") from None
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o); run: chmod 600 %s", path, mode, path)
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise StateError(f"{path}: the stored API token is not text; {fix}") from None
    if len(token) < 16 or not token.isprintable():
        raise StateError(f"{path}: the stored API token is too short or holds control characters; {fix}")
    return token


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of ``given`` with ``expected``."""
    if not given:
        return False
    return secrets.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def bearer_from_header(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None

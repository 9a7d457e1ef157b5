"""The one atomic file writer and the one file hash of the package.

Readers of a file written here see either the old file or the whole new one, never half of it: the
content goes to a uniquely named temporary file (or folder) beside the target, is flushed to disk, and
is then renamed over the target. A failure leaves the target as it was and removes the temporary.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> atomic_write_text(root / "a" / "hello.txt", "hi\\n")
    >>> (root / "a" / "hello.txt").read_text()
    'hi\\n'
    >>> with atomic_path(root / "dir") as tmp:   # a whole folder, moved into place at once
    ...     tmp.mkdir()
    ...     _ = (tmp / "x").write_text("1")
    >>> sorted(p.name for p in (root / "dir").iterdir())
    ['x']
    >>> sha256_file(root / "a" / "hello.txt")[:12]
    '98ea6e4f216f'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: Path, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``target``; on success move it over ``target``.

    The block creates the file or folder at the yielded path (any writer: ``torch.save``,
    ``cv2.imwrite``, ``Path.write_bytes``). A file is fsynced before the rename. ``mode`` sets the
    permission bits of a file (e.g. ``0o600`` for private media). A folder target replaces an existing
    folder. On an exception the temporary is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unique per call: two writers of the same target (threads, processes) never share a temporary.
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        if tmp.is_dir():
            if target.is_dir():
                shutil.rmtree(target)
        else:
            if mode is not None:
                os.chmod(tmp, mode)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: Path, obj: Any, *, only_if_changed: bool = False, indent: int | None = 2) -> bool:
    """Write ``obj`` as JSON atomically; with ``only_if_changed`` an identical file is left alone.

    Returns whether the file was written.
    """
    text = json.dumps(obj, indent=indent, sort_keys=False) + "\n"
    if only_if_changed:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if Path(path).read_text(encoding="utf-8") == text:
                return False
    atomic_write_text(path, text)
    return True


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in ``chunk``-byte blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()

"""The service's data folder: made and checked before anything is put there, and held by one process.

Two services on one ``data_dir`` would write the same events database and camera file, and each clears
the upload jobs' folder when it starts (a job of the other fails). ``actwatch serve``, ``demo`` and
``hub`` therefore hold an exclusive lock on ``<data_dir>/.actwatch.lock`` while they run (``flock``: the
kernel lets it go when the process ends, however it ends, so a killed service never leaves it stuck);
a second one stops at start-up with the holder's pid.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "new"
    >>> with hold_data_dir(folder):  # made, checked and held
    ...     hold_data_dir(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    actwatch.errors.StateError: data_dir .../new is in use by another actwatch process (pid ...); ...
    >>> hold_data_dir(folder).release()  # let go at the end of the with block
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

from actwatch.errors import StateError

LOCK_NAME = ".actwatch.lock"


def prepare_data_dir(path: Path) -> None:
    """Create ``path`` if needed and check that this process can write in it, before anything else is
    put there; a :class:`~actwatch.errors.StateError` says what is wrong and what to do."""
    if path.exists() and not path.is_dir():
        raise StateError(f"data_dir {path} is not a folder; set data_dir to a folder the service may write in")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise StateError(
            f"cannot write in data_dir {path}: {exc.strerror or exc}; give the service's user write access "
            "to it, or set data_dir to another folder"
        ) from None


class DataDirLock:
    """This process's hold on a data folder (see the module); :meth:`release`, or the end of a ``with``
    block, lets it go."""

    def __init__(self, path: Path, file: IO[str]) -> None:
        self.path = path
        self._file = file

    def release(self) -> None:
        self._file.close()  # closing the descriptor drops the flock

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def hold_data_dir(path: Path) -> DataDirLock:
    """Prepare ``path`` (:func:`prepare_data_dir`) and lock it for this process, or raise a
    :class:`~actwatch.errors.StateError` saying what is wrong or naming the process that holds it."""
    prepare_data_dir(path)
    lock_path = path / LOCK_NAME
    file = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the process's life
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        file.seek(0)
        holder = file.read().strip()[:20] or "unknown"
        file.close()
        raise StateError(
            f"data_dir {path} is in use by another actwatch process (pid {holder}); stop that one first, or "
            "give this one its own data_dir"
        ) from None
    file.seek(0)
    file.truncate()
    file.write(f"{os.getpid()}\n")
    file.flush()
    return DataDirLock(path, file)

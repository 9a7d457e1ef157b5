"""Helpers shared by the command modules: option parsing and how library warnings are shown.

Options that set a settings model's field default to ``None`` ("not given") and the model's own
default applies (:func:`settings_from_options`), so no default is written twice.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from actwatch.errors import ConfigError
from actwatch.settings import validation_problems

T = TypeVar("T")


def settings_from_options(build: Callable[..., T], what: str, *args: Any, **options: Any) -> T:
    """``build(*args, **options)`` with the options that were not given (``None``) left out.

    ``build`` is a settings model (or a factory of one); its defaults apply to every option left out.
    An invalid value is a :class:`ConfigError` naming ``what`` and each bad field.

    Example:
        >>> from pydantic import BaseModel
        >>> class Detector(BaseModel):
        ...     imgsz: int = 640
        ...     conf: float = 0.25
        >>> settings_from_options(Detector, "detector options", imgsz=320, conf=None)
        Detector(imgsz=320, conf=0.25)
        >>> settings_from_options(Detector, "detector options", imgsz="big")
        Traceback (most recent call last):
        ...
        actwatch.errors.ConfigError: invalid detector options: imgsz: Input should be a valid integer, ...
    """
    given = {name: value for name, value in options.items() if value is not None}
    try:
        return build(*args, **given)
    except ValidationError as exc:
        raise ConfigError(f"invalid {what}: {'; '.join(validation_problems(exc))}") from None


@contextmanager
def warnings_as_messages() -> Iterator[None]:
    """Show library warnings (e.g. pretrained weights unavailable) as one 'warning:' line each, once.

    Example:
        >>> with warnings_as_messages():
        ...     warnings.warn("no ImageNet weights")  # printed as "warning: no ImageNet weights"
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for item in caught:
        text = str(item.message)
        if not issubclass(item.category, DeprecationWarning) and text not in seen:
            seen.add(text)
            typer.echo(f"warning: {text}", err=True)


def parse_size(text: str) -> tuple[int, int]:
    """``--input-size``: ``112`` -> (112, 112); ``128x96`` -> (128, 96) as (height, width).

    Example:
        >>> parse_size("128x96")
        (128, 96)
    """
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) in (1, 2) and all(p > 0 for p in parts):
        return (parts[0], parts[-1])
    raise ConfigError(f"--input-size {text!r}: give one number (square) or HEIGHTxWIDTH, e.g. 112 or 128x96")

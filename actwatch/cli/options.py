"""Helpers shared by the command modules: option parsing and how library warnings are shown."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from actwatch.errors import ConfigError


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

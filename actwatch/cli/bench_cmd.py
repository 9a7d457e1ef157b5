"""``actwatch bench``: pipeline throughput, latency, memory, and feature caching against the naive path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("bench")
    def bench(
        cameras: Annotated[int | None, typer.Option(min=1, max=64, help="Copies of vtest.avi run as cameras.")] = None,
        frames: Annotated[int | None, typer.Option(min=1, help="Frames per camera.")] = None,
        loop: Annotated[bool | None, typer.Option(help="Restart the clip until --frames (for long runs).")] = None,
        duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (memory soak).")] = None,
        imgsz: Annotated[int | None, typer.Option(help="Detector input size.")] = None,
        stride: Annotated[int | None, typer.Option(min=1, help="Classify each track every N new samples.")] = None,
        seq_len: Annotated[int | None, typer.Option(min=2, help="Window length of the generated model.")] = None,
        input_size: Annotated[int | None, typer.Option(min=32, help="Crop size of the generated model.")] = None,
        naive: Annotated[bool | None, typer.Option(help="Also time the naive method on the same windows.")] = None,
        naive_every: Annotated[int | None, typer.Option(min=1, help="Time the naive method every n-th step.")] = None,
        model: Annotated[Path | None, typer.Option(help="Exported model folder (default: generated).")] = None,
        video: Annotated[Path | None, typer.Option(help="Video file (default: vtest.avi).")] = None,
        providers: Annotated[
            str | None,
            typer.Option(help="ONNX Runtime providers, comma-separated (default: best available)."),
        ] = None,
        device: Annotated[str | None, typer.Option(help="Detector device, e.g. cpu or cuda:0.")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    ) -> None:
        """Run the streaming pipeline as fast as it goes and print per-stage figures.

        Options not given keep the defaults of actwatch.bench.BenchConfig: 2 cameras, 200 frames each,
        imgsz 640, stride 1, a generated 30-crop 112x112 model, the naive method timed on every step.
        """
        from actwatch.bench import BenchConfig, run_benchmark

        given: dict[str, Any] = {
            "cameras": cameras,
            "frames": frames,
            "loop": loop,
            "duration_s": duration,
            "imgsz": imgsz,
            "stride": stride,
            "seq_len": seq_len,
            "input_size": (input_size, input_size) if input_size is not None else None,
            "naive": naive,
            "naive_every": naive_every,
            "model_dir": model,
            "video": video,
            "providers": [p.strip() for p in providers.split(",")] if providers else None,
            "device": device,
        }
        cfg = BenchConfig(**{name: value for name, value in given.items() if value is not None})
        result = run_benchmark(cfg, progress=not json_out)
        typer.echo(result.to_json() if json_out else result.table())

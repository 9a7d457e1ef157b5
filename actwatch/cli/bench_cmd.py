"""``actwatch bench``: pipeline throughput, latency, memory, and feature caching against the naive path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("bench")
    def bench(
        cameras: Annotated[int, typer.Option(min=1, max=64, help="Copies of vtest.avi run as cameras.")] = 2,
        frames: Annotated[int, typer.Option(min=1, help="Frames per camera.")] = 200,
        loop: Annotated[bool, typer.Option(help="Restart the clip until --frames (for long runs).")] = False,
        duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (memory soak).")] = None,
        imgsz: Annotated[int, typer.Option(help="Detector input size.")] = 640,
        stride: Annotated[int, typer.Option(min=1, help="Classify each track every N new samples.")] = 1,
        seq_len: Annotated[int, typer.Option(min=2, help="Window length of the generated model.")] = 30,
        input_size: Annotated[int, typer.Option(min=32, help="Crop size of the generated model.")] = 112,
        naive: Annotated[bool, typer.Option(help="Also time the naive method on the same windows.")] = True,
        naive_every: Annotated[int, typer.Option(min=1, help="Time the naive method every n-th step.")] = 1,
        model: Annotated[Path | None, typer.Option(help="Exported model folder (default: generated).")] = None,
        video: Annotated[Path | None, typer.Option(help="Video file (default: vtest.avi).")] = None,
        providers: Annotated[
            str | None,
            typer.Option(help="ONNX Runtime providers, comma-separated (default: best available)."),
        ] = None,
        device: Annotated[str, typer.Option(help="Detector device: cpu or cuda:0.")] = "cpu",
        json_out: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    ) -> None:
        """Run the streaming pipeline as fast as it goes and print per-stage figures."""
        from actwatch.bench import BenchConfig, run_benchmark

        cfg = BenchConfig(
            cameras=cameras,
            frames=frames,
            loop=loop,
            duration_s=duration,
            imgsz=imgsz,
            stride=stride,
            seq_len=seq_len,
            input_size=(input_size, input_size),
            naive=naive,
            naive_every=naive_every,
            model_dir=model,
            video=video,
            providers=[p.strip() for p in providers.split(",")] if providers else None,
            device=device,
        )
        result = run_benchmark(cfg, progress=not json_out)
        typer.echo(result.to_json() if json_out else result.table())

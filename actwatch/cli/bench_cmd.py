"""``actwatch bench``: pipeline throughput, latency, memory, and feature caching against the naive path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("bench")
    def bench(
        cameras: Annotated[int | None, typer.Option(min=1, max=256, help="Copies of vtest.avi run as cameras.")] = None,
        sweep: Annotated[
            str | None,
            typer.Option(help="Camera counts to run in turn, comma-separated (e.g. 1,2,4); one table."),
        ] = None,
        sequential: Annotated[
            bool, typer.Option("--sequential", help="Run the one-thread loop (the baseline) instead of the pipeline.")
        ] = False,
        both: Annotated[
            bool, typer.Option("--both", help="Run the sequential loop and the pipeline, side by side.")
        ] = False,
        rate: Annotated[
            str | None,
            typer.Option(help="max: frames as fast as the pipeline takes them; native: the clip's frame rate."),
        ] = None,
        frames: Annotated[int | None, typer.Option(min=1, help="Frames per camera.")] = None,
        loop: Annotated[bool | None, typer.Option(help="Restart the clip until --frames (for long runs).")] = None,
        duration: Annotated[
            float | None, typer.Option(min=0.001, help="Stop after this many seconds (memory soak).")
        ] = None,
        imgsz: Annotated[int | None, typer.Option(help="Detector input size.")] = None,
        stride: Annotated[int | None, typer.Option(min=1, help="Classify each track every N new samples.")] = None,
        seq_len: Annotated[int | None, typer.Option(min=2, help="Window length of the generated model.")] = None,
        input_size: Annotated[int | None, typer.Option(min=32, help="Crop size of the generated model.")] = None,
        naive: Annotated[bool | None, typer.Option(help="Also time the naive method on the same windows.")] = None,
        naive_every: Annotated[int | None, typer.Option(min=1, help="Time the naive method every n-th step.")] = None,
        model: Annotated[Path | None, typer.Option(help="Exported model folder (default: generated).")] = None,
        video: Annotated[Path | None, typer.Option(help="Video file (default: vtest.avi).")] = None,
        detector: Annotated[
            Path | None,
            typer.Option(
                help="Person detector graph (default: the cached serving detector), e.g. the int8 copy of "
                "`actwatch quantize-detector`."
            ),
        ] = None,
        providers: Annotated[
            str | None,
            typer.Option(help="ONNX Runtime providers, comma-separated (default: best available)."),
        ] = None,
        device: Annotated[str | None, typer.Option(help="Detector device, e.g. cpu or cuda:0.")] = None,
        preprocess: Annotated[
            str | None,
            typer.Option(
                help="Where frames and crops become network inputs (detector.preprocess and model.preprocess): "
                "auto, host or graph."
            ),
        ] = None,
        detect_batch: Annotated[
            int | None,
            typer.Option(min=1, help="Frames per detector call, pipelined (default auto: 1 on a CPU, all on a GPU)."),
        ] = None,
        frame_wait_ms: Annotated[
            int | None,
            typer.Option(
                min=0,
                max=1000,
                help="Pipelined: wait this long at most for a camera's frame due that soon (default auto: 30 "
                "on a CPU, 0 on a GPU).",
            ),
        ] = None,
        detect_workers: Annotated[
            int | None,
            typer.Option(
                min=1,
                max=64,
                help="Pipelined: detector threads side by side, each on its own frames (pipeline.detect_workers; "
                "default auto: 1).",
            ),
        ] = None,
        detect_niceness: Annotated[
            int | None,
            typer.Option(
                min=0,
                max=19,
                help="Pipelined: the detector threads' OS niceness (default auto: 10 on a CPU, 0 on a GPU).",
            ),
        ] = None,
        replay_detections: Annotated[
            bool,
            typer.Option(
                "--replay-detections",
                help="Detect each frame of the clip once before the run and replay the answers: the run "
                "measures everything but the detector (what a GPU leaves to the host; the CPU's stand-in).",
            ),
        ] = False,
        processes: Annotated[
            int | None,
            typer.Option(
                min=1,
                max=64,
                help="Split the cameras over this many processes, each running its own pipeline on the same "
                "device (what N services on one box do), started together; their figures pooled.",
            ),
        ] = None,
        intra_op_threads: Annotated[
            int | None,
            typer.Option(
                min=1,
                max=256,
                help="ONNX Runtime intra-op threads of the detector and the action model (default: every core; "
                "with --processes, the cores divided among the processes).",
            ),
        ] = None,
        gpu_wait: Annotated[
            str | None,
            typer.Option(
                help="How threads wait for the GPU (pipeline.gpu_wait): auto, spin, yield or blocking "
                "(sleep until it is done, freeing the core)."
            ),
        ] = None,
        batch_padding: Annotated[
            str | None,
            typer.Option(
                help="The detector's and the action model's batch padding (detector.batch_padding, "
                "model.batch_padding): auto, fixed (every call one shape), pow2 (powers of two, a session each) "
                "or off."
            ),
        ] = None,
        rect: Annotated[
            bool | None,
            typer.Option(
                "--rect/--no-rect",
                help="The detector's input fitted to the clip's aspect, or a square (detector.rect; default auto: "
                "fitted unless the detector runs on CUDA or TensorRT).",
                show_default=False,
            ),
        ] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    ) -> None:
        """Run the streaming pipeline on K looping cameras and print per-stage figures.

        Options not given keep the defaults of actwatch.bench.BenchConfig: 2 cameras, 200 frames each,
        imgsz 640, stride 1, a generated 30-crop 112x112 model, the naive method timed on every step,
        the pipelined runtime, frames as fast as it takes them.
        """
        import json

        from actwatch.bench import BenchConfig, Runtime, run_benchmark, run_sweep, sweep_table
        from actwatch.bench_report import thread_cpu_table
        from actwatch.errors import ConfigError
        from actwatch.onnx_choices import BatchPadding, GpuWait, Preprocess, choices, worded

        if rate not in (None, "max", "native"):
            raise ConfigError(f"--rate must be max or native, not {rate!r}")
        if preprocess is not None and preprocess not in choices(Preprocess):
            raise ConfigError(f"--preprocess must be {worded(Preprocess)}, not {preprocess!r}")
        if gpu_wait is not None and gpu_wait not in choices(GpuWait):
            raise ConfigError(f"--gpu-wait must be {worded(GpuWait)}, not {gpu_wait!r}")
        if batch_padding is not None and batch_padding not in choices(BatchPadding):
            raise ConfigError(f"--batch-padding must be {worded(BatchPadding)}, not {batch_padding!r}")
        if sequential and both:
            raise ConfigError("--sequential and --both exclude each other: give one")
        counts: list[int] | None = None
        if sweep is not None:
            try:
                counts = [int(k) for k in sweep.split(",") if k.strip()]
            except ValueError:
                counts = []
            if not counts or min(counts) < 1:
                raise ConfigError(f"--sweep takes camera counts >= 1, comma-separated (e.g. 1,2,4), not {sweep!r}")

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
            "detector": detector,
            "providers": [p.strip() for p in providers.split(",")] if providers else None,
            "device": device,
            "rate": rate,
            "preprocess": preprocess,
            "replay_detections": replay_detections or None,
            "detect_batch": detect_batch,
            "frame_wait_ms": frame_wait_ms,
            "detect_niceness": detect_niceness,
            "detect_workers": detect_workers,
            "runtime": "sequential" if sequential else None,
            "processes": processes,
            "intra_op_threads": intra_op_threads,
            "gpu_wait": gpu_wait,
            "rect": rect,
            "batch_padding": batch_padding,
        }
        cfg = BenchConfig(**{name: value for name, value in given.items() if value is not None})
        if counts is None and not both:
            result = run_benchmark(cfg, progress=not json_out)
            typer.echo(result.to_json() if json_out else result.table())
            return
        runtimes: list[Runtime] = ["sequential", "pipelined"] if both else [cfg.runtime]
        results = run_sweep(cfg, counts or [cfg.cameras], runtimes, progress=not json_out)
        if json_out:
            typer.echo(json.dumps({"runs": [r.to_dict() for r in results]}, indent=2, default=str))
        else:
            typer.echo(sweep_table(results))
            typer.echo("\nCPU time per processed frame, by thread (ONNX Runtime's and the codecs' threads as one):\n")
            typer.echo(thread_cpu_table(results))

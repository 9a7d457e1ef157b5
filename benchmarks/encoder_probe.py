"""Where the action model's encoder spends its time on this machine's ONNX Runtime providers.

On the GPU sweeps (README, Benchmarks) the encode phase took 35-43 ms per frame at one camera on an
H100 and an H200 (about 1.1 ms per crop, what this project's 2-core CPU takes), with the GPU 5-12% busy.
This times the encoder graph alone, per batch size, under several CUDA provider settings (cuDNN's
algorithm search: ``HEURISTIC``, the project's setting, ``EXHAUSTIVE`` and ``DEFAULT``; NHWC layout),
then through :class:`~actwatch.model.runtime.ActionRuntime` (the service's path: uint8 input converted
in the graph, batches padded), and prints ms per call and per crop side by side. ``--alternate`` times
calls whose batch size changes against calls that repeat it: one session (ONNX Runtime's CUDA
convolutions rebuild their cuDNN plans at each change), a session per size, fixed and pow2 padding (with
``--detector-sizes``, the person detector's too: :mod:`actwatch.onnx_batches`). With
``--profile`` it also writes ONNX Runtime's per-node profile of one setting and prints which provider
ran each node and the costliest nodes (a node left on the CPU inside a GPU graph shows there).

Without a GPU only the CPU provider runs (how it is tested here):

    .venv/bin/python benchmarks/encoder_probe.py --model MODEL_DIR --batches 1,8 --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from actwatch.model.manifest import load_manifest
from actwatch.model.runtime import ActionRuntime
from actwatch.onnx_choices import CPU, CUDA
from actwatch.onnx_providers import select_providers

# (name, CUDA provider options); the first is what actwatch sets (onnx_providers.session_providers)
CUDA_VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("cuda heuristic", {"cudnn_conv_algo_search": "HEURISTIC"}),
    ("cuda exhaustive", {"cudnn_conv_algo_search": "EXHAUSTIVE"}),
    ("cuda default", {"cudnn_conv_algo_search": "DEFAULT"}),
    ("cuda heuristic nhwc", {"cudnn_conv_algo_search": "HEURISTIC", "prefer_nhwc": "1"}),
]


def batch_sizes(text: str) -> list[int]:
    """Batch sizes, comma-separated (argparse type: a bad list exits 2 with a message)."""
    try:
        out = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        out = [0]
    if any(b < 1 for b in out):
        raise argparse.ArgumentTypeError(
            f"batch sizes are positive integers, comma-separated (e.g. 1,8,64), not {text!r}"
        )
    return out


def timed(run: Any, runs: int) -> float:
    """Median ms of ``runs`` calls of ``run`` after two untimed ones (first-shape preparation)."""
    run()
    run()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(1000.0 * (time.perf_counter() - t0))
    return statistics.median(times)


def alternating(call: Any, sizes: list[int], rounds: int) -> tuple[float, float, float]:
    """Median ms of the calls whose batch size repeats the previous call's, median and max ms of those
    whose size changed, over ``rounds`` passes of ``sizes`` (each size run twice beforehand)."""
    for b in sizes:
        call(b)
        call(b)
    same: list[float] = []
    changed: list[float] = []
    last = sizes[-1]
    for _ in range(rounds):
        for b in sizes:
            t0 = time.perf_counter()
            call(b)
            (same if b == last else changed).append(1000.0 * (time.perf_counter() - t0))
            last = b
    return (statistics.median(same) if same else float("nan"), statistics.median(changed), max(changed))


def session(path: Path, providers: list[Any], profile: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "encoder")
    return ort.InferenceSession(str(path), options, providers=providers)


def node_summary(profile_file: str, top: int) -> list[str]:
    """Per provider: nodes and total ms; then the ``top`` costliest nodes (summed over the runs)."""
    events = json.loads(Path(profile_file).read_text())
    by_provider: dict[str, list[float]] = defaultdict(list)
    by_node: dict[tuple[str, str, str], float] = defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        args = e.get("args", {})
        provider, op = str(args.get("provider", "?")), str(args.get("op_name", "?"))
        by_provider[provider].append(e["dur"] / 1000.0)
        by_node[(e["name"].removesuffix("_kernel_time"), op, provider)] += e["dur"] / 1000.0
    lines = [f"  {p}: {len(d)} node runs, {sum(d):.1f} ms" for p, d in sorted(by_provider.items())]
    for (name, op, provider), ms in sorted(by_node.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {ms:8.2f} ms  {op:<12} {provider:<24} {name}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="an exported split model folder (manifest.json)")
    ap.add_argument("--batches", type=batch_sizes, default="1,8,64,256", help="crops per call, comma-separated")
    ap.add_argument("--runs", type=int, default=20, help="timed calls per batch size (median reported)")
    ap.add_argument("--providers", default="auto", help="auto (the best usable, as the service) or cpu")
    ap.add_argument(
        "--alternate",
        type=batch_sizes,
        default="",
        help="batch sizes called in turn (e.g. 8,8,4,8,16): ms when the size repeats / changes",
    )
    ap.add_argument(
        "--detector-sizes",
        type=batch_sizes,
        default="",
        help="with --alternate: the person detector's frames per call, in turn",
    )
    ap.add_argument(
        "--max-batch", type=int, default=32, help="the runtime's model.max_batch (the service's at 1-4 cameras)"
    )
    ap.add_argument("--profile", type=int, default=0, help="batch size to profile per node (0: none)")
    args = ap.parse_args(argv)

    manifest = load_manifest(args.model)
    if not manifest.split:
        print("error: the model is not split into encoder and head (nothing to probe)", file=sys.stderr)
        return 2
    graph = args.model / manifest.graphs["encoder"].file
    h, w = manifest.input_spec().input_size
    batches: list[int] = args.batches
    rng = np.random.default_rng(0)
    floats = {b: rng.standard_normal((b, 3, h, w)).astype(np.float32) for b in batches}
    crops = {b: rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8) for b in batches}
    name = manifest.graphs["encoder"].inputs[0]

    selected = select_providers(None if args.providers == "auto" else [args.providers])
    variants: list[tuple[str, list[Any]]] = [("cpu", [CPU])]
    if CUDA in [p.split(":")[0] for p in selected]:
        variants = [(label, [(CUDA, opts), CPU]) for label, opts in CUDA_VARIANTS] + variants
    print(f"onnxruntime {ort.__version__}, providers usable: {', '.join(selected)}; encoder {graph.name} {h}x{w}")
    header = "| setting | " + " | ".join(f"batch {b} ms (per crop)" for b in batches) + " |"
    print(header)
    print("| --- " * (len(batches) + 1) + "|")
    for label, providers in variants if batches else []:
        try:
            t0 = time.perf_counter()
            s = session(graph, providers)
            cells = []
            for b in batches:
                ms = timed(lambda b=b, s=s: s.run(None, {name: floats[b]}), args.runs)
                cells.append(f"{ms:.2f} ({ms / b:.3f})")
            print(
                f"| {label} (session on {s.get_providers()[0]}, {time.perf_counter() - t0:.1f} s in all) | "
                + " | ".join(cells)
                + " |",
                flush=True,
            )
        except Exception as exc:  # one setting this build refuses must not hide the others
            print(f"| {label} | failed: {exc} |", flush=True)
    asked = None if args.providers == "auto" else [args.providers]
    runtime = ActionRuntime(args.model, asked, max_batch=args.max_batch)
    cells = []
    for b in batches:
        ms = timed(lambda b=b: runtime.encode(crops[b]), args.runs)
        cells.append(f"{ms:.2f} ({ms / b:.3f})")
    print(
        f"| ActionRuntime.encode (uint8 in graph: {runtime.preprocess_in_graph}, padding: {runtime.padding}, "
        f"{runtime.providers[0]}) | " + " | ".join(cells) + " |",
        flush=True,
    )

    if args.alternate:
        sizes: list[int] = args.alternate
        x = {b: rng.standard_normal((b, 3, h, w)).astype(np.float32) for b in sizes}
        u = {b: rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8) for b in sizes}
        print(f"alternating batch sizes {sizes} x 10: ms median when the size repeats | median / max when it changes")
        # the project's setting only: the others cost 210-295 ms a call (default) or 1-1.6 s a change
        # (exhaustive) on an H100 and an H200, and ran the probe past its time on the GPU machine
        for label, providers in variants[:1]:
            s = session(graph, providers)
            same, changed, worst = alternating(lambda b, s=s: s.run(None, {name: x[b]}), sizes, 10)
            print(f"  {label}: {same:.2f} | {changed:.2f} / {worst:.2f}", flush=True)
        per_size = {b: session(graph, variants[0][1]) for b in set(sizes)}
        same, changed, worst = alternating(lambda b: per_size[b].run(None, {name: x[b]}), sizes, 10)
        print(f"  {variants[0][0]}, one session per size: {same:.2f} | {changed:.2f} / {worst:.2f}", flush=True)
        pow2 = ActionRuntime(args.model, asked, max_batch=args.max_batch, padding="pow2")  # a session per size
        for rt in (pow2, runtime):
            same, changed, worst = alternating(lambda b, rt=rt: rt.encode(u[b]), sizes, 10)
            print(f"  ActionRuntime.encode, padding {rt.padding}: {same:.2f} | {changed:.2f} / {worst:.2f}", flush=True)
        big = max(sizes)
        same, changed, worst = alternating(lambda b: per_size[big].run(None, {name: x[big]}), sizes, 10)
        print(f"  {variants[0][0]}, every call padded to {big}: {same:.2f} | {changed:.2f} / {worst:.2f}", flush=True)
        assert runtime.feature_dim is not None
        feats = {
            b: rng.standard_normal((b, runtime.spec.seq_len, runtime.feature_dim)).astype(np.float32) for b in sizes
        }
        for rt in (pow2, runtime):
            same, changed, worst = alternating(lambda b, rt=rt: rt.classify(feats[b]), sizes, 10)
            print(
                f"  ActionRuntime.classify (the head), padding {rt.padding}: {same:.2f} | {changed:.2f} / {worst:.2f}"
            )
        if args.detector_sizes:
            from actwatch.assets import ensure_detector
            from actwatch.tracker.detector import DetectorSettings, PersonDetector

            device = "cpu" if args.providers == "cpu" else None
            weights = ensure_detector(fetch=False)
            dsizes: list[int] = args.detector_sizes
            frames = np.zeros((480, 640, 3), np.uint8)
            for padding in ("pow2", "fixed"):  # pow2: a session per size; fixed: every call at the largest
                settings = DetectorSettings(conf=0.1, device=device, batch_padding=padding)
                detector = PersonDetector(weights, settings, batch_frames=max(dsizes))
                same, changed, worst = alternating(lambda b, d=detector: d.detect([frames] * b), dsizes, 5)
                print(
                    f"  detector, {dsizes} frames per call, padding {detector.padding}: "
                    f"{same:.2f} | {changed:.2f} / {worst:.2f}",
                    flush=True,
                )
            one = session(weights, variants[0][1])  # one session whose input shape changes: what pow2 was
            blank = {b: np.zeros((b, 3, 640, 640), np.float32) for b in dsizes}
            same, changed, worst = alternating(lambda b: one.run(None, {one.get_inputs()[0].name: blank[b]}), dsizes, 5)
            print(f"  detector graph, one session, {dsizes} frames per call: {same:.2f} | {changed:.2f} / {worst:.2f}")

    if args.profile:
        label, providers = variants[0]
        s = session(graph, providers, profile=True)
        probe_input = floats.get(args.profile, rng.standard_normal((args.profile, 3, h, w)).astype(np.float32))
        for _ in range(5):
            s.run(None, {name: probe_input})
        print(f"per-node profile, {label}, batch {args.profile}, 5 runs:")
        print("\n".join(node_summary(s.end_profiling(), top=12)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Upload-a-video throughput: video seconds processed per wall second, through the real service.

Builds the app exactly as ``actwatch serve`` does (:func:`~actwatch.service.app.create_app`, its own
stages: the real detector and the demo's exported model), with no camera, so the job has the machine to
itself; POSTs a video to ``/predictions`` and polls ``GET /predictions/{id}`` until it is done.

    .venv/bin/python benchmarks/upload_bench.py                # vtest.avi, 795 frames
    .venv/bin/python benchmarks/upload_bench.py --frames 200   # its first 200 frames
    .venv/bin/python benchmarks/upload_bench.py --processes 1,2   # in the service's process, then in a compute process

Prints the video's length and, for each ``pipeline.processes``, the start-up, the wall time from upload to
done, their ratio and the CPU the process tree used meanwhile.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from actwatch.thread_cpu import tree_cpu_seconds

TOKEN = "upload-bench-token-0123456789abcdef"


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None, help="the video to upload (default: vtest.avi)")
    parser.add_argument("--frames", type=int, default=None, help="upload only its first N frames")
    parser.add_argument(
        "--processes",
        default="1",
        help="pipeline.processes, one run each, side by side (e.g. 1,2: the job in the service's process, "
        "then in a compute process)",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]

    from actwatch.assets import ensure_detector, ensure_sample_video
    from actwatch.capture.video_file import probe_video, read_video, write_video
    from actwatch.cli.service_cmd import demo_model_dir
    from actwatch.config import AppConfig
    from actwatch.paths import default_cache_dir

    cache = default_cache_dir()
    video = args.video or ensure_sample_video(cache)
    rows = []
    with tempfile.TemporaryDirectory(prefix="actwatch-upload-bench-") as tmp:
        work = Path(tmp)
        if args.frames:
            images = [frame.image for frame in read_video(video, max_frames=args.frames)]
            video = write_video(work / "clip.avi", images, fps=10.0)
        probe = probe_video(video)
        for n in counts:
            config = AppConfig.model_validate(
                {
                    "data_dir": str(work / f"data-{n}"),
                    "server": {"token": TOKEN},
                    "detector": {"weights": str(ensure_detector(cache))},
                    "model": {"dir": str(demo_model_dir(cache / "demo"))},  # the demo's model, made once
                    "pipeline": {"processes": n},
                    "predictions": {"compute_share": 1.0, "max_upload_mb": 512, "max_duration_s": 3600},
                }
            )
            rows.append((n, _run(config, video)))
    print(f"CPU: {_cpu_name()}; no GPU used")
    print(f"video: {video.name}, {probe.frames} frames, {probe.duration_s:.1f} s at {probe.fps:g} fps")
    print("| processes | job | persons | start-up s | wall s | video s / wall s | frames/s | CPU % of a core |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, r in rows:
        wall = r["wall_s"]
        print(
            f"| {n} | {r['state']} | {r['persons']} | {r['startup_s']:.1f} | {wall:.1f} | "
            f"{probe.duration_s / wall:.3f} | {probe.frames / wall:.2f} | {100 * r['cpu_s'] / wall:.0f} |"
        )


def _run(config: Any, video: Path) -> dict[str, Any]:
    """One app as ``actwatch serve`` builds it: upload ``video``, poll until the job ends. CPU: the whole
    process tree's (with compute processes, theirs too) from upload to done."""
    from fastapi.testclient import TestClient

    from actwatch.service.app import create_app

    headers = {"Authorization": f"Bearer {TOKEN}"}
    started = time.perf_counter()
    app = create_app(config)
    startup = time.perf_counter() - started
    with TestClient(app) as client:
        cpu0 = tree_cpu_seconds(os.getpid())
        start = time.perf_counter()
        with video.open("rb") as f:
            files = {"file": (video.name, f, "video/x-msvideo")}
            response = client.post("/predictions", files=files, headers=headers)
        response.raise_for_status()
        job = response.json()["id"]
        while True:
            state = client.get(f"/predictions/{job}", headers=headers).json()
            if state["state"] in ("done", "failed"):
                break
            time.sleep(0.5)
        wall = time.perf_counter() - start
        cpu = tree_cpu_seconds(os.getpid()) - cpu0
    return {
        "state": state["state"],
        "persons": len(state.get("persons") or []),
        "startup_s": startup,
        "wall_s": wall,
        "cpu_s": cpu,
    }


if __name__ == "__main__":
    main()

"""Upload-a-video throughput: video seconds processed per wall second, through the real service.

Builds the app exactly as ``actwatch serve`` does (:func:`~actwatch.service.app.create_app`, its own
stages: the real detector and the demo's exported model), with no camera, so the job has the machine to
itself; POSTs a video to ``/predictions`` and polls ``GET /predictions/{id}`` until it is done.

    .venv/bin/python benchmarks/upload_bench.py                # vtest.avi, 795 frames
    .venv/bin/python benchmarks/upload_bench.py --frames 200   # its first 200 frames

Prints the video's length, the wall time from upload to done, their ratio and the CPU used.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

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
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from actwatch.assets import ensure_detector, ensure_sample_video
    from actwatch.capture.video_file import probe_video, read_video, write_video
    from actwatch.cli.service_cmd import demo_model_dir
    from actwatch.config import AppConfig
    from actwatch.paths import default_cache_dir
    from actwatch.service.app import create_app

    cache = default_cache_dir()
    video = args.video or ensure_sample_video(cache)
    with tempfile.TemporaryDirectory(prefix="actwatch-upload-bench-") as tmp:
        work = Path(tmp)
        if args.frames:
            images = [frame.image for frame in read_video(video, max_frames=args.frames)]
            video = write_video(work / "clip.avi", images, fps=10.0)
        probe = probe_video(video)
        config = AppConfig.model_validate(
            {
                "data_dir": str(work / "data"),
                "server": {"token": TOKEN},
                "detector": {"weights": str(ensure_detector(cache))},
                "model": {"dir": str(demo_model_dir(cache / "demo"))},  # the demo's model, made once
                "predictions": {"compute_share": 1.0, "max_upload_mb": 512, "max_duration_s": 3600},
            }
        )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with TestClient(create_app(config)) as client:
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
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
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        print(f"CPU: {_cpu_name()}; no GPU used")
        print(f"video: {video.name}, {probe.frames} frames, {probe.duration_s:.1f} s at {probe.fps:g} fps")
        print(f"job: {state['state']}, {len(state.get('persons') or [])} persons (tracks)")
        print(f"wall: {wall:.1f} s, CPU {cpu:.1f} s ({100 * cpu / wall:.0f}% of one core)")
        rate = probe.duration_s / wall
        print(f"throughput: {rate:.3f} video seconds per wall second, {probe.frames / wall:.2f} frames/s")


if __name__ == "__main__":
    main()

"""What watching a camera costs the service: CPU ms per frame served by ``latest.jpg`` and MJPEG.

The service runs in a child process (uvicorn, the real app with no compute pipeline: ``IdleController``)
while a thread in it hands vtest.avi's frames (768x576) with a few track boxes to the sink at 10 fps per
camera, as the pipeline would. The parent requests frames over HTTP and reads the child's CPU time
(``/proc/<pid>/stat``: user + system) before and after; the child's CPU over the same wall time with no
viewer is subtracted, so the figure is what serving costs, per frame served (= per camera per frame a
viewer sees).

    .venv/bin/python benchmarks/live_media.py --frames 200

Prints one line per variant and, for scale, the CPU share one watched camera costs at the dashboard's
tile rate (2.5 frames/s) and at the MJPEG default (5 frames/s).

``--processes 1,2`` measures the real service instead (the detector and the demo model, as
``actwatch serve`` builds it), once per value of ``pipeline.processes``, side by side: ``--cameras`` file
cameras play a 10-frame clip of vtest.avi once and stop, so each keeps its last frame and nothing else
runs; then ``latest.jpg`` is asked ``--frames`` times per variant. Printed per variant: CPU ms per frame
served in the service's process and in its compute processes, and wall ms per request; then, for scale,
what a raw frame costs to cross from one process to another (768x576 and 1080p).

    .venv/bin/python benchmarks/live_media.py --processes 1,2 --frames 200

``--viewers 1,4,16`` measures a wall of dashboards instead: that many viewers poll ``latest.jpg`` of
the same camera at the Live tile's rate (2.5 frames/s, phases spread), for ``--seconds``, once per
``media.live_share_ms`` of ``--shares`` (default ``0,100``: viewers share only an encode of the same
frame, then one younger than 100 ms), side by side: the service's CPU per second (% of a core, idle
subtracted) and per request. ``--height 1080`` feeds 1080p frames (vtest.avi scaled up).

    .venv/bin/python benchmarks/live_media.py --viewers 1,4,16 --seconds 20 --height 1080
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path

import httpx
import numpy as np

from actwatch.thread_cpu import process_cpu_seconds, tree_cpu_seconds

TOKEN = "bench-live-media-token-0123456789"


def serve(port: int, cameras: int, video: str, share_ms: float | None = None, height: int = 0) -> None:
    """The child: the app on ``port`` with ``cameras`` cameras fed from ``video`` at 10 fps each (frames
    scaled to ``height`` rows if given), live JPEGs shared for ``share_ms`` (``None``: the default, and
    the only choice of a revision before ``media.live_share_ms``)."""
    import cv2
    import uvicorn

    from actwatch.capture.video_file import read_video
    from actwatch.config import AppConfig
    from actwatch.service.app import create_app
    from actwatch.service.controller import IdleController
    from actwatch.service.events import FrameOverlay, TrackOverlay

    ids = [f"cam{i}" for i in range(cameras)]
    config = AppConfig.model_validate(
        {
            "data_dir": tempfile.mkdtemp(prefix="live-media-bench-"),
            "server": {"token": TOKEN, "port": port, "host": "127.0.0.1"},
            "cameras": [{"id": i, "url": "rtsp://127.0.0.1/none", "enabled": False} for i in ids],
            "media": {
                "mjpeg_max_fps": 30,
                "clips": {"enabled": False},
                **({} if share_ms is None else {"live_share_ms": share_ms}),
            },
        }
    )
    app = create_app(config, IdleController(), announce_token=lambda _m: None)
    sink = app.state.services.sink
    images = [f.image for f in read_video(video, max_frames=100)]
    if height:
        images = [cv2.resize(i, (round(i.shape[1] * height / i.shape[0]), height)) for i in images]
    boxes = tuple(
        TrackOverlay(k + 1, (100.0 + 120 * k, 150.0, 180.0 + 120 * k, 380.0), 0.9, "walking", 0.8) for k in range(4)
    )

    def feed() -> None:
        n = 0
        while True:
            for camera in ids:
                sink.emit_tracks(FrameOverlay(camera, time.time(), boxes), images[n % len(images)])
            n += 1
            time.sleep(0.1)

    threading.Thread(target=feed, daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def serve_pipeline(port: int, cameras: int, clip: str, processes: int) -> None:
    """The child of ``--processes``: the app as ``actwatch serve`` builds it, ``cameras`` file cameras
    playing ``clip`` once."""
    import uvicorn

    from actwatch.assets import ensure_detector
    from actwatch.cli.service_cmd import demo_model_dir
    from actwatch.config import AppConfig
    from actwatch.paths import default_cache_dir
    from actwatch.service.app import create_app

    cache = default_cache_dir()
    config = AppConfig.model_validate(
        {
            "data_dir": tempfile.mkdtemp(prefix="live-media-bench-"),
            "server": {"token": TOKEN, "port": port, "host": "127.0.0.1"},
            "cameras": [{"id": f"cam{i}", "url": clip} for i in range(cameras)],
            "sources": {"file_dirs": [str(Path(clip).parent)]},
            "detector": {"weights": str(ensure_detector(cache))},
            "model": {"dir": str(demo_model_dir(cache / "demo"))},
            "pipeline": {"processes": processes},
            "media": {"clips": {"enabled": False}},
        }
    )
    uvicorn.run(create_app(config, announce_token=lambda _m: None), host="127.0.0.1", port=port, log_level="warning")


def tree_rates(pid: int, seconds: float) -> tuple[float, float]:
    """CPU seconds per wall second of ``pid`` and of its descendants, with nobody watching."""
    own0, all0, t0 = process_cpu_seconds(pid), tree_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    own = process_cpu_seconds(pid) - own0
    return own / wall, (tree_cpu_seconds(pid) - all0 - own) / wall


def measure_latest_split(
    pid: int, http: httpx.Client, cameras: int, frames: int, query: str, idle: tuple[float, float]
) -> tuple[float, float, float]:
    """CPU ms per latest.jpg served in ``pid`` and in its descendants, and wall ms per request."""
    own0, all0, t0 = process_cpu_seconds(pid), tree_cpu_seconds(pid), time.monotonic()
    for n in range(frames):
        response = http.get(f"/cameras/cam{n % cameras}/latest.jpg{query}")
        response.raise_for_status()
    wall = time.monotonic() - t0
    own = process_cpu_seconds(pid) - own0
    children = tree_cpu_seconds(pid) - all0 - own
    per = 1000 / frames
    return (own - idle[0] * wall) * per, (children - idle[1] * wall) * per, wall * per


def main_pipeline(args: argparse.Namespace, video: str) -> None:
    """``--processes``: the real service once per value, the variants' figures side by side."""
    from actwatch.capture.video_file import read_video, write_video

    counts = [int(n) for n in args.processes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="live-media-clip-"))
    clip = str(write_video(folder / "clip.avi", [f.image for f in read_video(video, max_frames=10)], fps=10.0))
    variants = [
        ("latest.jpg 768x576", ""),
        ("latest.jpg 768x576 + overlay", "?overlay=1"),
        ("latest.jpg width=320 + overlay", "?overlay=1&width=320"),
    ]
    results: dict[int, list[tuple[float, float, float]]] = {}
    for n in counts:
        child = _start(serve_pipeline, args.port, args.cameras, clip, n)
        assert child.pid is not None
        try:
            with _client(args.port) as http:
                _wait_ended(http, args.cameras)
                idle = tree_rates(child.pid, 3.0)
                results[n] = [
                    measure_latest_split(child.pid, http, args.cameras, args.frames, q, idle) for _, q in variants
                ]
        finally:
            child.terminate()
            child.join(60)
    print(
        f"{args.cameras} file cameras (vtest.avi, 768x576), each ended on its last frame; {args.frames} requests each"
    )
    head = " | ".join(f"processes={n}: service / compute ms CPU, wall ms" for n in counts)
    print(f"| variant | {head} |")
    print("| --- |" + " --- |" * len(counts))
    for i, (name, _) in enumerate(variants):
        cells = " | ".join("{:.2f} / {:.2f}, {:.1f}".format(*results[n][i]) for n in counts)
        print(f"| {name} | {cells} |")
    for shape in ((576, 768, 3), (1080, 1920, 3)):
        received, sent = raw_frame_crossing(shape)
        print(
            f"for scale, a raw {shape[1]}x{shape[0]} frame through a multiprocessing queue: {received:.2f} ms CPU "
            f"to receive, {sent:.2f} ms to send"
        )


def _send_frames(frames: Queue[np.ndarray | None], shape: tuple[int, int, int], n: int) -> None:
    image = np.random.default_rng(0).integers(0, 255, shape, np.uint8)
    for _ in range(n):
        frames.put(image)
    frames.put(None)


def raw_frame_crossing(shape: tuple[int, int, int], n: int = 200) -> tuple[float, float]:
    """CPU ms per raw frame of ``shape`` sent through a ``multiprocessing`` queue (how frames would cross
    to the service's process were they encoded there): in the receiving and in the sending process."""
    context = multiprocessing.get_context("spawn")
    frames: Queue[np.ndarray | None] = context.Queue(4)
    sender = context.Process(target=_send_frames, args=(frames, shape, n + 1))
    sender.start()
    assert sender.pid is not None
    frames.get()  # the sender runs
    own0, other0 = process_cpu_seconds(os.getpid()), process_cpu_seconds(sender.pid)
    while frames.get() is not None:
        pass
    own, other = process_cpu_seconds(os.getpid()) - own0, process_cpu_seconds(sender.pid) - other0
    sender.join(30)
    return 1000 * own / n, 1000 * other / n


def poll_viewers(port: int, viewers: int, seconds: float, every_s: float = 0.4) -> int:
    """``viewers`` threads polling cam0's ``latest.jpg`` every ``every_s`` for ``seconds``, their phases
    spread evenly over the interval (as dashboards opened at different moments); the requests served."""
    served: list[int] = []
    start = time.monotonic()

    def viewer(k: int) -> None:
        count = 0
        with _client(port) as http:
            due = start + every_s * k / viewers
            while (now := time.monotonic()) < start + seconds:
                if now < due:
                    time.sleep(due - now)
                http.get("/cameras/cam0/latest.jpg").raise_for_status()
                count += 1
                due += every_s
        served.append(count)

    threads = [threading.Thread(target=viewer, args=(k,)) for k in range(viewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(served)


def main_viewers(args: argparse.Namespace, video: str) -> None:
    """``--viewers``: a wall of dashboards on one camera, without and with shared encodes, side by side."""
    counts = [int(n) for n in args.viewers.split(",")]
    shares = [None if v == "default" else float(v) for v in args.shares.split(",")]
    rows: dict[tuple[float | None, int], tuple[float, float]] = {}
    for share in shares:
        child = _start(serve, args.port, args.cameras, video, share, args.height)
        assert child.pid is not None
        try:
            with _client(args.port) as http:
                _wait_first_frame(http)
            idle = idle_rate(child.pid, 3.0)
            for n in counts:
                c0, t0 = process_cpu_seconds(child.pid), time.monotonic()
                served = poll_viewers(args.port, n, args.seconds)
                wall = time.monotonic() - t0
                used = process_cpu_seconds(child.pid) - c0 - idle * wall
                rows[(share, n)] = (100 * used / wall, 1000 * used / max(1, served))
        finally:
            child.terminate()
            child.join(30)
    size = f"{args.height}p" if args.height else "768x576"
    print(f"{args.cameras} cameras fed {size} at 10 fps; viewers poll cam0's latest.jpg at 2.5 fps each")
    head = " | ".join(
        f"live_share_ms {'default' if v is None else f'{v:g}'}: % of a core, CPU ms/request" for v in shares
    )
    print(f"| viewers | {head} |")
    print("| --- |" + " --- |" * len(shares))
    for n in counts:
        cells = " | ".join("{:.1f}%, {:.2f}".format(*rows[(share, n)]) for share in shares)
        print(f"| {n} | {cells} |")


def _wait_first_frame(http: httpx.Client) -> None:
    deadline = time.monotonic() + 300
    while True:
        try:
            if http.get("/cameras/cam0/latest.jpg").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the service did not start")
        time.sleep(0.2)


def _start(target: Callable[..., None], *args: object) -> BaseProcess:
    """The service's child process (spawned: a fresh interpreter, as ``actwatch serve`` starts)."""
    child = multiprocessing.get_context("spawn").Process(target=target, args=args)
    child.start()
    return child


def _client(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def _wait_ended(http: httpx.Client, cameras: int) -> None:
    """Until every camera has played its clip (so only the requests cost CPU) and has a frame."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            states = [http.get(f"/cameras/cam{i}").json().get("state") for i in range(cameras)]
            if all(state == "ended" for state in states) and all(
                http.get(f"/cameras/cam{i}/latest.jpg").status_code == 200 for i in range(cameras)
            ):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("the cameras did not play their clip within 10 minutes")


def idle_rate(pid: int, seconds: float) -> float:
    """The child's CPU seconds per wall second with nobody watching."""
    c0, t0 = process_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (process_cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def measure_latest(pid: int, http: httpx.Client, cameras: int, frames: int, query: str, idle: float) -> float:
    """CPU ms per latest.jpg served (``frames`` requests spread over the cameras)."""
    c0, t0 = process_cpu_seconds(pid), time.monotonic()
    for n in range(frames):
        response = http.get(f"/cameras/cam{n % cameras}/latest.jpg{query}")
        response.raise_for_status()
    wall = time.monotonic() - t0
    return (process_cpu_seconds(pid) - c0 - idle * wall) / frames * 1000


def measure_mjpeg(pid: int, http: httpx.Client, frames: int, query: str, idle: float) -> float:
    """CPU ms per MJPEG frame served (one stream, ``frames`` frames)."""
    boundary = b"--actwatchframe"
    with http.stream("GET", f"/cameras/cam0/stream.mjpeg{query}") as stream:
        stream.raise_for_status()
        seen, c0, t0 = 0, process_cpu_seconds(pid), time.monotonic()
        for chunk in stream.iter_bytes():
            seen += chunk.count(boundary)
            if seen > frames:
                break
        wall = time.monotonic() - t0
        used = process_cpu_seconds(pid) - c0
    return (used - idle * wall) / frames * 1000


def main() -> None:
    from actwatch.assets import sample_video_path
    from actwatch.paths import default_cache_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="Frames served per variant.")
    parser.add_argument("--cameras", type=int, default=2, help="Cameras fed (latest.jpg cycles through them).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--processes", help="the real service, once per pipeline.processes value (e.g. 1,2), instead of a fed sink"
    )
    parser.add_argument("--viewers", help="viewers of one camera polling latest.jpg at 2.5 fps, e.g. 1,4,16")
    parser.add_argument("--seconds", type=float, default=20.0, help="--viewers: seconds per measurement")
    parser.add_argument("--height", type=int, default=0, help="--viewers: scale the fed frames to this height")
    parser.add_argument(
        "--shares", default="0,100", help="--viewers: media.live_share_ms values ('default': leave it unset)"
    )
    args = parser.parse_args()
    video = str(sample_video_path(default_cache_dir()))
    if args.processes:
        main_pipeline(args, video)
        return
    if args.viewers:
        main_viewers(args, video)
        return

    child = _start(serve, args.port, args.cameras, video)
    assert child.pid is not None
    try:
        with _client(args.port) as http:
            _wait_first_frame(http)
            idle = idle_rate(child.pid, 3.0)
            print(f"service with {args.cameras} cameras fed at 10 fps, nobody watching: {idle * 100:.1f}% of a core")
            print(f"{'variant':<42} {'CPU ms/frame':>12} {'% core @2.5 fps':>16} {'% core @5 fps':>14}")
            pid, n = child.pid, args.frames
            latest_variants = [
                ("latest.jpg 768x576", ""),
                ("latest.jpg 768x576 + overlay", "?overlay=1"),
                ("latest.jpg width=320 + overlay", "?overlay=1&width=320"),
            ]
            mjpeg_variants = [("MJPEG 768x576 (one stream)", ""), ("MJPEG 768x576 + overlay", "?overlay=1")]
            variants = [
                *[
                    (name, lambda q=q: measure_latest(pid, http, args.cameras, n, q, idle))
                    for name, q in latest_variants
                ],
                *[(name, lambda q=q: measure_mjpeg(pid, http, n // 2, q, idle)) for name, q in mjpeg_variants],
            ]
            for name, run in variants:
                ms = run()
                print(f"{name:<42} {ms:>12.2f} {ms * 2.5 / 10:>15.1f}% {ms * 5 / 10:>13.1f}%")
    finally:
        child.terminate()
        child.join(30)


if __name__ == "__main__":
    main()

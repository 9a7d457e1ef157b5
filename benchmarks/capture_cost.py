"""What reading network cameras costs the box, with and without ``capture.max_fps``.

A 1080p H.264 clip (FFmpeg's ``testsrc2``, 30 fps, made once) is published unchanged (``-c copy``, so
the publisher costs next to nothing) to a real RTSP server on loopback (``tests/support/rtsp.py``). For
each setting, ``--cameras`` actwatch camera readers (``CameraReader``: one FFmpeg process each, the
service's own code) read it for ``--seconds`` while a consumer thread takes every frame handed on, as the
pipeline's intake would. The settings are alternated ``--rounds`` times (the machine's speed drifts).

Printed per run: frames handed on per second per camera, and the CPU each camera cost, as a share of
one core: its FFmpeg process (decoding, conversion to BGR, the pipe) and this process (reading the
pipe into frames; the readers' threads and the consumer), from their CPU times over the run.

With ``--serve SECONDS``, each setting then also runs ``actwatch serve`` (this tree, the CPU, the
default detector and an untrained exported model) on the same cameras, and its frames processed per
second and detect milliseconds per frame over that window come from ``/metrics``
(``benchmarks/serve_compare.py``'s measurement): what the CPU the readers leave is worth to the pipeline.

    PYTHONPATH=. .venv/bin/python benchmarks/capture_cost.py --cameras 2 --seconds 20 --max-fps 10 --serve 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from actwatch.capture.frame import Frame  # noqa: E402
from actwatch.capture.reader import CameraReader, CameraState  # noqa: E402
from actwatch.capture.settings import CaptureSettings  # noqa: E402
from actwatch.capture.sources import SourceSpec  # noqa: E402
from tests.support.rtsp import RtspServer, require_binary  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from serve_compare import _free_port, measure  # noqa: E402

# this server sends RTP over UDP only; a short probe opens the stream in a second
SETTINGS = CaptureSettings(rtsp_transport="udp", open_timeout_s=20, ffmpeg_options={"analyzeduration": "1000000"})


def make_clip(folder: Path, width: int, height: int, fps: int) -> Path:
    clip = folder / f"testsrc2-{width}x{height}-{fps}.mp4"
    subprocess.run(
        [require_binary("ffmpeg"), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={width}x{height}:rate={fps}", "-t", "20", "-c:v", "libx264", "-preset", "veryfast",
         "-g", str(fps), "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    return clip


def publish(server: RtspServer, path: str, clip: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [require_binary("ffmpeg"), "-nostdin", "-loglevel", "warning", "-re", "-stream_loop", "-1", "-i",
               str(clip), "-an", "-c", "copy", "-f", "rtsp", server.publish_url(path)]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 20
    while server.describe(path) != 200:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the publisher did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return process


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def run(url: str, cameras: int, seconds: float, max_fps: float | None) -> dict[str, float]:
    """Read ``url`` with ``cameras`` readers for ``seconds``; frames/s and CPU shares per camera."""
    settings = SETTINGS.model_copy(update={"max_fps": max_fps})
    readers = [CameraReader(f"cam{i}", SourceSpec.parse(url), settings) for i in range(cameras)]
    taken = [0] * cameras
    stop = threading.Event()

    def consume(index: int, reader: CameraReader) -> None:
        while not stop.is_set():
            if isinstance(reader.frames.get(timeout=0.5), Frame):
                taken[index] += 1

    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 30
    while not all(r.status().state is CameraState.STREAMING for r in readers):
        if time.monotonic() > deadline:
            raise RuntimeError(f"cameras did not start streaming: {[r.status() for r in readers]}")
        time.sleep(0.1)
    threads = [threading.Thread(target=consume, args=(i, r), daemon=True) for i, r in enumerate(readers)]
    for thread in threads:
        thread.start()
    me = psutil.Process()
    ffmpegs = [p for p in me.children() if "pipe:1" in p.cmdline()]  # the readers' (not the publisher)
    start_taken, start_me, start_ff = list(taken), cpu_s(me), sum(cpu_s(p) for p in ffmpegs)
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    ff = sum(cpu_s(p) for p in ffmpegs) - start_ff
    mine = cpu_s(me) - start_me
    frames = sum(taken) - sum(start_taken)
    stop.set()
    for reader in readers:
        reader.stop(timeout=5)
    for thread in threads:
        thread.join(2)
    return {
        "fps": frames / wall / cameras,
        "ffmpeg_core": ff / wall / cameras,
        "reader_core": mine / wall / cameras,
        "processes": float(len(ffmpegs)),
    }


def serve(
    url: str, cameras: int, seconds: float, max_fps: float | None, work: Path, model_dir: Path
) -> dict[str, float]:
    """``actwatch serve`` on ``cameras`` copies of ``url``; serve_compare's figures over ``seconds``."""
    port, token = _free_port(), "capture-cost-token-0123456789abcdef"
    capture = SETTINGS.model_dump(mode="json", include={"rtsp_transport", "open_timeout_s", "ffmpeg_options"})
    config = {
        "data_dir": str(work / "data"),
        "server": {"host": "127.0.0.1", "port": port, "token": token},
        "cameras": [{"id": f"cam{i}", "url": url} for i in range(cameras)],
        "capture": {**capture, "max_fps": max_fps},
        "detector": {"person_class_ids": [0, 1]},
        "model": {"dir": str(model_dir), "providers": ["CPUExecutionProvider"]},
    }
    path = work / "actwatch.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return measure(REPO, path, port, token, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-fps", type=float, default=10.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--serve", type=float, default=0.0, help="seconds of `actwatch serve` per setting (0: none)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp, RtspServer(log_dir=Path(tmp)) as server:
        clip = make_clip(Path(tmp), width, height, args.fps)
        publisher = publish(server, "cam", clip, Path(tmp) / "publisher.log")
        try:
            url = server.url("cam")
            head = f"{args.cameras} cameras reading one {width}x{height} {args.fps} fps H.264 RTSP stream"
            print(f"{head}, {args.seconds:g} s a run, {os.cpu_count()} CPUs; CPU as a share of one core, per camera")
            print("| capture.max_fps | frames/s per camera | FFmpeg | reader (this process) | total |")
            print("| --- | --- | --- | --- | --- |")
            for _ in range(args.rounds):
                for max_fps in (None, args.max_fps):
                    r = run(url, args.cameras, args.seconds, max_fps)
                    assert r["processes"] == args.cameras, r
                    total = r["ffmpeg_core"] + r["reader_core"]
                    print(f"| {'unset' if max_fps is None else f'{max_fps:g}'} | {r['fps']:.1f} | "
                          f"{r['ffmpeg_core']:.0%} | {r['reader_core']:.0%} | {total:.0%} |", flush=True)  # fmt: skip
            if args.serve > 0:
                from actwatch.demo_model import export_untrained_model
                from actwatch.model.config import InputSpec

                model_dir = export_untrained_model(Path(tmp) / "model", InputSpec(seq_len=16, fps=10.0))
                print(f"\n`actwatch serve` on those cameras, {args.serve:g} s a run (CPU execution provider)")
                print("| capture.max_fps | frames/s processed (all cameras) | detect ms per frame | RSS MB |")
                print("| --- | --- | --- | --- |")
                for round_ in range(args.rounds):
                    for max_fps in (None, args.max_fps):
                        work = Path(tmp) / f"serve-{round_}-{max_fps}"
                        work.mkdir()
                        r = serve(url, args.cameras, args.serve, max_fps, work, model_dir)
                        print(f"| {'unset' if max_fps is None else f'{max_fps:g}'} | {r['fps']:.2f} | "
                              f"{r['detect_ms_per_frame']:.0f} | {r['rss_end_mb']:.0f} |", flush=True)  # fmt: skip
        finally:
            publisher.terminate()
            publisher.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

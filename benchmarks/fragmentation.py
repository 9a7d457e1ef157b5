"""How much person tracks fragment on vtest.avi: this tree against a base revision, at two processing rates.

The real detector runs once over the video (its boxes down to confidence 0.05 are cached under
``~/.cache/actwatch/bench/``, keyed by the video's and the detector's sha256, with the seconds it took per
frame). Then each tree (``--base`` checked out in a temporary git worktree, and this one) tracks those
boxes in a subprocess that imports *that tree's* ``actwatch``, with that tree's defaults: detections at or
above its ``DetectorSettings().conf``, its ``TrackerSettings()``, its ``CameraTracker`` given the video's
frame rate and each frame's stream time, exactly as the service's track phase does.

Two processing rates:

* **full**: every frame (10 fps; what a GPU keeps up with);
* **cpu**: the rate this machine's CPU detects at (one frame per detector call, as the service's compute
  loop does for one camera), the newest frame taken each time the previous one is done, older ones
  dropped, as the camera readers do. ``--cpu-fps`` sets it instead.

Figures per tree and rate: distinct track ids per minute of video, median track length (seconds of
stream time, first to last sighting plus one processing interval), share of tracks shorter than 1 s,
share of tracks whose window reaches 30 samples at the model's 10 fps (a full window of the default
model), and the share of confident detections (>= 0.4) that were tracked (fewer ids are no gain if
fewer persons are tracked), and implausible jumps: a track's box centre moving more than 0.3 + 1 x the
seconds between its sightings box heights (a person walks about half a height per second), so either
the track switched to someone else or the box changed shape (a partly hidden person): fewer ids are
no gain either if tracks jump between people. Without ground truth this bounds id switches from above.

    .venv/bin/python benchmarks/fragmentation.py --base main
    .venv/bin/python benchmarks/fragmentation.py --rect     # this tree, detections at the video's aspect
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE_CONF = 0.05  # boxes kept in the cache; each tree filters at its own detector threshold
CONFIDENT = 0.4  # detections this confident count as persons that should be tracked
MODEL_FPS = 10.0  # the default model's sampling rate ...
WINDOW = 30  # ... and window length

FIGURES = [
    ("ids_per_min", "distinct ids per minute", ".1f"),
    ("median_track_s", "median track length (s)", ".1f"),
    ("share_under_1s", "tracks shorter than 1 s", ".0%"),
    ("share_full_window", f"tracks reaching a {WINDOW}-sample window", ".0%"),
    ("share_confident_tracked", f"detections >= {CONFIDENT} tracked", ".0%"),
    ("jumps", "implausible jumps (id switch or box change)", ".0f"),
    ("ids", "distinct ids", ".0f"),
]


def detections_cache(video: Path, batch: int, *, rect: bool = False, weights: Path | None = None) -> Path:
    """Run the detector (``weights``, default the cached serving one) over ``video`` (once per video,
    detector and ``rect``: detector.rect); the cache file's path."""
    from actwatch.assets import default_cache_dir, ensure_detector
    from actwatch.capture.video_file import read_video
    from actwatch.fileio import atomic_path, sha256_file
    from actwatch.tracker.detector import DetectorSettings, PersonDetector

    weights = weights or ensure_detector(fetch=False)
    key = f"{sha256_file(video)[:16]}-{sha256_file(weights)[:16]}"
    path = default_cache_dir() / "bench" / f"fragmentation-{key}{'-rect' if rect else ''}.npz"
    if path.exists():
        return path
    detector = PersonDetector(weights, DetectorSettings(conf=CACHE_CONF, device="cpu", rect=rect))
    frames = list(read_video(video))
    boxes: list[np.ndarray] = []
    seconds: list[float] = []
    print(f"detecting persons in {len(frames)} frames of {video.name} (once; cached) ...", file=sys.stderr)
    for i in range(0, len(frames), batch):
        chunk = frames[i : i + batch]
        start = time.perf_counter()
        found = detector.detect([f.image for f in chunk])
        seconds.append((time.perf_counter() - start) / len(chunk))
        for d in found:
            boxes.append(np.concatenate([d.xyxy, d.confidence[:, None], d.class_id[:, None].astype(np.float32)], 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(
            fh,
            timestamps=np.asarray([f.timestamp for f in frames], np.float64),
            counts=np.asarray([len(b) for b in boxes], np.int64),
            boxes=np.concatenate(boxes).reshape(-1, 6),
            seconds_per_frame=np.float64(statistics.median(seconds)),
            frame_rate=np.float64(_video_fps(video)),
        )
    return path


def _video_fps(video: Path) -> float:
    from actwatch.capture.video_file import video_fps

    return video_fps(video)


def processed_frames(timestamps: np.ndarray, rate: float | None) -> list[int]:
    """Indices of the frames a loop processing ``rate`` frames/s takes: when free, the newest frame that
    has arrived (older ones are dropped), or the next one to arrive. Every frame if ``rate`` is None.

    Example (10 fps frames, a loop of 4 per second):
        >>> processed_frames(np.arange(10) / 10, 4.0)
        [0, 2, 5, 7, 9]
    """
    if rate is None:
        return list(range(len(timestamps)))
    taken: list[int] = []
    free_at = -np.inf
    while (start := taken[-1] + 1 if taken else 0) < len(timestamps):
        newest = int(np.searchsorted(timestamps, free_at, side="right")) - 1
        if newest < start:  # nothing new yet: wait for the next frame
            newest, now = start, float(timestamps[start])
        else:
            now = free_at
        taken.append(newest)
        free_at = now + 1.0 / rate
    return taken


def track_only(cache: Path, rate: float | None) -> dict[str, float]:
    """Track the cached boxes with *this interpreter's* actwatch and its defaults; the figures."""
    from actwatch.tracker.bytetrack import CameraTracker, TrackerSettings
    from actwatch.tracker.detections import Detections
    from actwatch.tracker.detector import DetectorSettings
    from actwatch.tracker.sampling import FpsSampler

    data = np.load(cache)
    timestamps, counts, rows = data["timestamps"], data["counts"], data["boxes"]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    conf = DetectorSettings().conf
    tracker = CameraTracker("bench", float(data["frame_rate"]), TrackerSettings())
    first: dict[int, float] = {}
    previous: dict[int, tuple[float, np.ndarray]] = {}  # last sighting: time, x1 y1 x2 y2
    jumps = 0
    last: dict[int, float] = {}
    samples: dict[int, int] = {}
    samplers: dict[int, FpsSampler] = {}
    confident = tracked_confident = 0
    frames = processed_frames(timestamps, rate)
    for i in frames:
        boxes = rows[offsets[i] : offsets[i + 1]]
        boxes = boxes[boxes[:, 4] >= conf]
        t = float(timestamps[i])
        out = tracker.update(Detections.from_arrays(boxes[:, :4], boxes[:, 4], boxes[:, 5].astype(np.int64)), t)
        confident += int((boxes[:, 4] >= CONFIDENT).sum())
        tracked_confident += int((out.confidence >= CONFIDENT).sum())
        for tid, box in zip(out.track_id.tolist(), out.xyxy.astype(np.float64), strict=True):
            if tid in previous:
                before_t, before = previous[tid]
                moved = np.linalg.norm((box[:2] + box[2:] - before[:2] - before[2:]) / 2)
                height = (box[3] - box[1] + before[3] - before[1]) / 2
                jumps += int(moved / max(height, 1e-6) > 0.3 + 1.0 * (t - before_t))
            previous[tid] = (t, box)
            first.setdefault(tid, t)
            last[tid] = t
            if samplers.setdefault(tid, FpsSampler(MODEL_FPS)).due(t):
                samples[tid] = samples.get(tid, 0) + 1
    interval = (float(timestamps[-1]) - float(timestamps[0])) / max(len(frames) - 1, 1)
    lengths = [last[k] - first[k] + interval for k in first]
    minutes = (float(timestamps[-1]) - float(timestamps[0]) + interval) / 60.0
    n = max(len(lengths), 1)
    return {
        "ids": float(len(lengths)),
        "ids_per_min": len(lengths) / minutes,
        "median_track_s": statistics.median(lengths) if lengths else 0.0,
        "share_under_1s": sum(length < 1.0 for length in lengths) / n,
        "share_full_window": sum(samples.get(k, 0) >= WINDOW for k in first) / n,
        "share_confident_tracked": tracked_confident / max(confident, 1),
        "jumps": float(jumps),
        "processed_fps": len(frames) / (minutes * 60.0),
    }


def _in_tree(tree: Path, cache: Path, rate: float | None) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--track-only", str(cache)]
    if rate is not None:
        cmd += ["--rate", str(rate)]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"error: tracking failed in {tree} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None, help="git revision to compare with (e.g. main); none: this tree only")
    parser.add_argument("--video", type=Path, default=None, help="video file (default: the cached vtest.avi)")
    parser.add_argument("--cpu-fps", type=float, default=None, help="the 'cpu' processing rate (default: measured)")
    parser.add_argument("--batch", type=int, default=1, help="frames per detector call when detecting (default 1)")
    parser.add_argument("--rect", action="store_true", help="detect with detector.rect (the video's aspect)")
    parser.add_argument(
        "--weights", type=Path, default=None, help="detector graph (default: the cached one), e.g. an int8 copy"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--track-only", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.track_only is not None:
        print(json.dumps(track_only(args.track_only, args.rate)))
        return

    sys.path.insert(0, str(REPO))
    from actwatch.assets import ensure_sample_video

    video = args.video or ensure_sample_video(fetch=False)
    if not video.exists():
        sys.exit(f"error: no video at {video}; run `actwatch assets` or pass --video")
    cache = detections_cache(video, args.batch, rect=args.rect, weights=args.weights)
    seconds = float(np.load(cache)["seconds_per_frame"])
    cpu_fps = args.cpu_fps or 1.0 / seconds
    trees: list[tuple[str, Path]] = [("this", REPO)]
    results: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as stack:
        if args.base:
            sys.path.insert(0, str(REPO / "benchmarks"))
            from compare_revisions import base_worktree

            trees.insert(0, (f"base {args.base}", stack.enter_context(base_worktree(args.base))))
        for name, tree in trees:
            for rate_name, rate in (("full", None), ("cpu", cpu_fps)):
                print(f"tracking: {name}, {rate_name} rate ...", file=sys.stderr, flush=True)
                results[f"{name}, {rate_name}"] = _in_tree(tree, cache, rate)
    if args.json:
        print(json.dumps({"cpu_fps": cpu_fps, "results": results}, indent=2))
        return
    full_fps = next(iter(results.values()))["processed_fps"]
    print(f"{video.name}: full = {full_fps:.1f} fps (every frame), cpu = {cpu_fps:.2f} fps (measured detector rate)")
    columns = list(results)
    print("\n| figure | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for key, label, spec in FIGURES:
        print(f"| {label} | " + " | ".join(format(results[c][key], spec) for c in columns) + " |")


if __name__ == "__main__":
    main()

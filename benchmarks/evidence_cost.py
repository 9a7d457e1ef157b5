"""What an event's evidence costs to render: the snapshot JPEG and the PNG strip of its window's crops.

The event writer's render threads do this for every event (``actwatch.service.evidence``); on a GPU box
at many cameras it was a quarter of the host's busy time. This renders the evidence of ``--events``
events made from vtest.avi (a frame, a person's box, 30 crops of 112x112 from 30 frames) with the
project's PNG settings and with the settings it replaced (level 1, every filter tried on every row),
alternated over ``--rounds``, and prints ms per event and bytes side by side. Every strip is decoded
again and compared with its crops (lossless, or the script fails).

    .venv/bin/python benchmarks/evidence_cost.py --events 60 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from actwatch.assets import ensure_sample_video
from actwatch.capture.video_file import capture_frames, open_video
from actwatch.service import evidence

ALL_FILTERS = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # before: libpng tries all five filters on every row


def windows(events: int, seq_len: int = 30, size: int = 112) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """``events`` (frame, crops) pairs from vtest.avi: crops of one moving box over ``seq_len`` frames."""
    capture = open_video(ensure_sample_video(fetch=False))
    frames = [frame.image for frame, _ in zip(capture_frames(capture, "bench"), range(events + seq_len), strict=False)]
    capture.release()
    out = []
    for e in range(events):
        x = 200 + (e * 37) % 400
        crops = [cv2.resize(f[120:360, x : x + 100], (size, size)) for f in frames[e : e + seq_len]]
        out.append((frames[e + seq_len - 1], crops))
    return out


def render(cases: list[tuple[np.ndarray, list[np.ndarray]]], png_params: list[int]) -> tuple[float, float, float]:
    """ms per event for the snapshot, ms per event for the strip, mean strip bytes."""
    snap_s = strip_s = 0.0
    sizes = []
    for frame, crops in cases:
        t0 = time.perf_counter()
        evidence.render_snapshot(frame, (200, 120, 300, 360), "fall", 0.9)
        t1 = time.perf_counter()
        ok, buf = cv2.imencode(".png", np.concatenate(crops, axis=1), png_params)
        t2 = time.perf_counter()
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        assert ok and decoded is not None and np.array_equal(decoded, np.concatenate(crops, axis=1))
        snap_s, strip_s = snap_s + t1 - t0, strip_s + t2 - t1
        sizes.append(len(buf))
    n = len(cases)
    return snap_s / n * 1e3, strip_s / n * 1e3, statistics.fmean(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cases = windows(args.events)
    variants = {"before (all filters)": ALL_FILTERS, "now (SUB filter)": evidence.STRIP_PNG}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, params in variants.items():
            results[name].append(render(cases, params))
    print(f"{args.events} events of 30 crops (112x112), median of {args.rounds} alternated rounds")
    print("\n| PNG settings | snapshot ms/event | crops strip ms/event | strip KB |\n| --- | --- | --- | --- |")
    for name, rows in results.items():
        snap, strip, size = (statistics.median(col) for col in zip(*rows, strict=True))
        print(f"| {name} | {snap:.2f} | {strip:.2f} | {size / 1024:.0f} |")


if __name__ == "__main__":
    main()

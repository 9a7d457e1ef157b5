"""Training benchmark: cached-feature epochs against frozen-backbone end-to-end epochs, and extraction fps.

1. The same synthetic dataset and head are trained twice: ``cached`` (each crop encoded once, epochs run
   only the temporal head on cached features) and ``frozen`` (the same frozen MobileNetV2 run on every
   step). The table shows the one-time encoding cost, the mean time per epoch and their ratio.
2. Extraction throughput: ``actwatch extract``'s code (detector + ByteTrack + crops) on vtest.avi with
   the real person detector, in source frames per second.

Run: ``python benchmarks/train_bench.py`` (``--help`` for sizes). Figures depend on the machine and on
its load; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from actwatch.capture.video_file import write_video
from actwatch.model.config import ModelConfig
from actwatch.train.config import TrainConfig
from actwatch.train.extract import DatasetExtractor, ExtractSettings
from actwatch.train.synthetic import write_motion_dataset
from actwatch.train.trainer import train


def bench_training(work: Path, args: argparse.Namespace) -> None:
    ds = write_motion_dataset(
        work / "ds", videos_per_class=args.videos_per_class, n_frames=args.frames_per_video, size=args.input_size
    )
    crops = sum(r.frames for r in ds.sequences)
    print(
        f"\ndataset: {len(ds.sequences)} sequences, {crops} crops of {args.input_size}x{args.input_size}; "
        f"seq_len {args.seq_len}, {args.epochs} epochs, torch threads {torch.get_num_threads()}"
    )
    rows = []
    for mode in ("cached", "frozen"):
        cfg = TrainConfig(
            name=mode,
            out_dir=work / "runs",
            mode=mode,
            seq_len=args.seq_len,
            epochs=args.epochs,
            batch_size=16,
            early_stopping=0,
            windows_per_sequence=2,
            model=ModelConfig(pretrained=False),
            augment={"enabled": False},  # the same work per step in both modes
            tensorboard=False,
            device=args.device,
        )
        started = time.perf_counter()
        result = train(cfg, ds.root, progress=False)
        total = time.perf_counter() - started
        epochs = [h["seconds"] for h in result.history]
        # Everything outside the epochs: set-up, encoding (cached mode), checkpoints, final evaluation.
        rows.append((mode, total - sum(epochs), float(np.mean(epochs)), total, result.val["accuracy"]))
    print(f"\n{'mode':<8} {'one-time s':>11} {'s/epoch':>9} {'total s':>9} {'val acc':>8}")
    for mode, once, per_epoch, total, acc in rows:
        print(f"{mode:<8} {once:>11.2f} {per_epoch:>9.3f} {total:>9.2f} {acc:>8.3f}")
    ratio = rows[1][2] / rows[0][2]
    print(f"frozen end-to-end epoch / cached epoch: {ratio:.1f}x")
    break_even = rows[0][1] / max(rows[1][2] - rows[0][2], 1e-9)
    print(f"(the cache's one-time overhead is repaid after ~{break_even:.1f} epochs)")


def bench_extraction(work: Path, args: argparse.Namespace) -> None:
    from actwatch.assets import ensure_detector, ensure_sample_video
    from actwatch.capture.video_file import read_video
    from actwatch.tracker.detector import DetectorSettings, PersonDetector

    video = ensure_sample_video(fetch=False)
    frames = [frame.image for frame in read_video(video, max_frames=args.extract_frames)]
    write_video(work / "src" / "walking" / "vtest.avi", np.stack(frames), fps=10.0)
    detector_settings = DetectorSettings(person_class_ids=None, conf=0.25, imgsz=args.imgsz, device=args.device)
    detector = PersonDetector(ensure_detector(fetch=False), detector_settings)
    detector.warmup(shape=frames[0].shape[:2])
    settings = ExtractSettings(imgsz=args.imgsz, conf=0.25, input_size=args.input_size, fps=10.0, max_persons=20)
    started = time.perf_counter()
    summary = DatasetExtractor(settings, detector, progress=False).run(work / "src", work / "extracted")
    seconds = time.perf_counter() - started
    row = summary.rows["walking"]
    print(
        f"\nextraction on vtest.avi (768x576, {summary.frames_read} frames, detector imgsz {args.imgsz}, "
        f"device {args.device}): {summary.frames_read / seconds:.1f} frames/s "
        f"({seconds:.1f} s; {row.persons} persons, {row.sequences} sequences)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos-per-class", type=int, default=40, help="Synthetic clips per class.")
    parser.add_argument("--frames-per-video", type=int, default=24, help="Frames per synthetic clip.")
    parser.add_argument("--input-size", type=int, default=64, help="Crop size (square).")
    parser.add_argument("--seq-len", type=int, default=16, help="Frames per window.")
    parser.add_argument("--epochs", type=int, default=3, help="Epochs per mode.")
    parser.add_argument("--extract-frames", type=int, default=100, help="Frames of vtest.avi to extract from.")
    parser.add_argument("--imgsz", type=int, default=640, help="Detector input size.")
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    parser.add_argument("--skip-extraction", action="store_true", help="Only the training benchmark.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")  # the random-backbone warning, once per run, is expected here
    with tempfile.TemporaryDirectory(prefix="actwatch-train-bench-") as tmp:
        bench_training(Path(tmp), args)
        if not args.skip_extraction:
            bench_extraction(Path(tmp), args)


if __name__ == "__main__":
    main()

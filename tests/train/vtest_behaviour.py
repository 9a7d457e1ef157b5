"""A small real dataset: vtest.avi's pedestrians, labelled ``walking`` or ``standing`` by their motion.

The person tracks come from the service's own detector and tracker
(:class:`~actwatch.tracker.offline.VideoTrackExtractor`); static tracks (the cloth on the grass, a rock)
are left out by the live service's static rule, as ``actwatch extract`` does. Each track is cut into
pieces of ``piece_len`` samples; a piece whose box centre moves at least one box width is ``walking``,
one that moves less than a third of a box width is ``standing`` (pieces in between are left out). All
pieces of one track go to one split, so a person never appears in two splits.

Measured (walking-direction labels were tried first, then these): with this tree's detector and
tracker the set has 113 pieces (33 standing, 80 walking), and the default training run beats the
majority and uniform baselines on its test split; see test_default_training.py for the figures.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from actwatch.capture.video_file import read_video, video_fps
from actwatch.tracker.detector import DetectorSettings, PersonDetector
from actwatch.tracker.offline import TrackSequence, VideoTrackExtractor
from actwatch.tracker.static import StaticSettings, crop_thumbnail, is_static_sequence
from actwatch.train.dataset import DatasetIndex, DatasetWriter, VideoMarker

LABELS = ("standing", "walking")


def vtest_tracks(vtest: Path, detector_weights: Path, *, step: int, fps: float) -> list[TrackSequence]:
    """Person tracks of the whole clip, every ``step``-th frame detected and tracked, crops at ``fps``."""
    # square inputs, as when the figures of tests/train/test_default_training.py were measured (detector.rect
    # auto fits them to the clip on a CPU: other boxes, another dataset)
    detector = PersonDetector(detector_weights, DetectorSettings(conf=0.25, device="cpu", rect=False))
    rate = video_fps(vtest) / step
    extractor = VideoTrackExtractor(detector, crop_hw=(112, 112), fps=fps)
    frames = itertools.islice(read_video(vtest), 0, None, step)
    return list(extractor.extract_frames(frames, frame_rate=rate))


def motion_label(boxes: np.ndarray) -> str | None:
    """``walking`` (the centre moves one box width or more), ``standing`` (less than a third), else None.

    Example:
        >>> still = np.tile([0.0, 0.0, 10.0, 30.0], (4, 1))
        >>> motion_label(still), motion_label(still + [[0, 0, 0, 0], [5, 0, 5, 0], [9, 0, 9, 0], [12, 0, 12, 0]])
        ('standing', 'walking')
    """
    centre = np.stack([boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]], axis=1) / 2
    moved = float(np.hypot(*(centre[-1] - centre[0])))
    width = max(float(np.mean(boxes[:, 2] - boxes[:, 0])), 1.0)
    if moved >= width:
        return "walking"
    return "standing" if moved < width / 3 else None


def piece(track: TrackSequence, k: int, length: int) -> TrackSequence:
    part = slice(k * length, (k + 1) * length)
    return TrackSequence(
        track_id=track.track_id,
        segment=k,
        crops=track.crops[part],
        timestamps=track.timestamps[part],
        frame_indices=track.frame_indices[part],
        boxes=track.boxes[part],
        confidences=track.confidences[part],
        frames_seen=length,
    )


def write_behaviour_dataset(
    tracks: list[TrackSequence], root: Path, *, piece_len: int, max_walking: int, fps: float
) -> tuple[DatasetIndex, int]:
    """The labelled pieces of ``tracks`` as an actwatch dataset in ``root``, and the static tracks left out.

    Pieces are labelled one by one, so a person who stands and then walks gives both classes (what
    the person looks like cannot tell them apart). The splits go by track: the tracks with standing
    pieces are dealt to train, val, test, train, ... in turn, then the others likewise (at most
    ``max_walking`` walking pieces per track, spread over it, keep the classes near balance).
    """
    writer = DatasetWriter(root, {"input_size": [112, 112], "fps": fps, "whole_frame": False, "crop_pad": 0.1})
    static = StaticSettings()
    left_out = 0
    by_track: dict[int, dict[str, list[TrackSequence]]] = {}
    for track in tracks:
        if track.length < piece_len:
            continue
        if is_static_sequence(track.boxes, [crop_thumbnail(c) for c in track.crops], track.timestamps, static):
            left_out += 1
            continue
        pieces: dict[str, list[TrackSequence]] = {label: [] for label in LABELS}
        for k in range(track.length // piece_len):
            part = piece(track, k, piece_len)
            label = motion_label(part.boxes)
            if label is not None:
                pieces[label].append(part)
        walking = pieces["walking"]
        keep = np.unique(np.linspace(0, len(walking) - 1, min(max_walking, len(walking))).round().astype(int))
        pieces["walking"] = [walking[int(i)] for i in keep] if walking else []
        if any(pieces.values()):
            by_track[track.track_id] = pieces
    order = sorted(by_track, key=lambda t: (not by_track[t]["standing"], t))
    with_standing = [t for t in order if by_track[t]["standing"]]
    splits = ("train", "val", "test", "train")
    split_of = {t: splits[i % 4] for i, t in enumerate(with_standing)}
    split_of |= {t: splits[i % 4] for i, t in enumerate(t for t in order if t not in split_of)}
    for track_id, pieces in by_track.items():
        for label, parts in pieces.items():
            if not parts:
                continue
            video_id = f"vtest-t{track_id}-{label}"
            stored = tuple(writer.write_sequence(video_id, p) for p in parts)
            frames = piece_len * len(parts)
            marker = VideoMarker(
                video_id, "vtest.avi", label, None, split_of[track_id], "ok", frames=frames, persons=1, sequences=stored
            )
            writer.write_marker(marker)
    return writer.finalize(val_ratio=0.25, test_ratio=0.25, seed=0), left_out

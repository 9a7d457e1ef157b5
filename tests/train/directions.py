"""A small real dataset: vtest.avi's pedestrians, labelled by their walking direction.

The person tracks come from the service's own detector and tracker
(:class:`~actwatch.tracker.offline.VideoTrackExtractor`). Each track is cut into pieces of ``chunk``
samples; a piece whose box centre moves sideways by at least half a box width is labelled ``left`` or
``right`` (pieces that hardly move sideways are left out). A track takes its main direction (pieces
going the other way are left out) and all its pieces are one "video" of the dataset, so a track never
appears in two splits.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from actwatch.capture.video_file import read_video, video_fps
from actwatch.tracker.detector import DetectorSettings, PersonDetector
from actwatch.tracker.offline import TrackSequence, VideoTrackExtractor
from actwatch.train.dataset import DatasetIndex, DatasetWriter, VideoMarker

DIRECTIONS = ("left", "right")


def vtest_tracks(vtest: Path, detector_weights: Path, *, max_frames: int, step: int, fps: float) -> list[TrackSequence]:
    """Person tracks of the first ``max_frames`` frames, every ``step``-th frame detected and tracked."""
    detector = PersonDetector(detector_weights, DetectorSettings(conf=0.25, device="cpu"))
    rate = video_fps(vtest) / step
    extractor = VideoTrackExtractor(detector, crop_hw=(112, 112), fps=fps)
    frames = itertools.islice(read_video(vtest, max_frames=max_frames), 0, None, step)
    return list(extractor.extract_frames(frames, frame_rate=rate))


def direction_of(boxes: np.ndarray) -> str | None:
    """``left``/``right`` when the box centre moves sideways by half a box width or more, else None.

    Example:
        >>> direction_of(np.array([[0, 0, 10, 30], [8, 0, 18, 30]], np.float32)), direction_of(np.zeros((2, 4)))
        ('right', None)
    """
    centre = (boxes[:, 0] + boxes[:, 2]) / 2
    shift = float(centre[-1] - centre[0])
    width = float(np.mean(boxes[:, 2] - boxes[:, 0]))
    if abs(shift) < 0.5 * max(width, 1.0):
        return None
    return "right" if shift > 0 else "left"


def piece(track: TrackSequence, k: int, chunk: int) -> TrackSequence:
    part = slice(k * chunk, (k + 1) * chunk)
    return TrackSequence(
        track_id=track.track_id,
        segment=k,
        crops=track.crops[part],
        timestamps=track.timestamps[part],
        frame_indices=track.frame_indices[part],
        boxes=track.boxes[part],
        confidences=track.confidences[part],
        frames_seen=chunk,
    )


def write_direction_dataset(
    tracks: list[TrackSequence], root: Path, *, chunk: int, fps: float, val_ratio: float, test_ratio: float
) -> DatasetIndex:
    """The labelled pieces of ``tracks`` as an actwatch dataset in ``root`` (splits grouped by track)."""
    writer = DatasetWriter(root, {"input_size": [112, 112], "fps": fps, "whole_frame": False, "crop_pad": 0.1})
    for track in tracks:
        parts = [piece(track, k, chunk) for k in range(track.length // chunk)]
        labelled = [(p, direction_of(p.boxes)) for p in parts]
        labels = [label for _, label in labelled if label is not None]
        if not labels:
            continue
        # One label per track (its main direction), so that one person is one video in one split.
        label = max(DIRECTIONS, key=labels.count)
        kept = [p for p, pl in labelled if pl == label]
        video_id = f"vtest-t{track.track_id}"
        stored = tuple(writer.write_sequence(video_id, p) for p in kept)
        marker = VideoMarker(
            video_id, "vtest.avi", label, None, None, "ok", frames=track.length, persons=1, sequences=stored
        )
        writer.write_marker(marker)
    return writer.finalize(val_ratio=val_ratio, test_ratio=test_ratio, seed=0)

"""Scene cuts on real footage: vtest.avi cut to its mirror image ends every track there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actwatch.capture.video_file import read_video
from actwatch.tracker.bytetrack import TrackerSettings
from actwatch.tracker.detector import PersonDetector
from actwatch.tracker.offline import VideoTrackExtractor
from actwatch.tracker.scene_cut import SceneCuts, SceneCutSettings, frame_signature, signature_distance

from .videos import write_scene_cut_clip

CUT_S = 2.0


@pytest.fixture(scope="module")
def cut_clip(vtest_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scene_cut_clip(vtest_path, tmp_path_factory.mktemp("cut") / "cut.avi", CUT_S, 2 * CUT_S)


def test_only_the_cut_frame_is_a_cut(cut_clip: Path, vtest_path: Path) -> None:
    cuts = SceneCuts(SceneCutSettings())
    frames = list(read_video(cut_clip))
    assert [f.timestamp for f in frames if cuts.is_cut("cam1", f.image)] == pytest.approx([CUT_S])
    # A whole minute of the uncut clip, every 10th frame (people come and go): never a cut.
    cuts = SceneCuts(SceneCutSettings())
    assert not any(cuts.is_cut("cam1", f.image) for f in list(read_video(vtest_path, max_frames=600))[::10])


def test_exposure_changes_are_not_cuts(vtest_path: Path) -> None:
    (frame,) = read_video(vtest_path, max_frames=1)
    darker = (frame.image * 0.6).astype(np.uint8)
    assert signature_distance(frame_signature(frame.image), frame_signature(darker)) < 0.05


def test_disabled_never_cuts(cut_clip: Path) -> None:
    cuts = SceneCuts(SceneCutSettings(enabled=False))
    assert not any(cuts.is_cut("cam1", f.image) for f in read_video(cut_clip))


def test_extraction_ends_every_track_at_the_cut(cut_clip: Path, person_detector: PersonDetector) -> None:
    extractor = VideoTrackExtractor(person_detector, crop_hw=(32, 32), fps=10.0, tracker_settings=TrackerSettings())
    sequences = list(extractor.extract(cut_clip))
    before = [s for s in sequences if s.first_time < CUT_S - 1e-6]
    after = [s for s in sequences if s.first_time >= CUT_S - 1e-6]
    assert before and after
    assert all(s.last_time < CUT_S - 1e-6 for s in before)  # no sequence spans the cut
    assert not {s.track_id for s in before} & {s.track_id for s in after}

"""TrackBufferStore: fps resampling, window order, caps, memory accounting, freeing, no re-encoding."""

from __future__ import annotations

import numpy as np
import pytest

from actwatch.capture.frame import Frame
from actwatch.model.config import InputSpec
from actwatch.tracker.buffers import PendingSample, TrackBufferStore
from actwatch.tracker.crops import crop_boxes
from actwatch.tracker.detections import Detections

SPEC = InputSpec(seq_len=8, input_size=(64, 64), fps=10.0)
D = 16


def _frame(index: int, t: float, cam: str = "cam", shape: tuple[int, int] = (120, 160)) -> Frame:
    rng = np.random.default_rng(index)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    return Frame(cam, index, t, 1_700_000_000.0 + t, image)


def _tracked(*track_ids: int) -> Detections:
    boxes = [[10 + 20 * (i % 5), 10, 40 + 20 * (i % 5), 90] for i in track_ids]
    return Detections.from_arrays(boxes, [0.9] * len(track_ids), [0] * len(track_ids), list(track_ids))


def _features(pending: list[PendingSample], rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((len(pending), D)).astype(np.float32)


def _feed(
    store: TrackBufferStore, fps: float, n_frames: int, track_ids: tuple[int, ...] = (1,), cam: str = "cam"
) -> tuple[list[PendingSample], np.ndarray]:
    """Feed ``n_frames`` frames at ``fps``; commit random features; return all pending and features."""
    rng = np.random.default_rng(1)
    all_pending: list[PendingSample] = []
    all_feats = []
    for i in range(n_frames):
        pending = store.sample(_frame(i, i / fps, cam), _tracked(*track_ids))
        feats = _features(pending, rng)
        assert store.commit(pending, feats) == len(pending)
        all_pending += pending
        all_feats.append(feats)
    return all_pending, np.concatenate(all_feats) if all_feats else np.zeros((0, D), np.float32)


def test_30fps_stream_is_sampled_every_third_frame() -> None:
    store = TrackBufferStore(SPEC)
    pending, _ = _feed(store, 30.0, 60)
    assert [p.frame_index for p in pending] == list(range(0, 60, 3))
    [window] = store.windows("cam")
    assert window.frame_index == 57
    np.testing.assert_allclose(np.diff(window.timestamps), 0.1, atol=1e-9)


def test_10fps_stream_uses_every_frame_and_windows_span_the_same_time() -> None:
    store10, store30 = TrackBufferStore(SPEC), TrackBufferStore(SPEC)
    pending10, _ = _feed(store10, 10.0, 20)
    _feed(store30, 30.0, 60)
    assert [p.frame_index for p in pending10] == list(range(20))
    [w10], [w30] = store10.windows(), store30.windows()
    span10 = w10.timestamps[-1] - w10.timestamps[0]
    span30 = w30.timestamps[-1] - w30.timestamps[0]
    assert span10 == pytest.approx(0.7) and span30 == pytest.approx(0.7)


def test_5fps_stream_contributes_every_frame_without_duplicates() -> None:
    store = TrackBufferStore(SPEC)
    pending, _ = _feed(store, 5.0, 10)
    assert [p.frame_index for p in pending] == list(range(10))
    [w] = store.windows()
    assert len(set(w.timestamps.tolist())) == SPEC.seq_len


def test_window_is_oldest_first_and_holds_exactly_the_committed_features() -> None:
    store = TrackBufferStore(SPEC)
    pending, feats = _feed(store, 10.0, 13)  # wraps the 8-slot ring
    [w] = store.windows()
    assert w.length == 8 and w.features.dtype == np.float32
    np.testing.assert_array_equal(w.features, feats[-8:])  # stored as given: never re-encoded
    assert w.crops is not None
    np.testing.assert_array_equal(w.crops, np.stack([p.crop for p in pending[-8:]]))
    np.testing.assert_array_equal(w.timestamps, [p.timestamp for p in pending[-8:]])
    assert w.frame_index == 12 and w.box == pending[-1].box
    assert w.first_seen == pytest.approx(1_700_000_000.0) and w.frame_time == pytest.approx(1_700_000_001.2)
    # The window holds each sample's crop, each its own array: not a view that keeps the crop batch of
    # its whole frame alive (the memory cap counts one crop per slot).
    assert w.crop_samples is not None and all(c.base is None for c in w.crop_samples)
    # Later commits do not change a window already handed out.
    before, crops_before = w.features.copy(), w.crops.copy()
    _feed(store, 10.0, 3)
    np.testing.assert_array_equal(w.features, before)
    np.testing.assert_array_equal(w.crops, crops_before)


def test_pending_crops_are_the_frame_crops() -> None:
    store = TrackBufferStore(SPEC, crop_pad=0.1)
    frame = _frame(0, 0.0)
    tracked = _tracked(1, 2)
    pending = store.sample(frame, tracked)
    expected = crop_boxes(frame.image, tracked.xyxy, (64, 64), 0.1)
    assert [p.track_id for p in pending] == [1, 2]
    np.testing.assert_array_equal(np.stack([p.crop for p in pending]), expected)


def test_untracked_detections_are_ignored() -> None:
    store = TrackBufferStore(SPEC)
    dets = Detections.from_arrays([[0, 0, 10, 10]], [0.9], [0])  # track_id -1
    assert store.sample(_frame(0, 0.0), dets) == []
    assert store.track_count == 0


def test_windows_only_when_full_and_take_ready_stride() -> None:
    store = TrackBufferStore(SPEC)
    _feed(store, 10.0, 7)
    assert store.windows() == [] and store.take_ready(stride=1) == []
    [short] = store.windows(only_full=False)
    assert short.length == 7
    rng = np.random.default_rng(5)
    ready_at = []
    for i in range(7, 20):
        pending = store.sample(_frame(i, i / 10), _tracked(1))
        store.commit(pending, _features(pending, rng))
        if store.take_ready(stride=4):
            ready_at.append(i)
        assert store.samples_since_last_window("cam", 1) < 4
    assert ready_at == [7, 11, 15, 19]


def test_track_cap_per_camera_evicts_the_least_recently_seen() -> None:
    store = TrackBufferStore(SPEC, max_tracks_per_camera=2)
    store.sample(_frame(0, 0.0), _tracked(1, 2))
    store.sample(_frame(1, 0.1), _tracked(1))  # track 2 is now the least recently seen
    store.sample(_frame(2, 0.2), _tracked(1, 3))
    assert store.track_ids("cam") == [1, 3]
    assert store.evicted["track_cap"] == 1
    store.sample(_frame(0, 0.0, cam="other"), _tracked(7, 8))  # another camera has its own cap
    assert store.track_ids("cam") == [1, 3] and store.track_ids("other") == [7, 8]


def test_memory_cap_and_accounting() -> None:
    per_track = TrackBufferStore(SPEC, feature_dim=D).track_nbytes()
    store = TrackBufferStore(SPEC, feature_dim=D, max_total_mb=3.5 * per_track / 2**20)
    rng = np.random.default_rng(2)
    for i, tid in enumerate(range(1, 7)):
        pending = store.sample(_frame(i, i / 10), _tracked(tid))
        store.commit(pending, _features(pending, rng))
    assert store.track_count == 3
    assert store.track_ids("cam") == [4, 5, 6]  # the oldest-seen went first
    assert store.evicted["memory"] == 3
    assert store.bytes_used == 3 * per_track <= store.max_total_bytes
    # Without crops a track needs far less.
    assert TrackBufferStore(SPEC, feature_dim=D, keep_crops=False).track_nbytes() < per_track / 10


def test_memory_cap_grows_with_the_cameras_that_have_tracks() -> None:
    """64 cameras of 3 tracks each: a fixed cap of 8 tracks evicts windows before they fill (each camera's
    tracks are the least recently seen by the time the others had their turn); per camera, none is lost."""
    per_track = TrackBufferStore(SPEC, feature_dim=D).track_nbytes()
    fixed = TrackBufferStore(SPEC, feature_dim=D, max_total_mb=8 * per_track / 2**20)
    grows = TrackBufferStore(
        SPEC, feature_dim=D, max_total_mb=8 * per_track / 2**20, mb_per_camera=3 * per_track / 2**20
    )
    rng = np.random.default_rng(3)
    for store in (fixed, grows):
        for i in range(SPEC.seq_len):
            for cam in range(64):
                pending = store.sample(_frame(i, i / 10, cam=f"cam{cam}"), _tracked(1, 2, 3))
                store.commit(pending, _features(pending, rng))
    assert fixed.evicted["memory"] > 0 and fixed.windows() == []
    assert grows.evicted["memory"] == 0 and len(grows.windows()) == 64 * 3
    assert grows.max_total_bytes == 64 * 3 * per_track // 1 and grows.bytes_used == 64 * 3 * per_track
    grows.drop_camera("cam0")  # the cap shrinks with the cameras
    assert grows.max_total_bytes == 63 * 3 * per_track and grows.bytes_used == 63 * 3 * per_track


def test_byte_count_follows_every_way_a_track_comes_and_goes() -> None:
    """bytes_used is kept as it goes: it always equals the bytes of the tracks there are."""
    per_track = TrackBufferStore(SPEC, feature_dim=D).track_nbytes()
    store = TrackBufferStore(SPEC, max_tracks_per_camera=3, max_total_mb=5 * per_track / 2**20, max_gap_s=0.35)
    rng = np.random.default_rng(4)
    for i in range(60):
        cam = f"cam{i % 3}"
        ids = tuple(int(x) for x in rng.choice(8, size=int(rng.integers(0, 5)), replace=False))
        pending = store.sample(_frame(i, i / 10, cam=cam), _tracked(*ids))
        store.commit(pending, _features(pending, rng))
        if i % 7 == 0:
            store.end_tracks(cam, ids[:1])
        if i == 40:
            store.drop_camera("cam1")
        buffers = [(cam, tid) for cam in ("cam0", "cam1", "cam2") for tid in store.track_ids(cam)]
        with_features = sum(store.sample_count(*key) > 0 for key in buffers)
        expected = len(buffers) * store.track_nbytes() - (len(buffers) - with_features) * SPEC.seq_len * D * 4
        assert store.bytes_used == expected <= store.max_total_bytes
    assert sum(store.evicted.values()) > 0 and all(
        store.evicted[r] > 0 for r in ("memory", "stale", "ended", "track_cap")
    )


def test_feature_dim_learnt_at_first_commit_counts_in_memory() -> None:
    store = TrackBufferStore(SPEC)
    store.sample(_frame(0, 0.0), _tracked(1))
    before = store.bytes_used
    pending = store.sample(_frame(1, 0.1), _tracked(1))
    store.commit(pending, np.zeros((1, D), np.float32))
    assert store.feature_dim == D
    assert store.bytes_used == before + SPEC.seq_len * D * 4 == store.track_nbytes()


def test_keep_crops_false_gives_windows_without_crops() -> None:
    store = TrackBufferStore(SPEC, keep_crops=False)
    _feed(store, 10.0, 8)
    [w] = store.windows()
    assert w.crops is None and w.features.shape == (8, D)


def test_end_tracks_drop_camera_and_stale_tracks_are_freed() -> None:
    store = TrackBufferStore(SPEC, max_gap_s=1.0)
    store.sample(_frame(0, 0.0), _tracked(1, 2, 3))
    store.sample(_frame(0, 0.0, cam="b"), _tracked(1))
    assert store.end_tracks("cam", [2, 99]) == 1 and store.track_ids("cam") == [1, 3]
    store.sample(_frame(1, 0.5), _tracked(1))
    store.sample(_frame(2, 1.4), _tracked(1))  # track 3 unseen for 1.4 s > max_gap_s
    assert store.track_ids("cam") == [1]
    assert store.evicted["ended"] == 1 and store.evicted["stale"] == 1
    assert store.drop_camera("b") == 1 and store.track_ids("b") == []
    assert store.track_count == 1


def test_commit_for_a_freed_track_is_discarded() -> None:
    store = TrackBufferStore(SPEC)
    pending = store.sample(_frame(0, 0.0), _tracked(1, 2))
    store.end_tracks("cam", [2])
    store.sample(_frame(1, 0.05), _tracked(2))  # a new incarnation of id 2 (the old one was ended)
    assert store.commit(pending, np.ones((2, D), np.float32)) == 1
    assert store.discarded_samples == 1
    assert store.sample_count("cam", 1) == 1 and store.sample_count("cam", 2) == 0


def test_track_back_after_a_short_gap_keeps_its_window() -> None:
    store = TrackBufferStore(SPEC, max_gap_s=3.0)
    _feed(store, 10.0, 5)  # 0.0 .. 0.4 s
    # Hidden for 2.5 s (the tracker kept the id), seen again: the window goes on from its 5 samples.
    pending = store.sample(_frame(30, 2.9), _tracked(1))
    store.commit(pending, np.zeros((1, D), np.float32))
    assert store.sample_count("cam", 1) == 6
    # The same gap with a shorter setting starts a fresh window.
    store = TrackBufferStore(SPEC, max_gap_s=2.0)
    _feed(store, 10.0, 5)
    store.commit(store.sample(_frame(30, 2.9), _tracked(1)), np.zeros((1, D), np.float32))
    assert store.sample_count("cam", 1) == 1


def test_track_back_after_a_long_gap_starts_a_fresh_window() -> None:
    store = TrackBufferStore(SPEC, max_gap_s=1.0)
    _feed(store, 10.0, 8)
    assert store.sample_count("cam", 1) == 8
    # Seen again 3 s later without any frame of this camera in between (so not freed as stale).
    pending = store.sample(_frame(100, 3.7), _tracked(1))
    store.commit(pending, np.zeros((1, D), np.float32))
    assert store.sample_count("cam", 1) == 1


def test_commit_validates_features() -> None:
    store = TrackBufferStore(SPEC)
    pending = store.sample(_frame(0, 0.0), _tracked(1))
    with pytest.raises(ValueError):
        store.commit(pending, np.zeros((2, D), np.float32))
    store.commit(pending, np.zeros((1, D), np.float32))
    pending = store.sample(_frame(1, 0.1), _tracked(1))
    with pytest.raises(ValueError, match="dimension"):
        store.commit(pending, np.zeros((1, D + 1), np.float32))


def test_budget_too_small_for_one_track() -> None:
    with pytest.raises(ValueError, match="cannot hold even one track"):
        TrackBufferStore(SPEC, max_total_mb=0.01)


def test_two_cameras_one_encode_batch() -> None:
    """The compute loop: pending samples of all cameras are encoded in one batch, then committed."""
    store = TrackBufferStore(SPEC)
    rng = np.random.default_rng(3)
    for i in range(24):
        pending = store.sample(_frame(i, i / 30, cam="fast"), _tracked(1))  # 30 fps camera
        if i % 3 == 0:
            pending += store.sample(_frame(i // 3, i / 30, cam="slow"), _tracked(1, 2))  # 10 fps camera
        store.commit(pending, _features(pending, rng))
    windows = store.windows()
    assert [(w.camera_id, w.track_id) for w in windows] == [("fast", 1), ("slow", 1), ("slow", 2)]
    assert all(w.timestamps[-1] - w.timestamps[0] == pytest.approx(0.7) for w in windows)


def test_ready_batch_is_the_windows_features_in_order_after_the_ring_wraps() -> None:
    store = TrackBufferStore(SPEC)
    pending, feats = _feed(store, 10.0, 11, track_ids=(1, 2))  # 11 samples each into 8 slots
    ready = store.take_ready_batch(stride=1)
    assert ready.features.shape == (2, SPEC.seq_len, D) and [w.track_id for w in ready.windows] == [1, 2]
    for row, window in enumerate(ready.windows):
        mine = [i for i, p in enumerate(pending) if p.track_id == window.track_id][-SPEC.seq_len :]
        np.testing.assert_array_equal(ready.features[row], feats[mine])  # oldest first, as committed
        assert window.features.base is ready.features
        assert np.round(window.timestamps * 10).tolist() == list(range(3, 11))
    # the batch is the step's own copy: later commits do not change it
    before = ready.features.copy()
    _feed(store, 10.0, 2, track_ids=(1, 2))
    np.testing.assert_array_equal(ready.features, before)
    assert store.take_ready_batch(stride=5).features.shape == (0, SPEC.seq_len, D)

"""Building the stages from the configuration: what reaches the camera readers, and what is warned about."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from actwatch.capture.reader import CameraReader
from actwatch.config import AppConfig
from actwatch.model.runtime import ActionRuntime, RecognitionRuntime
from actwatch.service.events import AlertRecord, FrameOverlay
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.stages import build_stages, camera_reader_factory


class NullSink:
    def emit_event(self, alert: AlertRecord) -> None:
        pass

    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
        pass


def _config(**sections: object) -> AppConfig:
    return AppConfig.model_validate(sections)


def test_a_camera_s_max_fps_overrides_the_capture_section_s() -> None:
    config = _config(
        capture={"max_fps": 12},
        cameras=[{"id": "gate", "url": "rtsp://10.0.0.5/s", "max_fps": 5}, {"id": "yard", "url": "rtsp://10.0.0.6/s"}],
    )
    make_reader = camera_reader_factory(config)
    readers = [make_reader(camera) for camera in config.cameras]  # built, not started: no connection
    assert all(isinstance(reader, CameraReader) for reader in readers)
    assert [reader.settings.max_fps for reader in readers if isinstance(reader, CameraReader)] == [5.0, 12.0]


def test_a_max_fps_below_the_model_s_sampling_rate_is_warned_about_at_start(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(
        capture={"max_fps": 4},
        cameras=[{"id": "gate", "url": str(vtest_path)}, {"id": "yard", "url": "rtsp://10.0.0.6/s", "max_fps": 20}],
        sources={"file_dirs": [str(vtest_path.parent)]},
        detector={"weights": str(detector_weights), "person_class_ids": [0, 1]},
        model={"dir": str(exported_model_dir)},
    )
    with caplog.at_level(logging.WARNING, logger="actwatch.service.stages"):
        build_stages(config, sink=NullSink(), metrics=ServiceMetrics())  # readers start with a camera
    warnings = [r.getMessage() for r in caplog.records if "sampling rate" in r.getMessage()]
    # the test model samples at 10 fps: the section's 4 is below it, the camera's 20 is not
    assert warnings == [
        "capture.max_fps (4) is below the action model's sampling rate (10 fps): its windows span more time "
        "than the model was trained on; raise it to at least 10"
    ]


@pytest.mark.parametrize(("setting", "expected"), [(None, 32), (48, 48)])
def test_the_action_model_s_batch_is_sized_to_the_cameras_unless_set(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path, setting: int | None, expected: int
) -> None:
    """Unset, ``model.max_batch`` follows the cameras (3 here: 32 crops per call), so a GPU process warms
    up and keeps memory for what its cameras bring, not for 256 crops; set, it is what it says."""
    config = _config(
        cameras=[{"id": f"c{i}", "url": str(vtest_path)} for i in range(3)],
        sources={"file_dirs": [str(vtest_path.parent)]},
        detector={"weights": str(detector_weights), "person_class_ids": [0, 1]},
        model={"dir": str(exported_model_dir), "max_batch": setting},
    )
    built: list[RecognitionRuntime] = []

    def keep(runtime: RecognitionRuntime) -> RecognitionRuntime:
        built.append(runtime)
        return runtime

    build_stages(config, sink=NullSink(), metrics=ServiceMetrics(), wrap_runtime=keep)
    assert len(built) == 1 and isinstance(built[0], ActionRuntime)
    assert built[0].max_batch == expected
    crops = np.random.default_rng(0).integers(0, 255, (expected + 5, 40, 30, 3), dtype=np.uint8)
    whole = ActionRuntime(exported_model_dir, max_batch=256).encode(crops)
    np.testing.assert_allclose(built[0].encode(crops), whole, atol=1e-5)  # split in two calls, same features


@pytest.mark.parametrize(("workers", "threads"), [("auto", None), (2, "half")])
def test_detect_workers_share_the_cores_unless_the_detector_s_threads_are_set(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path, workers: object, threads: object
) -> None:
    """With several detect workers each detector call gets an equal share of the cores (one frame's
    operators over all of them would make the workers' calls fight for every core)."""
    import os

    from actwatch.tracker.detector import PersonDetector

    config = _config(
        cameras=[{"id": f"c{i}", "url": str(vtest_path)} for i in range(2)],
        sources={"file_dirs": [str(vtest_path.parent)]},
        detector={"weights": str(detector_weights), "person_class_ids": [0, 1], "device": "cpu"},
        model={"dir": str(exported_model_dir)},
        pipeline={"detect_workers": workers},
    )
    built: list[object] = []

    def keep(detector: object) -> object:
        built.append(detector)
        return detector

    stages = build_stages(config, sink=NullSink(), metrics=ServiceMetrics(), wrap_detector=keep)  # type: ignore[arg-type]
    assert isinstance(built[0], PersonDetector)
    expected = max(1, (os.cpu_count() or 1) // 2) if threads == "half" else None
    assert built[0].settings.intra_op_threads == expected
    assert stages.detect_workers == (2 if workers == 2 else 1)


def test_a_device_out_of_memory_at_warm_up_says_which_setting_to_change(exported_model_dir: Path) -> None:
    """A session per padded batch size costs GPU memory; a card too small for them fails at start (the
    warm-up runs every size) with an error naming the setting, not a traceback during a run. A GPU's
    allocation failure cannot happen here: the detector stand-in raises ONNX Runtime's wording of one."""
    from actwatch.errors import ConfigError
    from actwatch.service.stages import warm_up

    runtime = ActionRuntime(exported_model_dir)

    class FailingDetector:
        def __init__(self, error: str) -> None:
            self.error = error

        def detect(self, images: list[np.ndarray]) -> list[object]:
            raise RuntimeError(self.error)

    oom = (
        "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node.\n"
        "Failed to allocate memory for requested buffer of size 1073741824"
    )
    with pytest.raises(ConfigError, match=r"preparing calls of 4 frames, ran out of device memory at start") as err:
        warm_up(FailingDetector(oom), runtime, cameras=4)  # type: ignore[arg-type]
    assert "detector.batch_padding: fixed" in str(err.value) and "RUNTIME_EXCEPTION" in str(err.value)
    with pytest.raises(RuntimeError, match="shape mismatch"):  # any other failure stays what it was
        warm_up(FailingDetector("shape mismatch"), runtime, cameras=4)  # type: ignore[arg-type]

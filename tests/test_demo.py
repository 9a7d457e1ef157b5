"""``actwatch demo``'s configuration on vtest.avi, run through the service's own stages
(:func:`~actwatch.service.stages.build_stages`) with a replay processed at 5 fps: a newcomer sees real
loitering and running alerts within the first minute of the clip, next to the untrained model's labels,
which say they are untrained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actwatch.assets import ensure_backbone_weights
from actwatch.capture.replay import ReplayReader
from actwatch.demo import DEMO_CAMERA_ID, demo_app_config
from actwatch.demo_model import DEMO_CLASSES, UNTRAINED_PREFIX, export_untrained_model
from actwatch.model.manifest import load_manifest
from actwatch.service.events import AlertRecord, FrameOverlay
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.pipeline import StreamPipeline
from actwatch.service.stages import build_stages

FIRST_MINUTE_S = 60.0
FRAMES_PER_STEP = 2  # the replay runs ahead by one frame per step: 5 fps processed, as on a CPU


class _Sink:
    def __init__(self) -> None:
        self.events: list[AlertRecord] = []

    def emit_event(self, alert: AlertRecord) -> None:
        self.events.append(alert)

    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
        pass


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory: pytest.TempPathFactory, assets_dir: Path) -> Path:
    ensure_backbone_weights(assets_dir)  # what `actwatch demo` does first
    return export_untrained_model(tmp_path_factory.mktemp("demo") / "demo-model")


@pytest.mark.usefixtures("one_torch_thread")
def test_the_demo_shows_loitering_and_running_within_the_first_minute(
    tmp_path: Path, demo_model: Path, vtest_path: Path, detector_weights: Path
) -> None:
    manifest = load_manifest(demo_model)
    assert manifest.classes == list(DEMO_CLASSES) and all(c.startswith(UNTRAINED_PREFIX) for c in manifest.classes)
    assert manifest.checkpoint["metadata"]["backbone"] != "random"  # ImageNet features (actwatch assets)

    config = demo_app_config(
        data_dir=tmp_path,
        sample=vtest_path,
        detector=detector_weights,
        model_dir=demo_model,
        model_label=DEMO_CLASSES[0],
    )
    sink = _Sink()
    reader = ReplayReader(DEMO_CAMERA_ID, vtest_path)
    pipeline = StreamPipeline(
        build_stages(config, sink=sink, metrics=ServiceMetrics(), reader_factory=lambda camera: reader)
    )
    pipeline.add_camera(config.cameras[0])

    first_seen: dict[str, float] = {}  # label -> stream seconds of the frame that alerted
    fed = 0
    while fed / 10.0 < FIRST_MINUTE_S and not {"loitering", "running"} <= set(first_seen):
        for _ in range(FRAMES_PER_STEP):
            assert reader.feed(), "vtest.avi ended"
        fed += FRAMES_PER_STEP
        report = pipeline.step()
        stream_s = (fed - 1) / 10.0  # the newest frame's timestamp: the one this step processed
        for event in report.events:
            first_seen.setdefault(event.label, stream_s)
    print(f"first alerts (stream seconds): {first_seen}")
    assert "loitering" in first_seen and "running" in first_seen, first_seen
    # The signal events carry the confirming frame, and the camera's zone gated them.
    signal_events = [r for r in sink.events if r.event.label in ("loitering", "running")]
    assert all(r.frame_bgr is not None and r.frame_bgr.shape == (576, 768, 3) for r in signal_events)
    # The untrained head's events are there too, and their label says what they are.
    assert all(r.event.label.startswith(UNTRAINED_PREFIX) for r in sink.events if r not in signal_events)


def test_the_demo_model_is_reused_while_it_is_current(demo_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from actwatch.cli.service_cmd import demo_model_dir

    # demo_model is <data_dir>/demo-model/onnx, made from the current classes and the ImageNet backbone.
    assert demo_model_dir(demo_model.parent.parent) == demo_model
    assert "creating the demo model" not in capsys.readouterr().out

"""ActionRuntime on a real exported model, and provider selection."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from actwatch.errors import ManifestError
from actwatch.model.checkpoint import load_checkpoint
from actwatch.model.preprocess import preprocess_windows
from actwatch.model.runtime import ActionRuntime, softmax
from actwatch.onnx_choices import CPU, CUDA, TENSORRT
from actwatch.onnx_inputs import UINT8_INPUT
from actwatch.onnx_providers import select_providers
from actwatch.paths import CACHE_DIR_ENV

CLASSES = ("walking", "standing", "fighting")


@pytest.fixture(scope="module")
def runtime(exported_model_dir: Path) -> ActionRuntime:
    return ActionRuntime(exported_model_dir, intra_op_threads=1)


def _windows(batch: int, seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, 8, size, size, 3), dtype=np.uint8)


def test_provider_order_among_available() -> None:
    assert select_providers(available=[CPU, CUDA, TENSORRT, "AzureExecutionProvider"]) == [TENSORRT, CUDA, CPU]
    assert select_providers("auto", available=[CPU, CUDA]) == [CUDA, CPU]
    assert select_providers(available=[CPU, CUDA]) == [CUDA, CPU]
    assert select_providers(available=[CPU]) == [CPU]
    assert select_providers(available=[]) == [CPU]  # CPU is always there in practice
    assert select_providers(["cpu", "cuda"], available=[CPU, CUDA]) == [CUDA, CPU]
    assert select_providers(["CUDA", "tensorrt"], available=[CPU, CUDA, TENSORRT]) == [CUDA, TENSORRT, CPU]


def test_unavailable_provider_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="actwatch.onnx_providers"):
        assert select_providers([TENSORRT, "cuda"], available=[CPU, CUDA]) == [CUDA, CPU]
    assert "TensorrtExecutionProvider is not available" in caplog.text
    # This machine has no GPU: whichever onnxruntime build is installed (the GPU build lists CUDA
    # anyway), CUDA cannot really run here and the probe says so.
    assert CUDA not in ort.get_available_providers() or not _has_gpu()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="actwatch.onnx_providers"):
        assert select_providers(["cuda", "tensorrt"]) == [CPU]
    assert "CUDAExecutionProvider is not available" in caplog.text


def _has_gpu() -> bool:
    from actwatch.onnx_providers import cuda_devices

    return cuda_devices()[0] > 0


def test_requesting_a_gpu_gives_a_cpu_runtime(exported_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        rt = ActionRuntime(exported_model_dir, providers=["CUDAExecutionProvider", "TensorrtExecutionProvider"])
    assert rt.providers == [CPU]
    assert "falling back" in caplog.text


def test_attributes(runtime: ActionRuntime) -> None:
    assert runtime.classes == CLASSES and runtime.num_classes == 3
    assert (runtime.spec.seq_len, runtime.spec.input_size, runtime.spec.fps) == (8, (64, 64), 10.0)
    assert runtime.feature_dim == 1280 and runtime.supports_feature_cache
    assert runtime.providers == [CPU] and runtime.manifest.split
    assert "mobilenet_v2_lstm" in repr(runtime)


def test_runtime_matches_the_checkpoint(runtime: ActionRuntime, checkpoint_path: Path) -> None:
    """Crops -> runtime probabilities equal crops -> preprocess -> torch model -> softmax."""
    ckpt = load_checkpoint(checkpoint_path)
    windows = _windows(3)
    with torch.no_grad():
        logits = ckpt.build_model()(torch.from_numpy(preprocess_windows(windows, ckpt.input))).numpy()
    expected = softmax(logits)
    whole = runtime.classify_crops(windows)
    features = runtime.encode(windows.reshape(-1, 64, 64, 3))
    split = runtime.classify(features.reshape(3, 8, -1))
    assert whole.shape == split.shape == (3, 3) and whole.dtype == np.float32
    np.testing.assert_allclose(whole, expected, atol=1e-5)
    np.testing.assert_allclose(split, expected, atol=1e-5)
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(whole[0] - whole[1]).max() > 1e-4  # the untrained model still responds to its input


def test_encode_accepts_lists_of_any_size_and_empty(runtime: ActionRuntime) -> None:
    rng = np.random.default_rng(3)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(64, 64), (120, 50), (30, 20)]]
    feats = runtime.encode(crops)
    assert feats.shape == (3, 1280) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[0], runtime.encode(crops[0][None])[0], atol=1e-5)
    assert runtime.encode([]).shape == (0, 1280)
    assert runtime.encode(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 1280)


def test_classify_validates_shapes(runtime: ActionRuntime) -> None:
    assert runtime.classify(np.zeros((0, 8, 1280), np.float32)).shape == (0, 3)
    assert runtime.classify_crops(np.zeros((0, 8, 64, 64, 3), np.uint8)).shape == (0, 3)
    with pytest.raises(ValueError, match=r"\(B, 8, 1280\).*got shape \(2, 7, 1280\)"):
        runtime.classify(np.zeros((2, 7, 1280), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(2, 8, 512\)"):
        runtime.classify(np.zeros((2, 8, 512), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(8, 1280\)"):
        runtime.classify(np.zeros((8, 1280), np.float32))
    with pytest.raises(ValueError, match="seq_len=8"):
        runtime.classify_crops(np.zeros((1, 5, 64, 64, 3), np.uint8))


def test_large_batches_are_chunked(exported_model_dir: Path, runtime: ActionRuntime) -> None:
    small = ActionRuntime(exported_model_dir, max_batch=5)  # chunks of 5 crops, 1 window, 5 feature windows
    windows = _windows(7, seed=5, size=48)
    feats = small.encode(windows.reshape(-1, 48, 48, 3))
    np.testing.assert_allclose(feats, runtime.encode(windows.reshape(-1, 48, 48, 3)), atol=1e-5)
    seq = feats.reshape(7, 8, -1)
    np.testing.assert_allclose(small.classify(seq), runtime.classify(seq), atol=1e-6)
    np.testing.assert_allclose(small.classify_crops(windows), runtime.classify_crops(windows), atol=1e-5)


def test_runtime_rejects_a_damaged_folder(exported_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        ActionRuntime(tmp_path / "missing")


@pytest.mark.parametrize("padding", ["fixed", "pow2"])
def test_padded_batches_give_the_same_results(exported_model_dir: Path, runtime: ActionRuntime, padding: str) -> None:
    # On a GPU provider each call's batch is padded (fixed: to max_batch, one input shape; pow2: a few);
    # the padding rows never reach the caller and the real rows are unchanged.
    padded = ActionRuntime(exported_model_dir, padding=padding, max_batch=8)  # type: ignore[arg-type]
    assert runtime.padding == "off" and padded.padding == padding  # CPU here: off by default
    assert runtime.pad_batches is False and padded.pad_batches is True
    crops = np.random.default_rng(0).integers(0, 255, (11, 40, 30, 3), dtype=np.uint8)  # chunks of 8 and 3
    features = padded.encode(crops)
    np.testing.assert_allclose(features, runtime.encode(crops), rtol=1e-5, atol=1e-5)
    windows = np.random.default_rng(1).standard_normal((3, runtime.spec.seq_len, features.shape[1]), np.float32)
    np.testing.assert_allclose(padded.classify(windows), runtime.classify(windows), rtol=1e-5, atol=1e-6)


def test_fixed_padding_gives_every_call_one_shape(exported_model_dir: Path) -> None:
    """ONNX Runtime's CUDA convolutions build their plans again whenever their input shape changes
    (hundreds of ms on an H100): with fixed padding every encoder call has max_batch rows; the head,
    which has no convolution, is padded to a power of two (a few shapes, little copying)."""
    runtime = ActionRuntime(exported_model_dir, padding="fixed", max_batch=8)
    shapes: dict[str, set[tuple[int, ...]]] = {"encoder": set(), "head": set()}
    sessions: dict[str, set[int]] = {"encoder": set(), "head": set()}  # ids of the sessions that ran
    real_session = runtime._session

    def recorded(role: str, batch: int = 0) -> object:
        session = real_session(role, batch)
        sessions[role].add(id(session))

        def run(outputs: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            shapes[role].add(next(iter(feeds.values())).shape[:1])
            return session.run(outputs, feeds)

        return type("Recorded", (), {"run": staticmethod(run)})()

    runtime._session = recorded  # type: ignore[method-assign]
    rng = np.random.default_rng(2)
    for n in (1, 3, 8, 11):
        features = runtime.encode(rng.integers(0, 255, (n, 40, 30, 3), dtype=np.uint8))
        assert features.shape[0] == n
        assert runtime.classify(np.repeat(features[:, None], runtime.spec.seq_len, axis=1)).shape[0] == n
    assert shapes == {"encoder": {(8,)}, "head": {(1,), (4,), (8,)}}
    # each shape on its own session, so none displaces another's cuDNN plans on a GPU
    assert {role: len(ids) for role, ids in sessions.items()} == {"encoder": 1, "head": 3}
    with pytest.raises(ValueError, match="padding must be"):
        ActionRuntime(exported_model_dir, padding="square")  # type: ignore[arg-type]


def test_a_step_split_into_calls_on_a_gpu_is_said_once(
    exported_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """More crops than model.max_batch (cameras added since start): one line says so and what to set."""
    padded = ActionRuntime(exported_model_dir, padding="pow2", max_batch=4)
    crops = np.random.default_rng(0).integers(0, 255, (6, 40, 30, 3), dtype=np.uint8)
    with caplog.at_level(logging.INFO, logger="actwatch.model.runtime"):
        padded.encode(crops[:4])  # fits one call: nothing said
        padded.encode(crops)
        padded.encode(crops)
    said = [r.getMessage() for r in caplog.records if "went in calls of" in r.getMessage()]
    assert said == [
        "action model: 6 inputs for the encoder in one step went in calls of 4 (model.max_batch, sized to the "
        "cameras at start); with more cameras since, a larger model.max_batch makes fewer calls"
    ]


def test_normalising_in_the_graph_gives_the_host_s_features(
    exported_model_dir: Path, runtime: ActionRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The GPU path: the encoder takes uint8 crops and normalises them itself (run here on the CPU).
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))  # the derived encoder goes to a fresh cache
    in_graph = ActionRuntime(exported_model_dir, intra_op_threads=1, preprocess="graph")
    assert in_graph.preprocess_in_graph and not runtime.preprocess_in_graph  # auto on the CPU: host
    encoder = ort.InferenceSession(str(next((tmp_path / "derived").glob("*.u8.onnx"))), providers=[CPU])
    assert [(i.name, i.type) for i in encoder.get_inputs()] == [(UINT8_INPUT, "tensor(uint8)")]
    rng = np.random.default_rng(5)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(64, 64), (120, 50), (30, 20)]]
    features = in_graph.encode(crops)
    assert features.shape == (3, 1280) and float(np.abs(features).max()) > 0
    np.testing.assert_allclose(features, runtime.encode(crops), rtol=1e-4, atol=1e-4)
    assert in_graph.encode([]).shape == (0, 1280)


@pytest.mark.usefixtures("blocked_cache")
def test_a_graph_that_cannot_be_derived_is_a_clear_error(exported_model_dir: Path) -> None:
    with pytest.raises(ManifestError, match=r"set model\.preprocess to host"):
        ActionRuntime(exported_model_dir, preprocess="graph")


class RecordingRuntime(ActionRuntime):
    """The real runtime; records the batch sizes its networks are run at."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.encoded: list[int] = []
        self.classified: list[int] = []

    def encode(self, crops_bgr_uint8: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        self.encoded.append(len(crops_bgr_uint8))
        return super().encode(crops_bgr_uint8)

    def classify(self, features: np.ndarray) -> np.ndarray:
        self.classified.append(len(features))
        return super().classify(features)


def test_warm_up_runs_every_padded_batch_size_once(exported_model_dir: Path) -> None:
    """Where batches are padded (a GPU), each padded size is prepared before the first frame; on the CPU,
    where nothing is prepared per size, one size is enough."""
    from actwatch.service.stages import warm_up

    class NoDetector:
        def detect(self, images: Sequence[np.ndarray]) -> list[object]:
            return []

    padded = RecordingRuntime(exported_model_dir, [CPU], max_batch=12, padding="pow2")
    assert padded.call_batch_sizes() == [1, 2, 4, 8, 12]
    warm_up(NoDetector(), padded)  # type: ignore[arg-type]
    assert padded.encoded == padded.classified == [1, 2, 4, 8, 12]
    fixed = RecordingRuntime(exported_model_dir, [CPU], max_batch=12, padding="fixed")
    warm_up(NoDetector(), fixed)  # type: ignore[arg-type]
    assert fixed.call_batch_sizes() == [1, 2, 4, 8, 12] and fixed.encoded == fixed.classified == [1, 2, 4, 8, 12]
    plain = RecordingRuntime(exported_model_dir, [CPU], max_batch=12)
    warm_up(NoDetector(), plain)  # type: ignore[arg-type]
    assert plain.call_batch_sizes() == [1] and plain.encoded == plain.classified == [1]

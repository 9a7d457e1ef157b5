"""The ImageNet weights are what they claim: a linear probe on pooled MobileNetV2 features separates person
crops from background crops clearly better with them than with random initialisation.

Person crops are the real detector's confident boxes on vtest.avi (and on Ultralytics' bundled bus.jpg and
zidane.jpg); background crops are random boxes of the same sizes that touch no detection. Training and test
crops come from different frames, so no person is in both. Both accuracies are printed (``-s``) and written
to the test's report section (measured here: about 0.99 with ImageNet weights, 0.87-0.89 with random init).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from actwatch.assets import BACKBONE_SHA256, ensure_backbone_weights
from actwatch.capture.video_file import read_video
from actwatch.model.checkpoint import init_model
from actwatch.model.config import InputSpec, ModelConfig
from actwatch.model.preprocess import preprocess_crops
from actwatch.tracker.detector import DetectorSettings, PersonDetector

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FRAME_STEP = 40  # vtest.avi frames 4 s apart (10 fps): the people have moved on
PERSON_CONF = 0.5
MIN_HEIGHT = 48  # pixels: smaller boxes are too few pixels to say much either way
SPEC = InputSpec(input_size=112)
SPLITS = 5


def _frames(vtest_path: Path) -> list[np.ndarray]:
    import ultralytics

    bundled = Path(ultralytics.__file__).parent / "assets"
    frames = [f.image for i, f in enumerate(read_video(vtest_path)) if i % FRAME_STEP == 0]
    for name in ("bus.jpg", "zidane.jpg"):
        image = cv2.imread(str(bundled / name))
        assert image is not None, f"cannot read Ultralytics' bundled {name}"
        frames.append(image)
    return frames


def _overlaps(box: np.ndarray, boxes: np.ndarray) -> bool:
    if not len(boxes):
        return False
    ix = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    iy = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return bool(((ix > 0) & (iy > 0)).any())


def _crops(frames: list[np.ndarray], detector: PersonDetector, rng: np.random.Generator) -> list[list[tuple]]:
    """Per frame: (crop, is_person) pairs, as many background crops as person crops."""
    out: list[list[tuple]] = []
    for image, det in zip(frames, detector.detect(frames), strict=True):
        h, w = image.shape[:2]
        every = det.xyxy  # all detections, even unsure ones: a background box touches none of them
        persons = [
            b.astype(int)
            for b, c in zip(det.xyxy, det.confidence, strict=True)
            if c >= PERSON_CONF and b[3] - b[1] >= MIN_HEIGHT
        ]
        pairs = [(image[y0:y1, x0:x1], True) for x0, y0, x1, y1 in persons]
        backgrounds = 0
        for _ in range(2000):
            if backgrounds == len(persons):
                break
            x0, y0, x1, y1 = persons[backgrounds]
            bw, bh = x1 - x0, y1 - y0
            if bw >= w or bh >= h:
                backgrounds += 1
                continue
            nx, ny = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            box = np.array([nx, ny, nx + bw, ny + bh], dtype=np.float32)
            if not _overlaps(box, every):
                pairs.append((image[ny : ny + bh, nx : nx + bw], False))
                backgrounds += 1
        out.append(pairs)
    return out


def _features(pretrained: bool, crops: list[np.ndarray]) -> np.ndarray:
    torch.manual_seed(0)
    model = init_model(["a", "b"], ModelConfig(pretrained=pretrained, hidden_size=8, fc_size=4), SPEC)
    encoder = model.frame_encoder().eval()
    batch = torch.from_numpy(preprocess_crops([cv2.resize(c, SPEC.input_size[::-1]) for c in crops], SPEC))
    with torch.no_grad():
        return encoder(batch).numpy().astype(np.float64)


def _probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Logistic regression (L2, full-batch L-BFGS, standardised features) trained on one split, scored on the other."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.tensor((train_x - mean) / std, dtype=torch.float64)
    y = torch.tensor(train_y, dtype=torch.float64)
    weights = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        logits = x @ weights[:-1] + weights[-1]
        value = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + 1e-2 * weights[:-1].square().sum()
        value.backward()
        return value

    optimiser.step(loss)
    test = torch.tensor((test_x - mean) / std, dtype=torch.float64)
    with torch.no_grad():
        predicted = (test @ weights[:-1] + weights[-1]) > 0
    return float((predicted.numpy() == test_y.astype(bool)).mean())


def test_linear_probe_separates_persons_from_background_better_with_imagenet_weights(
    vtest_path: Path,
    detector_weights: Path,
    assets_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Callable[[str, object], None],
) -> None:
    assert ensure_backbone_weights(assets_dir).is_file()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # the asset file, not a torchvision file somewhere
    monkeypatch.setenv("ACTWATCH_CACHE_DIR", str(assets_dir))
    detector = PersonDetector(detector_weights, DetectorSettings(person_class_ids=[0, 1], conf=0.1, device="cpu"))
    per_frame = _crops(_frames(vtest_path), detector, np.random.default_rng(0))
    crops = [crop for frame in per_frame for crop, _ in frame]
    labels = np.array([is_person for frame in per_frame for _, is_person in frame])
    frame_of = np.array([i for i, frame in enumerate(per_frame) for _ in frame])
    assert labels.sum() >= 40 and (~labels).sum() >= 40, "too few crops for a probe"
    features = {"imagenet": _features(True, crops), "random": _features(False, crops)}
    # Frames, not crops, are split in halves: no person (or background patch) is in both; five splits.
    accuracy: dict[str, list[float]] = {name: [] for name in features}
    for seed in range(SPLITS):
        order = np.random.default_rng(seed).permutation(len(per_frame))
        train = np.isin(frame_of, order[: len(per_frame) // 2])
        for name, x in features.items():
            accuracy[name].append(_probe_accuracy(x[train], labels[train], x[~train], labels[~train]))
    mean = {name: float(np.mean(values)) for name, values in accuracy.items()}
    report = (
        f"linear probe, person vs background ({len(crops)} crops of {len(per_frame)} frames, {SPLITS} splits by "
        f"frame): ImageNet weights {mean['imagenet']:.3f}, random init {mean['random']:.3f} "
        f"(per split {[round(a, 3) for a in accuracy['imagenet']]} vs {[round(a, 3) for a in accuracy['random']]}; "
        f"weights sha256 {BACKBONE_SHA256[:12]})"
    )
    print(report)
    record_property("linear_probe", report)
    assert mean["imagenet"] >= 0.95
    assert mean["imagenet"] - mean["random"] >= 0.05
    assert 1 - mean["imagenet"] <= (1 - mean["random"]) / 2  # at most half the errors

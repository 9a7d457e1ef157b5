"""An int8 copy of the person detector for CPU boxes (``actwatch quantize-detector``).

On a CPU the detector is most of a frame's work (YOLOv8s at 640x640: about 110 ms of the 2-core box's
130). ONNX Runtime runs int8 convolutions with the processor's integer dot-product instructions (AVX-512
VNNI, AVX-VNNI, AMX), so a statically quantized copy of the graph runs in a fraction of that time.

:func:`quantize_detector` writes that copy (QDQ format: QuantizeLinear/DequantizeLinear pairs around
each convolution; weights int8 per output channel, activations uint8 with ranges calibrated on real
frames) and its manifest, so ``detector.weights`` can point at it like at any serving detector. The
Detect head's box decoding (the distribution-focal-loss softmax, the anchor arithmetic, the class
sigmoid) stays float: quantizing it would cost box precision for little time. Calibration frames are
letterboxed into the graph's square input, as serving letterboxes them with ``detector.rect: false``; a
CPU serves at each camera's aspect by default (``rect: auto``: a copy of this graph derived for that
size, with the same calibrated ranges), and :func:`compare_detectors` checks the two graphs that way.
Frames from the cameras it will serve calibrate best.

This copy is for the CPU provider. On a GPU keep the float graph: the int8 copy was not measured
there (TensorRT, where it runs, builds its own int8 engines from calibration).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from actwatch.errors import ActwatchError
from actwatch.fileio import atomic_path, sha256_file
from actwatch.tracker.detections import Detections, box_iou
from actwatch.tracker.detector_model import (
    DetectorManifest,
    describe_graph,
    read_manifest,
    write_manifest,
)

log = logging.getLogger(__name__)

CalibrationMethod = Literal["percentile", "minmax"]
T = TypeVar("T")


def head_nodes_to_keep_float(model: object) -> list[str]:
    """The nodes of a YOLOv8 graph's Detect head that are not its class and box convolutions: the
    distribution-focal-loss layer (a Softmax and its 1x1 convolution) and the decoding after it.

    The head is the module (``/model.N/`` in Ultralytics' node names) that holds the graph's Softmax.
    Raises :class:`ActwatchError` for a graph without one (not a YOLOv8 detector).

    Example:
        >>> from onnx import helper
        >>> nodes = [helper.make_node(op, [], [], name=name) for op, name in [
        ...     ("Conv", "/model.0/conv/Conv"), ("Conv", "/model.22/cv2.0/Conv"),
        ...     ("Softmax", "/model.22/dfl/Softmax"), ("Conv", "/model.22/dfl/conv/Conv"),
        ...     ("Concat", "/model.22/Concat_4")]]
        >>> head_nodes_to_keep_float(helper.make_model(helper.make_graph(nodes, "g", [], [])))
        ['/model.22/dfl/Softmax', '/model.22/dfl/conv/Conv', '/model.22/Concat_4']
    """
    nodes = list(model.graph.node)  # type: ignore[attr-defined]
    softmax = [n.name for n in nodes if n.op_type == "Softmax"]
    if len(softmax) != 1 or not softmax[0].startswith("/model."):
        raise ActwatchError(
            "the detector graph is not an Ultralytics YOLOv8 export (no single Detect head with its softmax); "
            "quantize-detector handles those only"
        )
    head = "/".join(softmax[0].split("/")[:2]) + "/"  # "/model.22/"
    return [n.name for n in nodes if n.name.startswith(head) and (n.op_type != "Conv" or "/dfl/" in n.name)]


def _blobs(frames: Sequence[np.ndarray], size: tuple[int, int]) -> Iterator[np.ndarray]:
    from actwatch.tracker.detector import letterbox, network_input

    for frame in frames:  # what PersonDetector feeds the float graph
        yield network_input([letterbox(frame, size)[0]])


def quantize_detector(
    source: Path,
    target: Path,
    frames: Sequence[np.ndarray],
    *,
    method: CalibrationMethod = "percentile",
    description: str = "",
) -> DetectorManifest:
    """Write an int8 (QDQ) copy of detector graph ``source`` to ``target`` with its manifest beside it,
    calibrated on ``frames`` (BGR images, any size: letterboxed to the graph's input). Returns the
    manifest. ``method``: how activation ranges come from the calibration (``percentile``: the 99.999th
    percentile of each tensor's values, robust to outliers; ``minmax``: their extremes, 3-4 times faster
    to calibrate). ``description`` says where the frames came from, for the manifest's ``source``.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not frames:
        raise ActwatchError("no calibration frames: give a video with at least one readable frame")
    try:
        described = read_manifest(source) or describe_graph(source, source.name)
    except ActwatchError:
        raise
    except Exception as exc:  # ONNX Runtime's own errors: not a graph it can load
        raise ActwatchError(f"{source} is not a readable ONNX graph ({type(exc).__name__}: {exc})") from exc
    size = described.input_size

    class Frames(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self._name, self._blobs = name, _blobs(frames, size)

        def get_next(self) -> dict[str, np.ndarray] | None:
            blob = next(self._blobs, None)
            return None if blob is None else {self._name: blob}

    with tempfile.TemporaryDirectory(prefix="actwatch-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        try:  # constant folding and shape inference first, as ONNX Runtime's quantizer advises
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            model = onnx.load(str(prepared))
        except Exception as exc:  # protobuf and ONNX Runtime errors: an unreadable or foreign graph
            raise ActwatchError(f"{source} is not a readable ONNX graph ({type(exc).__name__}: {exc})") from exc
        keep_float = head_nodes_to_keep_float(model)
        input_name = model.graph.input[0].name
        metadata = {p.key: p.value for p in model.metadata_props}
        quantized = Path(work) / "int8.onnx"
        with contextlib.redirect_stdout(io.StringIO()):  # its calibrator prints its percentiles
            quantize_static(
                str(prepared),
                str(quantized),
                Frames(input_name),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=keep_float,
                calibrate_method=CalibrationMethod.Percentile if method == "percentile" else CalibrationMethod.MinMax,
            )
        out = onnx.load(str(quantized))
        onnx.helper.set_model_props(out, metadata)  # Ultralytics' names and imgsz, for a manifest-less copy
        with atomic_path(target) as tmp:
            onnx.save(out, str(tmp))
    manifest = DetectorManifest(
        input_size=size,
        class_names=described.class_names,
        person_class_ids=described.person_class_ids,
        sha256=sha256_file(target),
        source=(
            f"int8 (QDQ, per-channel weights, {method} calibration on {len(frames)} frames"
            f"{' of ' + description if description else ''}) of {source.name} (sha256 {sha256_file(source)[:16]})"
        ),
        dynamic_batch=described.dynamic_batch,
    )
    write_manifest(target, manifest)
    log.info("wrote the int8 detector %s (%s)", target, manifest.source)
    return manifest


def sample_frames(video: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over video file ``video`` (read once, in order; all of a shorter one).

    Example:
        >>> from actwatch.assets import ensure_sample_video
        >>> frames = sample_frames(ensure_sample_video(fetch=False), 4)
        >>> len(frames), frames[0].shape
        (4, (576, 768, 3))
    """
    import cv2

    from actwatch.capture.video_file import capture_frames, open_video

    capture = open_video(video)
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        stride = max(1, total // count) if total > 0 else 1
        picked = []
        for frame in capture_frames(capture, "calibration"):
            if frame.index % stride == 0:
                picked.append(frame.image)
                if len(picked) == count:
                    break
        return picked
    finally:
        capture.release()


def split_calibration(frames: Sequence[T], check: int) -> tuple[list[T], list[T]]:
    """``frames`` split into calibration frames and ``check`` frames spread evenly among them (to compare
    the int8 detector with the float one on frames it was not calibrated on).

    Example:
        >>> split_calibration(list(range(10)), 3)
        ([0, 2, 3, 4, 6, 7, 9], [1, 5, 8])
    """
    check = min(check, len(frames) // 2)
    step = len(frames) / check if check else 0.0
    picked = {int(i * step + step / 2) for i in range(check)}
    return [f for i, f in enumerate(frames) if i not in picked], [f for i, f in enumerate(frames) if i in picked]


@dataclasses.dataclass(frozen=True)
class DetectorAgreement:
    """How an int8 detector compares with its float original on the same frames (at conf 0.1, as served).

    ``found``: the float detector's persons scored ``min_score`` or more that the int8 one also finds
    (IoU 0.5 or more), of ``persons``; ``found_back``: the same the other way round, of ``persons_back``.
    """

    frames: int
    min_score: float
    persons: int
    found: int
    persons_back: int
    found_back: int
    mean_score_change: float
    float_ms: float
    int8_ms: float


def compare_detectors(float_graph: Path, int8_graph: Path, frames: Sequence[np.ndarray]) -> DetectorAgreement:
    """Run both detectors (CPU) on ``frames``, one frame per call, alternated; see :class:`DetectorAgreement`."""
    import time

    from actwatch.tracker.detector import DetectorSettings, PersonDetector

    settings = DetectorSettings(conf=0.1, device="cpu")
    detectors = (PersonDetector(float_graph, settings), PersonDetector(int8_graph, settings))
    found: tuple[list[Detections], list[Detections]] = ([], [])
    seconds = [0.0, 0.0]
    for frame in frames:
        for i, detector in enumerate(detectors):
            start = time.perf_counter()
            found[i].append(detector.detect([frame])[0])
            seconds[i] += time.perf_counter() - start
    min_score = 0.25
    persons, hit, changes = _covered(found[0], found[1], min_score)
    persons_back, hit_back, _ = _covered(found[1], found[0], min_score)
    return DetectorAgreement(
        frames=len(frames),
        min_score=min_score,
        persons=persons,
        found=hit,
        persons_back=persons_back,
        found_back=hit_back,
        mean_score_change=float(np.mean(changes)) if changes else 0.0,
        float_ms=1000.0 * seconds[0] / max(1, len(frames)),
        int8_ms=1000.0 * seconds[1] / max(1, len(frames)),
    )


def _covered(
    reference: Sequence[Detections], other: Sequence[Detections], min_score: float
) -> tuple[int, int, list[float]]:
    """Persons of ``reference`` scored ``min_score`` or more, how many ``other`` finds (IoU >= 0.5), and
    the absolute score changes of those found."""
    persons = hit = 0
    changes: list[float] = []
    for ref, oth in zip(reference, other, strict=True):
        keep = ref.confidence >= min_score
        boxes, scores = ref.xyxy[keep], ref.confidence[keep]
        persons += len(boxes)
        if len(boxes) == 0 or len(oth.xyxy) == 0:
            continue
        iou = box_iou(boxes[:, None], oth.xyxy[None])
        best = iou.argmax(axis=1)
        for i, j in enumerate(best):
            if iou[i, j] >= 0.5:
                hit += 1
                changes.append(abs(float(oth.confidence[j]) - float(scores[i])))
    return persons, hit, changes

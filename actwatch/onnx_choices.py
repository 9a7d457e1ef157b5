"""The choices of the settings that reach ONNX Runtime, each a ``Literal`` named once for the
configuration, ``actwatch bench`` (its options and their checks) and the runtimes.

Example:
    >>> choices(GpuWait)
    ('auto', 'spin', 'yield', 'blocking')
    >>> worded(BatchPadding)
    'auto, fixed, pow2 or off'
"""

from __future__ import annotations

import typing
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

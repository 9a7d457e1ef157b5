"""actwatch.onnx_batches: padding choices and one session per batch size, made once under threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from actwatch.onnx_batches import BatchSessions, pad_rows, pad_to_power_of_two, resolve_padding, session_per_size


def test_auto_padding_is_pow2_on_a_gpu_provider_and_off_on_the_cpu() -> None:
    assert resolve_padding("auto", ["TensorrtExecutionProvider", "CPUExecutionProvider"]) == "pow2"
    assert resolve_padding("auto", ["CUDAExecutionProvider:1", "CPUExecutionProvider"]) == "pow2"
    assert resolve_padding("auto", ["OpenVINOExecutionProvider", "CPUExecutionProvider"]) == "off"
    assert resolve_padding("fixed", ["CPUExecutionProvider"]) == "fixed"  # asked for: kept on any provider
    with pytest.raises(ValueError, match=r"detector\.batch_padding must be auto, fixed, pow2 or off, not 'square'"):
        resolve_padding("square", ["CPUExecutionProvider"], key="detector.batch_padding")


def test_padded_calls_get_a_session_per_size_except_under_tensorrt() -> None:
    """TensorRT's engine serves every batch of its profile; a session per size would build an engine each."""
    cuda, trt, cpu = "CUDAExecutionProvider:1", "TensorrtExecutionProvider", "CPUExecutionProvider"
    assert session_per_size("pow2", [cuda, cpu]) and session_per_size("fixed", [cuda, cpu])
    assert session_per_size("pow2", [cpu])  # asked for on the CPU (how the tests run it)
    assert not session_per_size("pow2", [trt, cuda, cpu]) and not session_per_size("off", [cuda, cpu])


def test_padding_keeps_the_real_rows() -> None:
    batch = np.arange(6, dtype=np.float32).reshape(3, 2)
    for padded in (pad_rows(batch, 5), pad_to_power_of_two(batch)):
        assert padded.shape == ((5, 2) if len(padded) == 5 else (4, 2))
        np.testing.assert_array_equal(padded[:3], batch)
        assert not padded[3:].any()


def test_threads_asking_for_one_size_at_once_get_one_session() -> None:
    """Several detect workers may meet a new batch size together: the session is made once."""
    made: list[object] = []

    def make() -> object:
        made.append(object())
        return made[-1]

    sessions = BatchSessions(make, per_size=True)
    start = threading.Barrier(8)
    got: list[object] = []

    def ask(batch: int) -> None:
        start.wait()  # all ask together
        got.append(sessions.get(batch))

    threads = [threading.Thread(target=ask, args=(4 if i % 2 else 8,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 2 and len(sessions) == 2 and len({id(s) for s in got}) == 2

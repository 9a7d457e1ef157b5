"""The one provider policy: what counts as usable, the order, explicit choices, and sessions that say
which providers they really run on."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import pytest

from actwatch import onnx_providers
from actwatch.onnx_choices import CPU, CUDA, OPENVINO, TENSORRT, GpuWait, canonical_provider
from actwatch.onnx_providers import (
    TensorRTOptions,
    create_session,
    gpu_devices,
    probe_availability,
    select_providers,
    session_providers,
    set_gpu_wait,
)

GPU_BUILD = [TENSORRT, CUDA, CPU]  # what onnxruntime-gpu lists, with or without a GPU


def test_a_gpu_build_without_a_gpu_is_a_cpu_machine() -> None:
    availability = probe_availability(GPU_BUILD, cuda_probe=lambda: (0, "libcuda cannot be loaded"))
    assert availability.usable == (CPU,)
    assert availability.reasons == {TENSORRT: "libcuda cannot be loaded", CUDA: "libcuda cannot be loaded"}


def test_tensorrt_counts_only_with_its_libraries() -> None:
    without = probe_availability(GPU_BUILD, cuda_probe=lambda: (1, ""), tensorrt_probe=lambda: False)
    assert without.usable == (CUDA, CPU) and "libnvinfer" in without.reasons[TENSORRT]
    with_trt = probe_availability(GPU_BUILD, cuda_probe=lambda: (1, ""), tensorrt_probe=lambda: True)
    assert with_trt.usable == (TENSORRT, CUDA, CPU) and with_trt.reasons == {}


def test_openvino_where_the_build_offers_it() -> None:
    assert select_providers(available=[OPENVINO, CPU]) == [OPENVINO, CPU]
    assert select_providers(available=[CPU, OPENVINO, CUDA, TENSORRT]) == [TENSORRT, CUDA, OPENVINO, CPU]


def test_probe_of_this_machine_never_offers_what_cannot_run() -> None:
    usable = probe_availability().usable
    assert usable[-1] == CPU and set(usable) <= set(ort.get_available_providers()) | {CPU}
    assert select_providers() == [p for p in (TENSORRT, CUDA, OPENVINO) if p in usable] + [CPU]


def test_explicit_choices_keep_their_order_and_device(caplog: pytest.LogCaptureFixture) -> None:
    assert canonical_provider("gpu") == (CUDA, None) and canonical_provider("trt:0") == (TENSORRT, 0)
    assert select_providers(["cuda:1", "tensorrt"], available=[CPU, CUDA, TENSORRT]) == [f"{CUDA}:1", TENSORRT, CPU]
    assert select_providers("0", available=[CPU, CUDA]) == [f"{CUDA}:0", CPU]
    assert select_providers("cpu", available=GPU_BUILD) == [CPU]
    with caplog.at_level(logging.WARNING, logger="actwatch.onnx_providers"):
        assert select_providers(["openvino"], available=[CPU]) == [CPU]
    assert "OpenVINOExecutionProvider is not available here" in caplog.text


def test_session_provider_options() -> None:
    trt = TensorRTOptions(Path("/var/cache/trt"), fp16=True)
    entries = session_providers([TENSORRT, "cuda:1", CPU], trt)
    assert entries[0] == (
        TENSORRT,
        {"trt_fp16_enable": "True", "trt_engine_cache_enable": "True", "trt_engine_cache_path": "/var/cache/trt"},
    )
    # cuDNN picks its algorithms by heuristic: batch shapes change every step (no exhaustive search each).
    assert entries[1:] == [(CUDA, {"cudnn_conv_algo_search": "HEURISTIC", "device_id": "1"}), CPU]
    assert TensorRTOptions().provider_options() == {"trt_fp16_enable": "False"}


def test_a_dropped_provider_is_logged_and_the_session_runs(
    detector_weights: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Asking ONNX Runtime for a provider it cannot enable here (CUDA without a GPU, or a CPU build):
    the session runs on the CPU and one line says so."""
    if CUDA in probe_availability().usable:
        pytest.skip("this machine can run CUDA: nothing is dropped")
    with caplog.at_level(logging.WARNING, logger="actwatch.onnx_providers"):
        session = create_session(detector_weights, [CUDA, CPU], ort.SessionOptions(), component="test graph")
    assert session.get_providers() == [CPU]
    assert "test graph" in caplog.text and CUDA in caplog.text and "running on CPUExecutionProvider" in caplog.text


class Driver:
    """The NVIDIA driver's entry points that set_gpu_wait uses, answering with chosen CUDA codes (the
    driver cannot exist on this machine)."""

    def __init__(self, *, init: int = 0, devices: int = 1, set_flags: int = 0, v2: bool = True) -> None:
        self.init, self.devices, self.set_flags_code = init, devices, set_flags
        self.flags: list[tuple[int, int]] = []
        if v2:
            self.cuDevicePrimaryCtxSetFlags_v2 = self._set_flags

    def cuInit(self, flags: int) -> int:
        return self.init

    def cuDeviceGet(self, device: object, ordinal: int) -> int:
        if ordinal >= self.devices:
            return 101  # CUDA_ERROR_INVALID_DEVICE
        device._obj.value = ordinal  # type: ignore[attr-defined]  # ctypes.byref(c_int)
        return 0

    def _set_flags(self, device: object, flags: int) -> int:
        self.flags.append((device.value, flags))  # type: ignore[attr-defined]
        return self.set_flags_code

    def cuDevicePrimaryCtxSetFlags(self, device: object, flags: int) -> int:  # before CUDA 11
        return self._set_flags(device, flags)


@pytest.mark.parametrize(("policy", "flag"), [("spin", 1), ("yield", 2), ("blocking", 4)])
def test_gpu_wait_sets_each_device_s_scheduling_once(policy: GpuWait, flag: int) -> None:
    driver = Driver(devices=2)
    assert set_gpu_wait(policy, [1, 0, 1], driver=driver) == (True, f"{policy} on CUDA devices 0, 1")
    assert driver.flags == [(0, flag), (1, flag)]
    old = Driver(v2=False)  # a driver without the _v2 entry point
    assert set_gpu_wait(policy, [0], driver=old)[0] and old.flags == [(0, flag)]


def test_gpu_wait_says_why_it_was_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set_gpu_wait("blocking", [0], driver=Driver(init=100)) == (
        False,
        "blocking not applied: the NVIDIA driver reports no usable device (cuInit failed)",
    )
    assert set_gpu_wait("blocking", [0, 3], driver=Driver(devices=2)) == (
        False,
        "blocking not applied: the NVIDIA driver has no CUDA device 3",
    )
    assert set_gpu_wait("yield", [0], driver=Driver(set_flags=708)) == (
        False,
        "yield not applied on CUDA device 0: CUDA error 708",
    )
    assert set_gpu_wait("spin", [], driver=Driver()) == (False, "spin not applied: no network runs on CUDA or TensorRT")
    monkeypatch.setattr(onnx_providers, "_CUDA_DRIVER_LIBS", ("libcuda-absent-here.so.1",))
    assert set_gpu_wait("blocking", [0]) == (
        False,
        "blocking not applied: the NVIDIA driver library libcuda cannot be loaded",
    )
    untouched = Driver()
    assert set_gpu_wait("auto", [0], driver=untouched) == (True, "CUDA's own choice (auto)")
    assert untouched.flags == []


def test_gpu_devices_are_those_of_cuda_and_tensorrt() -> None:
    assert gpu_devices(["TensorrtExecutionProvider:2", "CUDAExecutionProvider:2", CPU], [CUDA, CPU]) == [0, 2]
    assert gpu_devices([CPU], ["OpenVINOExecutionProvider", CPU]) == []

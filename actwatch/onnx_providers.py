"""The one ONNX Runtime provider policy, used by every network served (person detector, action model).

Order of preference: TensorRT, CUDA, OpenVINO, CPU. A provider counts only when it can really run here,
not merely when the installed onnxruntime build lists it: the ``onnxruntime-gpu`` build lists CUDA and
TensorRT on machines without a GPU, and ONNX Runtime then falls back to the CPU silently. So:

- CUDA needs the NVIDIA driver (``libcuda``) to load and report at least one device;
- TensorRT needs CUDA and its own libraries (``libnvinfer``) to load;
- OpenVINO counts where the installed build offers it; CPU always.

After a session is made, :func:`create_session` compares the providers it asked for with those the
session actually runs and logs one clear line for each that ONNX Runtime dropped; the active ones are what
callers report (start-up log, ``/readyz``, the ``actwatch_onnx_provider_active`` gauge).

``requested`` (a configuration's ``device``/``providers``) is ``None`` or ``"auto"`` (the best
available), one name, or a list, in full (``CUDAExecutionProvider``) or short (``tensorrt``/``trt``,
``cuda``/``gpu``, ``openvino``, ``cpu``) form; ``cuda:1`` picks a GPU. CPU always ends the list.

Example (availability injected: what this machine has plays no part):
    >>> select_providers(available=[CPU, CUDA, TENSORRT])
    ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    >>> select_providers("cpu", available=[CPU, CUDA])
    ['CPUExecutionProvider']
    >>> [provider_name(p) for p in session_providers(["cuda:1", "cpu"], TensorRTOptions())]
    ['CUDAExecutionProvider', 'CPUExecutionProvider']
    >>> session_providers(["cuda:1"], TensorRTOptions())[0][1]
    {'cudnn_conv_algo_search': 'HEURISTIC', 'device_id': '1'}
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from actwatch.onnx_choices import (
    AUTO,
    CPU,
    CUDA,
    PROVIDER_ORDER,
    TENSORRT,
    GpuWait,
    Requested,
    canonical_provider,
)

log = logging.getLogger(__name__)

_CUDA_DRIVER_LIBS = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
_TENSORRT_LIBS = ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so", "nvinfer_10.dll", "nvinfer.dll")

SessionProvider = str | tuple[str, dict[str, str]]
"""What ``onnxruntime.InferenceSession(providers=...)`` takes: a name, or a name with its options."""


@dataclass(frozen=True, slots=True)
class TensorRTOptions:
    """How the TensorRT provider builds its engines.

    ``engine_cache_dir`` keeps built engines across restarts (building one takes minutes); ``None``:
    no cache. ``fp16`` lets TensorRT pick half-precision kernels.

    Example:
        >>> TensorRTOptions(Path("/tmp/trt"), fp16=True).provider_options()["trt_fp16_enable"]
        'True'
    """

    engine_cache_dir: Path | None = None
    fp16: bool = False
    max_batch: int | None = None  # the dynamic batch profile's top (see batch_profile); None: TensorRT's default

    def provider_options(self) -> dict[str, str]:
        options = {"trt_fp16_enable": str(self.fp16)}
        if self.engine_cache_dir is not None:
            options |= {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(self.engine_cache_dir)}
        return options


def batch_profile(path: Path, max_batch: int) -> dict[str, str]:
    """TensorRT's dynamic-shape profile for graph ``path``: every input's batch from 1 to ``max_batch``
    (tuned for ``max_batch``), its other dimensions as the graph fixes them. One engine then serves
    every batch size up to the camera count, instead of one engine build per size met. ``{}`` when an
    input has another dynamic dimension (TensorRT then profiles by itself).

    Example:
        >>> import tempfile, onnx
        >>> from onnx import TensorProto, helper
        >>> x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, 64, 64])
        >>> y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 3, 64, 64])
        >>> graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g", [x], [y])
        >>> path = Path(tempfile.mkdtemp()) / "g.onnx"
        >>> onnx.save(helper.make_model(graph), str(path))
        >>> batch_profile(path, 8)["trt_profile_max_shapes"]
        'images:8x3x64x64'
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    shapes: list[tuple[str, str]] = []
    for graph_input in model.graph.input:
        if graph_input.name in weights:
            continue
        rest = [d.dim_value for d in graph_input.type.tensor_type.shape.dim[1:]]
        if any(v <= 0 for v in rest):
            return {}
        shapes.append((graph_input.name, "x".join(str(v) for v in rest)))

    def profile(batch: int) -> str:
        return ",".join(f"{name}:{batch}x{tail}" for name, tail in shapes)

    return {
        "trt_profile_min_shapes": profile(1),
        "trt_profile_opt_shapes": profile(max_batch),
        "trt_profile_max_shapes": profile(max_batch),
    }


def runs_on_gpu(providers: Sequence[str]) -> bool:
    """Whether the first of ``providers`` (selected or active; a device suffix allowed) is CUDA or TensorRT.

    Example:
        >>> runs_on_gpu(["CUDAExecutionProvider:1", CPU]), runs_on_gpu([CPU]), runs_on_gpu([])
        (True, False, False)
    """
    return bool(providers) and canonical_provider(providers[0])[0] in (CUDA, TENSORRT)


def provider_name(provider: SessionProvider) -> str:
    """The name of a session provider entry (a name, or a name with options)."""
    return provider if isinstance(provider, str) else provider[0]


def _loads(candidates: Sequence[str]) -> ctypes.CDLL | None:
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    found = ctypes.util.find_library(candidates[0].removeprefix("lib").split(".so")[0])
    if found:
        try:
            return ctypes.CDLL(found)
        except OSError:
            return None
    return None


def cuda_devices() -> tuple[int, str]:
    """How many CUDA devices the driver reports, and why none when it is 0 (no driver, no device)."""
    driver = _loads(_CUDA_DRIVER_LIBS)
    if driver is None:
        return 0, "the NVIDIA driver library libcuda cannot be loaded"
    if driver.cuInit(0) != 0:
        return 0, "the NVIDIA driver reports no usable device (cuInit failed)"
    count = ctypes.c_int(0)
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return 0, "the NVIDIA driver reports no CUDA device"
    return count.value, ""


# CUDA's CU_CTX_SCHED_* flags of a device's primary context (the one ONNX Runtime's CUDA provider uses)
_SCHED_FLAGS: dict[str, int] = {"spin": 1, "yield": 2, "blocking": 4}


def set_gpu_wait(policy: GpuWait, devices: Iterable[int], *, driver: Any = None) -> tuple[bool, str]:
    """How a thread waits for the GPU to finish (``pipeline.gpu_wait``), set on each device in ``devices``
    before the first session makes its context: whether it was set, and what was done (for the log).
    Never raises.

    ``auto`` leaves CUDA's own choice, which is to *spin* (keep a core busy polling) wherever a process has
    fewer CUDA contexts than the machine has cores: each thread waiting in ``Session.run`` holds a core.
    ``blocking`` sleeps until the GPU is done (frees the core, at some latency per call); ``yield`` polls
    but hands the core to others. ``driver``: the NVIDIA driver library (``libcuda``), found when unset.

    Example (a stand-in driver that records its calls; a real one is needed for the real thing):
        >>> class Driver:
        ...     def __init__(self): self.calls = []
        ...     def cuInit(self, flags): return 0
        ...     def cuDeviceGet(self, device, ordinal): self.calls.append(("get", ordinal)); return 0
        ...     def cuDevicePrimaryCtxSetFlags_v2(self, device, flags): self.calls.append(("flags", flags)); return 0
        >>> d = Driver()
        >>> set_gpu_wait("blocking", [0, 0], driver=d), d.calls
        ((True, 'blocking on CUDA device 0'), [('get', 0), ('flags', 4)])
        >>> set_gpu_wait("auto", [0], driver=None)
        (True, "CUDA's own choice (auto)")
    """
    if policy == AUTO:
        return True, "CUDA's own choice (auto)"
    wanted = sorted(set(devices))
    if not wanted:
        return False, f"{policy} not applied: no network runs on CUDA or TensorRT"
    if driver is None:
        driver = _loads(_CUDA_DRIVER_LIBS)
        if driver is None:
            return False, f"{policy} not applied: the NVIDIA driver library libcuda cannot be loaded"
    try:
        if driver.cuInit(0) != 0:
            return False, f"{policy} not applied: the NVIDIA driver reports no usable device (cuInit failed)"
        set_flags = getattr(driver, "cuDevicePrimaryCtxSetFlags_v2", None) or driver.cuDevicePrimaryCtxSetFlags
        for ordinal in wanted:
            device = ctypes.c_int(0)
            if driver.cuDeviceGet(ctypes.byref(device), ordinal) != 0:
                return False, f"{policy} not applied: the NVIDIA driver has no CUDA device {ordinal}"
            code = set_flags(device, _SCHED_FLAGS[policy])
            if code != 0:
                return False, f"{policy} not applied on CUDA device {ordinal}: CUDA error {code}"
    except (AttributeError, OSError) as exc:  # a driver without these entry points
        return False, f"{policy} not applied: {exc}"
    return True, f"{policy} on CUDA device{'s' if len(wanted) > 1 else ''} {', '.join(map(str, wanted))}"


def gpu_devices(*selected: Sequence[str]) -> list[int]:
    """The CUDA devices that the ``selected`` provider lists (:func:`select_providers`) run on.

    Example:
        >>> gpu_devices(["CUDAExecutionProvider:1", CPU], ["TensorrtExecutionProvider", CUDA, CPU], [CPU])
        [0, 1]
    """
    devices = {
        device or 0
        for providers in selected
        for provider, device in map(canonical_provider, providers)
        if provider in (CUDA, TENSORRT)
    }
    return sorted(devices)


def tensorrt_loadable() -> bool:
    """Whether TensorRT's runtime library (``libnvinfer``) can be loaded."""
    return _loads(_TENSORRT_LIBS) is not None


@dataclass(frozen=True, slots=True)
class Availability:
    """The providers that can run here, and why each listed-but-unusable one cannot."""

    usable: tuple[str, ...]
    reasons: dict[str, str]


def probe_availability(
    listed: Sequence[str] | None = None,
    *,
    cuda_probe: Callable[[], tuple[int, str]] = cuda_devices,
    tensorrt_probe: Callable[[], bool] = tensorrt_loadable,
) -> Availability:
    """Which of the providers ``listed`` (default: what onnxruntime offers) can really be used here.

    Example (a GPU build on a machine without a GPU):
        >>> a = probe_availability([TENSORRT, CUDA, CPU], cuda_probe=lambda: (0, "no driver"))
        >>> a.usable, a.reasons[CUDA]
        (('CPUExecutionProvider',), 'no driver')
    """
    offered = list(ort.get_available_providers()) if listed is None else list(listed)
    usable: list[str] = []
    reasons: dict[str, str] = {}
    cuda_reason: str | None = None
    if CUDA in offered or TENSORRT in offered:
        count, why = cuda_probe()
        cuda_reason = why if count < 1 else None
    for provider in offered:
        if provider in (CUDA, TENSORRT) and cuda_reason is not None:
            reasons[provider] = cuda_reason
        elif provider == TENSORRT and not tensorrt_probe():
            reasons[provider] = "TensorRT's library libnvinfer cannot be loaded (not installed in this image)"
        else:
            usable.append(provider)
    if CPU not in usable:
        usable.append(CPU)
    return Availability(tuple(usable), reasons)


def select_providers(requested: Requested = None, available: Sequence[str] | None = None) -> list[str]:
    """Providers to use, best first, always ending with CPU (see the module docstring).

    ``available`` replaces the probe of this machine (:func:`probe_availability`) with a given list of
    usable providers. Each requested provider that cannot be used is skipped with a logged warning.
    Device suffixes (``cuda:1``) are kept on the names returned, for :func:`session_providers`.

    Example:
        >>> select_providers(["tensorrt", "cuda:1"], available=[CPU, CUDA])
        ['CUDAExecutionProvider:1', 'CPUExecutionProvider']
    """
    if available is None:
        availability = probe_availability()
        usable, reasons = list(availability.usable), availability.reasons
    else:
        usable, reasons = list(available), {}
    if requested is None or (isinstance(requested, str) and requested.strip().lower() == AUTO):
        for provider, why in reasons.items():
            log.info("ONNX Runtime provider %s is listed but cannot run here: %s", provider, why)
        return [p for p in PROVIDER_ORDER if p in usable and p != CPU] + [CPU]
    names = [requested] if isinstance(requested, str) else list(requested)
    chosen: list[str] = []
    seen: set[str] = set()
    for name in names:
        provider, device = canonical_provider(name)
        if provider == CPU or provider in seen:
            continue
        if provider in usable:
            seen.add(provider)
            chosen.append(provider if device is None else f"{provider}:{device}")
        else:
            why = reasons.get(provider) or f"available: {', '.join(usable) or 'none'}"
            log.warning(
                "ONNX Runtime provider %s is not available here (%s); falling back to %s",
                provider,
                why,
                ", ".join([*(canonical_provider(c)[0] for c in chosen), CPU]),
            )
    return [*chosen, CPU]


def session_providers(
    selected: Sequence[str], tensorrt: TensorRTOptions, profile: dict[str, str] | None = None
) -> list[SessionProvider]:
    """``selected`` (from :func:`select_providers`) with each provider's options, for a session;
    ``profile``: TensorRT's batch profile (:func:`batch_profile`)."""
    out: list[SessionProvider] = []
    for entry in selected:
        provider, device = canonical_provider(entry)
        options: dict[str, str] = {}
        if provider == TENSORRT:
            options = tensorrt.provider_options() | (profile or {})
        if provider == CUDA:
            # Batch sizes change every step (cameras x tracks): cuDNN's default EXHAUSTIVE search would
            # benchmark every convolution again for each new shape (seconds each), HEURISTIC picks at once.
            options["cudnn_conv_algo_search"] = "HEURISTIC"
        if device is not None and provider in (TENSORRT, CUDA):
            options["device_id"] = str(device)
        out.append((provider, options) if options else provider)
    return out


def _preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries of the ``nvidia-*`` wheels (``onnxruntime-gpu[cuda,cudnn]``).

    They live in site-packages, off the loader's path; without torch imported first (serving has no
    torch) ONNX Runtime finds them only when they are loaded beforehand. Loading twice is harmless.
    """
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is None:
        return
    try:
        preload(directory="")  # "": the nvidia site packages first, then the default loader paths
    except Exception as exc:  # a missing or broken library: the session below reports the fallback
        log.debug("onnxruntime.preload_dlls failed: %s", exc)


def create_session(
    path: Path,
    selected: Sequence[str],
    options: ort.SessionOptions,
    *,
    tensorrt: TensorRTOptions | None = None,
    component: str = "model",
) -> ort.InferenceSession:
    """A session for graph ``path`` on ``selected`` providers; logs each one ONNX Runtime dropped.

    If a GPU provider makes session creation itself fail (a broken CUDA/cuDNN install), the session is
    made again on the CPU, with one warning: the service runs, slower, and says why. A graph that
    cannot load even on the CPU raises onnxruntime's own exception for the caller to explain.
    """
    tensorrt = tensorrt or TensorRTOptions()
    uses_tensorrt = any(canonical_provider(p)[0] == TENSORRT for p in selected)
    profile = batch_profile(path, tensorrt.max_batch) if uses_tensorrt and tensorrt.max_batch else None
    wanted = session_providers(selected, tensorrt, profile)
    # Idle intra-op threads sleep instead of spinning: the service's capture threads decode video on the
    # same cores, and spinning threads starve them (measured here: a detect call 485 -> 380 ms under load).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if any(provider_name(p) in (CUDA, TENSORRT) for p in wanted):
        _preload_cuda_libraries()
    try:
        session = ort.InferenceSession(str(path), options, providers=wanted)
    except Exception as exc:  # onnxruntime raises its own types, for the graph and for providers alike
        if [provider_name(p) for p in wanted] == [CPU]:
            raise
        log.warning("%s: ONNX Runtime failed on %s (%s); retrying on the CPU", component, selected, exc)
        session = ort.InferenceSession(str(path), options, providers=[CPU])
    active = list(session.get_providers())
    dropped = [provider_name(p) for p in wanted if provider_name(p) not in active]
    if dropped:
        log.warning(
            "%s: ONNX Runtime could not enable %s (libraries missing, no device, or the device's memory full: "
            "ONNX Runtime's own error above says which); running on %s",
            component,
            ", ".join(dropped),
            ", ".join(active),
        )
    return session

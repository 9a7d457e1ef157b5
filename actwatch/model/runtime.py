"""ONNX Runtime inference for an exported model folder (see ``actwatch export``).

:class:`ActionRuntime` loads ``manifest.json`` (validated, graphs checked by sha256) and offers the three
calls the service needs: ``encode`` crops once into features (cached per track), ``classify`` windows of
cached features with the temporal head, and ``classify_crops`` whole windows of crops with ``model.onnx``
(the naive path, and the only one for R3D-18). Providers follow the one policy of
:mod:`actwatch.onnx_providers` (TensorRT, CUDA, OpenVINO, CPU: those that can really run here).

Example (a tiny untrained model exported to a temporary folder):
    >>> import tempfile
    >>> from actwatch.export.onnx_export import export_checkpoint
    >>> from actwatch.model.checkpoint import init_checkpoint
    >>> from actwatch.model.config import ModelConfig
    >>> model = ModelConfig(hidden_size=8, fc_size=4, pretrained=False)
    >>> ckpt = init_checkpoint(["walking", "falling"], model, InputSpec(seq_len=4, input_size=32))
    >>> folder = Path(tempfile.mkdtemp()) / "exported"
    >>> _ = export_checkpoint(ckpt, folder)
    >>> rt = ActionRuntime(folder, providers=["cuda"])
    >>> rt.providers[-1]  # CUDA first where available; CPU always last
    'CPUExecutionProvider'
    >>> crops = np.zeros((4, 48, 40, 3), np.uint8)  # BGR crops of any size
    >>> feats = rt.encode(crops)  # each crop once, as the service caches them per track
    >>> feats.shape
    (4, 1280)
    >>> rt.classify(feats.reshape(1, rt.spec.seq_len, -1)).shape  # windows of cached features
    (1, 2)
    >>> rt.classify_crops(np.zeros((2, rt.spec.seq_len, 64, 64, 3), np.uint8)).shape  # whole windows
    (2, 2)
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from actwatch.errors import FeatureCacheUnsupportedError, ManifestError
from actwatch.model.config import InputSpec
from actwatch.model.manifest import Manifest, load_manifest
from actwatch.model.preprocess import preprocess_crops, preprocess_windows, stack_crops
from actwatch.onnx_batches import (
    BatchSessions,
    Padding,
    padded_batch_sizes,
    resolve_padding,
    run_padded,
    session_per_size,
)
from actwatch.onnx_choices import BatchPadding, Preprocess, Requested
from actwatch.onnx_inputs import UINT8_INPUT, uint8_input_if_wanted
from actwatch.onnx_providers import TensorRTOptions, create_session, select_providers

logger = logging.getLogger(__name__)


class RecognitionRuntime(Protocol):
    """What the service and ``predict`` need of an action model at serve time (:class:`ActionRuntime`,
    or a recording wrapper around it in tests and the benchmark)."""

    @property
    def classes(self) -> Sequence[str]: ...
    @property
    def spec(self) -> InputSpec: ...
    @property
    def supports_feature_cache(self) -> bool: ...

    def encode(self, crops: np.ndarray) -> np.ndarray: ...
    def classify(self, features: np.ndarray) -> np.ndarray: ...
    def classify_crops(self, windows: np.ndarray) -> np.ndarray: ...


def make_session(
    path: Path,
    providers: Sequence[str],
    *,
    fp16: bool = False,
    intra_op_threads: int | None = None,
    tensorrt: TensorRTOptions | None = None,
) -> ort.InferenceSession:
    """An inference session for one graph on ``providers`` (from :func:`select_providers`); errors
    become ManifestError (the graph file is at fault)."""
    options = ort.SessionOptions()
    # ORT 1.31's full (layout) optimisation level crashes on some float16 graphs (the transformer head)
    # on CPU; the extended level applies every fusion and is safe for them.
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if fp16 else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    options.log_severity_level = 3  # errors only: provider fallbacks are logged by actwatch itself
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    try:
        return create_session(path, providers, options, tensorrt=tensorrt, component=f"action model {path.name}")
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        raise ManifestError(
            f"ONNX Runtime cannot load {path} ({exc}); re-run `actwatch export` for this folder"
        ) from exc


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, stable for large logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


class ActionRuntime:
    """Run an exported action model with ONNX Runtime.

    ``max_batch`` bounds the crops (``encode``, ``classify_crops``) or windows (``classify``) sent to
    ONNX Runtime in one call; larger inputs are processed in chunks. ``padding`` pads each call's batch
    with zero rows (their results dropped). ``fixed``: the graphs with convolutions (the encoder, a
    whole-clip model) get every call at the call size (``max_batch``), one input shape; the head's calls
    go up to the next power of two. ``pow2``: every call up to the next power of two. ``off``: none.
    ``auto``: ``fixed`` where a GPU provider runs the model, else ``off``.

    Why one shape: ONNX Runtime's CUDA convolution builds its cuDNN execution plans again whenever its
    input shape differs from the previous call's (``Conv::UpdateState`` keeps only the last shape), and
    on an H100 the first call of a shape took about 390 ms in this encoder (two depthwise
    convolutions), against 1.7 ms for 8 crops at a repeated size (``benchmarks/encoder_probe.py``). The
    batch changes every step (cameras x tracks), so powers of two still changed shape often: at one
    camera the action phase took 5 ms per frame at its median and 543 ms at its p95. The head (LSTM
    and Gemm, no convolution) is not re-planned; padding its windows to ``max_batch`` would copy up to
    39 MB a step for nothing. Sessions are thread-safe; the lazily created whole-model session of split
    models is guarded by a lock.
    See the module's example.
    """

    def __init__(
        self,
        model_dir: str | Path,
        providers: Requested = None,
        intra_op_threads: int | None = None,
        *,
        max_batch: int = 256,
        tensorrt: TensorRTOptions | None = None,
        padding: BatchPadding = "auto",
        preprocess: Preprocess = "auto",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.model_dir = Path(model_dir)
        self.manifest: Manifest = load_manifest(self.model_dir)
        self.classes: tuple[str, ...] = tuple(self.manifest.classes)
        self.spec: InputSpec = self.manifest.input_spec()
        self.feature_dim: int | None = self.manifest.feature_dim if self.manifest.split else None
        self.supports_feature_cache: bool = self.manifest.split
        self.max_batch = max_batch
        self._providers = select_providers(providers)
        # TensorRT: one engine for every batch up to max_batch (chunks are never larger)
        self._tensorrt = dataclasses.replace(tensorrt or TensorRTOptions(), max_batch=max_batch)
        self._threads = intra_op_threads
        self._lock = threading.Lock()
        self._sessions: dict[str, BatchSessions[ort.InferenceSession]] = {}
        # The encoder converts its uint8 crops itself (actwatch.onnx_inputs) where it runs on a GPU: each
        # crop crosses the bus once, as uint8. ``preprocess``: auto (so), host (numpy) or graph (always).
        self._uint8_encoder = (
            uint8_input_if_wanted(
                self.model_dir / self.manifest.graphs["encoder"].file,
                preprocess,
                self._providers,
                setting_key="model.preprocess",
                mean=self.spec.mean,
                std=self.spec.std,
                error=ManifestError,
            )
            if self.manifest.split
            else None
        )
        self.preprocess_in_graph = self._uint8_encoder is not None
        # The whole graph of a split model serves only the naive path: created on first use.
        first = {role: self._make(role) for role in (("encoder", "head") if self.manifest.split else ("model",))}
        self.providers: list[str] = list(next(iter(first.values())).get_providers())
        self.padding: Padding = resolve_padding(padding, self.providers, key="padding")
        for role, session in first.items():
            self._sessions[role] = self._batch_sessions(role, session)
        self._told_split = False  # a step split into several calls on a GPU: said once
        logger.info("action model %s runs on ONNX Runtime providers %s", self.model_dir, ", ".join(self.providers))

    def __repr__(self) -> str:
        return (
            f"ActionRuntime({str(self.model_dir)!r}, arch={self.manifest.arch!r}, "
            f"classes={list(self.classes)}, providers={self.providers})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _input_name(self, role: str) -> str:
        return UINT8_INPUT if role == "encoder" and self.preprocess_in_graph else self.manifest.graphs[role].inputs[0]

    def _make(self, role: str) -> ort.InferenceSession:
        path = self.model_dir / self.manifest.graphs[role].file
        if role == "encoder" and self._uint8_encoder is not None:
            path = self._uint8_encoder
        return make_session(
            path, self._providers, fp16=self.manifest.fp16, intra_op_threads=self._threads, tensorrt=self._tensorrt
        )

    def _batch_sessions(
        self, role: str, first: ort.InferenceSession | None = None
    ) -> BatchSessions[ort.InferenceSession]:
        # Padded calls: a session per size they come in (fixed: the encoder's one, the head's powers of
        # two), each keeping its own cuDNN plans (actwatch.onnx_batches); unpadded or TensorRT: one for all
        per_size = session_per_size(self.padding, self.providers)
        return BatchSessions(lambda: self._make(role), per_size=per_size, first=first)

    def _session(self, role: str, batch: int = 0) -> ort.InferenceSession:
        """The session for ``role``'s calls of ``batch`` rows."""
        sessions = self._sessions.get(role)
        if sessions is None:
            with self._lock:
                sessions = self._sessions.get(role)
                if sessions is None:
                    sessions = self._sessions[role] = self._batch_sessions(role)
        return sessions.get(batch)

    def _run(self, role: str, x: np.ndarray, chunk: int) -> np.ndarray:
        name = self._input_name(role)
        if self.pad_batches and len(x) > chunk and role != "model" and not self._told_split:
            self._told_split = True
            logger.info(
                "action model: %d inputs for the %s in one step went in calls of %d (model.max_batch, sized to "
                "the cameras at start); with more cameras since, a larger model.max_batch makes fewer calls",
                len(x),
                role,
                chunk,
            )
        # the head has no convolution: its windows keep powers of two (padding them to max_batch copies MBs)
        padding: Padding = "pow2" if role == "head" and self.padding == "fixed" else self.padding
        out = run_padded(
            x, lambda part: self._session(role, len(part)).run(None, {name: part})[0], chunk=chunk, padding=padding
        )
        return out.astype(np.float32, copy=False)

    @property
    def pad_batches(self) -> bool:
        """Whether calls are padded (``padding`` is ``fixed`` or ``pow2``)."""
        return self.padding != "off"

    def call_batch_sizes(self) -> list[int]:
        """The batch sizes of this runtime's calls to ONNX Runtime that each need their own preparation:
        with padding (a GPU), every power of two up to ``max_batch`` and ``max_batch`` itself (the head's
        sizes; with ``fixed`` the encoder's calls all go at ``max_batch``); else ``[1]`` (the CPU provider
        prepares nothing per size). Warming each up before the first frame keeps the first steps from
        stalling.

        Example:
            >>> class Padded(ActionRuntime):
            ...     def __init__(self, padding): self.max_batch, self.padding = 48, padding
            >>> Padded("fixed").call_batch_sizes(), Padded("off").call_batch_sizes()
            ([1, 2, 4, 8, 16, 32, 48], [1])
        """
        return padded_batch_sizes(self.max_batch, limit=self.max_batch) if self.pad_batches else [1]

    def _need_split(self, call: str) -> None:
        if not self.supports_feature_cache:
            raise FeatureCacheUnsupportedError(
                f"{call}() needs a model with a separate frame encoder, but {self.model_dir} holds a "
                f"{self.manifest.arch} model (model.onnx only); use classify_crops(windows) instead, "
                "or export a mobilenet_v2_lstm checkpoint"
            )

    def encode(self, crops_bgr_uint8: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Features of each crop: ``(N, H, W, 3)`` BGR uint8 (or a list of crops) -> ``(N, D)`` float32."""
        self._need_split("encode")
        assert self.feature_dim is not None
        if self.preprocess_in_graph:  # resized on the host if need be, converted by the graph
            frames = stack_crops(crops_bgr_uint8, *self.spec.input_size)
        else:
            frames = preprocess_crops(crops_bgr_uint8, self.spec)
        if len(frames) == 0:
            return np.zeros((0, self.feature_dim), np.float32)
        return self._run("encoder", frames, self.max_batch)

    def classify(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities of windows of encoder features: ``(B, T, D)`` -> ``(B, C)``."""
        self._need_split("classify")
        x = np.asarray(features, dtype=np.float32)
        expected = (self.spec.seq_len, self.feature_dim)
        if x.ndim != 3 or x.shape[1:] != expected:
            raise ValueError(
                f"features must be (B, {expected[0]}, {expected[1]}) (windows of seq_len encoder "
                f"features), got shape {x.shape}"
            )
        if len(x) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        return softmax(self._run("head", np.ascontiguousarray(x), self.max_batch))

    def classify_crops(self, windows: np.ndarray | Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        """Class probabilities of windows of crops: ``(B, T, H, W, 3)`` BGR uint8 -> ``(B, C)``."""
        x = preprocess_windows(windows, self.spec)
        if x.shape[1] != self.spec.seq_len:
            raise ValueError(f"windows must hold seq_len={self.spec.seq_len} crops each, got {x.shape[1]}")
        if len(x) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        chunk = max(1, self.max_batch // self.spec.seq_len)
        return softmax(self._run("model", x, chunk))

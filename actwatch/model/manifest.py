"""``manifest.json``: what an exported model folder holds and how to feed it.

``actwatch export`` writes the ONNX graphs and this manifest; the runtime reads the manifest, checks that
every graph it names is present and unchanged (sha256), and takes the classes and the input spec from it.

Example:
    >>> import tempfile
    >>> try:
    ...     load_manifest(tempfile.mkdtemp())
    ... except ManifestError as exc:
    ...     print("has no manifest.json" in str(exc))
    True
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from actwatch.errors import ManifestError
from actwatch.fileio import sha256_file
from actwatch.model.config import Arch, InputSpec, describe_validation_error

MANIFEST_FORMAT = "actwatch-onnx"
MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"


class GraphInfo(BaseModel):
    """One ONNX graph of the folder.

    Example:
        >>> GraphInfo(file="head.onnx", sha256="0" * 64, inputs=["features"], outputs=["logits"]).file
        'head.onnx'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(description="File name inside the model folder.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex sha256 of the file.")
    inputs: list[str] = Field(min_length=1, description="Input tensor names, in order.")
    outputs: list[str] = Field(min_length=1, description="Output tensor names, in order.")

    @field_validator("file")
    @classmethod
    def _bare_name(cls, value: str) -> str:
        if not value or Path(value).name != value or value in (".", ".."):
            raise ValueError(f"graph file {value!r} must be a plain file name inside the model folder")
        return value


class Manifest(BaseModel):
    """Description of an exported model folder (``encoder.onnx``, ``head.onnx``, ``model.onnx``).

    ``split`` models (MobileNetV2 + temporal head) have ``encoder`` (``(N, 3, H, W)`` -> ``(N, D)``),
    ``head`` (``(B, T, D)`` -> ``(B, C)`` logits) and ``model`` (``(B, T, 3, H, W)`` -> logits); others
    (R3D-18) only ``model``.

    Example:
        >>> graph = GraphInfo(file="model.onnx", sha256="0" * 64, inputs=["frames"], outputs=["logits"])
        >>> m = Manifest(format="actwatch-onnx", version=1, arch="r3d_18", classes=["walking", "falling"],
        ...              seq_len=16, fps=10.0, input_size=(112, 112), mean=(0.4, 0.4, 0.4), std=(0.2, 0.2, 0.2),
        ...              feature_dim=None, opset=17, fp16=False, split=False, graphs={"model": graph},
        ...              created_at=datetime(2025, 1, 1))
        >>> m.input_spec().seq_len, m.classes
        (16, ['walking', 'falling'])
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["actwatch-onnx"] = Field(description="Format marker of actwatch model folders.")
    version: int = Field(ge=1, le=MANIFEST_VERSION, description="Manifest format version.")
    arch: Arch = Field(description="Network architecture of the exported checkpoint.")
    classes: list[str] = Field(min_length=1, description="Class names, in logit order.")
    seq_len: int = Field(ge=1, description="Time steps per window.")
    fps: float = Field(gt=0, description="Rate at which windows are sampled, samples per second.")
    input_size: tuple[int, int] = Field(description="Crop (height, width) in pixels.")
    mean: tuple[float, float, float] = Field(description="Normalisation mean (R, G, B), pixels in [0, 1].")
    std: tuple[float, float, float] = Field(description="Normalisation std (R, G, B).")
    feature_dim: int | None = Field(description="Encoder feature size (split models), else null.")
    opset: int = Field(ge=7, description="ONNX opset the graphs were exported with.")
    fp16: bool = Field(description="Weights stored as float16 (inputs and outputs stay float32).")
    split: bool = Field(description="True when encoder.onnx and head.onnx are present (feature caching).")
    graphs: dict[str, GraphInfo] = Field(description="Graphs by role: 'encoder', 'head', 'model'.")
    created_at: datetime = Field(description="When the export ran (UTC).")
    checkpoint: dict[str, Any] = Field(
        default_factory=dict, description="Source checkpoint: model_config, metadata and path."
    )

    @model_validator(mode="after")
    def _check_graphs(self) -> Manifest:
        needed = {"encoder", "head", "model"} if self.split else {"model"}
        missing = needed - set(self.graphs)
        if missing:
            raise ValueError(f"graphs {sorted(missing)} missing for a {'split' if self.split else 'whole'} model")
        if self.split and not self.feature_dim:
            raise ValueError("split models need feature_dim")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("class names must be unique")
        return self

    def input_spec(self) -> InputSpec:
        """The InputSpec the graphs expect."""
        return InputSpec(seq_len=self.seq_len, input_size=self.input_size, fps=self.fps, mean=self.mean, std=self.std)


def load_manifest(model_dir: str | Path, *, verify_hashes: bool = True) -> Manifest:
    """Read ``model_dir/manifest.json`` and check the graphs it names; ManifestError otherwise."""
    model_dir = Path(model_dir)
    rerun = "re-run `actwatch export --checkpoint <model.pt> --out " + str(model_dir) + "`"
    if not model_dir.exists():
        raise ManifestError(f"model folder {model_dir} not found; export one with `actwatch export`")
    if not model_dir.is_dir():
        raise ManifestError(
            f"{model_dir} is not a folder; give the folder `actwatch export` wrote (with manifest.json)"
        )
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{model_dir} has no {MANIFEST_FILE}: it is not an exported model folder; {rerun}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}); {rerun}") from exc
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path} is not an actwatch manifest (no '{MANIFEST_FORMAT}' format marker); {rerun}")
    if isinstance(raw.get("version"), int) and raw["version"] > MANIFEST_VERSION:
        raise ManifestError(
            f"{path} has version {raw['version']}; this actwatch reads up to {MANIFEST_VERSION}: upgrade actwatch"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError(f"{path} is invalid ({describe_validation_error(exc)}); {rerun}") from exc
    for role, graph in manifest.graphs.items():
        file = model_dir / graph.file
        if not file.is_file():
            raise ManifestError(f"{model_dir}: {role} graph {graph.file} is missing; {rerun}")
        if verify_hashes and sha256_file(file) != graph.sha256:
            raise ManifestError(
                f"{model_dir}: {graph.file} does not match the sha256 in {MANIFEST_FILE} "
                f"(modified or damaged after export); {rerun}"
            )
    return manifest

"""Model commands: ``init-model`` (untrained checkpoint), ``export`` (ONNX + manifest), ``model-info``.

Heavy imports (torch, onnx) happen inside the commands so that ``actwatch --help`` stays fast.

Example:
    $ actwatch init-model --classes walking,standing,fighting --out model.pt
    $ actwatch export --checkpoint model.pt --out exported/
    $ actwatch model-info exported/
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from actwatch.cli.options import parse_size, settings_from_options, warnings_as_messages
from actwatch.errors import AssetMissingError, ConfigError
from actwatch.model.provenance import ModelProvenance, manifest_provenance


def init_model(
    classes: Annotated[
        str, typer.Option("--classes", help="Comma-separated class names, e.g. walking,standing,fighting.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Checkpoint file to write, e.g. model.pt.")],
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="Network: mobilenet_v2_lstm (feature-cacheable, default) or r3d_18."),
    ] = None,
    temporal: Annotated[
        str | None,
        typer.Option("--temporal", help="Temporal head of mobilenet_v2_lstm: lstm (default), gru or transformer."),
    ] = None,
    hidden_size: Annotated[
        int | None, typer.Option("--hidden-size", help="RNN hidden units / transformer width.")
    ] = None,
    num_layers: Annotated[int | None, typer.Option("--num-layers", help="Stacked RNN / transformer layers.")] = None,
    bidirectional: Annotated[
        bool | None, typer.Option("--bidirectional/--unidirectional", help="Bidirectional RNN head.")
    ] = None,
    fc_size: Annotated[int | None, typer.Option("--fc-size", help="Width of the hidden fully-connected layer.")] = None,
    dropout: Annotated[float | None, typer.Option("--dropout", help="Dropout in the head.")] = None,
    pretrained: Annotated[
        bool | None,
        typer.Option(
            "--pretrained/--no-pretrained",
            help="Start from a pretrained backbone (default): torchvision's file in the torch hub cache, else the "
            "ImageNet weights `actwatch assets` fetched; random init with a warning when neither is there.",
        ),
    ] = None,
    backbone_weights: Annotated[
        Path | None, typer.Option("--backbone-weights", help="Local torchvision backbone state-dict file.")
    ] = None,
    seq_len: Annotated[int | None, typer.Option("--seq-len", help="Crops per window.")] = None,
    input_size: Annotated[
        str | None, typer.Option("--input-size", help="Crop size: N for NxN, or HEIGHTxWIDTH.")
    ] = None,
    fps: Annotated[float | None, typer.Option("--fps", help="Rate at which a track's crops are sampled.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write an untrained checkpoint (pretrained backbone when available, random head)."""
    from actwatch.model.checkpoint import init_checkpoint, save_checkpoint
    from actwatch.model.config import InputSpec, ModelConfig

    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it or choose another --out")
    names = [c.strip() for c in classes.split(",")]
    cfg = settings_from_options(
        ModelConfig,
        "model options",
        arch=arch,
        temporal=temporal,
        hidden_size=hidden_size,
        num_layers=num_layers,
        bidirectional=bidirectional,
        fc_size=fc_size,
        dropout=dropout,
        pretrained=pretrained,
        backbone_weights=backbone_weights,
    )
    spec = settings_from_options(
        InputSpec.for_arch,
        "input options",
        cfg.arch,
        seq_len=seq_len,
        input_size=parse_size(input_size) if input_size is not None else None,
        fps=fps,
    )
    with warnings_as_messages():
        ckpt = init_checkpoint(names, cfg, spec)
    save_checkpoint(ckpt, out)
    params = sum(int(t.numel()) for t in ckpt.state_dict.values())
    typer.echo(f"wrote untrained checkpoint {out} ({out.stat().st_size / 1e6:.1f} MB, {params:,} tensor values)")
    _print_checkpoint(ckpt)


def export(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint (.pt) to export.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the ONNX graphs and manifest.json.")],
    fp16: Annotated[bool, typer.Option("--fp16", help="Store weights as float16 (for GPUs).")] = False,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset version (14..20).")] = 17,
) -> None:
    """Export a checkpoint to ONNX (encoder, head, whole model) and check it against PyTorch."""
    from actwatch.export.onnx_export import export_checkpoint

    with warnings_as_messages():
        report = export_checkpoint(checkpoint, out, fp16=fp16, opset=opset)
    typer.echo(report.format_table())


def _print_spec(classes: Any, seq_len: int, input_size: Any, fps: float, mean: Any, std: Any) -> None:
    typer.echo(f"classes:    {', '.join(classes)}")
    typer.echo(f"window:     {seq_len} crops at {fps:g} fps ({seq_len / fps:.1f} s)")
    typer.echo(f"input size: {input_size[0]}x{input_size[1]} (HxW), BGR crops -> RGB")
    typer.echo(f"normalise:  mean {tuple(mean)}, std {tuple(std)}")


def _print_checkpoint(ckpt: Any) -> None:
    from actwatch.model.networks import recognizer_class

    cfg = ckpt.model_config
    cached = recognizer_class(cfg.arch).supports_feature_cache
    head = f", {cfg.temporal} head" if cfg.arch == "mobilenet_v2_lstm" else ""
    typer.echo(f"arch:       {cfg.arch}{head} (feature cache: {'yes' if cached else 'no'})")
    _print_spec(
        ckpt.classes, ckpt.input.seq_len, ckpt.input.input_size, ckpt.input.fps, ckpt.input.mean, ckpt.input.std
    )
    typer.echo(f"model:      {ModelProvenance.from_metadata(ckpt.metadata).describe()}")
    _print_backbone(ckpt.metadata)
    if ckpt.metadata:
        typer.echo("metadata:   " + ", ".join(f"{k}={v}" for k, v in sorted(ckpt.metadata.items())))


def _print_backbone(metadata: Any) -> None:
    """Which weights the backbone started from (``backbone`` and ``backbone_sha256`` of the metadata)."""
    source = metadata.get("backbone", "unknown (not recorded)") if isinstance(metadata, dict) else "unknown"
    sha256 = metadata.get("backbone_sha256") if isinstance(metadata, dict) else None
    typer.echo(f"backbone:   started from {source}" + (f" (sha256 {sha256})" if sha256 else ""))


def model_info(
    path: Annotated[Path, typer.Argument(help="A checkpoint file (.pt) or an exported model folder.")],
) -> None:
    """Show the classes and input spec of a checkpoint or an exported model folder."""
    if not path.exists():
        raise AssetMissingError(f"{path} not found; give a checkpoint file (.pt) or an exported model folder")
    if path.is_dir():
        from actwatch.model.manifest import load_manifest

        m = load_manifest(path)
        precision = "fp16" if m.fp16 else "fp32"
        typer.echo(
            f"exported model folder {path} (opset {m.opset}, {precision}, created {m.created_at:%Y-%m-%d %H:%M} UTC)"
        )
        typer.echo(f"arch:       {m.arch} (feature cache: {'yes' if m.split else 'no'}, feature dim {m.feature_dim})")
        typer.echo(f"model:      {manifest_provenance(m).describe()}")
        _print_spec(m.classes, m.seq_len, m.input_size, m.fps, m.mean, m.std)
        typer.echo("graphs:     " + ", ".join(f"{role}={g.file}" for role, g in m.graphs.items()))
        _print_backbone(m.checkpoint.get("metadata", {}))
        return
    from actwatch.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    typer.echo(f"checkpoint {path}")
    _print_checkpoint(ckpt)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("init-model")(init_model)
    app.command("export")(export)
    app.command("model-info")(model_info)

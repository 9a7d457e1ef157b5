"""Training commands: ``extract`` (videos -> person sequences), ``train``, ``evaluate``.

Heavy imports (torch, ultralytics) happen inside the commands so that ``actwatch --help`` stays fast.

Example:
    $ actwatch extract clips/ --out data/ds --fps 10 --input-size 112
    $ actwatch train --data data/ds --name fights --epochs 30 --mode cached
    $ actwatch evaluate --checkpoint experiments/fights_20250101-120000/checkpoints/best.pt --data data/ds
    $ torchrun --nproc_per_node=4 -m actwatch train --data data/ds --mode finetune
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from actwatch.cli.options import parse_size, settings_from_options, warnings_as_messages
from actwatch.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)


def _parse_ints(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: give comma-separated class ids, e.g. 0,1") from None


def extract(
    src: Annotated[Path, typer.Argument(help="Source folder of labelled videos (layout a, b or c).")],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write (resumable).")],
    layout: Annotated[
        str | None,
        typer.Option("--layout", help="a: class folders; b: split/class/video frames; c: videos + CSVs; auto."),
    ] = None,
    detector: Annotated[
        Path | None, typer.Option("--detector", help="YOLOv8 ONNX graph (default: the cached human-fall detector).")
    ] = None,
    person_classes: Annotated[
        str | None, typer.Option("--person-classes", help="Detector classes that are persons, e.g. 0,1.")
    ] = None,
    conf: Annotated[float | None, typer.Option("--conf", help="Minimum detection confidence.")] = None,
    max_persons: Annotated[
        int | None, typer.Option("--max-persons", help="Most persons (longest tracks) per video.")
    ] = None,
    fps: Annotated[
        float | None, typer.Option("--fps", help="Sampling rate of the sequences (the model's fps).")
    ] = None,
    input_size: Annotated[str | None, typer.Option("--input-size", help="Crop size: 112 or HEIGHTxWIDTH.")] = None,
    whole_frame: Annotated[
        bool | None, typer.Option("--whole-frame", help="Store whole frames (clips without detectable persons).")
    ] = None,
    min_frames: Annotated[
        int | None,
        typer.Option(
            "--min-frames",
            help="Shortest sequence kept, in samples (default 15: the shortest track `actwatch predict` classifies "
            "with the default 30-sample window).",
        ),
    ] = None,
    keep_static: Annotated[
        bool | None,
        typer.Option("--keep-static", help="Keep static tracks (a box that does not move, crops that do not change)."),
    ] = None,
    contact_sheet: Annotated[
        int | None, typer.Option("--contact-sheet", help="Sample crops per class on contact_sheet.png (default 8).")
    ] = None,
    imgsz: Annotated[int | None, typer.Option("--imgsz", help="Detector input size in pixels.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Detector device: cpu, cuda, cuda:0...")] = None,
    frames_fps: Annotated[
        float | None, typer.Option("--frames-fps", help="Frame rate of frame folders (layout b).")
    ] = None,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", help="Read at most this many frames of each video.")
    ] = None,
    png: Annotated[
        bool | None, typer.Option("--png", help="One PNG per frame instead of one .npy per sequence.")
    ] = None,
    retry_failed: Annotated[
        bool | None, typer.Option("--retry-failed", help="Process again videos that failed in an earlier run.")
    ] = None,
    val_ratio: Annotated[
        float | None, typer.Option("--val-ratio", help="Share of each class's videos for val.")
    ] = None,
    test_ratio: Annotated[
        float | None, typer.Option("--test-ratio", help="Share of each class's videos for test.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the split assignment.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Track persons in labelled videos and store their crop sequences as a training dataset.

    Static tracks and tracks shorter than --min-frames are left out and counted. The dataset report
    (report.md, report.json and contact_sheet.png, sample crops per class) is written beside the dataset:
    look at it before training. Options left out take ExtractSettings' defaults (actwatch.train.extract).
    """
    from actwatch.train.extract import DatasetExtractor, ExtractSettings

    settings = settings_from_options(
        ExtractSettings,
        "extract options",
        layout=layout,
        detector=detector,
        person_classes=_parse_ints(person_classes, "--person-classes"),
        conf=conf,
        max_persons=max_persons,
        fps=fps,
        input_size=parse_size(input_size) if input_size is not None else None,
        whole_frame=whole_frame,
        min_frames=min_frames,
        keep_static=keep_static,
        contact_sheet=contact_sheet,
        imgsz=imgsz,
        device=device,
        frames_fps=frames_fps,
        max_frames=max_frames,
        png=png,
        retry_failed=retry_failed,
        val_ratio=val_ratio,
        test_ratio=test_ratio,
        seed=seed,
    )
    with warnings_as_messages():
        summary = DatasetExtractor(settings, progress=not quiet).run(src, out)
    typer.echo(summary.format_table())
    if summary.index is None:
        raise DatasetError(f"no sequence could be extracted from {src}; see the warnings above")
    splits = {s: len(summary.index.split(s)) for s in ("train", "val", "test")}
    typer.echo(f"dataset: {out} ({len(summary.index.classes)} classes; sequences per split: {splits})")
    typer.echo(f"report: {out / 'report.md'}; look at {out / 'contact_sheet.png'} to see what each class holds")
    if summary.report is not None:
        for warning in summary.report.warnings:
            typer.echo(f"warning: {warning}", err=True)


def train(
    data: Annotated[Path | None, typer.Option("--data", help="Dataset folder written by `actwatch extract`.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file of TrainConfig settings.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run name (experiments/<name>_<time>).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Maximum number of epochs.")] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="cached (features cached, default), frozen or finetune.")
    ] = None,
    arch: Annotated[str | None, typer.Option("--arch", help="mobilenet_v2_lstm or r3d_18.")] = None,
    temporal: Annotated[str | None, typer.Option("--temporal", help="Temporal head: lstm, gru, transformer.")] = None,
    seq_len: Annotated[int | None, typer.Option("--seq-len", help="Frames per window.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Windows per batch.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="AdamW peak learning rate (default 1e-3).")] = None,
    weight_decay: Annotated[
        float | None, typer.Option("--weight-decay", help="AdamW weight decay (default 0.05).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="Learning-rate schedule: cosine (warm-up + cosine decay, default), plateau or none."
        ),
    ] = None,
    monitor: Annotated[
        str | None,
        typer.Option(
            "--monitor",
            help="Validation figure that picks the best checkpoint and drives early stopping: macro_f1 "
            "(default), balanced_accuracy, accuracy or loss. macro_f1 and balanced_accuracy weigh every "
            "class equally; ties go to the lower validation loss.",
        ),
    ] = None,
    early_stopping: Annotated[
        int | None,
        typer.Option("--early-stopping", help="Stop after this many epochs without improvement (0 = never; 15)."),
    ] = None,
    class_weighting: Annotated[
        str | None,
        typer.Option("--class-weighting", help="Loss weight per class: balanced (default), sqrt or none."),
    ] = None,
    windows_per_sequence: Annotated[
        int | None,
        typer.Option("--windows-per-sequence", help="Random training windows per sequence and epoch (default 1)."),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="DataLoader worker processes.")] = None,
    pretrained: Annotated[
        bool | None,
        typer.Option(
            "--pretrained/--no-pretrained",
            help="Start from pretrained backbone weights (default): the torch hub cache's file, else the ImageNet "
            "file `actwatch assets` fetched.",
        ),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue a run: its folder or its checkpoints/last.pt.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Parent folder of run folders.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Train an action model; writes experiments/<name>_<timestamp>/ (checkpoints, plots, report).

    Options left out take TrainConfig's defaults (actwatch.train.config; every setting, e.g. seq_len,
    plateau_patience, label_smoothing, augment, can also be set in the --config YAML file). The summary
    shows accuracy, macro-F1 and balanced accuracy beside the majority-class and uniform baselines and
    warns when the model is no better than them.
    """
    from actwatch.train import runs
    from actwatch.train.config import load_train_config
    from actwatch.train.trainer import train as run_training

    model: dict[str, Any] = {k: v for k, v in {"arch": arch, "temporal": temporal, "pretrained": pretrained}.items()}
    overrides: dict[str, Any] = {
        "name": name,
        "epochs": epochs,
        "mode": mode,
        "seq_len": seq_len,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "scheduler": scheduler,
        "monitor": monitor,
        "early_stopping": early_stopping,
        "class_weighting": class_weighting,
        "windows_per_sequence": windows_per_sequence,
        "device": device,
        "seed": seed,
        "num_workers": workers,
        "out_dir": str(out) if out else None,
        "model": {k: v for k, v in model.items() if v is not None} or None,
    }
    if resume is not None:
        run_dir, _, _ = runs.resolve_resume(resume)
        fixed = [k for k, v in overrides.items() if v is not None and k not in ("epochs", "device", "num_workers")]
        if config is not None or fixed:
            raise ConfigError(
                f"--resume continues {run_dir} with its own config.json; only --epochs, --device and --workers "
                f"can be changed (got {', '.join(fixed) or '--config'})"
            )
        cfg = runs.resume_config(run_dir, overrides)
        data = data or Path(runs.run_info(run_dir).get("data_dir", ""))
    else:
        cfg = load_train_config(config, overrides)
    if data is None or not str(data):
        raise ConfigError("--data is required: the dataset folder written by `actwatch extract`")
    with warnings_as_messages():
        result = run_training(cfg, data, resume=resume, progress=not quiet)
    typer.echo(f"run: {result.run_dir}\nbest epoch {result.best_epoch} ({cfg.monitor} {result.best_metric:.4f})")
    for line in result.summary_lines():
        typer.echo(line)
    typer.echo(f"checkpoint: {result.best_checkpoint}")
    typer.echo(f"export: actwatch export --checkpoint {result.best_checkpoint} --out exported/")
    if result.warning is not None:
        typer.echo(f"warning: {result.warning}", err=True)


def evaluate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint to evaluate (e.g. best.pt).")],
    data: Annotated[Path, typer.Option("--data", help="Dataset folder written by `actwatch extract`.")],
    split: Annotated[str, typer.Option("--split", help="Split to evaluate: test, val or train.")] = "test",
    out: Annotated[
        Path | None, typer.Option("--out", help="Report folder (default: RUN/eval_<checkpoint>_<split>).")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Windows per batch.")] = 32,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Accuracy, macro-F1 and balanced accuracy beside the majority-class and uniform baselines, per-class
    precision/recall/F1 with support ("not evaluable" without), confusion matrix: a Markdown report.

    Crops not in the training feature cache are encoded first, with a progress bar (crops per second)."""
    from actwatch.train.evaluate import evaluate_checkpoint

    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    with warnings_as_messages():
        res = evaluate_checkpoint(
            checkpoint, data, split=split, out_dir=out, batch_size=batch_size, device=device, progress=not quiet
        )
    m = res.metrics
    typer.echo(f"{m.summary_line(split)}, top-1 {m.accuracy:.4f}, top-{m.top_k} {m.top_k_accuracy:.4f}")
    for i, name in enumerate(m.classes):
        if m.support[i] == 0:
            typer.echo(f"  {name}: not evaluable (no {split} windows)")
        else:
            typer.echo(f"  {name}: support {int(m.support[i])}, precision {m.precision[i]:.3f}, "
                       f"recall {m.recall[i]:.3f}, F1 {m.f1[i]:.3f}")  # fmt: skip
    typer.echo(f"report: {res.report}")
    warning = m.baseline_warning(split)
    if warning is not None:
        typer.echo(f"warning: {warning}", err=True)


def add_false_positives(
    out: Annotated[Path, typer.Option("--out", help="Dataset folder written by `actwatch extract` to add to.")],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="The service's data folder (events.db and media/); default: the config's."),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Event database URL (default: sqlite:///DATA_DIR/events.db).")
    ] = None,
    label: Annotated[
        str, typer.Option("--class", help="Class the false positives are added as (default background).")
    ] = "background",
) -> None:
    """Add the crops of events reviewed as false positives to a dataset, as sequences of a background class.

    Run it after reviewing events in the dashboard; events added before are skipped. The dataset's
    splits, report and contact sheet are rebuilt. Then train again: the model learns from its mistakes.
    """
    from actwatch.config import AppConfig
    from actwatch.train import hard_examples

    if not label or not all(c.isalnum() or c in "_-" for c in label):
        raise ConfigError(f"--class {label!r}: use letters, digits, '_' or '-'")
    folder = data_dir if data_dir is not None else Path(AppConfig.model_fields["data_dir"].default)
    url = db or f"sqlite:///{(folder / 'events.db').as_posix()}"
    events = hard_examples.false_positive_events(url, folder / "media")
    if not events:
        raise DatasetError(
            f"no event is marked as a false positive in {folder}; review events in the dashboard's history first"
        )
    with warnings_as_messages():
        summary = hard_examples.add_false_positives(events, out, label=label)
    assert summary.index is not None
    count = sum(r.label == label for r in summary.index.sequences)
    typer.echo(
        f"{summary.added} false positive(s) added as {label!r}, {summary.skipped} added before, "
        f"{len(summary.failed)} failed; {label!r} now has {count} sequence(s)\nreport: {out / 'report.md'}"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("extract")(extract)
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    dataset = typer.Typer(help="Grow an extracted dataset (hard examples from reviewed events).", no_args_is_help=True)
    dataset.command("add-false-positives")(add_false_positives)
    app.add_typer(dataset, name="dataset")

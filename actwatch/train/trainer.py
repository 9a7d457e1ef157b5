"""``actwatch train``: train an action model on an extracted dataset and write a run folder.

Three modes (``TrainConfig.mode``):

* ``cached`` — the encoder is frozen; every crop is encoded once and the features are cached on disk
  (:mod:`actwatch.train.features`), so an epoch costs only the temporal head. Pixel augmentation is
  impossible here (the features were computed from the original crops): training runs without it.
* ``frozen`` — the encoder is frozen but run on every step, so augmented crops can be used.
* ``finetune`` — everything trains end to end (mixed precision on a GPU).

The checkpoints are ordinary actwatch checkpoints (the whole model, encoder included), so
``actwatch export`` and the service take them unchanged. The epoch and the evaluation are the functions
of :mod:`actwatch.train.loop`; see :mod:`actwatch.train.runs` for the run folder and its
:class:`~actwatch.train.runs.RunState`, and :mod:`actwatch.train.distributed` for ``torchrun``.

Example:
    >>> import tempfile
    >>> from actwatch.model.config import ModelConfig
    >>> from actwatch.train.synthetic import write_motion_dataset
    >>> root = Path(tempfile.mkdtemp())
    >>> ds = write_motion_dataset(root / "ds", videos_per_class=4, n_frames=8, size=32, val_ratio=0.25, test_ratio=0)
    >>> model = ModelConfig(pretrained=False, hidden_size=8, fc_size=4)
    >>> cfg = TrainConfig(epochs=1, seq_len=4, model=model, out_dir=root / "exp", tensorboard=False)
    >>> result = train(cfg, ds.root, progress=False)
    >>> result.best_checkpoint.relative_to(result.run_dir).as_posix(), len(result.history)
    ('checkpoints/best.pt', 1)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from actwatch.errors import DatasetError, StateError
from actwatch.model.checkpoint import Checkpoint, backbone_metadata, init_model, load_checkpoint, save_checkpoint
from actwatch.model.config import InputSpec
from actwatch.model.recognizer import Recognizer
from actwatch.model.windows import min_window_samples
from actwatch.train import runs
from actwatch.train.config import TrainConfig
from actwatch.train.dataset import SequenceRecord, load_dataset
from actwatch.train.distributed import DistContext, setup_distributed
from actwatch.train.features import FeatureCache
from actwatch.train.loop import WindowClassifier, evaluate, train_one_epoch
from actwatch.train.metrics import ClassificationMetrics, figures_line
from actwatch.train.optim import is_improvement, make_optimizer, monitored_value
from actwatch.train.runs import RunState
from actwatch.train.windows import FeatureWindows, PixelWindows

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run produced.

    Example:
        >>> r = TrainResult(Path("run"), Path("run/checkpoints/best.pt"), Path("run/checkpoints/last.pt"), 3, 0.9)
        >>> r.best_epoch
        3
    """

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_metric: float
    history: list[dict[str, Any]] = field(default_factory=list)
    val: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] | None = None
    warning: str | None = None  # set when the best checkpoint is no better than a baseline

    def summary_lines(self) -> list[str]:
        """The validation and test figures beside their baselines (what ``actwatch train`` prints).

        Example:
            >>> from actwatch.train.metrics import metrics_from_confusion
            >>> val = metrics_from_confusion(np.array([[2, 0], [0, 2]]), ["a", "b"]).to_dict()
            >>> TrainResult(Path("run"), Path("b.pt"), Path("l.pt"), 3, 1.0, val=val).summary_lines()[0][:48]
            'val: 4 windows, accuracy 1.0000 (majority 0.5000'
        """
        lines = []
        for split, figures in (("val", self.val), ("test", self.test)):
            if figures:
                lines.append(figures_line(split, figures))
        return lines


def class_weights(counts: np.ndarray, scheme: str) -> np.ndarray:
    """Loss weight per class from training counts; classes without samples get 0.

    Example:
        >>> class_weights(np.array([30, 10]), "balanced").tolist()
        [0.6666666666666666, 2.0]
    """
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    if scheme == "none":
        weights[present] = 1.0
        return weights
    balanced = counts.sum() / (present.sum() * np.maximum(counts, 1))
    weights[present] = (np.sqrt(balanced) if scheme == "sqrt" else balanced)[present]
    return weights


def train(config: TrainConfig, data_dir: Path, *, resume: Path | None = None, progress: bool = True) -> TrainResult:
    """Train per ``config`` on the dataset in ``data_dir`` (``resume``: a run folder or its last.pt)."""
    ctx = setup_distributed(config.device)
    try:
        return _Trainer(config, data_dir, ctx, resume, progress).run()
    finally:
        ctx.close()


class _Trainer:
    """One run: the dataset, the network (built once), the run folder and the epoch loop around
    :func:`~actwatch.train.loop.train_one_epoch` and :func:`~actwatch.train.loop.evaluate`."""

    def __init__(
        self, config: TrainConfig, data_dir: Path, ctx: DistContext, resume: Path | None, progress: bool
    ) -> None:
        self.cfg = config
        self.ctx = ctx
        self.progress = progress and ctx.is_main
        self.dataset = load_dataset(data_dir)
        self.train_recs = self.dataset.split("train")
        self.val_recs = self.dataset.split("val")
        self.test_recs = self.dataset.split("test")
        if not self.train_recs or not self.val_recs:
            raise DatasetError(
                f"{data_dir} has {len(self.train_recs)} training and {len(self.val_recs)} validation sequences; "
                "both are needed (re-run extraction with more videos or a larger --val-ratio)"
            )
        self.classes = list(self.dataset.classes)
        shortest = min_window_samples(config.seq_len)
        short = sum(r.frames < shortest for r in self.dataset.sequences)
        if short and ctx.is_main:
            log.warning(
                "%d of %d sequences have fewer than %d samples, the fewest `actwatch predict` classifies with "
                "windows of %d: training loops them, but such short tracks are never classified in use "
                "(re-extract with --min-frames %d to leave them out)",
                short, len(self.dataset.sequences), shortest, config.seq_len, shortest,
            )  # fmt: skip
        self.spec = InputSpec.for_arch(
            config.model.arch, seq_len=config.seq_len, input_size=self.dataset.input_size, fps=self.dataset.fps
        )
        self.device = ctx.device
        self.state = RunState()
        self.resumed = resume is not None
        model: Recognizer
        if resume is not None:
            run_dir, last, state_path = runs.resolve_resume(resume)
            ckpt = load_checkpoint(last)
            if list(ckpt.classes) != self.classes:
                raise StateError(f"cannot resume {run_dir}: its classes {list(ckpt.classes)} differ from the dataset's")
            self.state = runs.load_state(state_path)
            self.run_dir = run_dir
            self.backbone = str(ckpt.metadata.get("backbone", "unknown"))
            self.backbone_sha256 = ckpt.metadata.get("backbone_sha256")
            model = ckpt.build_model()
        else:
            torch.manual_seed(config.seed)  # the head's (and a random backbone's) initial weights
            model = init_model(self.classes, config.model, self.spec)
            self.backbone = model.backbone_source
            self.backbone_sha256 = backbone_metadata(model)["backbone_sha256"]
            self.run_dir = ctx.broadcast(runs.new_run_dir(config.out_dir, config.name) if ctx.is_main else None)
        if config.mode != "finetune":
            model.freeze_backbone()
        elif ctx.distributed and self.device.type == "cuda":
            # Per-GPU batches are small: BatchNorm statistics over the whole global batch.
            model = cast(Recognizer, nn.SyncBatchNorm.convert_sync_batchnorm(model))
        self.model = model.to(self.device)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.use_amp = config.amp and self.device.type == "cuda"

    # ------------------------------------------------------------------------------------------ set-up
    def _datasets(self) -> tuple[Dataset[Any], Callable[[list[SequenceRecord]], Dataset[Any]]]:
        cfg = self.cfg
        labels = {r.seq_id: self.dataset.label_index(r.label) for r in self.dataset.sequences}
        common: dict[str, Any] = {
            "short_policy": cfg.short_policy,
            "shuffle_frames": cfg.shuffle_frames,
            "seed": cfg.seed,
        }
        if cfg.mode == "cached":
            if cfg.augment.enabled and self.ctx.is_main:
                log.info("cached mode: pixel augmentation is impossible on cached features; training without it")
            cache = self._feature_cache()

            def make_eval(recs: list[SequenceRecord]) -> Dataset[Any]:
                feats = [cache.features(r.seq_id) for r in recs]
                return FeatureWindows(feats, [labels[r.seq_id] for r in recs], cfg.seq_len, train=False, **common)

            train_ds = FeatureWindows(
                [cache.features(r.seq_id) for r in self.train_recs],
                [labels[r.seq_id] for r in self.train_recs],
                cfg.seq_len,
                train=True,
                windows_per_sequence=cfg.windows_per_sequence,
                **common,
            )
            return train_ds, make_eval

        def make_pixels(recs: list[SequenceRecord]) -> Dataset[Any]:
            return PixelWindows(self.dataset, recs, self.spec, train=False, **common)

        train_px = PixelWindows(
            self.dataset,
            self.train_recs,
            self.spec,
            train=True,
            augment=cfg.augment,
            windows_per_sequence=cfg.windows_per_sequence,
            **common,
        )
        return train_px, make_pixels

    def _feature_cache(self) -> FeatureCache:
        encoder = self.model.frame_encoder()
        cache_dir = self.cfg.cache_dir or (self.dataset.root / ".feature_cache")
        build: dict[str, Any] = {"device": self.device, "batch": self.cfg.encode_batch_size, "progress": self.progress}
        if self.ctx.is_main:
            cache = FeatureCache.build_or_load(self.dataset, encoder, self.spec, cache_dir, **build)
        self.ctx.barrier()  # rank 0 encodes, the others then read its entry
        if not self.ctx.is_main:
            cache = FeatureCache.build_or_load(self.dataset, encoder, self.spec, cache_dir, **build)
        return cache

    def _classifier(self) -> WindowClassifier:
        """Batch -> logits, with the trainable part wrapped in DistributedDataParallel under torchrun."""
        net = self.model.trainable_module()
        if self.ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(net, device_ids=ids)
        return WindowClassifier(
            self.model, features_in=self.cfg.mode == "cached", net=net, feature_dropout=self.cfg.feature_dropout
        )

    def _criterion(self) -> nn.Module:
        counts = np.bincount([self.dataset.label_index(r.label) for r in self.train_recs], minlength=len(self.classes))
        if (counts == 0).any() and self.ctx.is_main:
            missing = [c for c, n in zip(self.classes, counts, strict=True) if n == 0]
            log.warning("classes without training sequences (they cannot be learned): %s", missing)
        weights = class_weights(counts, self.cfg.class_weighting)
        weight = torch.tensor(weights, dtype=torch.float32, device=self.device)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=self.cfg.label_smoothing)

    # ------------------------------------------------------------------------------------------- loop
    def run(self) -> TrainResult:
        cfg, ctx = self.cfg, self.ctx
        train_ds, make_eval = self._datasets()
        classifier = self._classifier()
        optimizer, scheduler = make_optimizer(self.model.trainable_parameters(), cfg)
        scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        criterion = self._criterion()
        state = self.state
        if self.resumed:
            if state.optimizer is not None:
                optimizer.load_state_dict(state.optimizer)
            if scheduler is not None and state.scheduler is not None:
                scheduler.load_state_dict(state.scheduler)
            if state.scaler:
                scaler.load_state_dict(state.scaler)
            log.info("resuming %s after epoch %d", self.run_dir, state.epoch)
        if ctx.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            if not self.resumed:
                runs.write_run_files(self.run_dir, cfg, self._run_info())
        writer = self._tensorboard()

        sampler: DistributedSampler[Any] | None = None
        if ctx.distributed:
            sampler = DistributedSampler(train_ds, ctx.world_size, ctx.rank, shuffle=True, seed=cfg.seed)
        generator = torch.Generator()
        loader = DataLoader(
            train_ds,
            batch_size=cfg.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=generator,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        val_loader = self._eval_loader(make_eval(self.val_recs))
        sign = -1.0 if cfg.monitor == "loss" else 1.0
        stopped_early = False
        for epoch in range(state.epoch, cfg.epochs):
            if state.bad_epochs >= cfg.early_stopping > 0:
                stopped_early = True
                break
            started = time.perf_counter()
            torch.manual_seed(cfg.seed * 100003 + epoch)  # dropout: the same on a resumed run
            generator.manual_seed(cfg.seed * 100003 + epoch)
            train_ds.set_epoch(epoch)  # type: ignore[attr-defined]
            if sampler is not None:
                sampler.set_epoch(epoch)
            stats = train_one_epoch(
                classifier,
                criterion,
                optimizer,
                loader,
                self.device,
                epoch=epoch,
                scaler=scaler,
                grad_clip=cfg.grad_clip,
                amp=self.use_amp,
                reduce=ctx.all_reduce_sum,
                progress=self.progress,
            )
            val = self._evaluate(classifier, val_loader)
            value = monitored_value(val, cfg.monitor)
            val_loss = val.loss if val.loss is not None else math.inf
            improved = is_improvement(sign * value, val_loss, state.best_metric, state.best_loss)
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(value)
            elif scheduler is not None:
                scheduler.step()
            row = {
                "epoch": epoch + 1,
                "train_loss": stats.loss,
                "train_accuracy": stats.accuracy,
                "val_loss": val.loss,
                "val_accuracy": val.accuracy,
                "val_macro_f1": val.macro_f1,
                "val_balanced_accuracy": val.balanced_accuracy,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
            }
            if improved:
                best_metric, best_loss, best_epoch, bad_epochs = float(sign * value), val_loss, epoch + 1, 0
            else:
                best_metric, best_loss, best_epoch = state.best_metric, state.best_loss, state.best_epoch
                bad_epochs = state.bad_epochs + 1
            state = RunState(
                epoch=epoch + 1,
                best_metric=best_metric,
                best_epoch=best_epoch,
                bad_epochs=bad_epochs,
                best_loss=best_loss,
                history=(*state.history, row),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict() if scheduler is not None else None,
                scaler=scaler.state_dict(),
            )
            if ctx.is_main:
                self._log_epoch(row, val, improved, writer)
                meta = {"epoch": epoch + 1, "val_accuracy": val.accuracy, "val_macro_f1": val.macro_f1}
                self._save_checkpoint(self.ckpt_dir / runs.LAST, meta)
                if improved:
                    self._save_checkpoint(self.ckpt_dir / runs.BEST, meta)
                runs.save_state(self.ckpt_dir / runs.STATE, state)
            ctx.barrier()
        if writer is not None:
            writer.close()
        state = dataclasses.replace(state, best_metric=sign * state.best_metric)
        return self._finish(state, stopped_early, make_eval, classifier)

    def _log_epoch(self, row: dict[str, Any], val: ClassificationMetrics, improved: bool, writer: Any) -> None:
        log.info(
            "epoch %d/%d: train loss %.4f acc %.3f | val loss %.4f acc %.3f F1 %.3f | %.1fs%s",
            row["epoch"], self.cfg.epochs, row["train_loss"], row["train_accuracy"], val.loss or 0.0, val.accuracy,
            val.macro_f1, row["seconds"], " *" if improved else "",
        )  # fmt: skip
        if writer is not None:
            for key, v in row.items():
                if key != "epoch" and v is not None:
                    writer.add_scalar(key.replace("_", "/", 1), v, row["epoch"])

    def _eval_loader(self, ds: Dataset[Any]) -> DataLoader[Any]:
        # Each process evaluates every world_size-th window; the counts are summed afterwards.
        shard = Subset(ds, range(self.ctx.rank, len(ds), self.ctx.world_size))  # type: ignore[arg-type]
        return DataLoader(shard, batch_size=self.cfg.batch_size, shuffle=False, num_workers=self.cfg.num_workers)

    def _evaluate(self, classifier: WindowClassifier, loader: DataLoader[Any]) -> ClassificationMetrics:
        result = evaluate(
            classifier, loader, self.device, self.classes, amp=self.use_amp, reduce=self.ctx.all_reduce_sum
        )
        return result.metrics

    # ------------------------------------------------------------------------------------------ output
    def _run_info(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.dataset.root.resolve()),
            "dataset_fingerprint": self.dataset.fingerprint(),
            "classes": self.classes,
            "world_size": self.ctx.world_size,
            "backend": torch.distributed.get_backend() if self.ctx.distributed else None,
            "device": str(self.device),
            "backbone": self.backbone,
            "backbone_sha256": self.backbone_sha256,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def _tensorboard(self) -> Any:
        if not (self.cfg.tensorboard and self.ctx.is_main):
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def _save_checkpoint(self, path: Path, extra: dict[str, Any]) -> None:
        metadata = {
            "trained": True,
            "run": self.run_dir.name,
            "mode": self.cfg.mode,
            "backbone": self.backbone,
            "backbone_sha256": self.backbone_sha256,
            "dataset": str(self.dataset.root.resolve()),
            "short_policy": self.cfg.short_policy,
            "train_config": self.cfg.model_dump(mode="json"),
            **extra,
        }
        save_checkpoint(Checkpoint.from_model(self.model, self.classes, self.cfg.model, self.spec, metadata), path)

    def _finish(
        self,
        state: RunState,
        stopped_early: bool,
        make_eval: Callable[[list[SequenceRecord]], Dataset[Any]],
        classifier: WindowClassifier,
    ) -> TrainResult:
        best_path = self.ckpt_dir / runs.BEST
        self.ctx.barrier()
        best = load_checkpoint(best_path)
        self.model.load_state_dict(best.state_dict)
        val = self._evaluate(classifier, self._eval_loader(make_eval(self.val_recs)))
        test = self._evaluate(classifier, self._eval_loader(make_eval(self.test_recs))) if self.test_recs else None
        history = list(state.history)
        result = TrainResult(
            run_dir=self.run_dir,
            best_checkpoint=best_path,
            last_checkpoint=self.ckpt_dir / runs.LAST,
            best_epoch=state.best_epoch,
            best_metric=state.best_metric,
            history=history,
            val=val.to_dict(),
            test=test.to_dict() if test is not None else None,
        )
        shown, split = (test, "test") if test is not None else (val, "val")
        result.warning = shown.baseline_warning(split)
        if self.ctx.is_main:
            summary: dict[str, Any] = {"best_epoch": state.best_epoch, "monitor": self.cfg.monitor}
            summary |= {
                "best_metric": state.best_metric,
                "epochs_run": len(history),
                "stopped_early": stopped_early,
                "backbone": self.backbone,
            }
            summary |= {"warning": result.warning}
            runs.write_results(self.run_dir, self.classes, history, summary, val, test)
            if result.warning is not None:
                log.warning("%s", result.warning)
        return result

"""``actwatch train``: train an action model on an extracted dataset and write a run folder.

Three modes (``TrainConfig.mode``):

* ``cached`` — the encoder is frozen; every crop is encoded once and the features are cached on disk
  (:mod:`actwatch.train.features`), so an epoch costs only the temporal head. Pixel augmentation is
  impossible here (the features were computed from the original crops): training runs without it.
* ``frozen`` — the encoder is frozen but run on every step, so augmented crops can be used.
* ``finetune`` — everything trains end to end (mixed precision on a GPU).

The checkpoints are ordinary actwatch checkpoints (the whole model, encoder included), so
``actwatch export`` and the service take them unchanged. See :mod:`actwatch.train.runs` for the run
folder and :mod:`actwatch.train.distributed` for ``torchrun``.

Example:
    >>> result = train(TrainConfig(epochs=5, model=ModelConfig(pretrained=False)), Path("data/ds"))  # doctest: +SKIP
    >>> result.best_checkpoint                                                                       # doctest: +SKIP
    PosixPath('experiments/actwatch_20250101-120000/checkpoints/best.pt')
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from actwatch.errors import ConfigError
from actwatch.model.checkpoint import Checkpoint, init_checkpoint, load_checkpoint, save_checkpoint
from actwatch.model.config import InputSpec
from actwatch.train import runs
from actwatch.train.config import TrainConfig
from actwatch.train.dataset import SequenceRecord, load_dataset
from actwatch.train.distributed import DistContext, setup_distributed
from actwatch.train.features import FeatureCache
from actwatch.train.metrics import ClassificationMetrics, metrics_from_confusion, top_k_hits
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
            raise ConfigError(
                f"{data_dir} has {len(self.train_recs)} training and {len(self.val_recs)} validation sequences; "
                "both are needed (re-run extraction with more videos or a larger --val-ratio)"
            )
        self.classes = list(self.dataset.classes)
        self.spec = InputSpec.for_arch(
            config.model.arch, seq_len=config.seq_len, input_size=self.dataset.input_size, fps=self.dataset.fps
        )
        self.device = ctx.device
        self.state: dict[str, Any] | None = None
        if resume is not None:
            run_dir, last, state_path = runs.resolve_resume(resume)
            ckpt = load_checkpoint(last)
            if list(ckpt.classes) != self.classes:
                raise ConfigError(
                    f"cannot resume {run_dir}: its classes {list(ckpt.classes)} differ from the dataset's"
                )
            self.state = runs.load_state(state_path)
            self.run_dir = run_dir
        else:
            torch.manual_seed(config.seed)  # the head's (and a random backbone's) initial weights
            ckpt = init_checkpoint(self.classes, config.model, self.spec)
            self.run_dir = ctx.broadcast(runs.new_run_dir(config.out_dir, config.name) if ctx.is_main else None)
        self.backbone = str(ckpt.metadata.get("backbone", "unknown"))
        # Any: the attributes used (encoder, head, net.fc) depend on the architecture.
        self.model: Any = ckpt.build_model().to(self.device)
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
        encoder = self.model.encoder
        cache_dir = self.cfg.cache_dir or (self.dataset.root / ".feature_cache")
        build: dict[str, Any] = {"device": self.device, "batch": self.cfg.encode_batch_size, "progress": self.progress}
        if self.ctx.is_main:
            cache = FeatureCache.build_or_load(self.dataset, encoder, self.spec, cache_dir, **build)
        self.ctx.barrier()  # rank 0 encodes, the others then read its entry
        if not self.ctx.is_main:
            cache = FeatureCache.build_or_load(self.dataset, encoder, self.spec, cache_dir, **build)
        return cache

    def _trainable(self) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
        """The module to optimise (wrapped in DDP under torchrun) and the batch -> logits function."""
        model, mode = self.model, self.cfg.mode
        split = hasattr(model, "encoder") and hasattr(model, "head")
        if mode == "finetune":
            module: nn.Module = model
            if self.ctx.distributed and self.device.type == "cuda":
                # Per-GPU batches are small: BatchNorm statistics over the whole global batch.
                module = self.model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif split:
            model.encoder.requires_grad_(False)
            module = model.head
        else:  # frozen R3D-18: a linear probe, only the final layer learns
            model.requires_grad_(False)
            model.net.fc.requires_grad_(True)
            module = model
        wrapped = module
        if self.ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = DistributedDataParallel(module, device_ids=ids)

        def forward(x: torch.Tensor) -> torch.Tensor:
            if mode == "frozen" and split:
                with torch.no_grad():
                    b, t = x.shape[:2]
                    feats = model.encoder(x.flatten(0, 1)).reshape(b, t, -1)
                return wrapped(feats)
            return wrapped(x)  # cached: features -> head; finetune / R3D: pixels -> model

        return module, forward

    def _set_modes(self, training: bool) -> None:
        self.model.train(training)
        if self.cfg.mode != "finetune":
            # A frozen backbone keeps its BatchNorm statistics: eval mode even while the head trains.
            frozen = self.model.encoder if hasattr(self.model, "encoder") else self.model
            frozen.eval()
            if training and not hasattr(self.model, "encoder"):
                self.model.net.fc.train()

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.use_amp):
            yield

    # ------------------------------------------------------------------------------------------- loop
    def run(self) -> TrainResult:
        cfg, ctx = self.cfg, self.ctx
        train_ds, make_eval = self._datasets()
        val_ds = make_eval(self.val_recs)
        module, forward = self._trainable()
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler: Any = None
        if cfg.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min" if cfg.monitor == "loss" else "max",
                factor=cfg.plateau_factor,
                patience=cfg.plateau_patience,
            )
        elif cfg.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
        scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        counts = np.bincount([self.dataset.label_index(r.label) for r in self.train_recs], minlength=len(self.classes))
        if (counts == 0).any() and ctx.is_main:
            missing = [c for c, n in zip(self.classes, counts, strict=True) if n == 0]
            log.warning("classes without training sequences (they cannot be learned): %s", missing)
        weights = torch.tensor(class_weights(counts, cfg.class_weighting), dtype=torch.float32, device=self.device)
        criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)

        start_epoch, best_metric, best_epoch, bad_epochs = 0, -np.inf, 0, 0
        history: list[dict[str, Any]] = []
        if self.state is not None:
            optimizer.load_state_dict(self.state["optimizer"])
            if scheduler is not None and self.state.get("scheduler") is not None:
                scheduler.load_state_dict(self.state["scheduler"])
            if self.state.get("scaler"):
                scaler.load_state_dict(self.state["scaler"])
            start_epoch = int(self.state["epoch"])
            best_metric, best_epoch = float(self.state["best_metric"]), int(self.state["best_epoch"])
            bad_epochs, history = int(self.state["bad_epochs"]), list(self.state["history"])
            log.info("resuming %s after epoch %d", self.run_dir, start_epoch)
        if ctx.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            if self.state is None:
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
        val_loader = self._eval_loader(val_ds)
        sign = -1.0 if cfg.monitor == "loss" else 1.0
        stopped_early = False
        for epoch in range(start_epoch, cfg.epochs):
            if bad_epochs >= cfg.early_stopping > 0:
                stopped_early = True
                break
            started = time.perf_counter()
            torch.manual_seed(cfg.seed * 100003 + epoch)  # dropout: the same on a resumed run
            generator.manual_seed(cfg.seed * 100003 + epoch)
            train_ds.set_epoch(epoch)  # type: ignore[attr-defined]
            if sampler is not None:
                sampler.set_epoch(epoch)
            train_loss, train_acc = self._train_epoch(loader, forward, params, optimizer, scaler, criterion, epoch)
            val = self.evaluate_loader(val_loader, forward)
            value = {"accuracy": val.accuracy, "macro_f1": val.macro_f1, "loss": val.loss or 0.0}[cfg.monitor]
            improved = sign * value > best_metric
            if improved:
                best_metric, best_epoch, bad_epochs = float(sign * value), epoch + 1, 0
            else:
                bad_epochs += 1
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(value)
            elif scheduler is not None:
                scheduler.step()
            row = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_loss": val.loss,
                "val_accuracy": val.accuracy,
                "val_macro_f1": val.macro_f1,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
            }
            history.append(row)
            if ctx.is_main:
                log.info(
                    "epoch %d/%d: train loss %.4f acc %.3f | val loss %.4f acc %.3f F1 %.3f | %.1fs%s",
                    epoch + 1, cfg.epochs, train_loss, train_acc, val.loss or 0.0, val.accuracy, val.macro_f1,
                    row["seconds"], " *" if improved else "",
                )  # fmt: skip
                if writer is not None:
                    for key, v in row.items():
                        if key != "epoch" and v is not None:
                            writer.add_scalar(key.replace("_", "/", 1), v, epoch + 1)
                meta = {"epoch": epoch + 1, "val_accuracy": val.accuracy, "val_macro_f1": val.macro_f1}
                self._save_checkpoint(self.ckpt_dir / runs.LAST, meta)
                if improved:
                    self._save_checkpoint(self.ckpt_dir / runs.BEST, meta)
                runs.save_state(
                    self.ckpt_dir / runs.STATE,
                    {
                        "epoch": epoch + 1,
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "scaler": scaler.state_dict(),
                        "best_metric": float(best_metric),
                        "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs,
                        "history": json.loads(json.dumps(history)),  # plain types for weights_only loading
                    },
                )
            ctx.barrier()
        if writer is not None:
            writer.close()
        return self._finish(history, best_epoch, sign * best_metric, stopped_early, make_eval, forward)

    def _train_epoch(
        self,
        loader: DataLoader[Any],
        forward: Callable[[torch.Tensor], torch.Tensor],
        params: list[nn.Parameter],
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        criterion: nn.Module,
        epoch: int,
    ) -> tuple[float, float]:
        self._set_modes(True)
        sums = np.zeros(3)  # loss * n, correct, n
        bar = tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=not self.progress)
        for x, y in bar:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self._autocast():
                logits = forward(x)
                loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if self.cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            n = len(y)
            sums += (loss.item() * n, (logits.argmax(1) == y).sum().item(), n)
            bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}")
        sums = self.ctx.all_reduce_sum(sums)
        return float(sums[0] / max(sums[2], 1)), float(sums[1] / max(sums[2], 1))

    def _eval_loader(self, ds: Dataset[Any]) -> DataLoader[Any]:
        # Each process evaluates every world_size-th window; the counts are summed afterwards.
        shard = Subset(ds, range(self.ctx.rank, len(ds), self.ctx.world_size))  # type: ignore[arg-type]
        return DataLoader(shard, batch_size=self.cfg.batch_size, shuffle=False, num_workers=self.cfg.num_workers)

    @torch.no_grad()
    def evaluate_loader(
        self, loader: DataLoader[Any], forward: Callable[[torch.Tensor], torch.Tensor]
    ) -> ClassificationMetrics:
        self._set_modes(False)
        c = len(self.classes)
        k = min(5, c)
        cm = np.zeros((c, c), np.float64)
        extra = np.zeros(2)  # loss sum, top-k hits
        for x, y in loader:
            x, y = x.to(self.device), y.to(self.device)
            with self._autocast():
                logits = forward(x).float()
            extra[0] += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            scores, labels = logits.cpu().numpy(), y.cpu().numpy()
            np.add.at(cm, (labels, scores.argmax(1)), 1)
            extra[1] += top_k_hits(scores, labels, k)
        total = self.ctx.all_reduce_sum(np.concatenate([cm.ravel(), extra]))
        cm = total[: c * c].reshape(c, c).astype(np.int64)
        n = max(int(cm.sum()), 1)
        return metrics_from_confusion(
            cm, self.classes, top_k=k, top_k_correct=int(total[-1]), loss=float(total[-2] / n)
        )

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
            "dataset": str(self.dataset.root.resolve()),
            "short_policy": self.cfg.short_policy,
            "train_config": self.cfg.model_dump(mode="json"),
            **extra,
        }
        save_checkpoint(Checkpoint.from_model(self.model, self.classes, self.cfg.model, self.spec, metadata), path)

    def _finish(
        self,
        history: list[dict[str, Any]],
        best_epoch: int,
        best_metric: float,
        stopped_early: bool,
        make_eval: Callable[[list[SequenceRecord]], Dataset[Any]],
        forward: Callable[[torch.Tensor], torch.Tensor],
    ) -> TrainResult:
        best_path = self.ckpt_dir / runs.BEST
        self.ctx.barrier()
        best = load_checkpoint(best_path)
        self.model.load_state_dict(best.state_dict)
        val = self.evaluate_loader(self._eval_loader(make_eval(self.val_recs)), forward)
        test = self.evaluate_loader(self._eval_loader(make_eval(self.test_recs)), forward) if self.test_recs else None
        result = TrainResult(
            run_dir=self.run_dir,
            best_checkpoint=best_path,
            last_checkpoint=self.ckpt_dir / runs.LAST,
            best_epoch=best_epoch,
            best_metric=best_metric,
            history=history,
            val=val.to_dict(),
            test=test.to_dict() if test is not None else None,
        )
        if self.ctx.is_main:
            summary = {"best_epoch": best_epoch, "monitor": self.cfg.monitor, "best_metric": best_metric}
            summary |= {"epochs_run": len(history), "stopped_early": stopped_early}
            runs.write_results(self.run_dir, self.classes, history, summary, val, test)
        return result

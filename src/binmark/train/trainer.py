"""The training loop: stages → epochs → steps, with exact resume.

Reproducibility: the data order of epoch e is a permutation drawn from a generator seeded with
(seed, stage, e); augmentation is seeded per (seed, epoch, sample); the learning rate is a function
of the step; checkpoints hold everything else (optimizer, scaler, EMA, RNG states, position). A run
killed at any point and resumed from its last checkpoint therefore ends with the same weights as an
uninterrupted run (on CPU, with the same thread count).

Distributed: under ``torchrun`` each of W ranks takes its slice of every global batch (W × batch
samples per step), the model is wrapped in DistributedDataParallel, rank 0 alone logs and writes
checkpoints, and evaluation predictions are gathered from all ranks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from binmark.data.dataset import TopDownDataset, collate
from binmark.evaluate import Evaluator, Predictions, Report
from binmark.train import distributed as D
from binmark.train.build import (
    architecture,
    binary_weights,
    build_augment,
    build_codec,
    build_loss,
    build_optimizer,
    build_split,
    model_from_arch,
    model_from_checkpoint,
)
from binmark.train.checkpoint import describe_differences, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from binmark.train.config import Config, StageConfig, config_to_dict
from binmark.train.ema import EMA
from binmark.train.logger import RunLogger
from binmark.train.schedule import learning_rate

__all__ = ["Trainer", "TrainingDiverged", "EpochBatches", "LOWER_IS_BETTER", "RUNTIME_KEYS"]

LOWER_IS_BETTER = {"NME"}
DEFAULT_METRIC = {"pckh": "Mean", "pck": "Mean", "coco": "AP", "nme": "NME"}
# config keys a resumed run may change: they do not affect the result
RUNTIME_KEYS = ("data.num_workers", "train.device", "train.log_every", "train.threads", "output_dir", "eval.batch_size")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class EpochBatches(Sampler[list[int]]):
    """This rank's batches of one epoch: a seeded permutation cut into global batches.

    Global batch s is ``perm[s·B·W : (s+1)·B·W]``; rank r takes its r-th slice of B. Batches
    before ``start`` are skipped (resume in the middle of an epoch). The last partial global batch
    is dropped, so every rank runs the same number of steps.
    """

    def __init__(self, n: int, batch: int, seed: tuple[int, ...], rank: int = 0, world: int = 1, start: int = 0) -> None:
        self.n, self.batch, self.seed = n, batch, seed
        self.rank, self.world, self.start = rank, world, start

    @property
    def steps(self) -> int:
        return self.n // (self.batch * self.world)

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence(list(self.seed)).generate_state(1)[0]))
        perm = torch.randperm(self.n, generator=gen).tolist()
        g = self.batch * self.world
        for s in range(self.start, self.steps):
            chunk = perm[s * g : (s + 1) * g]
            yield chunk[self.rank * self.batch : (self.rank + 1) * self.batch]

    def __len__(self) -> int:
        return max(self.steps - self.start, 0)


class _Shard(Sequence):
    """Every W-th sample of a dataset, keeping its skeleton, name and info."""

    def __init__(self, samples: Any, rank: int, world: int) -> None:
        self.samples, self.indices = samples, list(range(rank, len(samples), world))
        self.skeleton, self.name = samples.skeleton, getattr(samples, "name", samples.skeleton.name)
        self.info = getattr(samples, "info", {})

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        return self.samples[self.indices[i]]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _merge(parts: list[Predictions]) -> Predictions:
    """Predictions of W shards (rank r holds samples r, r+W, …) back in dataset order."""
    order = np.argsort(np.concatenate([np.arange(r, r + len(p.coords) * len(parts), len(parts)) for r, p in enumerate(parts)]))
    cat = lambda xs: np.concatenate(xs)[order]  # noqa: E731
    metas = [m for p in parts for m in p.meta]
    return Predictions(cat([p.coords for p in parts]), cat([p.scores for p in parts]), cat([p.gt for p in parts]),
                       cat([p.visible for p in parts]), [metas[i] for i in order])  # fmt: skip


class Trainer:
    """Train a config end to end (all stages), with evaluation, checkpoints and logs.

    Args:
        config: the recipe.
        resume: False, True (continue from ``output_dir/last.pt``) or a checkpoint path.
    """

    def __init__(self, config: Config, resume: bool | str | Path = False) -> None:
        self.cfg = config
        self.device = _device(config.train.device)
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        self.dist = D.setup(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.out = Path(config.output_dir)
        self.log = RunLogger(self.out, enabled=self.dist.is_main)
        self.train_set = build_split(config.data, "train")
        self.val_set = build_split(config.data, "val")
        self.schema = self.train_set.skeleton
        self.codec = build_codec(config.data, config.eval.decode)
        self.loss_fn = build_loss(config.loss).to(self.device)
        self.teacher = self._load_teacher() if config.loss.distill else None
        self.stages = config.stages or [StageConfig("main", config.train.epochs or 1, config.model.quant, None)]
        self.position = {"stage": 0, "epoch": 0, "batch": 0, "step": 0}
        self.best: dict[str, Any] = {}
        self.resume_state = self._read_resume(resume) if resume else None

    # --- teacher ------------------------------------------------------------------------------
    def _load_teacher(self) -> nn.Module:
        """The frozen teacher; it must predict the student's keypoints at the student's heatmap size."""
        distill = self.cfg.loss.distill
        device = torch.device(distill.device) if distill.device else self.device
        teacher, ckpt = model_from_checkpoint(distill.teacher, device)
        for p in teacher.parameters():
            p.requires_grad_(False)
        k = self.cfg.model.num_keypoints or self.schema.num_keypoints
        w, h = self.codec.input_size
        with torch.no_grad():
            out = teacher(torch.zeros(1, 3, h, w, device=device))[-1]
        expected = (k, self.codec.heatmap_size[1], self.codec.heatmap_size[0])
        if tuple(out.shape[1:]) != expected:
            raise ValueError(
                f"teacher checkpoint {distill.teacher} ({ckpt['arch']['name']}, {ckpt['arch']['num_keypoints']} "
                f"keypoints) predicts heatmaps {tuple(out.shape[1:])} for {w}x{h} inputs; the student needs {expected}"
            )
        self.teacher_device = device
        return teacher

    # --- resume -------------------------------------------------------------------------------
    def _read_resume(self, resume: bool | str | Path) -> dict[str, Any]:
        path = self.out / "last.pt" if resume is True else Path(resume)
        ckpt = load_checkpoint(path, self.device)
        mine, theirs = config_to_dict(self.cfg), ckpt.get("config", {})
        diffs = [d for d in describe_differences(theirs, mine) if not d.startswith(RUNTIME_KEYS)]
        if diffs:
            raise ValueError(f"checkpoint {path} was trained with another config; it differs in: " + "; ".join(diffs[:8]))
        self.position = dict(ckpt["position"])
        self.best = dict(ckpt.get("best", {}))
        self.log.event("resume", checkpoint=str(path), **self.position)
        return ckpt

    # --- model per stage ----------------------------------------------------------------------
    def _stage_model(self, stage: StageConfig, previous: dict[str, torch.Tensor] | None) -> tuple[nn.Module, dict[str, Any]]:
        arch = architecture(self.cfg, self.schema, stage.quant)
        torch.manual_seed(self.cfg.train.seed)
        model = model_from_arch(arch).to(self.device)
        if previous is not None:  # initialise from the previous stage; new quantizer parameters start fresh
            missing, unexpected = model.load_state_dict(previous, strict=False)
            bad = [k for k in missing + unexpected if "_quantizer." not in k]
            if bad:
                raise ValueError(f"stage {stage.name!r} cannot start from the previous stage: parameters {bad[:5]} do not match")
        return model, arch

    def _check_arch(self, arch: dict[str, Any]) -> None:
        saved = self.resume_state["arch"] if self.resume_state else None
        if saved is not None and saved != arch:
            diffs = describe_differences(saved, arch)
            raise ValueError("checkpoint is from another architecture: " + "; ".join(diffs[:8]))

    # --- the loop -----------------------------------------------------------------------------
    def fit(self) -> Report | None:
        """Run every remaining stage; returns the final evaluation report (rank 0; None elsewhere)."""
        self.log.event("config", config=config_to_dict(self.cfg))
        previous = None
        report = None
        try:
            for index in range(self.position["stage"], len(self.stages)):
                report, previous = self._run_stage(index, previous)
        finally:
            self.log.close()
            D.teardown(self.dist)
        return report

    def _run_stage(self, index: int, previous: dict[str, torch.Tensor] | None) -> tuple[Report | None, dict[str, torch.Tensor]]:
        stage = self.stages[index]
        model, arch = self._stage_model(stage, previous)
        resuming = self.resume_state is not None and self.resume_state["position"]["stage"] == index
        if resuming:
            self._check_arch(arch)
            model.load_state_dict(self.resume_state["model"])
        else:
            self.position.update(stage=index, epoch=0, batch=0)
            self.best = {}
        run = _StageRun(self, stage, model, arch)
        if resuming:
            run.restore(self.resume_state)
            self.resume_state = None
        report = run.train()
        return report, {k: v.detach().clone() for k, v in run.model.state_dict().items()}


class _StageRun:
    """The state of one stage: model, optimizer, scaler, EMA, loaders; its epochs and steps."""

    def __init__(self, trainer: Trainer, stage: StageConfig, model: nn.Module, arch: dict[str, Any]) -> None:
        self.t, self.stage, self.model, self.arch = trainer, stage, model, arch
        cfg = trainer.cfg
        self.base_lr = stage.lr if stage.lr is not None else cfg.optim.lr
        self.optimizer = build_optimizer(cfg.optim, model.parameters())
        self.amp = cfg.train.amp and trainer.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.ema = EMA(model, cfg.train.ema) if cfg.train.ema else None
        self.wrapped = model
        if trainer.dist.enabled:
            ids = [trainer.device.index] if trainer.device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.data = TopDownDataset(trainer.train_set, trainer.codec, trainer.schema, build_augment(cfg.data), cfg.data.padding, cfg.train.seed)
        n, world = len(self.data), trainer.dist.world_size
        self.steps_per_epoch = n // (cfg.train.batch_size * world)
        if self.steps_per_epoch < 1:
            raise ValueError(f"the training set has {n} samples, fewer than one global batch ({cfg.train.batch_size} × {world} ranks)")
        self.total_steps = self.steps_per_epoch * stage.epochs
        self.clip = binary_weights(model) if cfg.train.clip_binary_weights else []

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        set_rng_state(ckpt["rng"])

    def _checkpoint(self, name: str) -> None:
        if not self.t.dist.is_main:
            return
        save_checkpoint(self.t.out / name, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
            "position": dict(self.t.position), "best": dict(self.t.best), "rng": rng_state(),
            "arch": self.arch, "config": config_to_dict(self.t.cfg), "stage": self.stage.name,
        })  # fmt: skip

    def train(self) -> Report | None:
        pos, cfg = self.t.position, self.t.cfg
        report = None
        while pos["epoch"] < self.stage.epochs:
            self._epoch(pos["epoch"], pos["batch"])
            pos["epoch"] += 1
            pos["batch"] = 0
            last = pos["epoch"] == self.stage.epochs
            if last or (cfg.train.eval_every and pos["epoch"] % cfg.train.eval_every == 0):
                report = self._evaluate()
            self._checkpoint("last.pt")
        self._check_replicas()
        self._checkpoint(f"{self.stage.name}.pt")
        return report

    def _check_replicas(self) -> None:
        """Under DDP, compare every rank's parameters (per-tensor float64 sums) and log the result.

        BN running statistics are buffers that DDP re-broadcasts from rank 0 at each forward, so
        after the last local forward they differ between ranks by design; rank 0's are saved.
        """
        if not self.t.dist.enabled:
            return
        sums = torch.stack([p.detach().double().sum() for p in self.model.parameters()])
        everyone = D.all_gather_objects(sums.cpu(), self.t.dist)
        in_sync = all(torch.equal(everyone[0], other) for other in everyone[1:])
        self.t.log.event("replicas", stage=self.stage.name, world_size=self.t.dist.world_size, in_sync=in_sync)
        if not in_sync:
            raise RuntimeError(f"stage {self.stage.name!r}: the {self.t.dist.world_size} ranks ended with different weights")

    def _loader(self, epoch: int, start: int) -> DataLoader:
        cfg, d = self.t.cfg, self.t.dist
        self.data.set_epoch(epoch)
        seed = (cfg.train.seed, self.t.position["stage"], epoch)
        batches = EpochBatches(len(self.data), cfg.train.batch_size, seed, d.rank, d.world_size, start)
        return DataLoader(self.data, batch_sampler=batches, num_workers=cfg.data.num_workers, collate_fn=collate)

    def _epoch(self, epoch: int, start: int) -> None:
        self.wrapped.train()
        pos, cfg = self.t.position, self.t.cfg
        loader = self._loader(epoch, start)
        bar = self.t.log.progress(len(loader), f"{self.stage.name} epoch {epoch + 1}/{self.stage.epochs}")
        tic, seen = time.perf_counter(), 0
        for images, heatmaps, weights, _ in loader:
            loss, lr = self._step(images, heatmaps, weights)
            pos["batch"] += 1
            pos["step"] += 1
            seen += len(images) * self.t.dist.world_size
            bar.update(1)
            if pos["step"] % cfg.train.log_every == 0:
                rate = seen / max(time.perf_counter() - tic, 1e-9)
                self.t.log.scalars(pos["step"], stage=self.stage.name, epoch=epoch, loss=loss, lr=lr, images_per_s=rate)
                bar.set_postfix(loss=f"{loss:.4g}")
            if cfg.train.checkpoint_every and pos["step"] % cfg.train.checkpoint_every == 0:
                self._checkpoint("last.pt")
        bar.close()

    def _step(self, images: torch.Tensor, heatmaps: torch.Tensor, weights: torch.Tensor) -> tuple[float, float]:
        t, cfg = self.t, self.t.cfg
        images, heatmaps, weights = (x.to(t.device, non_blocking=True) for x in (images, heatmaps, weights))
        lr = learning_rate(cfg.schedule, self.base_lr, self._stage_step(), self.steps_per_epoch, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(t.device.type, enabled=self.amp):
            out = self.wrapped(images)
            extra = {}
            if t.teacher is not None:
                with torch.no_grad():
                    extra["teacher"] = t.teacher(images.to(t.teacher_device))[-1].float().to(t.device)
            loss = t.loss_fn(out, heatmaps, weights, **extra)
        self._check_finite(loss)
        self.scaler.scale(loss).backward()
        if cfg.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for w in self.clip:
                w.clamp_(-1.0, 1.0)
        if self.ema is not None:
            self.ema.update(self.model)
        return float(loss.detach()), lr

    def _stage_step(self) -> int:
        pos = self.t.position
        return pos["epoch"] * self.steps_per_epoch + pos["batch"]

    def _check_finite(self, loss: torch.Tensor) -> None:
        finite = torch.isfinite(loss.detach()).float().reshape(1)
        if self.t.dist.enabled:  # every rank stops together, none waits forever in all-reduce
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if finite.item() < 1:
            pos = self.t.position
            last = self.t.out / "last.pt"
            where = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"the loss became {float(loss.detach())} at stage {self.stage.name!r}, epoch {pos['epoch'] + 1}, "
                f"step {pos['step'] + 1}; {where}. Lower optim.lr or set optim.grad_clip."
            )

    def _evaluate(self) -> Report | None:
        t, cfg = self.t, self.t.cfg
        model = self.ema.model if self.ema else self.model
        shard = _Shard(t.val_set, t.dist.rank, t.dist.world_size) if t.dist.enabled else t.val_set
        ev = Evaluator(shard, t.codec, cfg.eval.flip_test, cfg.eval.batch_size, device=t.device, padding=cfg.data.padding, output_activation=cfg.loss.output_activation)
        parts = D.all_gather_objects(ev.predict(model), t.dist)
        if not t.dist.is_main:
            return None
        merged = _merge(parts)
        report = ev.report(merged)
        name = cfg.eval.metric or DEFAULT_METRIC[report.kind]
        if name not in report.metrics:
            raise ValueError(f"eval.metric {name!r} is not in the {report.kind} report ({', '.join(report.metrics)})")
        value = report.metrics[name]
        better = (lambda a, b: a < b) if name in LOWER_IS_BETTER else (lambda a, b: a > b)
        values = {f"val/{k}": v for k, v in report.metrics.items()}
        t.log.scalars(t.position["step"], stage=self.stage.name, epoch=t.position["epoch"], **values, **{"val/samples": len(merged.coords)})
        if not math.isnan(value) and (not t.best or better(value, t.best["value"])):
            t.best = {"metric": name, "value": value, "epoch": t.position["epoch"], "stage": self.stage.name}
            self._checkpoint("best.pt")
        return report

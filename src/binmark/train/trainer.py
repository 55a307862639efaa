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

from binmark import progress
from binmark.allocator import enable_block_allocator
from binmark.data.dataset import TopDownDataset, collate
from binmark.evaluate import Predictions, Report
from binmark.models import Architecture
from binmark.quant.saving import packed_saves
from binmark.train import distributed as D
from binmark.train.build import (
    architecture,
    binary_weights,
    build_augment,
    build_codec,
    build_evaluator,
    build_loss,
    build_optimizer,
    build_split,
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
RUNTIME_KEYS = ("data.num_workers", "train.device", "train.log_every", "train.threads", "output_dir", "eval.batch_size",
                "train.checkpoint_minutes", "train.divergence_factor", "train.packed_saves", "train.block_allocator")  # fmt: skip
#: steps of a stage before the divergence test starts (the smoothed loss needs a few values)
DIVERGENCE_WARMUP = 20
#: smoothing of the loss for the divergence test: ema ← β·ema + (1 − β)·loss
DIVERGENCE_BETA = 0.9


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite or grew by ``train.divergence_factor``, or the weights or
    BN statistics became non-finite."""


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
        if config.train.block_allocator and self.device.type == "cpu":
            enable_block_allocator()  # for the rest of the process; values unchanged, less memory kept
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        self.dist = D.setup(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.out = Path(config.output_dir)
        self.train_set = build_split(config.data, "train")
        self.val_set = build_split(config.data, "val")
        self.schema = self.train_set.skeleton
        self.codec = build_codec(config.data, config.eval.decode)
        self.augment = build_augment(config.data)
        self.loss_fn = build_loss(config.loss).to(self.device)
        self.teacher = self._load_teacher() if config.loss.distill else None
        self.stages = config.stages or [StageConfig("main", config.train.epochs or 1, config.model.quant, None)]
        self._check_stages()
        self.position = {"stage": 0, "epoch": 0, "batch": 0, "step": 0}
        self.best: dict[str, Any] = {}
        #: the newest checkpoint this run wrote or resumed from (all of its tensors are finite)
        self.last_saved: Path | None = None
        self.log = RunLogger(self.out, enabled=self.dist.is_main)  # the first thing written: after every check
        self.resume_state = self._read_resume(resume) if resume else None

    def _check_stages(self) -> None:
        """Build every stage's network on the meta device (no memory, no compute), so that a bad
        quant or option of a later stage fails now, before the first stage trains."""
        for stage in self.stages:
            try:
                architecture(self.cfg, self.schema, stage.quant).dry_build()
            except (ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"config stage {stage.name!r} (quant {stage.quant!r}): {exc}") from None

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
        self.last_saved = path
        self.log.event("resume", checkpoint=str(path), **self.position)
        return ckpt

    # --- model per stage ----------------------------------------------------------------------
    def _stage_model(self, stage: StageConfig, previous: dict[str, torch.Tensor] | None) -> tuple[nn.Module, Architecture]:
        arch = architecture(self.cfg, self.schema, stage.quant)
        torch.manual_seed(self.cfg.train.seed)
        model = arch.build().to(self.device)
        if previous is not None:  # initialise from the previous stage; new quantizer parameters start fresh
            missing, unexpected = model.load_state_dict(previous, strict=False)
            bad = [k for k in missing + unexpected if "_quantizer." not in k]
            if bad:
                raise ValueError(f"stage {stage.name!r} cannot start from the previous stage: parameters {bad[:5]} do not match")
        return model, arch

    def _check_arch(self, arch: Architecture) -> None:
        if self.resume_state is None:
            return
        saved = Architecture.from_dict(self.resume_state["arch"], "checkpoint field 'arch'")
        if saved != arch:
            diffs = describe_differences(saved.to_dict(), arch.to_dict())
            raise ValueError("checkpoint is from another architecture: " + "; ".join(diffs[:8]))

    # --- the loop -----------------------------------------------------------------------------
    def fit(self) -> Report | None:
        """Run every remaining stage; returns the final evaluation report (rank 0; None elsewhere)."""
        self.log.event("config", config=config_to_dict(self.cfg))
        previous = None
        report = None
        try:
            with packed_saves(self.cfg.train.packed_saves):  # identical gradients either way: a runtime key
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
        self.data = TopDownDataset(trainer.train_set, trainer.codec, trainer.schema, trainer.augment, cfg.data.padding, cfg.train.seed)
        n, world = len(self.data), trainer.dist.world_size
        self.steps_per_epoch = n // (cfg.train.batch_size * world)
        if self.steps_per_epoch < 1:
            raise ValueError(f"the training set has {n} samples, fewer than one global batch ({cfg.train.batch_size} × {world} ranks)")
        self.total_steps = self.steps_per_epoch * stage.epochs
        self.clip = binary_weights(model) if cfg.train.clip_binary_weights else []
        self.smoothed: float | None = None  # the divergence test's smoothed loss and its minimum
        self.floor = math.inf
        self.steps_seen = 0
        self.saved_at = time.monotonic()

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        set_rng_state(ckpt["rng"])

    def _agree(self, *flags: bool, op: str = "min") -> list[bool]:
        """Each flag combined over every rank (all of them call this together): "min" — true on
        every rank, "max" — true on any."""
        if not self.t.dist.enabled:
            return list(flags)
        value = torch.tensor([float(f) for f in flags], device=self.t.device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN if op == "min" else torch.distributed.ReduceOp.MAX)
        return [bool(v) for v in value.tolist()]

    def _diverged(self, reason: str, when: str) -> TrainingDiverged:
        last = self.t.last_saved
        where = f"the last good checkpoint is {last}" if last is not None else "this run has written no checkpoint yet"
        return TrainingDiverged(f"{reason} {when} of stage {self.stage.name!r}; {where}. Lower optim.lr or set optim.grad_clip.")

    def _check_state(self) -> None:
        """Every floating-point parameter and buffer (BN statistics included) of the model and its
        EMA copy is finite, on every rank; otherwise :class:`TrainingDiverged`."""
        states = [self.model.state_dict()] + ([self.ema.state_dict()] if self.ema else [])
        bad = [k for state in states for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if not self._agree(not bad)[0]:
            raise self._diverged(f"{len(bad)} weight or statistics tensors became non-finite ({', '.join(bad[:3]) or 'on another rank'})",
                                 f"after step {self.t.position['step']}")  # fmt: skip

    def _checkpoint(self, name: str, checked: bool = False) -> None:
        """Write ``name`` (rank 0). Every rank calls it; ``checked``: the state was checked
        (:meth:`_check_state`, on every rank) since the last optimizer step."""
        if not checked:
            self._check_state()  # a checkpoint is never written with non-finite state
        self.saved_at = time.monotonic()
        if not self.t.dist.is_main:
            return
        save_checkpoint(self.t.out / name, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
            "position": dict(self.t.position), "best": dict(self.t.best), "rng": rng_state(),
            "arch": self.arch.to_dict(), "config": config_to_dict(self.t.cfg), "stage": self.stage.name,
        })  # fmt: skip
        self.t.last_saved = self.t.out / name

    def train(self) -> Report | None:
        pos, cfg = self.t.position, self.t.cfg
        report = None
        while pos["epoch"] < self.stage.epochs:
            self._epoch(pos["epoch"], pos["batch"])
            pos["epoch"] += 1
            pos["batch"] = 0
            last = pos["epoch"] == self.stage.epochs
            evaluated = last or bool(cfg.train.eval_every and pos["epoch"] % cfg.train.eval_every == 0)
            if evaluated:
                report = self._evaluate()  # checks the state on every rank
            self._checkpoint("last.pt", checked=evaluated)
        self._check_replicas()
        self._checkpoint(f"{self.stage.name}.pt", checked=True)  # the state last.pt was checked with
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
        for images, heatmaps, weights in loader:
            loss, lr = self._step(images, heatmaps, weights)
            pos["batch"] += 1
            pos["step"] += 1
            seen += len(images) * self.t.dist.world_size
            bar.update(1)
            rate = seen / max(time.perf_counter() - tic, 1e-9)
            logged = pos["step"] % cfg.train.log_every == 0
            if logged:
                self.t.log.scalars(pos["step"], stage=self.stage.name, epoch=epoch, loss=loss, lr=lr, images_per_s=rate)
                bar.set_postfix(loss=f"{loss:.4g}")
                self._check_state()
            self.t.log.heartbeat(lambda: self._status(epoch, loss, rate))
            if self._checkpoint_due():
                self._checkpoint("last.pt", checked=logged)
        bar.close()
        self.t.log.heartbeat(lambda: self._status(epoch, loss, rate), force=True)

    def _checkpoint_due(self) -> bool:
        """``checkpoint_every`` steps, or (checked at log steps, agreed by all ranks)
        ``checkpoint_minutes`` since the last save."""
        cfg, step = self.t.cfg.train, self.t.position["step"]
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            return True
        if not cfg.checkpoint_minutes or step % cfg.log_every:
            return False
        return self._agree(time.monotonic() - self.saved_at >= 60.0 * cfg.checkpoint_minutes, op="max")[0]

    def _status(self, epoch: int, loss: float, rate: float) -> str:
        """One progress line: stage, epoch, step, loss, images/s and the whole run's ETA."""
        t, pos = self.t, self.t.position
        total = sum(s.epochs for s in t.stages) * self.steps_per_epoch
        images_left = (total - pos["step"]) * t.cfg.train.batch_size * t.dist.world_size
        eta = images_left / rate if rate > 0 else math.inf
        return (f"{self.stage.name} epoch {epoch + 1}/{self.stage.epochs} step {pos['batch']}/{self.steps_per_epoch} "
                f"(run {pos['step']}/{total}) loss {loss:.4g} {rate:.1f} img/s ETA {progress.duration(eta)}")  # fmt: skip

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
        self._check_loss(loss)
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

    def _check_loss(self, loss: torch.Tensor) -> None:
        """Stop (every rank together) on a non-finite loss, or when the smoothed loss exceeds
        ``train.divergence_factor`` × its minimum in this stage (after DIVERGENCE_WARMUP steps)."""
        value = float(loss.detach())
        factor = self.t.cfg.train.divergence_factor
        grew = False
        if math.isfinite(value):
            self.smoothed = value if self.smoothed is None else DIVERGENCE_BETA * self.smoothed + (1 - DIVERGENCE_BETA) * value
            self.steps_seen += 1
            if self.steps_seen >= DIVERGENCE_WARMUP:
                grew = bool(factor) and self.floor > 0 and self.smoothed > factor * self.floor
                self.floor = min(self.floor, self.smoothed)
        finite, steady = self._agree(math.isfinite(value), not grew)  # every rank stops together
        pos = self.t.position
        when = f"at step {pos['step'] + 1} (epoch {pos['epoch'] + 1})"
        if not finite:
            raise self._diverged(f"the loss became {value}" if not math.isfinite(value) else "the loss became non-finite on another rank", when)
        if not steady:
            raise self._diverged(
                f"the loss diverged (smoothed {self.smoothed:.4g}, over train.divergence_factor = {factor:g} × its minimum "
                f"{self.floor:.4g} in this stage; 0 turns the test off)", when
            )

    def _evaluate(self) -> Report | None:
        t, cfg = self.t, self.t.cfg
        model = self.ema.model if self.ema else self.model
        shard = _Shard(t.val_set, t.dist.rank, t.dist.world_size) if t.dist.enabled else t.val_set
        ev = build_evaluator(cfg, shard, t.device)
        parts = D.all_gather_objects(ev.predict(model), t.dist)
        self._check_state()  # on every rank, for the best.pt that rank 0 may write below
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
            self._checkpoint("best.pt", checked=True)
        return report


"""The learning rate as a pure function of the step (no scheduler state to save or restore)."""

from __future__ import annotations

import math

from binmark.train.config import ScheduleConfig

__all__ = ["learning_rate"]


def learning_rate(cfg: ScheduleConfig, base_lr: float, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    Epoch-valued settings (warm-up, step size, milestones) are converted with ``steps_per_epoch``,
    so they may be fractional. Warm-up rises linearly from base_lr / (warm-up steps) to base_lr.

    Schedules: "constant"; "step" (× gamma every ``step_size`` epochs); "multistep" (× gamma, or
    × gamma[i], at each milestone); "cosine" (from base_lr to ``min_lr`` over the run, after
    warm-up).
    """
    epoch = step / max(steps_per_epoch, 1)
    warm = cfg.warmup_epochs * steps_per_epoch
    if warm > 0 and step < warm:
        return base_lr * (step + 1) / warm
    if cfg.name == "constant":
        return base_lr
    if cfg.name == "step":
        return base_lr * _gammas(cfg, 1)[0] ** math.floor(epoch / cfg.step_size)
    if cfg.name == "multistep":
        factors = _gammas(cfg, len(cfg.milestones))
        lr = base_lr
        for milestone, g in zip(cfg.milestones, factors):
            if epoch >= milestone:
                lr *= g
        return lr
    progress = min(max((step - warm) / max(total_steps - warm, 1), 0.0), 1.0)
    return cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _gammas(cfg: ScheduleConfig, n: int) -> list[float]:
    if isinstance(cfg.gamma, list):
        if len(cfg.gamma) != n:
            raise ValueError(f"schedule.gamma lists {len(cfg.gamma)} factors for {n} milestones")
        return list(cfg.gamma)
    return [cfg.gamma] * n

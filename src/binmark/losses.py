"""Heatmap losses: MSE, pixel-wise sigmoid cross-entropy, Adaptive Wing, KL distillation.

Every loss is called as ``loss(pred, target, weight=None)``:

- ``pred``: (N, K, h, w) heatmaps, or a list of them, one per supervised output (stacks); a list is
  summed with ``stack_weights`` (default 1 each).
- ``target``: (N, K, h, w) (for ``KLDistill``: the teacher's heatmaps), or a list paired with
  ``pred``.
- ``weight``: (N, K) target weights (0 for points that are not annotated), or None.

The per-pixel loss is averaged over pixels, multiplied by the joint's weight, and averaged over
N·K (HRNet's ``JointsMSELoss`` normalization, without its factor ½), so an unannotated point
contributes nothing and does not change the scale of the others. Formulas and sources are in
``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from binmark._registry import Registry

__all__ = ["LOSSES", "HeatmapLoss", "HeatmapMSE", "SigmoidCE", "AWing", "KLDistill", "Distilled", "awing_weight_map"]

LOSSES: Registry[type[nn.Module]] = Registry("loss")


class HeatmapLoss(nn.Module):
    """Base: per-stack summation and per-joint weighting around ``pixel_loss``.

    Args:
        stack_weights: weight of each supervised output when ``pred`` is a list (default all 1).
    """

    def __init__(self, stack_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.stack_weights = list(stack_weights) if stack_weights is not None else None

    def pixel_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """(N, K, h, w) per-pixel loss."""
        raise NotImplementedError

    def joint_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """(N, K) loss per heatmap: the pixel loss averaged over pixels."""
        return self.pixel_loss(pred, target).mean(dim=(-2, -1))

    def single(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"{type(self).__name__}: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        per_joint = self.joint_loss(pred, target)
        if weight is not None:
            if weight.shape != per_joint.shape:
                raise ValueError(f"{type(self).__name__}: weight must be (N, K) = {tuple(per_joint.shape)}, got {tuple(weight.shape)}")
            per_joint = per_joint * weight.to(per_joint.dtype)
        return per_joint.mean()

    def forward(
        self, pred: Tensor | Sequence[Tensor], target: Tensor | Sequence[Tensor], weight: Tensor | None = None
    ) -> Tensor:
        preds = list(pred) if isinstance(pred, (list, tuple)) else [pred]
        targets = list(target) if isinstance(target, (list, tuple)) else [target] * len(preds)
        if len(targets) != len(preds):
            raise ValueError(f"{type(self).__name__}: {len(preds)} predictions but {len(targets)} targets")
        ws = self.stack_weights if self.stack_weights is not None else [1.0] * len(preds)
        if len(ws) != len(preds):
            raise ValueError(f"{type(self).__name__}: {len(ws)} stack weights for {len(preds)} outputs")
        return sum(w * self.single(p, t, weight) for w, p, t in zip(ws, preds, targets))  # type: ignore[return-value]


@LOSSES.register("mse")
class HeatmapMSE(HeatmapLoss):
    """(pred − target)² per pixel (the seeds' and HRNet's heatmap loss)."""

    def pixel_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target) ** 2


@LOSSES.register("sigmoid_ce")
class SigmoidCE(HeatmapLoss):
    """Pixel-wise sigmoid cross-entropy: −t·log σ(p) − (1 − t)·log(1 − σ(p)), ``pred`` as logits.

    Bulat & Tzimiropoulos (ICCV 2017) found it better than L2 for binary networks. A model trained
    with it predicts logits; apply a sigmoid before reading heatmap values as confidences.
    """

    def pixel_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(pred, target, reduction="none")


def awing_weight_map(target: Tensor, w: float = 10.0, threshold: float = 0.2) -> Tensor:
    """AWing's loss weight map: w·1[dilate₃ₓ₃(target) ≥ threshold] + 1, per heatmap."""
    n, k, h, wd = target.shape
    dilated = F.max_pool2d(target.reshape(n * k, 1, h, wd), 3, stride=1, padding=1).reshape(n, k, h, wd)
    return w * (dilated >= threshold).to(target.dtype) + 1.0


@LOSSES.register("awing")
class AWing(HeatmapLoss):
    """Adaptive Wing loss (Wang, Bo & Fuxin, ICCV 2019), y the target, δ = |y − ŷ|:

        δ < θ:  ω · ln(1 + (δ/ε)^(α − y))
        δ ≥ θ:  A·δ − C,  A = ω · (α − y) · (θ/ε)^(α − y − 1) / (ε · (1 + (θ/ε)^(α − y))),
                          C = θ·A − ω · ln(1 + (θ/ε)^(α − y))

    (continuous and differentiable at δ = θ). Note the first branch divides δ by ε, not by ω, as
    several public copies mistakenly do. With ``weighted=True`` the per-pixel loss is multiplied by
    :func:`awing_weight_map` (W = 10 where the 3×3-dilated target ≥ 0.2, else 1).
    """

    def __init__(
        self,
        omega: float = 14.0,
        theta: float = 0.5,
        epsilon: float = 1.0,
        alpha: float = 2.1,
        weighted: bool = True,
        stack_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(stack_weights)
        if min(omega, theta, epsilon) <= 0 or alpha <= 1:
            raise ValueError("AWing needs omega, theta, epsilon > 0 and alpha > 1 (alpha − y must stay > 0)")
        self.omega, self.theta, self.epsilon, self.alpha = omega, theta, epsilon, alpha
        self.weighted = weighted

    def pixel_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        delta = (target - pred).abs()
        power = self.alpha - target
        ratio = self.theta / self.epsilon
        a = self.omega * power * ratio ** (power - 1) / (self.epsilon * (1 + ratio**power))
        c = self.theta * a - self.omega * torch.log1p(ratio**power)
        small = self.omega * torch.log1p((delta / self.epsilon) ** power)
        loss = torch.where(delta < self.theta, small, a * delta - c)
        return loss * awing_weight_map(target) if self.weighted else loss


@LOSSES.register("kl")
class KLDistill(HeatmapLoss):
    """KL(teacher ‖ student) between spatial softmax distributions, × T² (Hinton et al. 2015).

    Each heatmap becomes a distribution over its h·w pixels: softmax(heatmap / T). Called as
    ``loss(student, teacher, weight)``; the teacher's maps carry no gradient.
    """

    def __init__(self, temperature: float = 1.0, stack_weights: Sequence[float] | None = None) -> None:
        super().__init__(stack_weights)
        if temperature <= 0:
            raise ValueError(f"KLDistill temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def joint_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        t = self.temperature
        log_s = F.log_softmax(pred.flatten(-2) / t, dim=-1)
        log_t = F.log_softmax(target.detach().flatten(-2) / t, dim=-1)
        return (log_t.exp() * (log_t - log_s)).sum(dim=-1) * t * t


class Distilled(nn.Module):
    """BiHRNet's objective: ``task_weight`` · task(pred, target) + ``kl_weight`` · KL(pred, teacher).

    Args:
        task: the ground-truth loss (default AWing, as BiHRNet).
        kl: the distillation loss (default ``KLDistill(1.0)``).
        task_weight, kl_weight: their weights.

    Called as ``loss(pred, target, weight=None, teacher=None)``; without ``teacher`` it is the
    task loss alone.
    """

    def __init__(
        self,
        task: HeatmapLoss | None = None,
        kl: KLDistill | None = None,
        task_weight: float = 1.0,
        kl_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.task = task if task is not None else AWing()
        self.kl = kl if kl is not None else KLDistill()
        self.task_weight, self.kl_weight = task_weight, kl_weight

    def forward(
        self,
        pred: Tensor | Sequence[Tensor],
        target: Tensor | Sequence[Tensor],
        weight: Tensor | None = None,
        teacher: Tensor | Sequence[Tensor] | None = None,
    ) -> Tensor:
        loss = self.task_weight * self.task(pred, target, weight)
        if teacher is not None:
            loss = loss + self.kl_weight * self.kl(pred, teacher, weight)
        return loss

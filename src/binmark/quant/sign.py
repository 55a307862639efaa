"""Sign binarization and its straight-through gradient estimators.

Forward, every variant computes

    q(x) = +1 if x >= 0 else -1          (sign(0) = +1, so the output is never 0)

and they differ only in the surrogate derivative ∂q/∂x used in backward:

==========  ====================================================  ===============================
alias       ∂q/∂x                                                 reference
==========  ====================================================  ===============================
clipped     1 if |x| <= clip else 0                               BinaryNet (Hubara et al. 2016,
                                                                  arXiv 1602.02830); larq ste_sign
approx      2 - 2|x| if |x| <= 1 else 0                           Bi-Real Net (Liu et al. 2018,
                                                                  arXiv 1808.00278); larq approx_sign
swish       β(2 - βx·tanh(βx/2)) / (1 + cosh βx)                  BNN+ (Darabi et al. 2018,
                                                                  arXiv 1812.11800); larq swish_sign
==========  ====================================================  ===============================

Each variant is a plain function (``sign_ste``, ``approx_sign``, ``swish_sign``) and a tiny module
(``SignSTE``, ``ApproxSign``, ``SwishSign``) that stores the hyper-parameters and a ``bits = 1``
attribute. The modules are registered under their alias; :func:`get_ste` resolves an alias or passes
a module through.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from binmark._registry import Registry
from binmark.quant.saving import pack_bits, packed_saves_enabled, unpack_values

__all__ = [
    "sign",
    "sign_ste",
    "approx_sign",
    "swish_sign",
    "SignSTE",
    "ApproxSign",
    "SwishSign",
    "STES",
    "get_ste",
]

Surrogate = Callable[[Tensor, float], Tensor]


def _binarize(x: Tensor) -> Tensor:
    """±1 with sign(0) = +1 (and −1 for NaN), in ``x``'s dtype; 2·[x ≥ 0] − 1, which is exact and
    on CPU about 3× faster than ``torch.where`` with scalar operands."""
    return (x >= 0).to(x.dtype).mul_(2).sub_(1)


class _SignWithSurrogate(torch.autograd.Function):
    """Forward: ±1 sign. Backward: the incoming gradient times ``surrogate(x, param)``."""

    @staticmethod
    def forward(ctx, x: Tensor, surrogate: Surrogate, param: float) -> Tensor:  # type: ignore[override]
        ctx.surrogate, ctx.param, ctx.shape, ctx.dtype = surrogate, param, x.shape, x.dtype
        ctx.bits = surrogate is _clipped_grad and packed_saves_enabled()
        # the clipped surrogate is a 0/1 mask: kept as bits (binmark.quant.saving)
        ctx.save_for_backward(pack_bits(x.abs() <= param) if ctx.bits else x)
        return _binarize(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (saved,) = ctx.saved_tensors
        if ctx.bits:
            return unpack_values(saved, ctx.shape, ctx.dtype, 0.0).mul_(grad), None, None
        return grad * ctx.surrogate(saved, ctx.param), None, None


def _clipped_grad(x: Tensor, clip: float) -> Tensor:
    return (x.abs() <= clip).to(x.dtype)


def _approx_grad(x: Tensor, _: float) -> Tensor:
    return torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


def _swish_grad(x: Tensor, beta: float) -> Tensor:
    bx = beta * x
    # cosh overflows float32 beyond |βx| ≈ 89 and the true value there is < 1e-30: return 0.
    safe = bx.clamp(-40.0, 40.0)
    grad = beta * (2.0 - safe * torch.tanh(safe / 2.0)) / (1.0 + torch.cosh(safe))
    return torch.where(bx.abs() > 40.0, torch.zeros_like(grad), grad)


def sign_ste(x: Tensor, clip: float = 1.0) -> Tensor:
    """Sign with the clipped straight-through estimator.

    q(x) = +1 if x >= 0 else -1; ∂q/∂x = 1 if |x| <= clip else 0.

    Args:
        x: any tensor.
        clip: the gradient passes where |x| <= clip.

    Returns:
        A tensor of ±1 with ``x``'s shape and dtype.
    """
    return _SignWithSurrogate.apply(x, _clipped_grad, float(clip))


def sign(x: Tensor) -> Tensor:
    """±1 sign with sign(0) = +1 and the clipped straight-through gradient (passes where |x| <= 1)."""
    return sign_ste(x, 1.0)


def approx_sign(x: Tensor) -> Tensor:
    """Sign with Bi-Real Net's piecewise-polynomial gradient.

    q(x) = +1 if x >= 0 else -1; ∂q/∂x = 2 - 2|x| for |x| <= 1, else 0.

    References:
        Liu et al., "Bi-Real Net", ECCV 2018, arXiv 1808.00278.
    """
    return _SignWithSurrogate.apply(x, _approx_grad, 0.0)


def swish_sign(x: Tensor, beta: float = 5.0) -> Tensor:
    """Sign with the SignSwish gradient of BNN+.

    q(x) = +1 if x >= 0 else -1; ∂q/∂x = β(2 - βx·tanh(βx/2)) / (1 + cosh βx).

    References:
        Darabi et al., "BNN+: Improved Binary Network Training", arXiv 1812.11800.
    """
    return _SignWithSurrogate.apply(x, _swish_grad, float(beta))


STES: Registry[type[nn.Module]] = Registry("straight-through estimator")


@STES.register("clipped")
class SignSTE(nn.Module):
    """Module form of :func:`sign_ste`; ``bits = 1``."""

    bits = 1

    def __init__(self, clip: float = 1.0) -> None:
        super().__init__()
        if clip <= 0:
            raise ValueError(f"SignSTE clip must be > 0, got {clip}")
        self.clip = float(clip)

    def forward(self, x: Tensor) -> Tensor:
        return sign_ste(x, self.clip)

    def extra_repr(self) -> str:
        return f"clip={self.clip}"


@STES.register("approx")
class ApproxSign(nn.Module):
    """Module form of :func:`approx_sign`; ``bits = 1``."""

    bits = 1

    def forward(self, x: Tensor) -> Tensor:
        return approx_sign(x)


@STES.register("swish")
class SwishSign(nn.Module):
    """Module form of :func:`swish_sign`; ``bits = 1``."""

    bits = 1

    def __init__(self, beta: float = 5.0) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError(f"SwishSign beta must be > 0, got {beta}")
        self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        return swish_sign(x, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


def get_ste(name_or_module: str | nn.Module, **kwargs: float) -> nn.Module:
    """Resolve a straight-through estimator.

    Args:
        name_or_module: an alias ("clipped", "approx", "swish") or a module, returned as is.
        **kwargs: hyper-parameters for the aliased class (``clip`` for "clipped", ``beta`` for
            "swish").

    Raises:
        ValueError: unknown alias; the message lists the valid ones.
    """
    if isinstance(name_or_module, nn.Module):
        return name_or_module
    return STES.get(name_or_module)(**kwargs)

"""Gradient quantization: identity in forward, a k-bit fixed-point gradient in backward.

Placed in front of a quantized layer's input and weight (see :class:`binmark.quant.QuantConv2d`),
it quantizes the gradient that flows back into the previous layer and the weight gradient, the
"G" of CU-Net's W/I/G quantization (Tang et al., ECCV 2018) and of WAGE (Wu et al., ICLR 2018,
arXiv 1802.04680).

With g the incoming gradient and Q, C the WAGE pair of :mod:`binmark.quant.kbit`:

- ``scale="shift"`` (default): s = 2^round(log2 max|g|) per tensor (WAGE's Shift), and
  g_q = s · Q(C(g / s, k), k). The grid follows the gradient's own magnitude, so small gradients
  keep their direction.
- ``scale="none"``: g_q = Q(C(g, k), k), what the official CU-Net code does. On an absolute grid of
  step 2^-(k-1) most gradients of a real network round to 0; kept for faithful reproduction.

Rounding is to nearest (deterministic), so a run is reproducible; WAGE's stochastic rounding of
the weight update is not used. For 3 <= k <= 15 the result takes at most 2^k - 1 values.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from binmark.quant.kbit import _check_bits, wage_clip, wage_round

__all__ = ["GRAD_SCALES", "quantize_grad", "GradQuant"]

GRAD_SCALES = ("shift", "none")


def _quantize_gradient(g: Tensor, bits: int, scale: str) -> Tensor:
    if scale == "none":
        return wage_round(wage_clip(g, bits), bits)
    peak = g.abs().max()
    if peak == 0 or not torch.isfinite(peak):
        return g
    s = torch.exp2(torch.round(torch.log2(peak)))
    return s * wage_round(wage_clip(g / s, bits), bits)


class _GradQuantFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, bits: int, scale: str) -> Tensor:  # type: ignore[override]
        ctx.bits = bits
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        return _quantize_gradient(grad, ctx.bits, ctx.scale), None, None


def quantize_grad(x: Tensor, bits: int, scale: str = "shift") -> Tensor:
    """Return ``x`` unchanged; its gradient is quantized to ``bits`` bits in backward.

    Args:
        x: any tensor.
        bits: 1..32; 32 (or anything > 15) leaves the gradient unchanged.
        scale: "shift" (per-tensor power-of-two scale, WAGE) or "none" (absolute grid, CU-Net code).
    """
    _check_bits(bits, 1, 32, "quantize_grad")
    if scale not in GRAD_SCALES:
        raise ValueError(f"quantize_grad: scale must be one of {GRAD_SCALES}, got {scale!r}")
    if bits > 15:
        return x
    return _GradQuantFunction.apply(x, bits, scale)


class GradQuant(nn.Module):
    """Module form of :func:`quantize_grad`; ``bits`` is the gradient's bit width."""

    def __init__(self, bits: int, scale: str = "shift") -> None:
        super().__init__()
        self.bits = _check_bits(bits, 1, 32, "GradQuant")
        if scale not in GRAD_SCALES:
            raise ValueError(f"GradQuant: scale must be one of {GRAD_SCALES}, got {scale!r}")
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return quantize_grad(x, self.bits, self.scale)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, scale={self.scale!r}"

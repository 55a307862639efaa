"""Gradient quantization: identity in forward, a k-bit fixed-point gradient in backward.

Placed in front of a quantized layer's input and/or weight (see :class:`binmark.quant.QuantConv2d`),
it quantizes the gradient that flows back into the previous layer and/or the weight gradient, the
"G" of CU-Net's W/I/G quantization (Tang et al., ECCV 2018) and of WAGE (Wu et al., ICLR 2018,
arXiv 1802.04680).

With g the incoming gradient and Q, C the WAGE pair of :mod:`binmark.quant.kbit`, three modes
(``QuantSpec.grad_scale``):

- ``"shift"`` (default): s = 2^round(log2 max|g|) per tensor (WAGE's Shift), and
  g_q = s · Q(C(g / s, k), k), on the input and the weight gradients. The grid follows the
  gradient's own magnitude, so small gradients keep their direction.
- ``"absolute"``: g_q = Q(C(g, k), k) on the input and the weight gradients. On an absolute grid
  of step 2^-(k-1) almost every gradient of a real network rounds to 0.
- ``"official"``: the official CU-Net code's rule (zhiqiangdon/CU-Net
  ``utils/quantize_prev_version.py``, ``QuanOp.updateQuanGradWeight``): **weight gradients only**
  (its ``QuanInput2d`` passes activation gradients through unquantized), each put on the absolute
  grid, Q(C(g_W, k), k); for 1-bit weights g_W is first XNOR-Net-PyTorch's gradient of the binary
  weight times n·(1 − 1/C_in) (:func:`xnor_weight_grad`), which lifts it onto the grid: measured on
  the study's CU-Net, docs/quant.md.

Rounding is to nearest (deterministic), so a run is reproducible; WAGE's stochastic rounding of
the weight update is not used. For 3 <= k <= 15 the result takes at most 2^k - 1 values.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from binmark.quant.kbit import _check_bits, wage_clip, wage_round
from binmark.quant.sign import _binarize

__all__ = ["GRAD_SCALES", "quantize_grad", "xnor_weight_grad", "GradQuant"]

GRAD_SCALES = ("shift", "absolute", "official")


def _quantize_gradient(g: Tensor, bits: int, scale: str) -> Tensor:
    if scale != "shift":  # "absolute", and "official" (whose grid is absolute too)
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


def _check_scale(scale: str, who: str) -> None:
    if scale not in GRAD_SCALES:
        raise ValueError(f"{who}: scale must be one of {GRAD_SCALES}, got {scale!r}")


def quantize_grad(x: Tensor, bits: int, scale: str = "shift") -> Tensor:
    """Return ``x`` unchanged; its gradient is quantized to ``bits`` bits in backward.

    Args:
        x: any tensor.
        bits: 1..32; 32 (or anything > 15) leaves the gradient unchanged.
        scale: "shift" (per-tensor power-of-two scale, WAGE), or "absolute" / "official" (the
            absolute grid; where "official" applies it is a layer's business, see the module
            docstring).
    """
    _check_bits(bits, 1, 32, "quantize_grad")
    _check_scale(scale, "quantize_grad")
    if bits > 15:
        return x
    return _GradQuantFunction.apply(x, bits, scale)


def xnor_weight_grad(w: Tensor, grad: Tensor, alpha_bits: int = 32) -> Tensor:
    """The official CU-Net / XNOR-Net-PyTorch gradient of a binary weight, before quantization.

    With W the real (mean-centred) weight of shape (C_out, C_in, kh, kw), n = C_in·kh·kw,
    α_o = mean |W_o| put on the grid by Q(·, ``alpha_bits``), and g = ∂L/∂W_b the gradient of the
    binarized weight:

        g_W = n·(1 − 1/C_in) · (α ⊙ g ⊙ 1[|W| ≤ 1] + sign(W) ⊙ mean_o(sign(W) ⊙ g))

    where mean_o averages over each output channel's n entries (jiecaoyu/XNOR-Net-PyTorch
    ``util.py`` ``updateBinaryGradWeight``; zhiqiangdon/CU-Net ``QuanOp.updateQuanGradWeight``,
    which adds Q(α, bits_g)). The first term is the clipped STE through α·sign(W), the second
    α's own derivative; 1 − 1/C_in stands for the mean-centring and n rescales the sum.
    """
    dims = tuple(range(1, w.dim()))
    n = w[0].numel()
    alpha = wage_round(w.abs().mean(dim=dims, keepdim=True), alpha_bits)
    s = _binarize(w)
    g = alpha * grad * (w.abs() <= 1).to(grad.dtype) + s * (s * grad).mean(dim=dims, keepdim=True)
    return g * (n * (1.0 - 1.0 / w.shape[1]))


class GradQuant(nn.Module):
    """Module form of :func:`quantize_grad`; ``bits`` is the gradient's bit width and ``scale``
    the mode; ``inputs`` says whether the layer also quantizes its input's gradient (not with
    "official")."""

    def __init__(self, bits: int, scale: str = "shift") -> None:
        super().__init__()
        self.bits = _check_bits(bits, 1, 32, "GradQuant")
        _check_scale(scale, "GradQuant")
        self.scale = scale

    @property
    def inputs(self) -> bool:
        return self.scale != "official"

    def forward(self, x: Tensor) -> Tensor:
        return quantize_grad(x, self.bits, self.scale)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, scale={self.scale!r}"

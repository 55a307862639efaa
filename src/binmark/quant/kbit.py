"""k-bit quantizers: DoReFa, the WAGE-style fixed-point pair used by CU-Net, and ternary weights.

All gradients are straight-through: rounding passes the gradient unchanged, clipping stops it
outside the clipping range.

DoReFa (Zhou et al., arXiv 1606.06160), with q_k(r) = round((2^k - 1)·r) / (2^k - 1) on r ∈ [0, 1]:

- activations: x_q = q_k(clamp(x, 0, 1)); ∂x_q/∂x = 1 on [0, 1], 0 outside.
- weights: t = tanh(w) / (2·max|tanh(w)|) + 1/2;  w_q = 2·q_k(t) - 1 (2^k levels in [-1, 1]).

WAGE-style fixed point, as the official CU-Net code writes it (zhiqiangdon/CU-Net,
``utils/quantize_prev_version.py``; WAGE: Wu et al., arXiv 1802.04680), with S(k) = 2^(k-1):

- C(x, k) = clamp(x, -1 + δ, 1 - δ), δ = 1/S(k); δ = 0 when k = 1, k = 2 or k > 15.
- Q(x, k) = x for k > 15; sign(x) for k = 1; round(x) for k = 2; round(x·S)/S otherwise.
- ``wage_quantize(x, k)`` = Q(C(x, k), k) with the gradient passed where |x| < 1 and zeroed
  elsewhere (CU-Net's ``QuanInput2d``). For 3 <= k <= 15 it takes 2^k - 1 values.
- ``wage_weight(w, k)`` = s · wage_quantize(w / s, k) with the per-tensor power of two
  s = 2^⌈log2 max|w|⌉ (no weight is clipped). WAGE scales its weights into the grid's range; the
  CU-Net code quantizes them unscaled, which with its own initialisation (|w| ≤ 1/√(9·128) ≈ 0.03)
  rounds every weight of a fresh 4-bit layer to 0. binmark follows WAGE here.

Ternary weights (TWN, Li et al., arXiv 1605.04711): per output channel Δ = 0.7·mean|W|,
W_t = sign(W)·1[|W| > Δ] ∈ {-1, 0, +1}; the gradient passes where |W| <= 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from binmark.quant.saving import masked_ste
from binmark.quant.sign import _binarize

__all__ = [
    "round_ste",
    "dorefa_act",
    "dorefa_weight",
    "wage_clip",
    "wage_round",
    "wage_quantize",
    "wage_weight",
    "ternarize",
    "DoReFaAct",
    "DoReFaWeight",
    "WageQuant",
    "WageWeight",
]


def _check_bits(bits: int, low: int, high: int, who: str) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= high:
        raise ValueError(f"{who}: bits must be an integer in {low}..{high}, got {bits!r}")
    return bits


def round_ste(x: Tensor) -> Tensor:
    """Round to the nearest integer (ties to even) with an identity gradient."""
    return x + (torch.round(x) - x).detach()


def _ste(x: Tensor, value: Tensor, passes: Tensor) -> Tensor:
    """``value`` in forward; in backward the gradient of x, masked by the boolean ``passes``
    (kept as bits with packed saves, :mod:`binmark.quant.saving`)."""
    return masked_ste(x, value, passes)


def dorefa_act(x: Tensor, bits: int) -> Tensor:
    """DoReFa k-bit activation: q_k(clamp(x, 0, 1)).

    Args:
        x: any tensor; values outside [0, 1] are clipped (and get zero gradient).
        bits: 1..31; the output takes 2^bits levels on [0, 1].
    """
    _check_bits(bits, 1, 31, "dorefa_act")
    n = float(2**bits - 1)
    return round_ste(torch.clamp(x, 0.0, 1.0) * n) / n


def dorefa_weight(w: Tensor, bits: int) -> Tensor:
    """DoReFa k-bit weight: 2·q_k(tanh(w) / (2·max|tanh(w)|) + 1/2) - 1, on [-1, 1].

    The maximum is taken over the whole tensor, as in the paper.
    """
    _check_bits(bits, 1, 31, "dorefa_weight")
    t = torch.tanh(w)
    t = t / (2.0 * t.abs().max().clamp_min(1e-12)) + 0.5
    n = float(2**bits - 1)
    return 2.0 * round_ste(t * n) / n - 1.0


def _wage_delta(bits: int) -> float:
    if bits == 1 or bits == 2 or bits > 15:
        return 0.0
    return 1.0 / 2 ** (bits - 1)


def wage_clip(x: Tensor, bits: int) -> Tensor:
    """C(x, k) = clamp(x, -1 + δ, 1 - δ), δ = 2^-(k-1) (δ = 0 for k = 1, 2 or > 15). No STE."""
    _check_bits(bits, 1, 32, "wage_clip")
    d = _wage_delta(bits)
    return torch.clamp(x, -1.0 + d, 1.0 - d)


def wage_round(x: Tensor, bits: int) -> Tensor:
    """Q(x, k): identity for k > 15, sign for k = 1, round(x) for k = 2, round(x·2^(k-1))/2^(k-1)."""
    _check_bits(bits, 1, 32, "wage_round")
    if bits > 15:
        return x
    if bits == 1:
        return _binarize(x)
    if bits == 2:
        return torch.round(x)
    s = float(2 ** (bits - 1))
    return torch.round(x * s) / s


def wage_quantize(x: Tensor, bits: int) -> Tensor:
    """Q(C(x, k), k) with the gradient passed where |x| < 1 (CU-Net ``QuanInput2d``)."""
    with torch.no_grad():  # only its value is used: no graph to keep
        value = wage_round(wage_clip(x, bits), bits)
    return _ste(x, value, x.detach().abs() < 1.0)


def wage_weight(w: Tensor, bits: int) -> Tensor:
    """WAGE-style k-bit weights on a power-of-two scale: s · Q(C(w / s, k), k), s = 2^⌈log2 max|w|⌉."""
    peak = w.detach().abs().max().clamp_min(1e-30)
    s = torch.exp2(torch.ceil(torch.log2(peak)))
    return s * wage_quantize(w / s, bits)


def ternarize(w: Tensor, threshold: float = 0.7) -> tuple[Tensor, Tensor]:
    """Ternary weights of TWN: sign(W)·1[|W| > Δ], Δ = threshold·mean|W| per output channel.

    Args:
        w: (C_out, …) weight.
        threshold: Δ as a fraction of the per-channel mean |W| (0.7 in TWN and CU-Net).

    Returns:
        ``(t, mask)``: t ∈ {-1, 0, +1} with the gradient of W where |W| <= 1, and the boolean mask
        of kept entries (needed for TWN's scale).
    """
    dims = tuple(range(1, w.dim()))
    delta = threshold * w.detach().abs().mean(dim=dims, keepdim=True)
    mask = w.detach().abs() > delta
    value = _binarize(w.detach()) * mask.to(w.dtype)
    return _ste(w, value, w.detach().abs() <= 1.0), mask


class _KBitQuantizer(nn.Module):
    """Module form of a k-bit quantizer function ``fn(x, bits)``; ``bits`` in 1..31."""

    fn: Callable[[Tensor, int], Tensor]

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = _check_bits(bits, 1, 31, type(self).__name__)

    def forward(self, x: Tensor) -> Tensor:
        return type(self).fn(x, self.bits)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class DoReFaAct(_KBitQuantizer):
    """Module form of :func:`dorefa_act`."""

    fn = staticmethod(dorefa_act)


class DoReFaWeight(_KBitQuantizer):
    """Module form of :func:`dorefa_weight`."""

    fn = staticmethod(dorefa_weight)


class WageQuant(_KBitQuantizer):
    """Module form of :func:`wage_quantize` (activations)."""

    fn = staticmethod(wage_quantize)


class WageWeight(_KBitQuantizer):
    """Module form of :func:`wage_weight` (weights)."""

    fn = staticmethod(wage_weight)

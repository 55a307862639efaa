"""Binary and ternary weight quantizers with their per-output-channel scales.

Binary (``BinaryWeight``), for a conv weight W of shape (C_out, C_in/groups, kh, kw):

    W_c = W - mean_{C_in}(W)                 only with ``center=True`` (XNOR-Net / bnn option)
    W_b = α ⊙ sign(W_c)                      sign(0) = +1; gradient: clipped STE, |W_c| <= 1

with α per output channel:

- ``"none"``: α = 1 (the pure ±1 weights of BinaryNet).
- ``"channel_mean"``: α_o = mean |W_c[o]| over C_in·kh·kw (XNOR-Net, Rastegari et al., arXiv
  1603.05279; the seed's Torch kernel ``BinarySpatialConvolution`` and the bnn library's
  ``XNORWeightBinarizer``). α is not detached: it receives a gradient, as in bnn.
- ``"learned"``: α is a parameter (``scale``), initialised to the channel mean of the weight it
  starts from so that a converted layer keeps its output magnitude (bnn initialises it to 1,
  which makes the first binary outputs ~√(C_in·kh·kw) times too large in a pre-activation net).

Gradient: by default autograd's (the clipped STE through sign, α's own derivative, the centring's
projection). With ``xnor_grad_bits=k`` (``QuantSpec(grad_scale="official")``), the official
CU-Net / XNOR-Net-PyTorch gradient instead: :func:`binmark.quant.grad.xnor_weight_grad` of the
centred weight, with α on the k-bit grid (needs ``"channel_mean"``).

Because a convolution is linear in its weight, α ⊙ sign(W) is the same as scaling each output
channel by α after a pure ±1 convolution; the packed runtime does the latter.

Ternary (``TernaryWeight``): W_t = α ⊙ ternarize(W) (see :func:`binmark.quant.kbit.ternarize`),
with α = 1 (``"none"``, the CU-Net code), the mean |W| over the kept entries per output channel
(``"channel_mean"``, TWN) or a parameter (``"learned"``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from binmark.quant.grad import xnor_weight_grad
from binmark.quant.kbit import _check_bits, ternarize
from binmark.quant.sign import _binarize, sign_ste

__all__ = ["SCALES", "BinaryWeight", "TernaryWeight"]

SCALES = ("none", "channel_mean", "learned")


def _channel_dims(w: Tensor) -> tuple[int, ...]:
    return tuple(range(1, w.dim()))


def _view_per_channel(alpha: Tensor, w: Tensor) -> Tensor:
    return alpha.view(-1, *([1] * (w.dim() - 1)))


class _ScaledWeight(nn.Module):
    """Shared plumbing: the scale mode, the optional learned parameter and its initialisation."""

    bits: int

    def __init__(self, out_channels: int, scale: str) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"weight scale must be one of {SCALES}, got {scale!r}")
        self.mode = scale
        if scale == "learned":
            self.scale = nn.Parameter(torch.ones(out_channels))

    @torch.no_grad()
    def reset_scale(self, weight: Tensor) -> None:
        """Set a learned scale to the channel-mean α of ``weight``; no-op for other modes."""
        if self.mode == "learned":
            self.scale.copy_(self._initial_scale(weight))

    def _initial_scale(self, weight: Tensor) -> Tensor:
        return weight.abs().mean(dim=_channel_dims(weight))

    def extra_repr(self) -> str:
        return f"bits={self.bits}, scale={self.mode!r}"


class _OfficialXNORWeight(torch.autograd.Function):
    """Forward α ⊙ sign(W) of the (centred) weight; backward :func:`xnor_weight_grad`."""

    @staticmethod
    def forward(ctx, w: Tensor, alpha_bits: int) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(w)
        ctx.alpha_bits = alpha_bits
        alpha = w.abs().mean(dim=_channel_dims(w), keepdim=True)
        return _binarize(w) * alpha

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (w,) = ctx.saved_tensors
        return xnor_weight_grad(w, grad, ctx.alpha_bits), None


class BinaryWeight(_ScaledWeight):
    """α ⊙ sign(W) per output channel (see the module docstring).

    Args:
        out_channels: C_out, needed for the ``"learned"`` scale.
        scale: "none", "channel_mean" or "learned".
        center: subtract the mean over input channels before the sign.
        xnor_grad_bits: None for autograd's gradient; k (1..32) for the official CU-Net code's
            gradient with α on the k-bit grid (needs ``scale="channel_mean"``).
    """

    bits = 1

    def __init__(
        self, out_channels: int, scale: str = "channel_mean", center: bool = False, xnor_grad_bits: int | None = None
    ) -> None:
        super().__init__(out_channels, scale)
        self.center = bool(center)
        if xnor_grad_bits is not None:
            _check_bits(xnor_grad_bits, 1, 32, "BinaryWeight xnor_grad_bits")
            if scale != "channel_mean":
                raise ValueError(f"BinaryWeight: the official XNOR gradient needs scale='channel_mean', got {scale!r}")
        self.xnor_grad_bits = xnor_grad_bits

    def forward(self, w: Tensor) -> Tensor:
        if self.xnor_grad_bits is not None:  # the code centres .data: no gradient through the mean
            centred = w - w.detach().mean(dim=1, keepdim=True) if self.center else w
            return _OfficialXNORWeight.apply(centred, self.xnor_grad_bits)
        if self.center:
            w = w - w.mean(dim=1, keepdim=True)
        b = sign_ste(w, 1.0)
        if self.mode == "none":
            return b
        if self.mode == "channel_mean":
            alpha = w.abs().mean(dim=_channel_dims(w))
        else:
            alpha = self.scale
        return b * _view_per_channel(alpha, w)

    def extra_repr(self) -> str:
        official = "" if self.xnor_grad_bits is None else f", xnor_grad_bits={self.xnor_grad_bits}"
        return super().extra_repr() + f", center={self.center}" + official


class TernaryWeight(_ScaledWeight):
    """α ⊙ ternarize(W) per output channel (see the module docstring).

    Args:
        out_channels: C_out, needed for the ``"learned"`` scale.
        scale: "none", "channel_mean" or "learned".
        threshold: Δ = threshold·mean|W| per channel.
    """

    bits = 2

    def __init__(self, out_channels: int, scale: str = "none", threshold: float = 0.7) -> None:
        super().__init__(out_channels, scale)
        self.threshold = float(threshold)

    def forward(self, w: Tensor) -> Tensor:
        t, mask = ternarize(w, self.threshold)
        if self.mode == "none":
            return t
        if self.mode == "channel_mean":
            alpha = self._kept_mean(w, mask)
        else:
            alpha = self.scale
        return t * _view_per_channel(alpha, w)

    def _kept_mean(self, w: Tensor, mask: Tensor) -> Tensor:
        dims = _channel_dims(w)
        kept = mask.to(w.dtype)
        return (w.abs() * kept).sum(dim=dims) / kept.sum(dim=dims).clamp_min(1.0)

    def _initial_scale(self, weight: Tensor) -> Tensor:
        _, mask = ternarize(weight, self.threshold)
        return self._kept_mean(weight, mask)

"""ReActNet's learnable activation shifts: RSign and RPReLU.

Liu et al., "ReActNet: Towards Precise Binary Neural Network with Generalized Activation
Functions", ECCV 2020, arXiv 2003.03488 (official code: liuzechun/ReActNet).

- RSign(x) = sign(x - t_c) with a learnable threshold t_c per channel (initialised to 0), so each
  channel learns where to cut its distribution. The sign uses any straight-through estimator of
  :mod:`binmark.quant.sign`; ReActNet uses ApproxSign.
- RPReLU(x) = PReLU_c(x - γ_c) + ζ_c: shift, per-channel PReLU, shift. γ and ζ start at 0 and the
  PReLU slope at 0.25 (PyTorch's default).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from binmark.quant.sign import get_ste

__all__ = ["RSign", "RPReLU"]


def _per_channel(p: Tensor, x: Tensor) -> Tensor:
    """Broadcast a (C,) parameter over (N, C, …) inputs."""
    return p.view(1, -1, *([1] * (x.dim() - 2)))


class RSign(nn.Module):
    """sign(x - threshold_c) with a learnable per-channel threshold; ``bits = 1``.

    Args:
        channels: C, the number of input channels.
        ste: straight-through estimator alias or module ("approx" by default, as ReActNet).

    Shape:
        x: (N, C, …) → same shape, values ±1.
    """

    bits = 1

    def __init__(self, channels: int, ste: str | nn.Module = "approx") -> None:
        super().__init__()
        self.threshold = nn.Parameter(torch.zeros(channels))
        self.ste = get_ste(ste)

    def forward(self, x: Tensor) -> Tensor:
        return self.ste(x - _per_channel(self.threshold, x))


class RPReLU(nn.Module):
    """PReLU_c(x - γ_c) + ζ_c with learnable per-channel γ, slope and ζ.

    Shape:
        x: (N, C, …) → same shape.
    """

    def __init__(self, channels: int, init_slope: float = 0.25) -> None:
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(channels))
        self.prelu = nn.PReLU(channels, init=init_slope)
        self.shift_out = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x = x - _per_channel(self.shift_in, x)
        x = self.prelu(x)
        return x + _per_channel(self.shift_out, x)

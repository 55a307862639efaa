"""Models whose float arithmetic is exact, for checking a runtime or an exported graph.

A binary network amplifies rounding: a sign input within an ulp of its threshold (and exact ties:
a ±1 dot product is 0 often) flips in one implementation and not in another, and the flip
propagates, so two correct runtimes of a trained or random binary model can disagree locally by a
lot. The equivalence tests therefore fix the reference semantics and keep test parameters away
from ties within float error (docs/deploy.md, "Equivalence"). ``dyadic`` does that: it puts every parameter on a coarse
power-of-two grid (binary weights ±1/8 balanced along input channels, BN scales ±{1/2, 1, 2} or 0
with variance 1 or 4 and eps 0, shifts on 1/4 or 1/8 steps) so that PyTorch, the packed runtime and
ONNX Runtime all compute exactly, and any disagreement is a real difference of semantics.
"""

from __future__ import annotations

import torch
from torch import nn

from binmark.quant import QuantConv2d

__all__ = ["dyadic", "dyadic_input"]


def dyadic(model: nn.Module, seed: int = 0) -> nn.Module:
    """Put ``model``'s parameters on exact dyadic grids (see the module docstring); eval mode."""
    g = torch.Generator().manual_seed(seed)

    def grid(t: torch.Tensor, step: float, lim: float) -> torch.Tensor:
        r = torch.randn(t.shape, generator=g) * lim / 2
        return (r.clamp(-lim, lim) / step).round() * step

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                choice = torch.tensor([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 0.0, 1.0])
                m.weight.copy_(choice[torch.randint(0, 8, (n,), generator=g)])
                m.bias.copy_(grid(m.bias, 0.25, 1.0))
                m.running_mean.copy_(grid(m.running_mean, 0.25, 1.0))
                m.running_var.copy_(torch.tensor([1.0, 4.0])[torch.randint(0, 2, (n,), generator=g)])
                m.eps = 0.0
            elif isinstance(m, QuantConv2d) and m.spec.weight_bits == 1:
                # Balanced signs along the input channels of every (output channel, tap): the
                # mean is exactly 0, so XNOR-Net's centring changes nothing and α = 1/8 exactly.
                cout, cin, kh, kw = m.weight.shape
                signs = torch.tensor([0.125, -0.125]).repeat((cin + 1) // 2)[:cin]
                order = torch.rand(cout * kh * kw, cin, generator=g).argsort(dim=1)
                m.weight.copy_(signs[order].view(cout, kh, kw, cin).permute(0, 3, 1, 2))
                if m.bias is not None:
                    m.bias.copy_(grid(m.bias, 0.125, 1.0))
                m.reset_scales()
            elif isinstance(m, nn.Conv2d):
                m.weight.copy_(grid(m.weight, 1 / 16, 0.5))
                if m.bias is not None:
                    m.bias.copy_(grid(m.bias, 0.125, 1.0))
            else:
                for p in m.parameters(recurse=False):
                    p.copy_(grid(p, 0.125, 1.0) if p.numel() > 1 or p.abs().max() != 1 else p)
    return model.eval()


def dyadic_input(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    """Images on a 1/8 grid in [-2, 2]."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g).clamp(-2, 2) * 8).round() / 8

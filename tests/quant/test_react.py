"""ReActNet RSign and RPReLU."""

from __future__ import annotations

import torch

from binmark.quant import RPReLU, RSign


def test_rsign_shifts_the_threshold_per_channel() -> None:
    m = RSign(2)
    with torch.no_grad():
        m.threshold.copy_(torch.tensor([0.5, -0.5]))
    x = torch.tensor([[0.4, 0.6], [-0.6, -0.4]]).reshape(1, 2, 2, 1)
    # channel 0 values 0.4, 0.6 vs 0.5; channel 1 values -0.6, -0.4 vs -0.5
    assert m(x).flatten().tolist() == [-1.0, 1.0, -1.0, 1.0]
    assert m.bits == 1


def test_rsign_threshold_learns() -> None:
    m = RSign(3)
    x = torch.randn(2, 3, 4, 4) * 0.5
    m(x).sum().backward()
    assert m.threshold.grad is not None and m.threshold.grad.abs().sum() > 0


def test_rprelu_formula() -> None:
    m = RPReLU(2, init_slope=0.25)
    with torch.no_grad():
        m.shift_in.copy_(torch.tensor([1.0, 0.0]))
        m.shift_out.copy_(torch.tensor([0.0, 2.0]))
    x = torch.tensor([0.0, 3.0]).view(1, 2, 1, 1)
    # ch0: prelu(0 - 1) + 0 = -0.25; ch1: prelu(3 - 0) + 2 = 5
    assert m(x).flatten().tolist() == [-0.25, 5.0]

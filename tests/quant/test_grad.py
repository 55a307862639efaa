"""Gradient quantization: identity forward, k-bit gradients backward."""

from __future__ import annotations

import pytest
import torch

from binmark.quant import GradQuant, quantize_grad


def _backward_through(x: torch.Tensor, upstream: torch.Tensor, **kw) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (quantize_grad(x, **kw) * upstream).sum().backward()
    return x.grad


def test_forward_is_identity() -> None:
    x = torch.randn(10)
    assert torch.equal(quantize_grad(x, 8), x)


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_shift_mode_levels_and_fidelity(bits: int) -> None:
    upstream = torch.randn(100000) * 1e-4  # realistic gradient magnitudes
    g = _backward_through(torch.zeros(100000), upstream, bits=bits)
    assert g.unique().numel() <= 2**bits - 1
    assert g.unique().numel() > 2 ** (bits - 1)  # the grid is used, not collapsed
    step = upstream.abs().max() / 2 ** (bits - 1)
    assert (g - upstream).abs().max() <= 2 * step  # round to nearest on a power-of-two grid


def test_shift_grid_is_power_of_two() -> None:
    upstream = torch.tensor([0.3, -0.1, 0.05])
    g = _backward_through(torch.zeros(3), upstream, bits=4)
    # max|g| = 0.3 → s = 2^round(log2 0.3) = 0.25; g/s clipped to ±0.875, grid 1/8
    torch.testing.assert_close(g, torch.tensor([0.875, -0.375, 0.25]) * 0.25)


def test_none_mode_is_the_cunet_code_absolute_grid() -> None:
    upstream = torch.tensor([0.3, 0.001, -2.0])
    g = _backward_through(torch.zeros(3), upstream, bits=8, scale="none")
    torch.testing.assert_close(g, torch.tensor([38 / 128, 0.0, -127 / 128]))


def test_high_bits_leave_gradient_alone() -> None:
    upstream = torch.randn(50)
    assert torch.equal(_backward_through(torch.zeros(50), upstream, bits=16), upstream)


def test_zero_gradient_stays_zero() -> None:
    assert torch.equal(_backward_through(torch.zeros(4), torch.zeros(4), bits=8), torch.zeros(4))


def test_module_and_errors() -> None:
    assert GradQuant(8).bits == 8
    with pytest.raises(ValueError, match="scale"):
        GradQuant(8, scale="max")
    with pytest.raises(ValueError, match="bits"):
        quantize_grad(torch.zeros(1), 0)

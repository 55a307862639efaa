"""Gradient quantization: identity forward, k-bit gradients backward; the official CU-Net rule
against a NumPy transcription of the code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from binmark.quant import GradQuant, QuantConv2d, QuantSpec, quantize_grad


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


@pytest.mark.parametrize("scale", ["absolute", "official"])
def test_absolute_grid(scale: str) -> None:
    upstream = torch.tensor([0.3, 0.001, -2.0])
    g = _backward_through(torch.zeros(3), upstream, bits=8, scale=scale)
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


def _np_Q(x: np.ndarray, bits: int) -> np.ndarray:
    """zhiqiangdon/CU-Net utils/quantize_prev_version.py Q(C(x, k), k), transcribed (3 <= k <= 15)."""
    S = 2.0 ** (bits - 1)
    return np.round(np.clip(x, -1 + 1 / S, 1 - 1 / S) * S) / S


def _np_update_quan_grad_weight(weight: np.ndarray, grad: np.ndarray, bits: int) -> np.ndarray:
    """QuanOp.updateQuanGradWeight for bitsW = 1, line by line (m is α, masked outside [-1, 1])."""
    n = weight[0].size
    s = weight.shape
    m = np.broadcast_to(np.abs(weight).sum(axis=(1, 2, 3), keepdims=True) / n, s).copy()
    m[weight < -1.0] = 0
    m[weight > 1.0] = 0
    m = np.round(m * 2.0 ** (bits - 1)) / 2.0 ** (bits - 1)  # Q(m, bitsG): α ≥ 0 needs no clip
    m = m * grad
    m_add = np.sign(weight) * grad
    m_add = m_add.sum(axis=(1, 2, 3), keepdims=True) / n
    m_add = m_add * np.sign(weight)
    return _np_Q((m + m_add) * (1.0 - 1.0 / s[1]) * n, bits)


OFFICIAL = QuantSpec(weight_bits=1, act_bits=8, grad_bits=8, weight_scale="channel_mean",
                     center_weights=True, kbit="wage", grad_scale="official")  # fmt: skip


def test_official_binary_weight_gradient_matches_the_code() -> None:
    torch.manual_seed(0)
    conv = QuantConv2d(6, 4, 3, padding=1, spec=OFFICIAL).double()
    x = torch.rand(2, 6, 5, 5, dtype=torch.float64) * 1.8 - 0.9
    upstream = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    (conv(x) * upstream).sum().backward()
    # the code's inputs: the mean-centred weight and ∂L/∂W_b of the conv that ran
    w = conv.weight.detach()
    centred = (w - w.mean(dim=1, keepdim=True)).numpy()
    wb = conv.quantized_weight().detach().requires_grad_(True)
    xq = conv.input_quantizer(x)
    (F.conv2d(xq, wb, padding=1) * upstream).sum().backward()
    expected = _np_update_quan_grad_weight(centred, wb.grad.numpy(), 8)
    np.testing.assert_allclose(conv.weight.grad.numpy(), expected, atol=1e-12)
    assert np.count_nonzero(expected) > 0.5 * expected.size  # the n(1 − 1/C_in) factor keeps them


def _input_grad(spec: QuantSpec) -> torch.Tensor:
    torch.manual_seed(1)
    conv = QuantConv2d(6, 4, 3, padding=1, spec=spec)
    x = (torch.rand(2, 6, 5, 5) - 0.5).requires_grad_(True)
    (conv(x) * torch.randn(2, 4, 5, 5)).sum().backward()
    return x.grad


def _on_grid(g: torch.Tensor, bits: int = 8) -> bool:
    return torch.equal(g, torch.round(g * 2 ** (bits - 1)) / 2 ** (bits - 1))


def test_official_rule_leaves_activation_gradients_alone() -> None:
    official = _input_grad(OFFICIAL)
    torch.testing.assert_close(official, _input_grad(OFFICIAL.replace(grad_bits=32)), rtol=0, atol=0)
    assert not _on_grid(official)
    assert _on_grid(_input_grad(OFFICIAL.replace(grad_scale="absolute")))


def test_official_k_bit_weights_quantize_the_weight_gradient_only() -> None:
    spec = QuantSpec(weight_bits=4, act_bits=4, grad_bits=8, kbit="wage", grad_scale="official")
    conv = QuantConv2d(3, 2, 3, spec=spec)
    x = torch.rand(1, 3, 6, 6).requires_grad_(True)
    (conv(x) * torch.randn(1, 2, 4, 4)).sum().backward()
    assert _on_grid(conv.weight.grad) and not _on_grid(x.grad)


def test_official_binary_rule_needs_the_codes_alpha() -> None:
    with pytest.raises(ValueError, match="grad_scale='official'.*weight_scale='channel_mean'"):
        QuantSpec(weight_bits=1, act_bits=1, grad_bits=8, weight_scale="none", grad_scale="official")
    for name in ("cunet_w1a8g8", "cunet_w1a1g8", "cunet_w2a2g8", "cunet_w4a4g8", "cunet_w8a8g8"):
        assert QuantSpec.preset(name).grad_scale == "official"

"""DoReFa, the WAGE-style Q/C pair, and ternary weights: values, level counts, gradient masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from binmark.quant import (
    DoReFaAct,
    DoReFaWeight,
    WageQuant,
    dorefa_act,
    dorefa_weight,
    round_ste,
    ternarize,
    wage_clip,
    wage_quantize,
    wage_round,
)


def _levels(t: torch.Tensor) -> int:
    return torch.unique(t.detach()).numel()


class TestDoReFa:
    @pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
    def test_activation_levels_on_unit_interval(self, bits: int) -> None:
        x = torch.linspace(-0.5, 1.5, 20001)
        y = dorefa_act(x, bits)
        assert _levels(y) == 2**bits
        assert y.min() == 0.0 and y.max() == 1.0

    def test_activation_values_by_hand(self) -> None:
        x = torch.tensor([-1.0, 0.0, 0.16, 0.17, 0.5, 0.84, 1.0, 3.0])
        # 2 bits: grid {0, 1/3, 2/3, 1}
        np.testing.assert_allclose(
            dorefa_act(x, 2).numpy(), [0, 0, 0, 1 / 3, 2 / 3, 1, 1, 1], rtol=1e-6, atol=1e-7
        )

    def test_activation_gradient_passes_inside_unit_interval_only(self) -> None:
        x = torch.tensor([-0.5, 0.2, 0.7, 1.5], requires_grad=True)
        dorefa_act(x, 4).sum().backward()
        assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]

    @pytest.mark.parametrize("bits", [2, 3, 4])
    def test_weight_levels_and_range(self, bits: int) -> None:
        w = torch.randn(64, 32, 3, 3)
        q = dorefa_weight(w, bits)
        assert _levels(q) == 2**bits
        assert q.min() == -1.0 and q.max() == 1.0

    def test_weight_formula(self) -> None:
        w = torch.tensor([-2.0, -0.1, 0.0, 0.3, 1.0])
        t = np.tanh(w.numpy())
        t = t / (2 * np.abs(t).max()) + 0.5
        expected = 2 * np.round(t * 3) / 3 - 1
        np.testing.assert_allclose(dorefa_weight(w, 2).numpy(), expected, atol=1e-6)

    def test_weight_gets_gradient(self) -> None:
        w = torch.randn(8, 4, requires_grad=True)
        dorefa_weight(w, 2).sum().backward()
        assert torch.all(torch.isfinite(w.grad)) and w.grad.abs().sum() > 0

    def test_modules_carry_bits(self) -> None:
        assert DoReFaAct(3).bits == 3 and DoReFaWeight(2).bits == 2

    @pytest.mark.parametrize("bits", [0, 32, 2.5, True])
    def test_bad_bits(self, bits) -> None:
        with pytest.raises(ValueError, match="bits"):
            dorefa_act(torch.zeros(1), bits)


class TestWage:
    def test_clip_delta_by_hand(self) -> None:
        x = torch.tensor([-5.0, 5.0])
        assert wage_clip(x, 8).tolist() == [-1 + 1 / 128, 1 - 1 / 128]
        assert wage_clip(x, 4).tolist() == [-1 + 1 / 8, 1 - 1 / 8]
        for k in (1, 2, 16, 32):  # δ = 0
            assert wage_clip(x, k).tolist() == [-1.0, 1.0]

    def test_round_by_hand(self) -> None:
        x = torch.tensor([-0.3, 0.0, 0.26, 0.7])
        assert wage_round(x, 1).tolist() == [-1.0, 1.0, 1.0, 1.0]
        assert wage_round(x, 2).tolist() == [-0.0, 0.0, 0.0, 1.0]
        assert wage_round(x, 3).tolist() == [-0.25, 0.0, 0.25, 0.75]  # grid 1/4
        assert torch.equal(wage_round(x, 16), x)

    @pytest.mark.parametrize("bits", [3, 4, 8])
    def test_levels(self, bits: int) -> None:
        y = wage_quantize(torch.linspace(-2, 2, 100001), bits)
        assert _levels(y) == 2**bits - 1

    def test_binary_and_ternary_cases(self) -> None:
        x = torch.linspace(-2, 2, 1001)
        assert set(wage_quantize(x, 1).tolist()) == {-1.0, 1.0}
        assert set(wage_quantize(x, 2).tolist()) == {-1.0, 0.0, 1.0}

    def test_gradient_zero_where_abs_at_least_one(self) -> None:
        x = torch.tensor([-1.5, -1.0, -0.99, 0.0, 0.99, 1.0, 1.5], requires_grad=True)
        wage_quantize(x, 8).sum().backward()
        assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]

    def test_module(self) -> None:
        m = WageQuant(8)
        assert m.bits == 8
        x = torch.randn(100)
        assert torch.equal(m(x), wage_quantize(x, 8))


class TestTernary:
    def test_threshold_per_output_channel(self) -> None:
        w = torch.tensor([[0.1, -0.2, 1.0, -0.05], [4.0, 0.5, -3.0, 0.0]])
        t, mask = ternarize(w)
        # channel 0: Δ = 0.7·0.3375 = 0.23625; channel 1: Δ = 0.7·1.875 = 1.3125
        assert t.tolist() == [[0, 0, 1, 0], [1, 0, -1, 0]]
        assert mask.tolist() == [[False, False, True, False], [True, False, True, False]]

    def test_gradient_passes_where_abs_at_most_one(self) -> None:
        w = torch.tensor([[0.5, -2.0, 1.0, 0.1]], requires_grad=True)
        t, _ = ternarize(w)
        t.sum().backward()
        assert w.grad.tolist() == [[1.0, 0.0, 1.0, 1.0]]


def test_round_ste_identity_gradient() -> None:
    x = torch.tensor([0.4, 1.6], requires_grad=True)
    y = round_ste(x)
    y.sum().backward()
    assert y.tolist() == [0.0, 2.0] and x.grad.tolist() == [1.0, 1.0]


def test_wage_weight_scales_into_the_grid() -> None:
    from binmark.quant import WageWeight, wage_weight

    w = torch.linspace(-0.029, 0.029, 1001)  # a fresh CU-Net 3×3 layer's range
    assert wage_quantize(w, 4).unique().tolist() == [0.0]  # unscaled, as the official code: all 0
    q = wage_weight(w, 4)
    # s = 2^⌈log2 0.029⌉ = 2^-5: w/s spans ±0.93, clipped to ±0.875, on a 1/8 grid → 15 levels
    assert q.unique().numel() == 2**4 - 1
    assert q.abs().max() == 0.875 * 2.0**-5 and WageWeight(4).bits == 4
    w = w.clone().requires_grad_(True)
    wage_weight(w, 4).sum().backward()
    assert (w.grad == 1).all()  # nothing clipped: |w / s| < 1

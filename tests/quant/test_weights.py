"""Binary and ternary weight quantizers and their per-channel scales."""

from __future__ import annotations

import pytest
import torch

from binmark.quant import BinaryWeight, TernaryWeight


def _w() -> torch.Tensor:
    return torch.randn(6, 4, 3, 3, dtype=torch.float64)


class TestBinaryWeight:
    def test_none_is_pure_sign(self) -> None:
        w = _w()
        q = BinaryWeight(6, "none")(w)
        assert set(q.unique().tolist()) == {-1.0, 1.0}
        assert torch.equal(q, torch.where(w >= 0, 1.0, -1.0).double())

    def test_channel_mean_is_xnor_alpha(self) -> None:
        w = _w()
        q = BinaryWeight(6, "channel_mean")(w)
        alpha = w.abs().mean(dim=(1, 2, 3))
        torch.testing.assert_close(q.abs().amax(dim=(1, 2, 3)), alpha)
        torch.testing.assert_close(q.abs().amin(dim=(1, 2, 3)), alpha)
        assert torch.equal(q.sign(), torch.where(w >= 0, 1.0, -1.0).double())

    def test_centering_subtracts_mean_over_input_channels(self) -> None:
        w = _w() + 0.5
        centered = w - w.mean(dim=1, keepdim=True)
        q = BinaryWeight(6, "channel_mean", center=True)(w)
        expected = torch.where(centered >= 0, 1.0, -1.0).double() * centered.abs().mean(
            dim=(1, 2, 3)
        ).view(-1, 1, 1, 1)
        torch.testing.assert_close(q, expected)

    def test_channel_mean_alpha_receives_gradient(self) -> None:
        # d/dw of α·sign(w) summed: STE term α-independent plus the α term sign(w)/n·Σsign.
        w = torch.tensor([[0.5, -0.25, 2.0, -3.0]], requires_grad=True)
        BinaryWeight(1, "channel_mean")(w).sum().backward()
        alpha = w.detach().abs().mean()
        s = torch.where(w.detach() >= 0, 1.0, -1.0)
        expected = alpha * (w.detach().abs() <= 1).float() + s * s.sum() / 4
        torch.testing.assert_close(w.grad, expected)

    def test_learned_scale_starts_at_channel_mean_and_trains(self) -> None:
        w = _w()
        m = BinaryWeight(6, "learned").double()
        m.reset_scale(w)
        torch.testing.assert_close(m(w), BinaryWeight(6, "channel_mean")(w))
        m(w).sum().backward()
        assert m.scale.grad is not None and m.scale.grad.abs().sum() > 0

    def test_bad_scale(self) -> None:
        with pytest.raises(ValueError, match="none, channel_mean|'none'"):
            BinaryWeight(4, "mean")


class TestTernaryWeight:
    def test_no_scale_is_cunet(self) -> None:
        w = _w()
        q = TernaryWeight(6, "none")(w)
        assert set(q.unique().tolist()) <= {-1.0, 0.0, 1.0}
        assert (q == 0).any() and (q != 0).any()

    def test_channel_mean_is_twn_alpha(self) -> None:
        w = torch.tensor([[0.1, -0.2, 1.0, -0.8]])  # Δ = 0.7·0.525 = 0.3675 keeps 1.0 and -0.8
        q = TernaryWeight(1, "channel_mean")(w)
        torch.testing.assert_close(q, torch.tensor([[0.0, 0.0, 0.9, -0.9]]))

    def test_learned_scale_init(self) -> None:
        w = torch.tensor([[0.1, -0.2, 1.0, -0.8]])
        m = TernaryWeight(1, "learned")
        m.reset_scale(w)
        torch.testing.assert_close(m.scale.detach(), torch.tensor([0.9]))
        assert m.bits == 2

"""Losses against their closed forms; gradients by gradcheck; AWing continuity."""

from __future__ import annotations

import math

import pytest
import torch

from binmark.losses import LOSSES, AWing, Distilled, HeatmapMSE, KLDistill, SigmoidCE, awing_weight_map


def _pair(shape=(2, 3, 5, 5), dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return torch.rand(shape, generator=g, dtype=dtype), torch.rand(shape, generator=g, dtype=dtype)


def _awing_pixel(y: float, yhat: float, w=14.0, th=0.5, e=1.0, a=2.1) -> float:
    """Transcription of the AWing formula in the docstring (not the code)."""
    d = abs(y - yhat)
    if d < th:
        return w * math.log(1 + (d / e) ** (a - y))
    big_a = w * (1 / (1 + (th / e) ** (a - y))) * (a - y) * (th / e) ** (a - y - 1) / e
    big_c = th * big_a - w * math.log(1 + (th / e) ** (a - y))
    return big_a * d - big_c


def test_mse_closed_form_and_weights() -> None:
    p, t = _pair()
    w = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    per = ((p - t) ** 2).mean(dim=(-2, -1))
    assert HeatmapMSE()(p, t, w).item() == pytest.approx((per * w).sum().item() / 6)
    assert HeatmapMSE()(p, t).item() == pytest.approx(per.mean().item())


def test_unannotated_points_contribute_nothing() -> None:
    p, t = _pair()
    w = torch.ones(2, 3, dtype=torch.float64)
    w[0, 1] = 0
    p2 = p.clone()
    p2[0, 1] += 100.0
    for loss in (HeatmapMSE(), SigmoidCE(), AWing(), KLDistill()):
        assert loss(p, t, w).item() == pytest.approx(loss(p2, t, w).item())


def test_stacks_are_summed_with_weights() -> None:
    p, t = _pair()
    q = p * 0.5
    loss = HeatmapMSE(stack_weights=[0.5, 2.0])
    expected = 0.5 * HeatmapMSE()(p, t) + 2.0 * HeatmapMSE()(q, t)
    assert loss([p, q], t).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="2 stack weights for 1 outputs"):
        loss([p], t)


def test_sigmoid_ce_closed_form() -> None:
    p, t = _pair()
    s = torch.sigmoid(p)
    expected = (-(t * torch.log(s) + (1 - t) * torch.log(1 - s))).mean()
    assert SigmoidCE()(p, t).item() == pytest.approx(expected.item())


def test_awing_matches_the_formula_pixelwise() -> None:
    ys = [0.0, 0.2, 0.7, 1.0]
    yhats = [-0.6, -0.1, 0.0, 0.05, 0.45, 0.5, 0.9, 1.3, 2.0]
    pred = torch.tensor([[[yhats]]], dtype=torch.float64).expand(1, 1, len(ys), len(yhats)).clone()
    target = torch.tensor(ys, dtype=torch.float64).view(1, 1, -1, 1).expand_as(pred).clone()
    got = AWing(weighted=False).pixel_loss(pred, target)
    for i, y in enumerate(ys):
        for j, yh in enumerate(yhats):
            assert got[0, 0, i, j].item() == pytest.approx(_awing_pixel(y, yh), rel=1e-12, abs=1e-12)


def test_awing_is_continuous_at_theta() -> None:
    for y in (0.0, 0.3, 1.0):
        below = _awing_pixel(y, y + 0.5 - 1e-9)
        at = _awing_pixel(y, y + 0.5)
        assert below == pytest.approx(at, abs=1e-7)
        loss = AWing(weighted=False)
        t = torch.full((1, 1, 1, 2), y, dtype=torch.float64)
        p = t + torch.tensor([0.5 - 1e-9, 0.5], dtype=torch.float64).view(1, 1, 1, 2)
        v = loss.pixel_loss(p, t)[0, 0, 0]
        assert v[0].item() == pytest.approx(v[1].item(), abs=1e-7)


def test_awing_is_not_the_omega_typo() -> None:
    # (δ/ω) instead of (δ/ε) would give 14·ln(1 + (0.2/14)^2.1) ≈ 0.0019 here
    t = torch.zeros(1, 1, 1, 1, dtype=torch.float64)
    v = AWing(weighted=False).pixel_loss(t + 0.2, t).item()
    assert v == pytest.approx(14 * math.log(1 + 0.2**2.1))


def test_awing_weight_map() -> None:
    t = torch.zeros(1, 1, 5, 5)
    t[0, 0, 2, 2] = 0.5
    t[0, 0, 0, 4] = 0.1
    m = awing_weight_map(t)
    assert m[0, 0, 1:4, 1:4].eq(11).all() and m[0, 0, 0, 0] == 1 and m[0, 0, 0, 4] == 1


def test_kl_closed_form_and_temperature() -> None:
    s, t = _pair((1, 2, 3, 3))
    for temp in (1.0, 2.0):
        ps = torch.softmax(s.flatten(-2) / temp, -1)
        pt = torch.softmax(t.flatten(-2) / temp, -1)
        expected = (pt * (pt.log() - ps.log())).sum(-1).mean() * temp**2
        assert KLDistill(temp)(s, t).item() == pytest.approx(expected.item())
    assert KLDistill()(t, t).item() == pytest.approx(0.0, abs=1e-12)


def test_kl_does_not_backprop_into_the_teacher() -> None:
    s, t = _pair((1, 1, 3, 3))
    s.requires_grad_(True)
    t.requires_grad_(True)
    KLDistill()(s, t).backward()
    assert s.grad is not None and t.grad is None


@pytest.mark.parametrize("loss", [HeatmapMSE(), SigmoidCE(), AWing(), KLDistill(2.0)])
def test_gradcheck(loss) -> None:
    p, t = _pair((1, 2, 4, 4))
    p = (p * 1.5 - 0.25).requires_grad_(True)  # away from δ = θ and δ = 0 kinks for these seeds
    w = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: loss(x, t, w), (p,))


def test_distilled_combines_task_and_kl() -> None:
    p, t = _pair()
    teacher = t.flip(-1)
    combo = Distilled(task_weight=0.5, kl_weight=2.0)
    expected = 0.5 * AWing()(p, t) + 2.0 * KLDistill()(p, teacher)
    assert combo(p, t, teacher=teacher).item() == pytest.approx(expected.item())
    assert combo(p, t).item() == pytest.approx(0.5 * AWing()(p, t).item())


def test_registry_and_errors() -> None:
    assert LOSSES.names() == ["mse", "sigmoid_ce", "awing", "kl"]
    p, t = _pair()
    with pytest.raises(ValueError, match="differ"):
        HeatmapMSE()(p, t[:, :2])
    with pytest.raises(ValueError, match="weight must be \\(N, K\\)"):
        HeatmapMSE()(p, t, torch.ones(3))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        KLDistill(0.0)
    with pytest.raises(ValueError, match="alpha > 1"):
        AWing(alpha=0.5)

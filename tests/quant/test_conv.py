"""QuantConv2d: exactly nn.Conv2d when real, exactly conv(q(x), q(W)) when quantized."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from binmark.quant import QuantConv2d, QuantSpec, RSign, sign


def _pair(spec: QuantSpec | str, **kw) -> tuple[nn.Conv2d, QuantConv2d]:
    ref = nn.Conv2d(8, 6, 3, padding=1, bias=True, **kw)
    return ref, QuantConv2d.from_conv(ref, spec)


def test_real_spec_matches_conv2d_forward_and_backward() -> None:
    ref, q = _pair("real", stride=2, dilation=2)
    x = torch.randn(2, 8, 11, 9, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y_ref, y = ref(x), q(x2)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    y_ref.square().sum().backward()
    y.square().sum().backward()
    torch.testing.assert_close(x2.grad, x.grad)
    torch.testing.assert_close(q.weight.grad, ref.weight.grad)


@pytest.mark.parametrize("preset", ["bulat17", "xnor"])
def test_binary_equals_conv_of_sign_input_and_scaled_sign_weight(preset: str) -> None:
    ref, q = _pair(preset)
    x = torch.randn(2, 8, 7, 7)
    w = ref.weight.detach()
    if QuantSpec.preset(preset).center_weights:
        w = w - w.mean(dim=1, keepdim=True)
    alpha = w.abs().mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
    expected = F.conv2d(sign(x), alpha * sign(w), ref.bias, padding=1)
    torch.testing.assert_close(q(x), expected)


def test_binary_without_scale_is_pure_xnor() -> None:
    spec = QuantSpec(weight_bits=1, act_bits=1)
    ref, q = _pair(spec)
    x = torch.randn(1, 8, 5, 5)
    expected = F.conv2d(sign(x), sign(ref.weight.detach()), ref.bias, padding=1)
    torch.testing.assert_close(q(x), expected)
    inner = F.conv2d(sign(x), sign(ref.weight.detach()), None)  # no padding: integer dot products
    assert torch.equal(inner, inner.round())


def test_signature_is_conv2d_plus_spec() -> None:
    base = inspect.signature(nn.Conv2d.__init__).parameters
    ours = inspect.signature(QuantConv2d.__init__).parameters
    assert list(ours)[: len(base)] == list(base)
    assert list(ours)[len(base) :] == ["spec"]
    for name, p in base.items():
        if name != "bias":  # docs/quant.md: QuantConv2d defaults to bias=False (BN follows)
            assert ours[name].default == p.default, name
    assert ours["bias"].default is False


def test_quantizer_slots_and_bits() -> None:
    q = QuantConv2d(4, 4, 3, spec="cunet_w1a8g8")
    assert (q.weight_quantizer.bits, q.input_quantizer.bits, q.grad_quantizer.bits) == (1, 8, 8)
    r = QuantConv2d(4, 4, 3)
    assert (r.weight_quantizer.bits, r.input_quantizer.bits) == (32, 32)


def test_bihrnet_has_rsign_threshold_that_trains() -> None:
    q = QuantConv2d(4, 4, 3, padding=1, spec="bihrnet")
    assert isinstance(q.input_quantizer, RSign)
    q(torch.randn(2, 4, 6, 6)).sum().backward()
    assert q.input_quantizer.threshold.grad.abs().sum() > 0


def test_gradient_quantization_reaches_input_and_weight() -> None:
    q = QuantConv2d(16, 16, 3, padding=1, spec=QuantSpec(grad_bits=4))
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    (q(x) * torch.randn(2, 16, 8, 8)).sum().backward()
    assert 1 < x.grad.unique().numel() <= 2**4 - 1
    assert 1 < q.weight.grad.unique().numel() <= 2**4 - 1


def test_learned_scale_initialised_from_copied_weight() -> None:
    spec = QuantSpec(weight_bits=1, act_bits=1, weight_scale="learned")
    ref, q = _pair(spec)
    torch.testing.assert_close(
        q.weight_quantizer.scale.detach(), ref.weight.detach().abs().mean(dim=(1, 2, 3))
    )


def test_dtype_and_device_follow_the_source_layer() -> None:
    ref = nn.Conv2d(3, 3, 1).double()
    q = QuantConv2d.from_conv(ref, "bihrnet")
    assert q.weight.dtype == torch.float64
    assert q.input_quantizer.threshold.dtype == torch.float64
    assert q(torch.randn(1, 3, 2, 2, dtype=torch.float64)).dtype == torch.float64


def test_repr_shows_bits() -> None:
    assert "W1A1G32" in repr(QuantConv2d(2, 2, 1, spec="xnor"))

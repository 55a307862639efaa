"""quantize(model, spec, skip)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from binmark.quant import QuantConv2d, QuantSpec, conv_names, quantize


def _net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)),
        nn.ConvTranspose2d(8, 8, 2, stride=2),
        nn.Conv2d(8, 8, 1, groups=2),
        nn.Conv2d(8, 4, 1),
    )


def test_first_and_last_stay_real_and_weights_are_carried() -> None:
    net = _net()
    before = {n: m.weight.detach().clone() for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    out = quantize(net, "bulat17")
    assert out is net
    kinds = {n: type(m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    assert kinds == {"0": nn.Conv2d, "2.0": QuantConv2d, "4": QuantConv2d, "5": nn.Conv2d}
    for name, w in before.items():
        assert torch.equal(net.get_submodule(name).weight, w)
    assert net.get_submodule("4").groups == 2
    assert isinstance(net[3], nn.ConvTranspose2d)  # not a Conv2d: untouched
    assert net(torch.randn(1, 3, 4, 4)).shape == (1, 4, 8, 8)


def test_skip_by_name_and_nothing() -> None:
    net = quantize(_net(), "xnor", skip=("2.0",))
    assert type(net[0]) is QuantConv2d and type(net[2][0]) is nn.Conv2d
    net = quantize(_net(), "xnor", skip=())
    assert all(type(m) is QuantConv2d for n, m in net.named_modules() if n in conv_names(net))


def test_requantizing_moves_to_the_new_spec() -> None:
    net = quantize(_net(), QuantSpec(act_bits=1))
    w = net[4].weight.detach().clone()
    quantize(net, "bulat17")
    assert net[4].spec == QuantSpec.preset("bulat17") and torch.equal(net[4].weight, w)


def test_bad_skip_entry_names_it_and_the_convs() -> None:
    with pytest.raises(ValueError, match="skip entry 'conv9'.*Conv2d names: 0, 2.0, 4, 5"):
        quantize(_net(), "xnor", skip=("conv9",))


def test_a_bare_conv_is_returned_converted() -> None:
    q = quantize(nn.Conv2d(2, 2, 1), "xnor", skip=())
    assert isinstance(q, QuantConv2d)


def test_training_mode_preserved() -> None:
    net = _net().eval()
    quantize(net, "xnor")
    assert not net[4].training

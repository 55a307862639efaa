"""Packed saves: quantized layers keep bits and codes for backward, and every gradient stays
identical bit for bit; what a binary conv keeps is ≥ 10× smaller than with float fake quantization."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from binmark.quant import QuantConv2d, QuantSpec
from binmark.quant.saving import WindowMaxPool2d, pack_bits, packed_saves, packed_saves_enabled, rebuilt_saves, unpack_bits, window_max_pool2d

SPECS = [QuantSpec.preset(n) for n in QuantSpec.presets() if n != "real"]
SPECS += [
    QuantSpec(weight_bits=1, act_bits=1, ste=ste, weight_scale=scale)
    for ste in ("clipped", "approx", "swish") for scale in ("none", "channel_mean", "learned")
]  # fmt: skip
SPECS += [QuantSpec(weight_bits=w, act_bits=a, kbit=k) for k in ("dorefa", "wage") for w, a in ((2, 2), (4, 4), (8, 8), (1, 3), (2, 7))]
SPECS += [QuantSpec(weight_bits=2, act_bits=2, ternary=True), QuantSpec(weight_bits=1, act_bits=1, act_bias=True, ste="clipped")]


def _net(spec: QuantSpec) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.BatchNorm2d(16), QuantConv2d(16, 24, 3, 1, 1, spec=spec), nn.BatchNorm2d(24),
        QuantConv2d(24, 16, 3, 2, 1, bias=True, spec=spec), nn.PReLU(16), QuantConv2d(16, 8, 1, spec=spec),
    )  # fmt: skip
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.3)
    return net


def _grads(spec: QuantSpec, packed: bool) -> list[torch.Tensor]:
    net = _net(spec)
    x = torch.randn(3, 16, 12, 10, generator=torch.Generator().manual_seed(1)).requires_grad_()
    with packed_saves(packed):
        out = net(x)
        out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(2)))
    return [x.grad, *(p.grad for p in net.parameters())]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"W{s.weight_bits}A{s.act_bits}-{s.ste}-{s.weight_scale}-{s.kbit}{'-t' if s.ternary else ''}{'-rsign' if s.act_bias else ''}-{s.grad_bits}")
def test_gradients_are_identical_bit_for_bit(spec: QuantSpec) -> None:
    plain, packed = _grads(spec, False), _grads(spec, True)
    assert len(plain) == len(packed)
    for a, b in zip(plain, packed, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(a, b)


def test_switch_and_bits_round_trip() -> None:
    assert packed_saves_enabled()
    with packed_saves(False):
        assert not packed_saves_enabled()
    assert packed_saves_enabled()
    mask = torch.rand(3, 5, 7) < 0.5
    assert torch.equal(unpack_bits(pack_bits(mask), mask.shape), mask)
    assert pack_bits(mask).numel() == (mask.numel() + 7) // 8


class _Kept:
    def __init__(self, t: torch.Tensor) -> None:
        self.t = t


def _saved_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors the autograd graph still holds when backward starts (parameters
    excluded; tensors saved by ops whose results were dropped are freed by then). ``x`` counts
    when it is kept: in a network it is a BatchNorm's output, alive only because the sign keeps it."""
    import weakref

    skip = {p.data_ptr() for p in module.parameters()}
    kept: list[weakref.ref] = []

    def pack(t: torch.Tensor) -> _Kept:
        handle = _Kept(t)
        kept.append(weakref.ref(handle))
        return handle

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda h: h.t):
        out = module(x).sum()
    alive = {h.t.data_ptr(): h.t.numel() * h.t.element_size() for r in kept if (h := r()) is not None and h.t.data_ptr() not in skip}
    out.backward()
    return sum(alive.values())


@pytest.mark.parametrize("preset", ["bulat17", "xnor", "cunet_w1a1g8"])
def test_a_binary_conv_keeps_at_least_10x_less(preset: str) -> None:
    """At a training size (batch 8, 64 × 64; the weight-sized tensors of the weight's quantizer are
    kept either way)."""
    conv = QuantConv2d(64, 64, 3, 1, 1, spec=preset)
    x = torch.randn(8, 64, 64, 64, requires_grad=True)
    with packed_saves(False):
        plain = _saved_bytes(conv, x)
    packed = _saved_bytes(conv, x)
    assert plain >= 2 * x.numel() * 4  # the sign's input and the conv's ±1 input, float32
    assert packed * 10 <= plain, (plain, packed)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 7, 9), (1, 2, 5, 4)])
def test_window_max_pool_is_max_pool_bit_for_bit(shape: tuple[int, ...], relu: bool) -> None:
    """Values, the choice among ties, NaN, −0.0 gradients and uncovered rows/columns of odd sizes."""
    x = torch.randint(-3, 3, shape, generator=torch.Generator().manual_seed(0)).float()
    x[0, 0, 0, 0], x[0, 0, 1, 1] = float("nan"), -0.0
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = nn.functional.max_pool2d(torch.relu(a) if relu else a, 2)
    yb = window_max_pool2d(b, relu)
    assert torch.equal(ya.nan_to_num(), yb.nan_to_num()) and torch.equal(ya.signbit(), yb.signbit())
    g = torch.randn(ya.shape, generator=torch.Generator().manual_seed(1))
    g[0, 0, 0, 1], g.view(-1)[3] = -0.0, float("nan")
    ya.backward(g), yb.backward(g)
    ga, gb = a.grad.nan_to_num(7.0), b.grad.nan_to_num(7.0)
    assert torch.equal(ga, gb) and torch.equal(ga.signbit(), gb.signbit())
    with packed_saves(False):
        assert yb.grad_fn.name() != window_max_pool2d(b, relu).grad_fn.name()  # off: PyTorch's own op


def test_window_max_pool_keeps_a_byte_per_output() -> None:
    """Not its input (4 bytes an element, 4 elements an output) and int64 indices (8 bytes)."""
    x = torch.randn(4, 16, 32, 32, requires_grad=True)
    pool = WindowMaxPool2d(relu=True)
    with packed_saves(False):
        plain = _saved_bytes(pool, x)
    packed = _saved_bytes(pool, x)
    outputs = x.numel() // 4
    assert plain >= outputs * (8 + 4 * 4) and packed <= outputs * (1 + 4), (plain, packed)


def test_rebuilt_saves_keep_nothing_and_rebuild_once() -> None:
    import weakref

    calls = []
    low = torch.randn(2, 3, 4, 4, requires_grad=True)

    def rebuild() -> torch.Tensor:
        calls.append(1)
        return nn.functional.interpolate(low, scale_factor=2, mode="nearest")

    def run(rebuilt: bool) -> tuple[torch.Tensor, bool]:
        up = nn.functional.interpolate(low, scale_factor=2, mode="nearest")
        with rebuilt_saves([(up, rebuild)] if rebuilt else []):
            out = (up * up.sin()).sum() + (up.exp() * 2).sum()  # `up` saved three times
        alive = weakref.ref(up)
        del up
        kept = alive() is not None  # the graph still holds `up`
        out.backward()
        grad, low.grad = low.grad, None
        return grad, kept

    plain, kept_plain = run(False)
    rebuilt, kept_rebuilt = run(True)
    assert torch.equal(plain, rebuilt)
    assert kept_plain and not kept_rebuilt
    assert len(calls) == 1  # one rebuild serves the three saves
    with packed_saves(False):
        assert run(True)[1]  # off: kept as autograd keeps it

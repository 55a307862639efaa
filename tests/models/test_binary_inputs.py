"""No binary convolution of any model family reads an input that is never negative.

A sign after a ReLU sees only {0, +1} — with sign(0) = +1 a constant +1 — so the conv cannot tell
its inputs apart (docs/models.md). Each model runs on random input with forward hooks on every
QuantConv2d whose input quantizer is a sign, and every such conv must see some negative values.
"""

from __future__ import annotations

import pytest
import torch

from binmark import models
from binmark.quant import QuantConv2d

CASES = {
    "hourglass bulat17": ("hourglass", {"stacks": 2, "depth": 2, "width": 32, "quant": "bulat17"}),
    "hourglass xnor, ReLU after the convs": (
        "hourglass", {"stacks": 1, "depth": 2, "width": 32, "quant": "xnor", "post_relu": True}),
    **{f"hourglass {b}": ("hourglass", {"stacks": 1, "depth": 2, "width": 32, "block": b, "quant": "bulat17"})
       for b in ("bottleneck", "wide", "multiscale", "no1x1")},
    "cunet w1a1": ("cunet", {"num_unets": 2, "order": 1, "quant": "cunet_w1a1g8"}),
    "cunet w1a1, 1×1 quantized": ("cunet", {"num_unets": 2, "order": 1, "quant": "cunet_w1a1g8", "quantize_1x1": True}),
    "bihrnet": ("bihrnet", {"width": 18}),
    "bihrnet without IR / MS / react": (
        "bihrnet", {"width": 18, "ir_bottleneck": False, "ms_block": False, "react": False}),
}  # fmt: skip


def _sign_input(conv: QuantConv2d) -> bool:
    return conv.input_quantizer.bits == 1


@pytest.mark.parametrize("case", CASES)
def test_every_binary_conv_sees_negative_inputs(case: str) -> None:
    name, options = CASES[case]
    torch.manual_seed(0)
    model = models.build(name, 5, **options).train()
    minima: dict[str, float] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args, key=key: minima.__setitem__(key, float(args[0].min())))
        for key, m in model.named_modules()
        if isinstance(m, QuantConv2d) and _sign_input(m)
    ]
    assert hooks, f"{case}: no binary-activation conv found"
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    never_negative = sorted(k for k, v in minima.items() if v >= 0)
    assert not never_negative, f"{case}: binary convs reading a non-negative input: {never_negative}"


def test_hrnet_refuses_binary_activations() -> None:
    with pytest.raises(ValueError, match="ReLU outputs"):
        models.build("hrnet", 5, width=18, quant="xnor")

"""``pack``'s fold rules: keyed on the pattern a block declares, never on a model's types."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch
from torch import nn

import binmark.models
from binmark.deploy import PackedBinaryConv2d, pack
from binmark.deploy.exact import dyadic, dyadic_input
from binmark.models import BLOCKS, build
from binmark.models.folding import FOLD_ATTR, FOLD_PATTERNS
from binmark.quant import PRESETS, QuantConv2d

rewrite_module = importlib.import_module("binmark.deploy.pack")


def test_pack_knows_exactly_the_documented_patterns() -> None:
    assert tuple(rewrite_module._RULES) == FOLD_PATTERNS


def _declaring_classes() -> list[type]:
    classes = []
    for info in pkgutil.iter_modules(binmark.models.__path__):
        module = importlib.import_module(f"binmark.models.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, nn.Module) and cls.__module__ == module.__name__ and FOLD_ATTR in vars(cls):
                classes.append(cls)
    return classes


def test_every_model_block_declares_a_known_pattern() -> None:
    declared = {cls.__name__: getattr(cls, FOLD_ATTR) for cls in _declaring_classes()}
    assert declared == {
        "PreActConv": "pre_act",
        "BinaryConvBN": "conv_bn",
        "BinaryUnit": "conv_bn",
        "MultiScaleUnit": "branches_bn",
    }


class _Typo(nn.Module):
    fold_pattern = "conv_bnn"

    def __init__(self) -> None:
        super().__init__()
        self.conv = QuantConv2d(32, 32, 3, padding=1, spec="xnor")
        self.bn = nn.BatchNorm2d(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def test_unknown_pattern_is_refused_naming_the_class_and_the_patterns() -> None:
    with pytest.raises(ValueError) as info:
        rewrite_module.rewrite(nn.Sequential(nn.Identity(), _Typo()))
    message = str(info.value)
    assert "_Typo" in message and "'conv_bnn'" in message
    assert all(name in message for name in FOLD_PATTERNS)


def test_a_block_declaring_nothing_is_packed_without_folding() -> None:
    class Plain(_Typo):
        fold_pattern = None

    net = rewrite_module.rewrite(nn.Sequential(Plain()))
    assert isinstance(net[0].conv, PackedBinaryConv2d) and isinstance(net[0].bn, nn.BatchNorm2d)


def _assert_folded(net: nn.Module) -> int:
    """Every declaring block whose convs were bit-packed lost its BatchNorm; returns their count."""
    folded = 0
    for m in net.modules():
        pattern = getattr(type(m), FOLD_ATTR, None)
        if pattern is None:
            continue
        convs = list(m.convs) if pattern == "branches_bn" else [m.conv]
        if all(isinstance(c, PackedBinaryConv2d) for c in convs):
            assert not isinstance(m.bn, nn.BatchNorm2d), (type(m).__name__, pattern)
            folded += 1
    return folded


# (name, K, options, input H×W, whether the model has a block to fold)
VARIANTS = [
    *[("hourglass", 5, {"quant": "bulat17", "depth": 1, "width": 32, "block": b}, (32, 32), True) for b in BLOCKS.names()],
    ("hourglass", 5, {"quant": "xnor", "depth": 1, "width": 32, "post_relu": True}, (32, 32), True),
    ("hourglass", 5, {"quant": "cunet_w2a2g8", "depth": 1, "width": 32}, (32, 32), False),
    ("cunet", 5, {"quant": "cunet_w1a1g8", "num_unets": 1}, (64, 64), False),
    ("cunet", 5, {"quant": "cunet_w1a8g8", "num_unets": 1}, (64, 64), False),
    ("bihrnet", 5, {"width": 8}, (64, 64), True),
    ("bihrnet", 5, {"width": 8, "ms_block": False, "ir_bottleneck": False, "react": False, "binary_fusion": False}, (64, 64), True),
]  # fmt: skip


@pytest.mark.parametrize(("name", "k", "opts", "size", "folds"), VARIANTS, ids=[f"{v[0]}-{i}" for i, v in enumerate(VARIANTS)])
def test_pack_folds_every_variant(name: str, k: int, opts: dict, size: tuple[int, int], folds: bool) -> None:
    model = dyadic(build(name, k, **opts))
    packed = pack(model)
    assert (_assert_folded(packed.net) > 0) == folds
    x = dyadic_input((1, 3, *size))
    with torch.no_grad():
        ref, out = model(x), packed(x)
    span = float(ref[-1].max() - ref[-1].min())
    assert max(float((a - b).abs().max()) for a, b in zip(ref, out, strict=True)) <= 1e-5 * span


@pytest.mark.parametrize("preset", PRESETS.names())
def test_bit_widths_come_from_the_spec(preset: str) -> None:
    """The packer, summary and training read ``spec``; the quantizers agree with it."""
    conv = QuantConv2d(8, 8, 3, spec=preset)
    s = conv.spec
    assert (conv.weight_quantizer.bits, conv.input_quantizer.bits, conv.grad_quantizer.bits) == (
        s.weight_bits, s.act_bits, s.grad_bits,
    )  # fmt: skip
    with pytest.raises(AttributeError):
        conv.spec = PRESETS.get("real")()  # type: ignore[misc]

"""Hourglass block variants: parameter counts pinned to the authors' code, shapes, layer types."""

from __future__ import annotations

import typing
from functools import partial

import pytest
import torch
from torch import nn

from binmark.models import BLOCKS, BlockLayers
from binmark.models.hourglass import hourglass
from binmark.quant import QuantConv2d


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_hpm_256_matches_face_alignment_convblock() -> None:
    # 406,400 parameters with BN (convs 405,504 + BN 896), computed from ConvBlock in
    # github.com/1adrianb/face-alignment, face_alignment/models/fan.py
    assert _params(BLOCKS.get("hpm")(256, 256)) == 406_400


def test_bottleneck_256_matches_newell() -> None:
    # 214,016 (convs 212,992 + BN 1,024): Newell's pre-activation bottleneck 256→128→128→256
    # (github.com/princeton-vl/pose-hg-train, src/models/layers/Residual.lua)
    assert _params(BLOCKS.get("bottleneck")(256, 256)) == 214_016


@pytest.mark.parametrize(
    ("name", "convs"),
    [
        ("wide", 256 * 256 + 256 * 256 * 9 + 256 * 256),
        ("no1x1", 256 * 128 * 9 + 128 * 128 * 9 + 128 * 256 * 9),
        ("multiscale", 256 * 128 * 9 + (256 * 64 * 9 + 64 * 64 * 9) + (256 * 64 * 9 + 2 * 64 * 64 * 9)),
    ],
)
def test_other_variants_conv_arithmetic(name: str, convs: int) -> None:
    block = BLOCKS.get(name)(256, 256)
    conv_params = sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))
    assert conv_params == convs


@pytest.mark.parametrize("name", BLOCKS.names())
@pytest.mark.parametrize(("cin", "cout"), [(32, 32), (16, 32)])
def test_shapes_and_projection(name: str, cin: int, cout: int) -> None:
    block = BLOCKS.get(name)(cin, cout)
    assert block(torch.randn(2, cin, 9, 7)).shape == (2, cout, 9, 7)
    has_projection = any(n == "shortcut.conv" for n, _ in block.named_modules())
    assert has_projection == (cin != cout)


def test_registry_matches_the_hourglass_option_type() -> None:
    hint = typing.get_type_hints(hourglass)["block"]
    assert list(typing.get_args(hint)) == BLOCKS.names()


def test_hpm_chains_and_concatenates() -> None:
    block = BLOCKS.get("hpm")(8, 8)
    x = torch.randn(1, 8, 5, 5)
    y1 = block.conv1(x)
    y2 = block.conv2(y1)
    y3 = block.conv3(y2)
    torch.testing.assert_close(block(x), torch.cat([y1, y2, y3], 1) + x)
    assert (y1.shape[1], y2.shape[1], y3.shape[1]) == (4, 2, 2)


def test_layer_types_are_arguments() -> None:
    layers = BlockLayers(
        conv=partial(QuantConv2d, spec="bulat17"), act=nn.Identity, post_act=nn.ReLU
    )
    block = BLOCKS.get("hpm")(8, 8, layers)
    unit = block.conv1
    assert isinstance(unit.conv, QuantConv2d) and isinstance(unit.act, nn.Identity)
    assert isinstance(unit.post, nn.ReLU)
    assert unit.conv.bias is None


@pytest.mark.parametrize("name", ["hpm", "multiscale"])
def test_width_not_divisible_by_four(name: str) -> None:
    with pytest.raises(ValueError, match="divisible by 4, got 10"):
        BLOCKS.get(name)(8, 10)

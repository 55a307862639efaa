"""The stacked hourglass: structure, shapes, quantization really applied, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from binmark import models
from binmark.quant import QuantConv2d, QuantSpec, summary

SMALL = dict(width=32, depth=2)  # input multiple 16: fast on CPU


def test_param_count_matches_fan_arithmetic() -> None:
    # 1 stack 6.24 M (16 joints) / 6.25 M (68 points), computed from the channel arithmetic of
    # github.com/1adrianb/face-alignment, face_alignment/models/fan.py
    assert sum(p.numel() for p in models.build("hourglass", 16).parameters()) == 6_236_304
    assert sum(p.numel() for p in models.build("hourglass", 68).parameters()) == 6_249_668


def test_quantization_does_not_change_parameter_layout() -> None:
    real = models.build("hourglass", 16, stacks=2)
    binary = models.build("hourglass", 16, stacks=2, quant="bulat17")
    real_shapes = {k: v.shape for k, v in real.state_dict().items()}
    assert real_shapes == {k: v.shape for k, v in binary.state_dict().items()}


@pytest.mark.parametrize("block", models.BLOCKS.names())
@pytest.mark.parametrize("stacks", [1, 2])
@pytest.mark.parametrize("size", [(32, 32), (48, 64)])
def test_output_shapes(block: str, stacks: int, size: tuple[int, int]) -> None:
    model = models.build("hourglass", 5, stacks=stacks, block=block, **SMALL)
    out = model(torch.randn(2, 3, *size))
    assert isinstance(out, list) and len(out) == stacks
    for heatmaps in out:
        assert heatmaps.shape == (2, 5, size[0] // 4, size[1] // 4)


def test_default_depth_takes_multiples_of_64() -> None:
    model = models.build("hourglass", 3, width=16).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 64))[-1].shape == (1, 3, 32, 16)
    with pytest.raises(ValueError, match="divisible by 64; got shape \\(1, 3, 96, 64\\)"):
        model(torch.randn(1, 3, 96, 64))


def test_real_layers_stay_real_under_quant() -> None:
    model = models.build("hourglass", 4, stacks=2, quant="bulat17", **SMALL)
    real = {n for n, m in model.named_modules() if type(m) is nn.Conv2d}
    assert "stem.conv" in real
    for i in range(2):
        assert {f"heads.{i}.conv", f"heads.{i}.heatmap"} <= real
    assert {"heads.0.remap_features", "heads.0.remap_heatmaps"} <= real
    assert all(n.endswith("shortcut.conv") or n.startswith(("stem.conv", "heads.")) for n in real)
    quantized = [m for m in model.modules() if isinstance(m, QuantConv2d)]
    assert quantized and all(m.spec == QuantSpec.preset("bulat17") for m in quantized)


def test_binary_convs_see_plus_minus_one_inputs_and_alpha_weights() -> None:
    model = models.build("hourglass", 4, quant="bulat17", **SMALL)
    seen = []

    def check(conv: QuantConv2d, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        x = conv.input_quantizer(inputs[0])
        assert set(x.unique().tolist()) == {-1.0, 1.0}
        w = conv.quantized_weight()
        alpha = conv.weight.abs().mean(dim=(1, 2, 3))
        torch.testing.assert_close(w.abs().amax(dim=(1, 2, 3)), alpha)
        torch.testing.assert_close(w.abs().amin(dim=(1, 2, 3)), alpha)
        expected = nn.functional.conv2d(x, w, None, padding=conv.padding)
        torch.testing.assert_close(output, expected)
        seen.append(conv)

    for m in model.modules():
        if isinstance(m, QuantConv2d):
            m.register_forward_hook(check)
    model(torch.randn(2, 3, 32, 32))
    assert len(seen) == sum(isinstance(m, QuantConv2d) for m in model.modules())


def test_binary_blocks_put_bn_not_relu_before_the_sign() -> None:
    binary = models.build("hourglass", 4, quant="bulat17", **SMALL)
    real = models.build("hourglass", 4, **SMALL)
    assert isinstance(binary.stem.block1.conv1.act, nn.Identity)
    assert isinstance(real.stem.block1.conv1.act, nn.ReLU)
    w1a8 = models.build("hourglass", 4, quant="cunet_w1a8g8", **SMALL)
    assert isinstance(w1a8.stem.block1.conv1.act, nn.ReLU)


def test_gradient_reaches_the_stem_through_binary_layers() -> None:
    model = models.build("hourglass", 4, quant="bulat17", **SMALL)
    model(torch.randn(2, 3, 32, 32))[-1].square().mean().backward()
    # The BN in front of the first binary conv gets gradient only through the sign's STE.
    bn = model.stem.block1.conv1.bn
    assert bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0
    assert model.stem.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("preset", QuantSpec.presets())
@pytest.mark.parametrize("block", ["hpm", "bottleneck"])
def test_every_parameter_gets_a_gradient(preset: str, block: str) -> None:
    model = models.build("hourglass", 3, stacks=2, block=block, quant=preset, post_relu=True, **SMALL)
    out = model(torch.randn(2, 3, 32, 32))
    sum(o.square().mean() for o in out).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"
    assert all(torch.isfinite(o).all() for o in out)


def test_pool_option() -> None:
    avg = models.build("hourglass", 2, pool="avg", **SMALL)
    assert isinstance(avg.stem.pool, nn.AvgPool2d)
    assert isinstance(models.build("hourglass", 2, **SMALL).hourglasses[0].pool, nn.MaxPool2d)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"width": 12}, "width must be divisible by 8, got 12"),
        ({"stacks": 0}, "stacks must be an integer >= 1"),
        ({"pool": "min"}, "pool must be one of \\['max', 'avg'\\]"),
        ({"block": "hbp"}, "unknown hourglass block 'hbp'.*hpm"),
        ({"quant": "bulat"}, "unknown quant preset 'bulat'"),
        ({"stack": 2}, "no option\\(s\\) stack; valid options: stacks, depth"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        models.build("hourglass", 16, **options)


def test_binary_summary_of_the_paper_network() -> None:
    s = summary(models.build("hourglass", 16, quant="bulat17"))
    assert s.total_params == 6_236_304
    assert s.params_by_bits[1] == 6_100_992  # every block conv
    assert s.binary_mac_share > 0.9
    assert 1.2e6 < s.packed_bytes < 1.4e6  # the released binary MPII model is 1.3 MB

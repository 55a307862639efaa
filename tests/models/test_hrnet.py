"""HRNet and BiHRNet: parameter counts, shapes for every width, binary layers see ±1, MAC share,
ablation switches, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from binmark import models
from binmark.models.bihrnet import BinaryBottleneck, IRBottleneck, MultiScaleUnit
from binmark.quant import QuantConv2d, RPReLU, RSign, summary


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_hrnet_w32_parameter_count_matches_the_official_model() -> None:
    # HRNet README: pose_hrnet_w32 256x192, 28.5 M parameters (17 COCO keypoints)
    assert abs(_params(models.build("hrnet", 17, width=32)) - 28.5e6) / 28.5e6 < 0.01
    assert abs(_params(models.build("hrnet", 17, width=48)) - 63.6e6) / 63.6e6 < 0.01


@pytest.mark.parametrize("name", ["hrnet", "bihrnet"])
@pytest.mark.parametrize("width", [18, 32, 48])
def test_shapes_for_every_width(name: str, width: int) -> None:
    m = models.build(name, 5, width=width).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 64, 96))
    assert isinstance(out, list) and len(out) == 1 and out[0].shape == (1, 5, 16, 24)


def test_input_size_check() -> None:
    with pytest.raises(ValueError, match="divisible by 32; got shape \\(1, 3, 48, 64\\)"):
        models.build("hrnet", 5, width=8)(torch.randn(1, 3, 48, 64))


def test_hrnet_takes_k_bit_quant_but_refuses_binary_activations() -> None:
    q = models.build("hrnet", 5, width=8, quant="dorefa_w2a2")
    convs = [m for m in q.modules() if isinstance(m, nn.Conv2d)]
    assert type(convs[0]) is nn.Conv2d and type(convs[-1]) is nn.Conv2d
    assert all(isinstance(m, QuantConv2d) for m in convs[1:-1])
    with pytest.raises(ValueError, match="build 'bihrnet'"):
        models.build("hrnet", 5, quant="bulat17")


def test_bihrnet_binary_layers_see_plus_minus_one() -> None:
    m = models.build("bihrnet", 4, width=8)
    checked = []

    def check(conv: QuantConv2d, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        x = conv.input_quantizer(inputs[0])
        assert set(x.unique().tolist()) <= {-1.0, 1.0}
        w = conv.quantized_weight()
        alpha = conv.weight.abs().mean(dim=(1, 2, 3))
        torch.testing.assert_close(w.abs().amax(dim=(1, 2, 3)), alpha)
        torch.testing.assert_close(w.abs().amin(dim=(1, 2, 3)), alpha)
        checked.append(conv)

    quant = [mod for mod in m.modules() if isinstance(mod, QuantConv2d)]
    for mod in quant:
        assert isinstance(mod.input_quantizer, RSign)
        mod.register_forward_hook(check)
    m(torch.randn(2, 3, 64, 64))
    assert len(checked) == len(quant) > 100
    real = [n for n, mod in m.named_modules() if type(mod) is nn.Conv2d]
    assert "stem.0.0" in real and "head" in real
    assert all("shortcut" in n or n in ("stem.0.0", "head") for n in real)  # real paths: shortcuts only


def test_bihrnet_w32_is_mostly_binary() -> None:
    h = summary(models.build("hrnet", 17, width=32), (1, 3, 256, 192))
    b = summary(models.build("bihrnet", 17, width=32), (1, 3, 256, 192))
    assert b.binary_mac_share >= 0.9
    assert b.ops < h.ops / 10 and b.packed_bytes < h.packed_bytes / 10
    assert b.ops == pytest.approx(b.macs_by_bits.get(32, 0) + b.macs_by_bits[1] / 64)


@pytest.mark.parametrize(
    ("option", "present", "absent"),
    [
        ("ir_bottleneck", BinaryBottleneck, IRBottleneck),
        ("ms_block", None, MultiScaleUnit),
        ("react", nn.PReLU, RPReLU),
    ],
)
def test_ablation_switches(option: str, present: type | None, absent: type) -> None:
    on = models.build("bihrnet", 4, width=8)
    off = models.build("bihrnet", 4, width=8, **{option: False})
    assert any(isinstance(m, absent) for m in on.modules())
    assert not any(isinstance(m, absent) for m in off.modules())
    if present is not None:
        assert any(isinstance(m, present) for m in off.modules())
    if option == "react":
        assert not any(isinstance(m, RSign) for m in off.modules())


def test_real_fusion_switch() -> None:
    on = summary(models.build("bihrnet", 4, width=8), (1, 3, 64, 64))
    off = summary(models.build("bihrnet", 4, width=8, binary_fusion=False), (1, 3, 64, 64))
    assert off.macs_by_bits[32] > on.macs_by_bits[32]


def test_ms_block_needs_even_width() -> None:
    with pytest.raises(ValueError, match="MS-block needs channels divisible by 2, got 9"):
        models.build("bihrnet", 4, width=9)
    models.build("bihrnet", 4, width=9, ms_block=False)


@pytest.mark.parametrize("options", [{}, {"ir_bottleneck": False, "ms_block": False, "react": False, "binary_fusion": False}, {"quant": "bihrnet_act"}])
def test_every_parameter_gets_a_gradient(options: dict) -> None:
    m = models.build("bihrnet", 3, width=8, **options)
    m(torch.randn(2, 3, 64, 64))[-1].square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"

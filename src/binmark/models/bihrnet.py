"""BiHRNet: HRNet with ±1 weights and activations, an IR bottleneck and MS-blocks.

Paper: "BiHRNet: A Binary high-resolution network for Human Pose Estimation", arXiv 2311.10296.
The paper's text gives the ideas (IR Bottleneck "in the initial stage", the multi-scale MS-Block,
KL + AWing distillation) but not the internals, and no code is public (arXiv 2311.10296v1, abstract).
binmark's design, built on HRNet's topology (:mod:`binmark.models.hrnet`) and ReActNet's blocks
(Liu et al., ECCV 2020), is documented in docs/models.md; in short:

- **binary unit**: x → RSign → binary conv → BN → (+ real shortcut) → RPReLU. Every binary conv has
  its own real-valued shortcut (Bi-Real/ReActNet), so real information bypasses each sign. A
  shortcut that changes resolution or width is real-valued: 2×2 average pooling and/or a real 1×1
  conv + BN (ReActNet's downsampling path).
- **IR bottleneck** (stage 1, ``ir_bottleneck``): the three convs of HRNet's bottleneck as binary units
  at the block's full output width (256): no channel squeeze before the binary 3×3, and a real
  shortcut around each conv, so information lost by one sign is reconstructed from the shortcut.
  Off: HRNet's squeezing bottleneck with its convs binarized and one block shortcut.
- **MS-block** (every BASIC block, ``ms_block``): the first 3×3 unit becomes two parallel binary 3×3
  convs with dilation 1 and 2 (receptive fields 3 and 5), each producing half the channels,
  concatenated, with the real identity added: multi-scale at the cost of one conv. Off: two plain
  binary 3×3 units.
- **RSign / RPReLU** (``react``): learnable thresholds and shifts (the "bihrnet" quant preset's
  ``act_bias``). Off: plain sign and PReLU.
- **fusion** (``binary_fusion``): HRNet's fusion convs (1×1 before upsampling, 3×3/2 chains) as
  binary conv + BN; the identity path of every fusion stays real. Off: real fusion convs.
- **stem**: HRNet's two 3×3/2 convs, the first real (3×3/2 conv → BN, *no ReLU*), the second a
  binary unit. The unit's sign reads the BN output directly: after a ReLU its input would never be
  negative and the sign a constant +1 (sign(0) = +1), so that conv could not see its input. The
  unit's RPReLU supplies the stem's non-linearity, and its real shortcut (2×2 average pooling of
  the BN output) carries the signed features past the sign.
- real-valued: the first 3×3/2 conv and the 1×1 heatmap head.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import torch
from torch import Tensor, nn

from binmark.models.folding import FoldPattern
from binmark.models.hrnet import STEM_CHANNELS, HighResolutionNet, Layers, check_width, conv_bn
from binmark.models.registry import register_model
from binmark.quant import QuantConv2d, QuantSpec, RPReLU, as_spec

__all__ = ["BinaryUnit", "MultiScaleUnit", "IRBottleneck", "BinaryBottleneck", "bihrnet", "binary_layers"]


def real_shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    """Identity, or average pooling and/or a real 1×1 conv + BN (ReActNet's downsampling path)."""
    steps: list[nn.Module] = [nn.AvgPool2d(stride)] if stride > 1 else []
    if cin != cout:
        steps += [nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*steps) if steps else nn.Identity()


def _act(channels: int, react: bool) -> nn.Module:
    return RPReLU(channels) if react else nn.PReLU(channels)


class BinaryConvBN(nn.Module):
    """sign → binary conv → BN (no shortcut): the fusion paths' conv."""

    fold_pattern: ClassVar[FoldPattern] = "conv_bn"  # BN into the conv's output (binmark.models.folding)

    def __init__(self, cin: int, cout: int, k: int, stride: int, spec: QuantSpec, act: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = QuantConv2d(cin, cout, k, stride, k // 2, spec=spec)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        x = self.bn(x)
        return self.act(x)


class BinaryUnit(nn.Module):
    """RSign → binary k×k conv → BN, plus a real shortcut, then RPReLU.

    Args:
        cin, cout, k, stride: the conv.
        spec: the conv's quantization (its input quantizer is the RSign).
        react: RPReLU (True) or PReLU.
    """

    fold_pattern: ClassVar[FoldPattern] = "conv_bn"  # BN into the conv's output (binmark.models.folding)

    def __init__(self, cin: int, cout: int, k: int, stride: int, spec: QuantSpec, react: bool) -> None:
        super().__init__()
        self.conv = QuantConv2d(cin, cout, k, stride, k // 2, spec=spec)
        self.bn = nn.BatchNorm2d(cout)
        self.shortcut = real_shortcut(cin, cout, stride)
        self.act = _act(cout, react)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        y = self.bn(y)
        return self.act(y + self.shortcut(x))


class MultiScaleUnit(nn.Module):
    """Parallel binary 3×3 convs with dilations 1 and 2, half the channels each, concatenated,
    BN, plus the real identity, then RPReLU."""

    fold_pattern: ClassVar[FoldPattern] = "branches_bn"  # each conv gets its BN slice (binmark.models.folding)

    def __init__(self, channels: int, spec: QuantSpec, react: bool, dilations: tuple[int, ...] = (1, 2)) -> None:
        super().__init__()
        if channels % len(dilations):
            raise ValueError(f"MS-block needs channels divisible by {len(dilations)}, got {channels}")
        part = channels // len(dilations)
        self.convs = nn.ModuleList(QuantConv2d(channels, part, 3, 1, d, d, spec=spec) for d in dilations)
        self.bn = nn.BatchNorm2d(channels)
        self.act = _act(channels, react)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat([conv(x) for conv in self.convs], dim=1)
        y = self.bn(y)
        return self.act(y + x)


class BinaryBasicBlock(nn.Module):
    """A BASIC block of two binary units; the first is multi-scale in an MS-block."""

    def __init__(self, channels: int, spec: QuantSpec, react: bool, ms_block: bool) -> None:
        super().__init__()
        self.unit1 = MultiScaleUnit(channels, spec, react) if ms_block else BinaryUnit(channels, channels, 3, 1, spec, react)
        self.unit2 = BinaryUnit(channels, channels, 3, 1, spec, react)

    def forward(self, x: Tensor) -> Tensor:
        return self.unit2(self.unit1(x))


class IRBottleneck(nn.Module):
    """Stage-1 block: binary 1×1, 3×3, 1×1 units at the full output width, each with a real
    shortcut (the first projects cin → cout)."""

    def __init__(self, cin: int, planes: int, spec: QuantSpec, react: bool) -> None:
        super().__init__()
        cout = planes * 4
        self.unit1 = BinaryUnit(cin, cout, 1, 1, spec, react)
        self.unit2 = BinaryUnit(cout, cout, 3, 1, spec, react)
        self.unit3 = BinaryUnit(cout, cout, 1, 1, spec, react)

    def forward(self, x: Tensor) -> Tensor:
        return self.unit3(self.unit2(self.unit1(x)))


class BinaryBottleneck(nn.Module):
    """HRNet's bottleneck binarized as is: squeeze to ``planes``, no inner shortcuts."""

    def __init__(self, cin: int, planes: int, spec: QuantSpec, react: bool) -> None:
        super().__init__()
        cout = planes * 4
        self.conv1 = BinaryConvBN(cin, planes, 1, 1, spec, _act(planes, react))
        self.conv2 = BinaryConvBN(planes, planes, 3, 1, spec, _act(planes, react))
        self.conv3 = BinaryConvBN(planes, cout, 1, 1, spec)
        self.shortcut = real_shortcut(cin, cout, 1)
        self.act = _act(cout, react)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv3(self.conv2(self.conv1(x)))
        return self.act(y + self.shortcut(x))


def binary_layers(spec: QuantSpec, ir_bottleneck: bool, ms_block: bool, react: bool, binary_fusion: bool) -> Layers:
    """BiHRNet's pieces for HRNet's topology (see the module docstring)."""
    if not react:
        spec = spec.replace(act_bias=False) if spec.act_bias else spec
    fuse_down = (
        (lambda cin, cout, last: BinaryConvBN(cin, cout, 3, 2, spec, None if last else _act(cout, react)))
        if binary_fusion
        else (lambda cin, cout, last: conv_bn(cin, cout, 3, 2, relu=not last))
    )
    stem = lambda: nn.Sequential(  # noqa: E731 — no ReLU before the sign (module docstring)
        conv_bn(3, STEM_CHANNELS, 3, 2, relu=False), BinaryUnit(STEM_CHANNELS, STEM_CHANNELS, 3, 2, spec, react)
    )
    return Layers(
        stem=stem,
        stage1=partial(IRBottleneck if ir_bottleneck else BinaryBottleneck, spec=spec, react=react),
        block=partial(BinaryBasicBlock, spec=spec, react=react, ms_block=ms_block),
        transition=lambda cin, cout, stride: BinaryUnit(cin, cout, 3, stride, spec, react),
        fuse_up=(lambda cj, ci: BinaryConvBN(cj, ci, 1, 1, spec)) if binary_fusion else (lambda cj, ci: conv_bn(cj, ci, 1, relu=False)),
        fuse_down=fuse_down,
        act=lambda channels: _act(channels, react),
    )


@register_model("bihrnet")
def bihrnet(
    num_keypoints: int,
    width: int = 32,
    quant: QuantSpec | str = "bihrnet",
    ir_bottleneck: bool = True,
    ms_block: bool = True,
    react: bool = True,
    binary_fusion: bool = True,
) -> HighResolutionNet:
    """BiHRNet (arXiv 2311.10296) as binmark designs it; see the module docstring.

    Args:
        num_keypoints: K.
        width: HRNet width w (18, 32, 48); with ``ms_block`` it must be even.
        quant: the binary convs' quantization ("bihrnet": RSign + ApproxSign, α-scaled ±1 weights;
            "bihrnet_act" binarizes activations only, the first stage of the two-stage recipe).
        ir_bottleneck, ms_block, react, binary_fusion: the design's parts, each can be turned off
            for ablations.
    """
    check_width(width, "bihrnet")
    spec = as_spec(quant)
    return HighResolutionNet(num_keypoints, width, binary_layers(spec, ir_bottleneck, ms_block, react, binary_fusion))

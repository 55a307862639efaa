"""Residual blocks of the hourglass family: the five variants of Bulat & Tzimiropoulos's ablation.

Bulat & Tzimiropoulos, "Binarized Convolutional Landmark Localizers for Human Pose Estimation and
Face Alignment with Limited Resources", ICCV 2017, arXiv 1703.00862, §4 and Fig. 2 compare:

=============  =============================================================================
name           structure (every conv is a pre-activation unit: norm → act → conv [→ post])
=============  =============================================================================
bottleneck     (a) Newell's bottleneck: 1×1 in→out/2, 3×3 out/2→out/2, 1×1 out/2→out
wide           (b) the bottleneck without the channel drop: 1×1 in→out, 3×3 out→out, 1×1 out→out
multiscale     (c) three *parallel* branches reading the block input, of 1, 2 and 3 chained 3×3
               convs (receptive fields 3, 5, 7) and widths out/2, out/4, out/4, concatenated
no1x1          (d) the bottleneck with its 1×1s replaced by 3×3s: 3×3 in→out/2, out/2→out/2,
               out/2→out
hpm            (e) hierarchical, parallel & multi-scale: 3×3 in→out/2 → 3×3 out/2→out/4 →
               3×3 out/4→out/4, *chained*, the three outputs concatenated
=============  =============================================================================

All add the identity (a 1×1 projection norm → ReLU → conv, always real-valued, when the widths
differ). The HPM block follows the authors' code (face-alignment ``ConvBlock``, bnn ``HBlock``):
406,400 parameters for 256→256 with BN; the bottleneck has 214,016.

The paper's text for variant (c) was not available to this project; binmark's
"multiscale" is the HPM block's widths and receptive fields without its hierarchy, which is the
comparison the ablation is about. Block layer types are arguments (timm style): the same class
builds the real network (ReLU, ``nn.Conv2d``) and the binary one (identity, ``QuantConv2d`` whose
input quantizer is the sign).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from binmark._registry import Registry
from binmark.models.folding import FoldPattern

__all__ = [
    "BLOCKS",
    "LayerFactory",
    "BlockLayers",
    "PreActConv",
    "Projection",
    "Bottleneck",
    "MultiScaleBlock",
    "HPMBlock",
]

LayerFactory = Callable[..., nn.Module]

BLOCKS: Registry[Callable[..., nn.Module]] = Registry("hourglass block")


@dataclass(frozen=True)
class BlockLayers:
    """The layer types a block is built from.

    Args:
        conv: called as ``conv(in_ch, out_ch, k, padding=k // 2, bias=False)``; ``nn.Conv2d``
            for the real network, ``partial(QuantConv2d, spec=...)`` for the quantized one.
        norm: called as ``norm(channels)``.
        act: called with no arguments; ``nn.ReLU``, or ``nn.Identity`` when the conv's input
            quantizer is a sign (which must see BN's signed output, not a ReLU's).
        post_act: called with no arguments after the conv, or None (the paper's "ReLU after the
            binary conv" option).
    """

    conv: LayerFactory = nn.Conv2d
    norm: LayerFactory = nn.BatchNorm2d
    act: LayerFactory = nn.ReLU
    post_act: LayerFactory | None = None

    def unit(self, in_ch: int, out_ch: int, kernel_size: int) -> PreActConv:
        """A pre-activation conv unit built from these layer types."""
        return PreActConv(in_ch, out_ch, kernel_size, self)


class PreActConv(nn.Module):
    """norm → act → conv (k×k, stride 1, 'same' padding, no bias) → optional post activation.

    Packing folds ``bn`` into a binary ``conv``'s input thresholds (the ``"pre_act"`` pattern of
    :mod:`binmark.models.folding`).

    Args:
        in_ch, out_ch: channels.
        kernel_size: k (odd).
        layers: the layer types (see :class:`BlockLayers`).
    """

    fold_pattern: ClassVar[FoldPattern] = "pre_act"

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, layers: BlockLayers) -> None:
        super().__init__()
        self.bn = layers.norm(in_ch)
        self.act = layers.act()
        self.conv = layers.conv(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False)
        self.post = layers.post_act() if layers.post_act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(x)
        x = self.act(x)
        x = self.conv(x)
        return self.post(x)


class Projection(nn.Module):
    """Shortcut between widths: norm → ReLU → 1×1 conv, real-valued (face-alignment ``downsample``).

    The shortcut is the path that carries real-valued information around the binary convolutions,
    so it is never binarized.
    """

    def __init__(self, in_ch: int, out_ch: int, norm_layer: LayerFactory = nn.BatchNorm2d) -> None:
        super().__init__()
        self.bn = norm_layer(in_ch)
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(x)
        x = self.act(x)
        return self.conv(x)


def _shortcut(in_ch: int, out_ch: int, layers: BlockLayers) -> nn.Module:
    return nn.Identity() if in_ch == out_ch else Projection(in_ch, out_ch, layers.norm)


def _check_quarters(name: str, out_ch: int) -> None:
    if out_ch % 4:
        raise ValueError(f"{name} block needs an output width divisible by 4, got {out_ch}")


class Bottleneck(nn.Module):
    """Three pre-activation convs in→mid→mid→out plus the shortcut (variants a, b, d).

    Args:
        in_ch, out_ch: channels.
        mid_ch: the inner width.
        kernels: kernel sizes of the three convs, (1, 3, 1) for Newell's bottleneck.
        layers: the layer types (see :class:`BlockLayers`).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        mid_ch: int,
        kernels: tuple[int, int, int] = (1, 3, 1),
        layers: BlockLayers = BlockLayers(),
    ) -> None:
        super().__init__()
        self.conv1 = layers.unit(in_ch, mid_ch, kernels[0])
        self.conv2 = layers.unit(mid_ch, mid_ch, kernels[1])
        self.conv3 = layers.unit(mid_ch, out_ch, kernels[2])
        self.shortcut = _shortcut(in_ch, out_ch, layers)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(x)
        y = self.conv2(y)
        y = self.conv3(y)
        return y + self.shortcut(x)


class HPMBlock(nn.Module):
    """Hierarchical, parallel & multi-scale block (variant e); see the module docstring.

    Args:
        in_ch, out_ch: channels; ``out_ch`` divisible by 4.
        layers: the layer types (see :class:`BlockLayers`).
    """

    def __init__(self, in_ch: int, out_ch: int, layers: BlockLayers = BlockLayers()) -> None:
        super().__init__()
        _check_quarters("hpm", out_ch)
        self.conv1 = layers.unit(in_ch, out_ch // 2, 3)
        self.conv2 = layers.unit(out_ch // 2, out_ch // 4, 3)
        self.conv3 = layers.unit(out_ch // 4, out_ch // 4, 3)
        self.shortcut = _shortcut(in_ch, out_ch, layers)

    def forward(self, x: Tensor) -> Tensor:
        y1 = self.conv1(x)
        y2 = self.conv2(y1)
        y3 = self.conv3(y2)
        return torch.cat([y1, y2, y3], dim=1) + self.shortcut(x)


class MultiScaleBlock(nn.Module):
    """Parallel branches of 1, 2 and 3 chained 3×3 convs (variant c); see the module docstring.

    Args:
        in_ch, out_ch: channels; ``out_ch`` divisible by 4.
        layers: the layer types (see :class:`BlockLayers`).
    """

    def __init__(self, in_ch: int, out_ch: int, layers: BlockLayers = BlockLayers()) -> None:
        super().__init__()
        _check_quarters("multiscale", out_ch)

        def branch(width: int, depth: int) -> nn.Sequential:
            units = [layers.unit(in_ch, width, 3)]
            units += [layers.unit(width, width, 3) for _ in range(depth - 1)]
            return nn.Sequential(*units)

        self.branch1 = branch(out_ch // 2, 1)
        self.branch2 = branch(out_ch // 4, 2)
        self.branch3 = branch(out_ch // 4, 3)
        self.shortcut = _shortcut(in_ch, out_ch, layers)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat([self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)
        return y + self.shortcut(x)


@BLOCKS.register("bottleneck")
def bottleneck(in_ch: int, out_ch: int, layers: BlockLayers = BlockLayers()) -> nn.Module:
    """(a) Newell's pre-activation bottleneck, 1×1 → 3×3 → 1×1 at half width."""
    return Bottleneck(in_ch, out_ch, out_ch // 2, (1, 3, 1), layers=layers)


@BLOCKS.register("wide")
def wide(in_ch: int, out_ch: int, layers: BlockLayers = BlockLayers()) -> nn.Module:
    """(b) the bottleneck at full width (no channel drop)."""
    return Bottleneck(in_ch, out_ch, out_ch, (1, 3, 1), layers=layers)


@BLOCKS.register("multiscale")
def multiscale(in_ch: int, out_ch: int, layers: BlockLayers = BlockLayers()) -> nn.Module:
    """(c) parallel multi-scale branches."""
    return MultiScaleBlock(in_ch, out_ch, layers=layers)


@BLOCKS.register("no1x1")
def no1x1(in_ch: int, out_ch: int, layers: BlockLayers = BlockLayers()) -> nn.Module:
    """(d) the bottleneck with 3×3 convs in place of its 1×1s."""
    return Bottleneck(in_ch, out_ch, out_ch // 2, (3, 3, 3), layers=layers)


@BLOCKS.register("hpm")
def hpm(in_ch: int, out_ch: int, layers: BlockLayers = BlockLayers()) -> nn.Module:
    """(e) the hierarchical, parallel & multi-scale block."""
    return HPMBlock(in_ch, out_ch, layers=layers)

"""Stacked hourglass with the block variants of the binarized-landmark-localizer ablation.

Paper: Bulat & Tzimiropoulos, "Binarized Convolutional Landmark Localizers for Human Pose
Estimation and Face Alignment with Limited Resources", ICCV 2017, arXiv 1703.00862.
Layout: the authors' FAN (1adrianb/face-alignment ``models/fan.py``, face-alignment-training
``models/fan.lua``), itself Newell et al.'s stacked hourglass (ECCV 2016):

- stem: 7×7 conv stride 2 (3→64, bias) → BN → ReLU → block 64→w/2 → 2× pool → block w/2→w/2 →
  block w/2→w; a 256×256 image becomes w feature maps of 64×64.
- hourglass of depth d: at each level a skip block, and a lower branch 2× pool → block →
  (the next level, or one block at the bottom) → block → nearest 2× upsample; the two are added.
- per stack: block → 1×1 conv w→w (bias) → BN → ReLU → 1×1 conv w→K heatmaps (bias); between
  stacks the next input is the stack input + 1×1 conv(features) + 1×1 conv(heatmaps K→w).

Real-valued layers: the stem's 7×7 conv, the per-stack 1×1 head convs and the inter-stack 1×1
remaps stay real under any ``quant`` ("first and last layers real", the bnn recipes' rule, applied
to every stack's output since each is supervised), as do the projection shortcuts. Every
convolution inside a block follows ``quant``. With 1-bit activations the pre-activation of a block
conv is BN → sign (the sign lives in ``QuantConv2d``); otherwise BN → ReLU.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from binmark.models.blocks import BLOCKS, BlockLayers
from binmark.models.registry import register_model
from binmark.models.inputs import check_images

torch.fx.wrap("check_images")
from binmark.quant import QuantConv2d, QuantSpec, as_spec

__all__ = ["StackedHourglass", "hourglass"]

# Architecture as data: the defaults of the paper's 256×256 → 64×64 network.
STEM_CHANNELS = 64  # output of the 7×7 stem conv
STEM_STRIDE = 4  # 7×7 stride-2 conv, then one 2× pool
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class Stem(nn.Module):
    """7×7/2 conv → BN → ReLU → block → pool → block → block: (N, 3, H, W) → (N, w, H/4, W/4)."""

    def __init__(self, width: int, block: str, layers: BlockLayers, pool: str) -> None:
        super().__init__()
        make = BLOCKS.get(block)
        self.conv = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=3, bias=True)
        self.bn = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU()
        self.block1 = make(STEM_CHANNELS, width // 2, layers)
        self.pool = POOLS[pool](2)
        self.block2 = make(width // 2, width // 2, layers)
        self.block3 = make(width // 2, width, layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        x = self.bn(x)
        x = self.relu(x)
        x = self.block1(x)
        x = self.pool(x)
        x = self.block2(x)
        return self.block3(x)


class HourglassLevel(nn.Module):
    """One level of the recursive hourglass: skip + upsample(up(inner(down(pool(x)))))."""

    def __init__(self, depth: int, width: int, block: str, layers: BlockLayers, pool: str) -> None:
        super().__init__()
        make = BLOCKS.get(block)
        self.skip = make(width, width, layers)
        self.pool = POOLS[pool](2)
        self.down = make(width, width, layers)
        self.inner: nn.Module = (
            HourglassLevel(depth - 1, width, block, layers, pool)
            if depth > 1
            else make(width, width, layers)
        )
        self.up = make(width, width, layers)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(x)
        y = self.pool(x)
        y = self.down(y)
        y = self.inner(y)
        y = self.up(y)
        y = F.interpolate(y, scale_factor=2, mode="nearest")
        return skip + y


class StackHead(nn.Module):
    """block → 1×1 conv → BN → ReLU → 1×1 heatmap conv, and the remaps into the next stack."""

    def __init__(
        self, width: int, num_keypoints: int, block: str, layers: BlockLayers, last: bool
    ) -> None:
        super().__init__()
        self.block = BLOCKS.get(block)(width, width, layers)
        self.conv = nn.Conv2d(width, width, 1, bias=True)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.heatmap = nn.Conv2d(width, num_keypoints, 1, bias=True)
        self.remap_features = None if last else nn.Conv2d(width, width, 1, bias=True)
        self.remap_heatmaps = None if last else nn.Conv2d(num_keypoints, width, 1, bias=True)

    def forward(self, features: Tensor, stack_input: Tensor) -> tuple[Tensor, Tensor | None]:
        """Returns (heatmaps, next stack input or None for the last stack)."""
        y = self.block(features)
        y = self.conv(y)
        y = self.bn(y)
        y = self.relu(y)
        heatmaps = self.heatmap(y)
        if self.remap_features is None or self.remap_heatmaps is None:
            return heatmaps, None
        return heatmaps, stack_input + self.remap_features(y) + self.remap_heatmaps(heatmaps)


class StackedHourglass(nn.Module):
    """Stacked hourglass network with intermediate supervision.

    Args:
        num_keypoints: K.
        stacks: number of hourglasses.
        depth: levels per hourglass (each halves the resolution).
        width: feature channels w (divisible by 8).
        block: block variant, one of ``BLOCKS`` ("bottleneck", "wide", "multiscale", "no1x1",
            "hpm").
        layers: the block layer types (see :class:`binmark.models.blocks.BlockLayers`).
        pool: "max" or "avg" (the paper found max better for binary networks).

    Shape:
        x: (N, 3, H, W) with H and W divisible by 4·2^depth → a list of ``stacks`` tensors
        (N, K, H/4, W/4), the final prediction last.
    """

    def __init__(
        self,
        num_keypoints: int,
        stacks: int,
        depth: int,
        width: int,
        block: str,
        layers: BlockLayers,
        pool: str,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.stem = Stem(width, block, layers, pool)
        self.hourglasses = nn.ModuleList(
            HourglassLevel(depth, width, block, layers, pool) for _ in range(stacks)
        )
        self.heads = nn.ModuleList(
            StackHead(width, num_keypoints, block, layers, last=i == stacks - 1)
            for i in range(stacks)
        )

    @property
    def input_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return STEM_STRIDE * 2**self.depth

    def forward(self, x: Tensor) -> list[Tensor]:
        check_images(x, self.input_multiple, f"hourglass of depth {self.depth}")
        y = self.stem(x)
        outputs = []
        for hourglass, head in zip(self.hourglasses, self.heads):
            heatmaps, y_next = head(hourglass(y), y)
            outputs.append(heatmaps)
            if y_next is not None:
                y = y_next
        return outputs


def block_layers(spec: QuantSpec, post_relu: bool) -> BlockLayers:
    """Block layer types for a quant spec: BN → sign → binary conv, or BN → ReLU → conv."""
    return BlockLayers(
        conv=nn.Conv2d if spec.is_real else partial(QuantConv2d, spec=spec),
        act=nn.Identity if spec.act_bits == 1 else nn.ReLU,
        post_act=nn.ReLU if post_relu else None,
    )


def _build(
    num_keypoints: int,
    stacks: int,
    depth: int,
    width: int,
    block: str,
    quant: QuantSpec | str,
    pool: str,
    post_relu: bool,
) -> StackedHourglass:
    for name, value, low in (("stacks", stacks, 1), ("depth", depth, 1), ("width", width, 8)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"hourglass option {name} must be an integer >= {low}, got {value!r}")
    if width % 8:
        raise ValueError(f"hourglass option width must be divisible by 8, got {width}")
    if pool not in POOLS:
        raise ValueError(f"hourglass option pool must be one of {list(POOLS)}, got {pool!r}")
    BLOCKS.get(block)  # fail here, naming the valid blocks
    layers = block_layers(as_spec(quant), post_relu)
    return StackedHourglass(num_keypoints, stacks, depth, width, block, layers, pool)


@register_model("hourglass")
def hourglass(
    num_keypoints: int,
    stacks: int = 1,
    depth: int = 4,
    width: int = 256,
    block: Literal["bottleneck", "wide", "multiscale", "no1x1", "hpm"] = "hpm",
    quant: QuantSpec | str = "real",
    pool: Literal["max", "avg"] = "max",
    post_relu: bool = False,
) -> StackedHourglass:
    """Stacked hourglass (Bulat & Tzimiropoulos, ICCV 2017); see :class:`StackedHourglass`.

    Args:
        num_keypoints: K.
        stacks, depth, width, block, pool: see :class:`StackedHourglass`.
        quant: a ``QuantSpec`` or preset name for the block convolutions ("real", "bulat17", …).
        post_relu: a ReLU after every block convolution (the paper reports it helps binary nets).
    """
    return _build(num_keypoints, stacks, depth, width, block, quant, pool, post_relu)

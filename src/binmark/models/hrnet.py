"""HRNet: the high-resolution network for pose (the real-valued base of BiHRNet).

Paper: Sun, Xiao, Liu & Wang, "Deep High-Resolution Representation Learning for Human Pose
Estimation", CVPR 2019. Topology of leoxiaobin/deep-high-resolution-net.pytorch
(``lib/models/pose_hrnet.py``, ``experiments/*/hrnet/w32_*.yaml``), re-implemented:

- stem: 3×3/2 conv 3→64 → BN → ReLU → 3×3/2 conv 64→64 → BN → ReLU (1/4 resolution);
- stage 1: 4 bottleneck blocks, 64 → 256;
- stages 2–4 (the tables below): 1, 4 and 3 modules of 2, 3 and 4 branches at widths
  [w, 2w, 4w, 8w] and resolutions 1/4 … 1/32, 4 BASIC blocks per branch; a transition adds each new
  branch with a 3×3/2 conv from the lowest-resolution one;
- fusion after every module: output i sums every branch j, through a 1×1 conv + BN + nearest
  upsampling (j lower resolution), the identity (j = i), or j − i chained 3×3/2 convs (j higher);
  then ReLU; the last module keeps only the highest-resolution output;
- head: 1×1 conv w → K at 1/4 resolution.

The builder functions of :class:`Layers` make the network's pieces; BiHRNet
(:mod:`binmark.models.bihrnet`) supplies binary ones for the same topology.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from binmark.models.registry import register_model
from binmark.models.inputs import check_images

torch.fx.wrap("check_images")
from binmark.quant import QuantConv2d, QuantSpec, as_spec, quantize

__all__ = ["STAGES", "Layers", "REAL", "HighResolutionModule", "HighResolutionNet", "hrnet"]

# Architecture as data: (modules, branches) of stages 2–4; 4 BASIC blocks per branch in every
# width (the official w18/w32/w48 YAMLs differ only in the channels).
STAGES = ((1, 2), (4, 3), (3, 4))
BLOCKS_PER_BRANCH = 4
STEM_CHANNELS = 64
STAGE1_BLOCKS = 4
STAGE1_PLANES = 64  # bottleneck width; its output is 4 × 64 = 256
WIDTHS = (18, 32, 48)


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """conv (no bias) → BN (→ ReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """3×3 conv → BN → ReLU → 3×3 conv → BN, plus the identity, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(channels, channels, 3)
        self.conv2 = conv_bn(channels, channels, 3, relu=False)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(x)
        y = self.conv2(y)
        return self.relu(y + x)


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 (×4 expansion), each conv → BN (→ ReLU), plus the (projected) identity."""

    expansion = 4

    def __init__(self, cin: int, planes: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = conv_bn(cin, planes, 1)
        self.conv2 = conv_bn(planes, planes, 3)
        self.conv3 = conv_bn(planes, cout, 1, relu=False)
        self.shortcut = nn.Identity() if cin == cout else conv_bn(cin, cout, 1, relu=False)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(x)
        y = self.conv2(y)
        y = self.conv3(y)
        return self.relu(y + self.shortcut(x))


@dataclass(frozen=True)
class Layers:
    """The network's pieces; each builder returns a module.

    Args:
        stem: () → (N, 3, H, W) to (N, 64, H/4, W/4).
        stage1: (cin, planes) → a stage-1 block producing 4·planes channels.
        block: (channels) → a BASIC-block replacement keeping channels and resolution.
        transition: (cin, cout, stride) → a branch-creating or width-changing conv unit.
        fuse_up: (c_low, c_high) → the conv applied before upsampling a lower-resolution branch.
        fuse_down: (cin, cout, last) → one 3×3/2 step of a downsampling fusion path.
        act: () → the activation after fusion sums.
    """

    stem: Callable[[], nn.Module]
    stage1: Callable[[int, int], nn.Module]
    block: Callable[[int], nn.Module]
    transition: Callable[[int, int, int], nn.Module]
    fuse_up: Callable[[int, int], nn.Module]
    fuse_down: Callable[[int, int, bool], nn.Module]
    act: Callable[[int], nn.Module]


REAL = Layers(
    stem=lambda: nn.Sequential(conv_bn(3, STEM_CHANNELS, 3, 2), conv_bn(STEM_CHANNELS, STEM_CHANNELS, 3, 2)),
    stage1=Bottleneck,
    block=BasicBlock,
    transition=lambda cin, cout, stride: conv_bn(cin, cout, 3, stride),
    fuse_up=lambda cj, ci: conv_bn(cj, ci, 1, relu=False),
    fuse_down=lambda cin, cout, last: conv_bn(cin, cout, 3, 2, relu=not last),
    act=lambda channels: nn.ReLU(),
)


class FusePath(nn.Module):
    """Branch j → resolution and width of branch i (see the module docstring)."""

    def __init__(self, channels: list[int], j: int, i: int, layers: Layers) -> None:
        super().__init__()
        self.scale = 2 ** (j - i) if j > i else 1
        if j > i:
            self.path: nn.Module = layers.fuse_up(channels[j], channels[i])
        elif j == i:
            self.path = nn.Identity()
        else:
            steps = [layers.fuse_down(channels[j], channels[j], False) for _ in range(i - j - 1)]
            steps.append(layers.fuse_down(channels[j], channels[i], True))
            self.path = nn.Sequential(*steps)

    def forward(self, x: Tensor) -> Tensor:
        y = self.path(x)
        return F.interpolate(y, scale_factor=self.scale, mode="nearest") if self.scale > 1 else y


class HighResolutionModule(nn.Module):
    """Parallel branches of blocks, then multi-resolution fusion.

    Args:
        channels: width of each branch, highest resolution first.
        layers: the pieces.
        multi_scale_output: fuse into every branch (False: only the highest resolution).
    """

    def __init__(self, channels: list[int], layers: Layers, multi_scale_output: bool = True) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(layers.block(c) for _ in range(BLOCKS_PER_BRANCH))) for c in channels
        )
        outputs = range(len(channels)) if multi_scale_output else range(1)
        self.fuse = nn.ModuleList(
            nn.ModuleList(FusePath(channels, j, i, layers) for j in range(len(channels))) for i in outputs
        )
        self.acts = nn.ModuleList(layers.act(channels[i]) for i in outputs)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for paths, act in zip(self.fuse, self.acts):
            total = paths[0](xs[0])
            for path, x in zip(paths[1:], xs[1:]):
                total = total + path(x)
            out.append(act(total))
        return out


class Transition(nn.Module):
    """Between stages: adapt existing branches where widths differ, add the new lowest branch."""

    def __init__(self, cin: list[int], cout: list[int], layers: Layers) -> None:
        super().__init__()
        self.keep = nn.ModuleList(
            layers.transition(cin[i], cout[i], 1) if cin[i] != cout[i] else nn.Identity() for i in range(len(cin))
        )
        self.new = layers.transition(cin[-1], cout[-1], 2)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        return [m(x) for m, x in zip(self.keep, xs)] + [self.new(xs[-1])]


class HighResolutionNet(nn.Module):
    """HRNet with the pieces of ``layers`` (see the module docstring).

    Args:
        num_keypoints: K.
        width: w of the highest-resolution branch (18, 32 or 48 in the official models).
        layers: the pieces (``REAL`` for HRNet).

    Shape:
        x: (N, 3, H, W), H and W divisible by 32 → a one-element list of (N, K, H/4, W/4).
    """

    def __init__(self, num_keypoints: int, width: int, layers: Layers) -> None:
        super().__init__()
        self.stem = layers.stem()
        stage1_out = STAGE1_PLANES * Bottleneck.expansion
        blocks = [layers.stage1(STEM_CHANNELS if i == 0 else stage1_out, STAGE1_PLANES) for i in range(STAGE1_BLOCKS)]
        self.stage1 = nn.Sequential(*blocks)
        channels = [stage1_out]
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        for index, (modules, branches) in enumerate(STAGES):
            target = [width * 2**b for b in range(branches)]
            self.transitions.append(Transition(channels, target, layers))
            last_stage = index == len(STAGES) - 1
            self.stages.append(nn.Sequential(*(
                HighResolutionModule(target, layers, multi_scale_output=not (last_stage and m == modules - 1))
                for m in range(modules)
            )))  # fmt: skip
            channels = target
        self.head = nn.Conv2d(width, num_keypoints, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """HRNet's initialisation (official ``init_weights``): conv weights N(0, 0.001²), conv
        biases 0, BN γ = 1 and β = 0. The default (Kaiming-uniform) start gives heatmaps with a
        std of ≈ 4 and did not learn the synthetic faces in 250 steps (NME stayed ≈ 65 %)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
                if isinstance(m, QuantConv2d):
                    m.reset_scales()
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        check_images(x, 32, "hrnet")
        xs = [self.stage1(self.stem(x))]
        for transition, stage in zip(self.transitions, self.stages):
            xs = stage(transition(xs))
        return [self.head(xs[0])]


def check_width(width: int, model: str) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"{model} option width must be a positive integer (official: 18, 32, 48), got {width!r}")


@register_model("hrnet")
def hrnet(num_keypoints: int, width: int = 32, quant: QuantSpec | str = "real") -> HighResolutionNet:
    """HRNet (Sun et al., CVPR 2019); see :class:`HighResolutionNet`.

    Args:
        num_keypoints: K.
        width: 18, 32 or 48 (any positive integer works).
        quant: applied to every conv but the first and the head (``binmark.quant.quantize``).
            HRNet feeds its convs ReLU outputs, so 1-bit activations are refused: use "bihrnet".
    """
    check_width(width, "hrnet")
    spec = as_spec(quant)
    if spec.act_bits == 1:
        raise ValueError(
            "hrnet feeds its convs ReLU outputs, where a sign is constant; for binary activations "
            "build 'bihrnet' (or give hrnet a quant with act_bits > 1)"
        )
    model = HighResolutionNet(num_keypoints, width, REAL)
    return model if spec.is_real else quantize(model, spec)

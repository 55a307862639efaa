"""Quantized densely connected U-Nets (CU-Net).

Paper: Tang, Peng, Geng, Wu, Zhang & Metaxas, "Quantized Densely Connected U-Nets for Efficient
Landmark Localization", ECCV 2018, arXiv 1808.02194. Topology from the official code
(zhiqiangdon/CU-Net ``models/cu_net.py``), re-implemented:

- stem: 7×7/2 conv 3→128 (no bias) → BN → ReLU → 2× max-pool (256² → 128 × 64²);
- N U-Nets, each 4 down blocks (then 2× max-pool), a neck block at 1/16 of the stem resolution, and
  4 up blocks (nearest 2× upsample, then a block reading [upsampled, skip]);
- a block at one position holds one **dense layer** per U-Net (BN-ReLU-1×1 c→128, BN-ReLU-3×3
  128→32) and one **adapter** per U-Net (BN-ReLU-1×1 → 128; up blocks read 256 and write 128;
  down blocks have a second adapter for the skip);
- **order-K** connectivity: U-Net i's dense layer at a position reads the block input and the
  32-channel outputs of the same position's dense layers of U-Nets i−1 … i−K (fewer at the start);
  its adapter reads those and its own output. Between U-Nets an adapter reads the previous U-Net's
  output and the inputs of the last K U-Nets (the stem output counts as the first);
- one BN-ReLU-1×1 head per supervised U-Net (the last is always supervised).

Quantization (``quant``, a ``QuantSpec``): as the official W/I/G code, the 3×3 dense convs and the
heads except the last are quantized; the stem conv, the last head and every 1×1 bottleneck and
adapter conv stay real (``quantize_1x1=True`` quantizes the 1×1 convs too). The input quantizer sits
after the ReLU (the code's ``QuanInput2d`` placement); with 1-bit activations the ReLU in front of
every sign is dropped (3×3 convs, heads, and with ``quantize_1x1`` the 1×1 convs) so the sign sees
BN's signed output.

Memory-efficient mode recomputes concatenation + BN + ReLU + 1×1 conv of every dense layer and
adapter in backward (activation checkpointing of that segment); BN running statistics are updated
once, so outputs, gradients and buffers equal the plain mode's.

Iterative refinement (``refine_iters`` > 1): the N U-Nets run again with the same weights, pass p+1
starting from pass p's final features (the paper's "iterative refinement"; its exact form was not
found in the paper's abstract or in the code). Each pass restarts the
order-K histories, so the weights see the same channel counts; every pass's supervised outputs are
returned, the final one last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from binmark.models.registry import register_model
from binmark.models.inputs import check_images

torch.fx.wrap("check_images")
from binmark.quant import QuantConv2d, QuantSpec, as_spec
from binmark.quant.saving import WindowMaxPool2d, rebuilt_saves, window_max_pool2d

__all__ = ["CUNet", "cunet", "supervision_anchors"]

# Architecture as data: the official code's constructor values (create_cu_net(neck_size=4,
# growth_rate=32, init_chan_num=128, ...)).
STEM = 128  # channels of the stem and of every block's main path
GROWTH = 32  # dense-layer output channels
BOTTLENECK = 4 * GROWTH  # dense-layer 1×1 bottleneck width (neck_size · growth)
LEVELS = 4  # down/up blocks per U-Net

#: a down block's skip output and the recipe that rebuilds it (for ``rebuilt_saves``)
Skip = tuple[Tensor, Callable[[], Tensor]]


def _repeat2(x: Tensor) -> Tensor:
    """``F.interpolate(x, scale_factor=2, mode="nearest")``'s values, (N, C, H, W) → (N, C, 2H, 2W),
    in one copy (backward's rebuild of an upsampled input)."""
    n, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


def _recomputed(fn: Callable[..., Tensor], features: Sequence[Tensor]) -> Tensor:
    """``fn(update_stats, *features)`` under activation checkpointing: run, then run again in
    backward; ``update_stats`` is True on the first run only (BN running statistics move once)."""
    calls = [0]

    def run(*fs: Tensor) -> Tensor:
        calls[0] += 1
        return fn(calls[0] == 1, *fs)

    return checkpoint(run, *features, use_reentrant=False)


class _NormReluConv(nn.Module):
    """BN → ReLU (optional) → conv over the concatenation of its inputs.

    In memory-efficient mode the whole segment is recomputed in backward; BN's running statistics
    are updated only by the first of the two runs.
    """

    def __init__(self, cin: int, cout: int, k: int, conv: type[nn.Conv2d] | partial, relu: bool, efficient: bool) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()  # on BN's output, which nothing else reads
        self.conv = conv(cin, cout, k, padding=k // 2, bias=False)
        self.efficient = efficient

    def normalize(self, update_stats: bool, features: Sequence[Tensor]) -> Tensor:
        """ReLU(BN(concatenation of ``features``)), the conv's input; with ``update_stats`` False
        (the recomputation) BN's running statistics go to copies."""
        x = torch.cat(list(features), 1) if len(features) > 1 else features[0]
        bn = self.norm
        use_batch = bn.training
        mean, var = bn.running_mean, bn.running_var
        if use_batch and not update_stats:
            mean, var = mean.clone(), var.clone()
        x = F.batch_norm(x, mean, var, bn.weight, bn.bias, use_batch, bn.momentum or 0.1, bn.eps)
        if update_stats and use_batch:
            bn.num_batches_tracked.add_(1)
        return self.relu(x)

    def recomputes(self, features: Sequence[Tensor]) -> bool:
        """Whether this call is checkpointed (memory-efficient mode, training with gradients)."""
        return self.efficient and self.training and torch.is_grad_enabled() and any(f.requires_grad for f in features)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        if self.recomputes(features):
            return _recomputed(lambda update, *fs: self.conv(self.normalize(update, fs)), features)
        return self.conv(self.normalize(True, features))

    def rebuild(self, features: Sequence[Tensor]) -> Tensor:
        """The output again, for a rebuilt save (:func:`~binmark.quant.saving.rebuilt_saves`):
        the same operations, BN's running statistics left alone."""
        return self.conv(self.normalize(False, features))


class DenseLayer(nn.Module):
    """BN-ReLU-1×1 (c → 128) then BN-ReLU-3×3 (128 → 32); a ReLU is left out before a sign.

    In memory-efficient mode, when the 3×3 conv keeps only bits or bytes of its input
    (:meth:`QuantConv2d.keeps_input_packed`), the recomputed segment runs on through the second
    BN (and ReLU), so the 128-channel float tensor between the two convs is not kept either.
    """

    def __init__(
        self, cin: int, conv3: type[nn.Conv2d] | partial, conv1: type[nn.Conv2d] | partial,
        relu3: bool, relu1: bool, efficient: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.bottleneck = _NormReluConv(cin, BOTTLENECK, 1, conv1, relu1, efficient)
        self.conv = _NormReluConv(BOTTLENECK, GROWTH, 3, conv3, relu3, False)

    def _normalized_bottleneck(self, update_stats: bool, *features: Tensor) -> Tensor:
        bottleneck = self.bottleneck.conv(self.bottleneck.normalize(update_stats, features))
        return self.conv.normalize(update_stats, [bottleneck])

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        conv = self.conv.conv
        if isinstance(conv, QuantConv2d) and conv.keeps_input_packed() and self.bottleneck.recomputes(features):
            return conv(_recomputed(self._normalized_bottleneck, features))
        return self.conv([self.bottleneck(features)])


def _fan_in(i: int, order: int) -> int:
    """How many previous U-Nets feed U-Net i at a position (order-K connectivity)."""
    return min(i, order)


class DenseBlock(nn.Module):
    """One block position: a dense layer and adapter(s) per U-Net (see the module docstring)."""

    def __init__(self, cin: int, cout: int, n: int, order: int, skip: bool, layer: dict) -> None:
        super().__init__()
        conv3, conv1, relu3, relu1, eff = (layer[k] for k in ("conv3", "conv1", "relu3", "relu1", "efficient"))
        self.layers = nn.ModuleList(
            DenseLayer(cin + _fan_in(i, order) * GROWTH, conv3, conv1, relu3, relu1, eff) for i in range(n)
        )
        ins = [cin + (_fan_in(i, order) + 1) * GROWTH for i in range(n)]
        self.ahead = nn.ModuleList(_NormReluConv(c, cout, 1, conv1, relu1, eff) for c in ins)
        self.skip = nn.ModuleList(_NormReluConv(c, cout, 1, conv1, relu1, eff) for c in ins) if skip else None
        self.order = order

    def forward(self, x: list[Tensor], i: int, history: list[Tensor]) -> tuple[Tensor, Skip | None]:
        """U-Net i at this position: its output, and its skip output with the recipe that rebuilds
        it from the block's features (kept for backward anyway); ``history`` (≤ K previous dense
        outputs) is updated in place."""
        features = x + history
        new = self.layers[i](features)
        if self.order:
            history.append(new)
            del history[: max(len(history) - self.order, 0)]
        features = features + [new]
        if self.skip is None:
            return self.ahead[i](features), None
        skip = self.skip[i]
        return self.ahead[i](features), (skip(features), partial(skip.rebuild, features))


class CUNet(nn.Module):
    """CU-Net (see the module docstring).

    Args:
        num_keypoints: K heatmaps.
        num_unets: N.
        order: K of order-K connectivity (0 ≤ order < N).
        supervised: 0-based indices of the supervised U-Nets (the last must be included).
        spec: the quantization of the quantized layers.
        quantize_1x1: also quantize the 1×1 bottleneck and adapter convs.
        memory_efficient: recompute concatenation + BN + ReLU + 1×1 in backward.
        refine_iters: passes of the N U-Nets with shared weights.

    Shape:
        x: (N, 3, H, W), H and W divisible by 64 → a list of (N, K, H/4, W/4), final last.
    """

    def __init__(
        self, num_keypoints: int, num_unets: int, order: int, supervised: Sequence[int], spec: QuantSpec,
        quantize_1x1: bool, memory_efficient: bool, refine_iters: int,
    ) -> None:  # fmt: skip
        super().__init__()
        real = nn.Conv2d
        quant = real if spec.is_real else partial(QuantConv2d, spec=spec)
        signs = spec.act_bits == 1  # a sign must see BN's signed output, not a ReLU's
        layer = {
            "conv3": quant, "conv1": quant if quantize_1x1 else real,
            "relu3": not signs, "relu1": not (signs and quantize_1x1), "efficient": memory_efficient,
        }  # fmt: skip
        self.num_unets, self.order, self.refine_iters = num_unets, order, refine_iters
        self.supervised = list(supervised)
        self.stem = nn.Sequential(
            nn.Conv2d(3, STEM, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(STEM), WindowMaxPool2d(relu=True)
        )
        self.down = nn.ModuleList(DenseBlock(STEM, STEM, num_unets, order, True, layer) for _ in range(LEVELS))
        self.neck = DenseBlock(STEM, STEM, num_unets, order, False, layer)
        self.up = nn.ModuleList(DenseBlock(2 * STEM, STEM, num_unets, order, False, layer) for _ in range(LEVELS))
        self.bridges = nn.ModuleList(
            _NormReluConv(STEM * (1 + min(i, order)), STEM, 1, layer["conv1"], layer["relu1"], memory_efficient)
            for i in range(1, num_unets)
        )  # U-Net i ≥ 1 reads the previous output and the inputs of the last K U-Nets
        last = self.supervised[-1]
        self.heads = nn.ModuleDict({
            str(i): _NormReluConv(STEM, num_keypoints, 1, real if i == last else quant, layer["relu3"] or i == last, False)
            for i in self.supervised
        })  # fmt: skip

    def _unet(self, x: Tensor, i: int, histories: list[list[Tensor]]) -> Tensor:
        skips: list[Skip] = []
        for level, block in enumerate(self.down):
            x, skip = block([x], i, histories[level])
            skips.append(skip)  # type: ignore[arg-type]
            x = window_max_pool2d(x)
        x, _ = self.neck([x], i, histories[LEVELS])
        for level in reversed(range(LEVELS)):
            low = x
            x = F.interpolate(low, scale_factor=2, mode="nearest")
            # the up block's recomputation rebuilds its inputs (from `low` and the down block's features)
            with rebuilt_saves([(x, partial(_repeat2, low)), skips[level]]):
                x, _ = self.up[level]([x, skips[level][0]], i, histories[LEVELS + 1 + level])
        return x

    def _pass(self, x: Tensor, outputs: list[Tensor]) -> Tensor:
        histories: list[list[Tensor]] = [[] for _ in range(2 * LEVELS + 1)]
        inputs = [x] if self.order else []
        for i in range(self.num_unets):
            if i > 0:
                x = self.bridges[i - 1]([x] + inputs)
                if self.order:
                    inputs.append(x)
                    del inputs[: max(len(inputs) - self.order, 0)]
            x = self._unet(x, i, histories)
            if str(i) in self.heads:
                outputs.append(self.heads[str(i)]([x]))
        return x

    def forward(self, x: Tensor) -> list[Tensor]:
        check_images(x, 64, "cunet")
        conv, norm, pool = self.stem
        y = conv(x)
        with rebuilt_saves([(y, partial(conv, x))]):  # BN's input is rebuilt from the image in backward
            x = pool(norm(y))
        outputs: list[Tensor] = []
        for _ in range(self.refine_iters):
            x = self._pass(x, outputs)
        return outputs


def supervision_anchors(num_unets: int, supervise: int) -> list[int]:
    """0-based supervised U-Nets for ``supervise`` losses: round(N/supervise · j) − 1, j = 1…
    (the official code's ``loss_anchors``); the last U-Net is always among them."""
    if not 1 <= supervise <= num_unets:
        raise ValueError(f"cunet option supervise must be in 1..num_unets={num_unets}, got {supervise}")
    return sorted({int(round(num_unets / supervise * (j + 1))) - 1 for j in range(supervise)})


def _init_like_official(model: nn.Module) -> None:
    """Conv weights U(−1/√n, 1/√n), n = k·k·c_in; BN γ ~ U(0, 1), β = 0 (the official code)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            bound = 1.0 / (m.kernel_size[0] * m.kernel_size[1] * m.in_channels) ** 0.5
            nn.init.uniform_(m.weight, -bound, bound)
            if isinstance(m, QuantConv2d):
                m.reset_scales()
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.0, 1.0)
            nn.init.zeros_(m.bias)


@register_model("cunet")
def cunet(
    num_keypoints: int,
    num_unets: int = 8,
    order: int = 1,
    memory_efficient: bool = True,
    refine_iters: int = 1,
    quant: QuantSpec | str = "real",
    supervise: int | None = None,
    quantize_1x1: bool = False,
) -> CUNet:
    """CU-Net (Tang et al., ECCV 2018); see :class:`CUNet` and the module docstring.

    Args:
        num_keypoints: K.
        num_unets: N stacked U-Nets.
        order: order-K connectivity, 0 ≤ order < num_unets.
        memory_efficient: recompute concatenation + BN + ReLU + 1×1 in backward.
        refine_iters: passes over the U-Nets with shared weights (iterative refinement).
        quant: preset or ``QuantSpec`` ("cunet_w1a8g8" is the official code's default).
        supervise: number of supervised U-Nets (default: all, as the official training scripts).
        quantize_1x1: quantize the 1×1 convs too (the official code keeps them real).
    """
    for name, value, low in (("num_unets", num_unets, 1), ("order", order, 0), ("refine_iters", refine_iters, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"cunet option {name} must be an integer >= {low}, got {value!r}")
    if order >= num_unets and num_unets > 1:
        raise ValueError(f"cunet option order must be smaller than num_unets ({num_unets}), got {order}")
    anchors = supervision_anchors(num_unets, supervise if supervise is not None else num_unets)
    model = CUNet(num_keypoints, num_unets, order, anchors, as_spec(quant), quantize_1x1, memory_efficient, refine_iters)
    _init_like_official(model)
    return model

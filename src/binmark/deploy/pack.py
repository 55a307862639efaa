"""``pack(model)``: a quantized model rewritten for inference, with its foldable parts folded.

What is folded (each rule is exact algebra; ``tests/deploy`` checks the packed model against
``model.eval()``). A block says which algebra its forward follows by a class attribute,
``fold_pattern``; the patterns, and the child attributes (``bn``, ``act``, ``conv``, ``convs``) each
one reads, are documented in :mod:`binmark.models.folding`. This module keys its rules on those
names only and imports no model family (only the declaration's names, ``binmark.models.folding``):

- ``"pre_act"``: a BatchNorm that feeds a binary conv's sign (the hourglass family's
  ``PreActConv``) folds into the per-channel thresholds at which inputs are packed to bits;
- ``"conv_bn"``: a BatchNorm after a binary conv (BiHRNet's ``BinaryUnit``, ``BinaryConvBN``)
  folds into the conv's output scale and bias, with XNOR's α and the conv bias;
- ``"branches_bn"``: a BatchNorm after concatenated parallel binary convs (BiHRNet's MS-Block):
  each conv takes its slice of the BN, as in ``"conv_bn"``;
- every 1-bit × 1-bit conv becomes a :class:`~binmark.deploy.layers.PackedBinaryConv2d`; every other
  quantized conv a :class:`~binmark.deploy.layers.PackedQuantConv2d` with k-bit codes; real-valued
  layers stay as they are.

A block declaring a pattern this module does not know is refused (``ValueError`` naming the class
and the known patterns). The rewrite depends only on the modules' types and declarations, never on
their values, so a loader rebuilds the same structure from the architecture record and fills it
from the file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from torch import nn

from binmark.deploy.layers import PackedBinaryConv2d, PackedQuantConv2d, is_binary_conv
from binmark.models.folding import FOLD_ATTR
from binmark.quant import QuantConv2d

__all__ = ["rewrite", "layer_records", "fold_rule"]


def _bn(m: nn.Module) -> nn.BatchNorm2d | None:
    return m if isinstance(m, nn.BatchNorm2d) else None


def _fold_pre_act(unit: Any, values: bool) -> None:
    """bn → (identity) → binary conv: the BN moves into the conv's input thresholds."""
    bn = _bn(unit.bn)
    if bn is None or not is_binary_conv(unit.conv) or not isinstance(unit.act, nn.Identity):
        return
    unit.conv = PackedBinaryConv2d.from_conv(unit.conv, pre_bn=bn, values=values)  # type: ignore[arg-type]
    unit.bn = nn.Identity()  # type: ignore[assignment]


def _fold_conv_bn(unit: Any, values: bool) -> None:
    """binary conv → bn: the BN moves into the conv's output scale and bias."""
    bn = _bn(unit.bn)
    if bn is None or not is_binary_conv(unit.conv):
        return
    unit.conv = PackedBinaryConv2d.from_conv(unit.conv, post_bn=bn, values=values)  # type: ignore[arg-type]
    unit.bn = nn.Identity()


def _fold_branches_bn(unit: Any, values: bool) -> None:
    """parallel binary convs → concat → bn: each branch takes its slice of the BN."""
    bn = _bn(unit.bn)
    if bn is None or not all(is_binary_conv(c) for c in unit.convs):
        return
    start, packed = 0, []
    for conv in unit.convs:
        part = nn.BatchNorm2d(conv.out_channels, eps=bn.eps)
        stop = start + conv.out_channels
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(part, name).data.copy_(getattr(bn, name).data[start:stop])
        packed.append(PackedBinaryConv2d.from_conv(conv, post_bn=part.eval(), values=values))  # type: ignore[arg-type]
        start = stop
    unit.convs = nn.ModuleList(packed)
    unit.bn = nn.Identity()  # type: ignore[assignment]


#: Fold rules by the pattern a block declares in ``fold_pattern`` (see binmark.models.folding).
_RULES: dict[str, Callable[[Any, bool], None]] = {
    "pre_act": _fold_pre_act,
    "conv_bn": _fold_conv_bn,
    "branches_bn": _fold_branches_bn,
}


def fold_rule(module: nn.Module) -> Callable[[Any, bool], None] | None:
    """The fold rule ``module``'s class declares, or None when it declares none.

    Raises:
        ValueError: the class declares a pattern that is not one of :data:`_RULES`'s.
    """
    pattern = getattr(type(module), FOLD_ATTR, None)
    if pattern is None:
        return None
    rule = _RULES.get(pattern) if isinstance(pattern, str) else None
    if rule is None:
        cls = type(module)
        raise ValueError(
            f"{cls.__module__}.{cls.__qualname__} declares {FOLD_ATTR}={pattern!r}, which binmark.deploy.pack "
            f"does not know; known fold patterns: {', '.join(_RULES)} (see binmark.models.folding)"
        )
    return rule


def rewrite(model: nn.Module, values: bool = True) -> nn.Module:
    """A rewritten copy of ``model`` (eval mode) with packed layers (see the module docstring).

    Args:
        values: False builds the structure only, with empty packed layers (for loading a file).

    Raises:
        ValueError: a block declares an unknown fold pattern (see :func:`fold_rule`).
    """
    net = copy.deepcopy(model).eval()
    for module in list(net.modules()):
        rule = fold_rule(module)
        if rule is not None:
            rule(module, values)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if is_binary_conv(child):
                setattr(parent, name, PackedBinaryConv2d.from_conv(child, values=values))  # type: ignore[arg-type]
            elif isinstance(child, QuantConv2d) and not child.spec.is_real:
                setattr(parent, name, PackedQuantConv2d(child, values=values))
    return net


def layer_records(net: nn.Module) -> list[dict[str, Any]]:
    """One JSON-able record per packed layer of a rewritten model (the runtime graph's layers)."""
    records = []
    for name, m in net.named_modules():
        if isinstance(m, PackedBinaryConv2d):
            records.append({
                "name": name, "kind": "binary_conv", "in": m.in_channels, "out": m.out_channels,
                "kernel": list(m.kernel_size), "stride": list(m.stride), "padding": list(m.padding),
                "dilation": list(m.dilation), "weight_bits": 1, "act_bits": 1,
            })  # fmt: skip
        elif isinstance(m, PackedQuantConv2d):
            records.append({
                "name": name, "kind": "kbit_conv", "weight": list(m.weight_shape), "weight_bits": m.bits,
                "stride": list(m.stride), "padding": list(m.padding), "dilation": list(m.dilation), "groups": m.groups,
            })  # fmt: skip
    return records

"""``quantize(model, spec)``: swap a model's convolutions for ``QuantConv2d`` in place.

Which layers: every ``nn.Conv2d`` (``QuantConv2d`` included, so a quantized model can move to a
new spec, as multi-stage recipes do) except those named in ``skip``. ``"first"`` and ``"last"``
are the first and last ``nn.Conv2d`` in module registration order, the rule of the bnn library's
``_first_`` / ``_last_`` and of the CU-Net code (its stem conv and last head stay real).

Pitfall: with 1-bit activations the sign must see a signed input. A ReLU in front of a binarized
conv gives sign(ReLU(x)) = +1 everywhere. binmark's own models put BN (not ReLU) in front of their
binary convolutions when built with a binary ``quant``; a foreign model may need the same change.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from binmark.quant.conv import QuantConv2d
from binmark.quant.spec import QuantSpec, as_spec

__all__ = ["quantize", "conv_names"]


def conv_names(model: nn.Module) -> list[str]:
    """Names of the model's ``nn.Conv2d`` modules, in registration order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _resolve_skip(names: list[str], skip: Iterable[str]) -> set[str]:
    resolved: set[str] = set()
    for entry in skip:
        if entry == "first":
            resolved.update(names[:1])
        elif entry == "last":
            resolved.update(names[-1:])
        elif entry in names:
            resolved.add(entry)
        else:
            shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
            raise ValueError(
                f"quantize: skip entry {entry!r} is neither 'first', 'last' nor the name of a "
                f"Conv2d in the model (its Conv2d names: {shown or 'none'})"
            )
    return resolved


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def quantize(
    model: nn.Module,
    spec: QuantSpec | str,
    skip: Iterable[str] = ("first", "last"),
) -> nn.Module:
    """Replace every eligible ``nn.Conv2d`` by a ``QuantConv2d`` that carries its trained weights.

    Args:
        model: any module; changed in place.
        spec: a ``QuantSpec`` or a preset name.
        skip: "first", "last" and/or module names (as in ``named_modules``) to keep as they are.

    Returns:
        ``model`` (or the new layer when ``model`` is itself a convolution that is not skipped).

    Raises:
        ValueError: a ``skip`` entry names no convolution of the model.
    """
    spec = as_spec(spec)
    names = conv_names(model)
    keep = _resolve_skip(names, skip)
    for name in names:
        if name in keep:
            continue
        new = QuantConv2d.from_conv(model.get_submodule(name), spec)  # type: ignore[arg-type]
        if name == "":
            return new
        _set_submodule(model, name, new)
    return model

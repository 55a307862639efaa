"""The model registry: ``build(name, num_keypoints, **options)`` and ``names()``.

A model family registers one entrypoint with ``@register_model("name")``; the entrypoint's
keyword arguments *are* the family's options, so ``build`` can reject an unknown or misspelled
option by name and the command line can offer exactly those options.

:class:`Architecture` is the one record of what was built — name, K and options, the ``quant``
option as a ``QuantSpec`` dict — that training checkpoints, packed ``.bmk`` files and ``pack``
store and rebuild from (plain JSON, no pickled code).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.modules import module as _module

from binmark._registry import Registry

__all__ = ["MODELS", "register_model", "names", "options", "build", "Architecture", "ARCH_ATTR"]

#: Attribute under which ``build`` records a model's :class:`Architecture`: what a packed file or
#: a checkpoint needs to rebuild the same network without pickled code.
ARCH_ATTR = "binmark_arch"

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model entrypoint ``fn(num_keypoints, **options) -> nn.Module`` under ``name``."""
    return MODELS.register(name)


def names() -> list[str]:
    """Registered model names."""
    return MODELS.names()


def options(name: str) -> dict[str, inspect.Parameter]:
    """The options of model ``name`` (its entrypoint's keyword parameters, with defaults)."""
    params = inspect.signature(MODELS.get(name)).parameters
    return {k: p for k, p in params.items() if k != "num_keypoints"}


def build(name: str, num_keypoints: int, **opts: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`names` ("hourglass", …).
        num_keypoints: K, the number of heatmaps the model predicts.
        **opts: the family's options (see :func:`options`), e.g. ``stacks=2, quant="bulat17"``.

    Returns:
        An ``nn.Module`` whose forward maps (N, 3, H, W) images to a list of (N, K, H/4, W/4)
        heatmaps, final prediction last.

    Raises:
        ValueError: unknown model name, unknown option, or a bad option value.
    """
    valid = options(name)
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid)}"
        )
    if isinstance(num_keypoints, bool) or not isinstance(num_keypoints, int) or num_keypoints < 1:
        raise ValueError(f"num_keypoints must be a positive integer, got {num_keypoints!r}")
    model = MODELS.get(name)(num_keypoints, **opts)
    plain = {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in opts.items()}
    if "quant" in opts:  # a preset name resolved: the record keeps working if a preset changes
        from binmark.quant import as_spec

        plain["quant"] = as_spec(opts["quant"]).to_dict()
    object.__setattr__(model, ARCH_ATTR, Architecture(name, num_keypoints, plain))
    return model


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value is of an option's annotated type (ints are not bools, floats finite)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if isinstance(hint, type) and hasattr(hint, "from_dict"):  # QuantSpec: a preset name or its dict
        return isinstance(value, dict)
    return True


@contextlib.contextmanager
def _bounded(max_tensors: int, max_elements: int) -> Iterator[list[int]]:
    """Count every parameter and buffer registered inside the block; ValueError past a bound."""
    count = [0, 0]

    def seen(module: nn.Module, name: str, tensor: Any) -> None:
        if tensor is None:
            return
        count[0] += 1
        count[1] += tensor.numel()
        if count[0] > max_tensors or count[1] > max_elements:
            raise ValueError(f"the network needs more than {max_tensors:,} tensors or {max_elements:,} values")

    hooks = [_module.register_module_parameter_registration_hook(seen), _module.register_module_buffer_registration_hook(seen)]
    try:
        yield count
    finally:
        for h in hooks:
            h.remove()


def _check(arch: dict[str, Any], where: str) -> None:
    """An architecture dict's structure and every option's type, before anything is built."""
    if not isinstance(arch, dict) or set(arch) - {"name", "num_keypoints", "options"} or not {"name", "num_keypoints"} <= set(arch):
        raise ValueError(f"{where}: expected an object with 'name', 'num_keypoints' and 'options', got {str(arch)[:120]}")
    name, k, opts = arch["name"], arch["num_keypoints"], arch.get("options", {})
    if not isinstance(name, str) or name not in MODELS.names():
        raise ValueError(f"{where}: field 'name' = {name!r} is not a registered model ({', '.join(names())})")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 10_000:
        raise ValueError(f"{where}: field 'num_keypoints' = {k!r} must be an integer in [1, 10000]")
    if not isinstance(opts, dict):
        raise ValueError(f"{where}: field 'options' must be an object, got {opts!r}")
    hints = typing.get_type_hints(MODELS.get(name))
    valid = options(name)
    for key, value in opts.items():
        if key not in valid:
            raise ValueError(f"{where}: model {name!r} has no option {key!r} (valid: {', '.join(valid)})")
        if key in hints and not _fits(value, hints[key]):
            raise ValueError(f"{where}: option '{key}' = {value!r} is not a valid {getattr(hints[key], '__name__', hints[key])}")


@dataclass(frozen=True)
class Architecture:
    """What rebuilds a network: a registered model ``name``, ``num_keypoints`` K and its
    ``options`` as JSON data (the ``quant`` option, where given, as a preset name or a
    ``QuantSpec.to_dict()`` dict).

    :meth:`from_dict` reads both shapes binmark has written: ``{"name", "num_keypoints",
    "options"}`` (``.bmk`` files, and checkpoints from this version on) and the older checkpoints'
    ``{"name", "num_keypoints", "options", "quant"}`` with the quant spec beside the options.
    """

    name: str
    num_keypoints: int
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (a deep copy: editing it never edits the record)."""
        return {"name": self.name, "num_keypoints": self.num_keypoints, "options": copy.deepcopy(self.options)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "architecture") -> Architecture:
        """The record of a dict of either shape (see the class docstring), checked: the model is
        registered, K is an integer in [1, 10000], every option exists and has its type.

        Raises:
            ValueError: naming ``where`` and the field.
        """
        if isinstance(d, dict) and "quant" in d:  # checkpoints before the one record: quant beside the options
            if isinstance(d.get("options"), dict) and "quant" in d["options"]:
                raise ValueError(f"{where}: 'quant' is given both beside and inside 'options'")
            d = {**{k: v for k, v in d.items() if k != "quant"}, "options": {**d.get("options", {}), "quant": d["quant"]}}
        _check(d, where)
        return cls(d["name"], d["num_keypoints"], copy.deepcopy(d.get("options", {})))

    def build(self) -> nn.Module:
        """The network this record describes (freshly initialized)."""
        from binmark.quant import as_spec

        opts = dict(self.options)
        if "quant" in opts:
            opts["quant"] = as_spec(opts["quant"])
        return build(self.name, self.num_keypoints, **opts)

    def dry_build(
        self, input_size: tuple[int, int] | None = None, max_tensors: int | None = None, max_elements: int | None = None
    ) -> tuple[int, ...] | None:
        """Build on PyTorch's meta device (no memory, no arithmetic), stopping as soon as the
        network registers more than ``max_tensors`` tensors or ``max_elements`` values; then,
        given ``input_size`` (w, h) pixels, run it on a meta (1, 3, h, w) input.

        Returns:
            the final output's shape (1, K, h', w'), or None without ``input_size``.

        Raises:
            ValueError: the network is over a bound, or cannot be built or run at that size.
        """
        bound = _bounded(max_tensors or 2**62, max_elements or 2**62)
        try:
            with torch.device("meta"), bound:
                model = self.build()
                if input_size is None:
                    return None
                with torch.no_grad():
                    return tuple(model.eval()(torch.empty(1, 3, input_size[1], input_size[0]))[-1].shape)
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 — an entrypoint's own failure on odd options
            raise ValueError(f"cannot build {self.name!r} with options {self.options}: {type(exc).__name__}: {str(exc)[:200]}") from None

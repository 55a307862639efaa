"""The model registry: ``build(name, num_keypoints, **options)`` and ``names()``.

A model family registers one entrypoint with ``@register_model("name")``; the entrypoint's
keyword arguments *are* the family's options, so ``build`` can reject an unknown or misspelled
option by name and the command line can offer exactly those options.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from binmark._registry import Registry

__all__ = ["MODELS", "register_model", "names", "options", "build", "build_from_arch", "ARCH_ATTR"]

#: Attribute under which ``build`` records a model's architecture (name, K, options): what a
#: packed file or a checkpoint needs to rebuild the same network without pickled code.
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
    object.__setattr__(model, ARCH_ATTR, {"name": name, "num_keypoints": num_keypoints, "options": plain})
    return model


def build_from_arch(arch: dict[str, Any]) -> nn.Module:
    """Build the model an architecture record (``model.binmark_arch``) describes.

    Args:
        arch: ``{"name": str, "num_keypoints": int, "options": dict}``; a ``quant`` option may be
            a preset name or a ``QuantSpec.to_dict()`` dict.
    """
    from binmark.quant import as_spec

    opts = dict(arch["options"])
    if "quant" in opts:
        opts["quant"] = as_spec(opts["quant"])
    return build(arch["name"], int(arch["num_keypoints"]), **opts)

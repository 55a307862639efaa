"""binmark: landmark localization with binarized and low-bit neural networks.

Subpackages load on first use (``binmark.quant``, ``binmark.models``, ``binmark.data``, …), so that ``import binmark``
and ``binmark --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("quant", "models", "data", "heatmaps", "metrics", "losses", "topdown", "evaluate", "inference", "deploy", "plots")
_NAMES = {"Localizer": "binmark.inference"}  # public names re-exported at the top level

__all__ = ["__version__", *_SUBMODULES, *_NAMES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"binmark.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'binmark' has no attribute {name!r}")

"""Deployment: bit-packed model files and a CPU runtime for them.

- :func:`pack` rewrites a quantized model for inference (folds BatchNorms, bit-packs weights) and
  returns a :class:`PackedModel`; ``PackedModel.save(path)`` writes one ``.bmk`` file.
- :func:`load` reads a file back without executing code; ``packed(x)`` returns what
  ``model.eval()(x)`` returns, up to float rounding.
- A packed model runs in the fused engine where its network allows (``plan.py``: the network
  lowered to a static plan; ``engine.py``: compiled for this CPU's kernels and run in one C
  call), module by module elsewhere; ``PackedModel.precision`` sets the real-valued layers'
  arithmetic ("exact", "fast", "bf16") and ``PackedModel.why_modules`` says why a model does not
  run fused.
- :func:`backends` lists the module path's binary-convolution backends available here, fastest
  first.
"""

from binmark.deploy.fileformat import DEFAULT_PRECISION, FORMAT_VERSION, RUNTIMES, PackedFileError, PackedModel, load, pack
from binmark.deploy.layers import PackedBinaryConv2d, PackedQuantConv2d, backends, choices

__all__ = [
    "DEFAULT_PRECISION",
    "FORMAT_VERSION",
    "RUNTIMES",
    "PackedBinaryConv2d",
    "PackedFileError",
    "PackedModel",
    "PackedQuantConv2d",
    "backends",
    "choices",
    "load",
    "pack",
]

"""Deployment: bit-packed model files and a CPU runtime with XNOR-popcount kernels.

- :func:`pack` rewrites a quantized model for inference (folds BatchNorms, bit-packs weights) and
  returns a :class:`PackedModel`; ``PackedModel.save(path)`` writes one ``.bmk`` file.
- :func:`load` reads a file back without executing code; ``packed(x)`` returns what
  ``model.eval()(x)`` returns, up to float rounding.
- :func:`backends` lists the binary-convolution backends available here, fastest first.
"""

from binmark.deploy.fileformat import FORMAT_VERSION, PackedFileError, PackedModel, load, pack
from binmark.deploy.layers import PackedBinaryConv2d, PackedQuantConv2d, backends, choices

__all__ = [
    "FORMAT_VERSION",
    "PackedBinaryConv2d",
    "PackedFileError",
    "PackedModel",
    "PackedQuantConv2d",
    "backends",
    "choices",
    "load",
    "pack",
]

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
- :func:`to_openvino` writes a packed model as an OpenVINO IR whose 1-bit convolutions are
  OpenVINO ``BinaryConvolution`` layers (checked against the packed runtime first);
  :func:`load_openvino` runs one (``binmark.deploy.openvino_ir``; needs ``openvino``).
"""

from binmark.deploy.fileformat import DEFAULT_PRECISION, FORMAT_VERSION, RUNTIMES, PackedFileError, PackedModel, load, pack
from binmark.deploy.layers import PackedBinaryConv2d, PackedQuantConv2d, backends, choices
from binmark.deploy.openvino_ir import OpenVINOModel, load_openvino, to_openvino

__all__ = [
    "DEFAULT_PRECISION",
    "FORMAT_VERSION",
    "OpenVINOModel",
    "RUNTIMES",
    "PackedBinaryConv2d",
    "PackedFileError",
    "PackedModel",
    "PackedQuantConv2d",
    "backends",
    "choices",
    "load",
    "load_openvino",
    "pack",
    "to_openvino",
]

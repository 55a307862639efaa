"""Model families, built by name: ``build(name, num_keypoints, **options)`` and ``names()``.

Every model maps (N, 3, H, W) images to a **list** of (N, K, H/4, W/4) heatmaps, one per
supervised output, the final prediction last. Models take tensors, never datasets.
"""

from binmark.models import bihrnet as _bihrnet  # noqa: F401  (registers "bihrnet")
from binmark.models import cunet as _cunet  # noqa: F401  (registers "cunet")
from binmark.models import hourglass as _hourglass  # noqa: F401  (registers "hourglass")
from binmark.models import hrnet as _hrnet  # noqa: F401  (registers "hrnet")
from binmark.models.blocks import BLOCKS, BlockLayers
from binmark.models.cunet import CUNet
from binmark.models.hourglass import StackedHourglass
from binmark.models.registry import ARCH_ATTR, MODELS, Architecture, build, names, options, register_model

__all__ = [
    "ARCH_ATTR",
    "Architecture",
    "BLOCKS",
    "BlockLayers",
    "CUNet",
    "MODELS",
    "StackedHourglass",
    "build",
    "names",
    "options",
    "register_model",
]

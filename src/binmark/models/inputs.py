"""Input validation shared by the model families.

``check_images`` is registered with ``torch.fx.wrap`` by each model module, so FX tracing (used by
PyTorch's static int8 quantization in ``binmark bench``) records it as a call instead of failing
on its data-dependent branch.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["check_images"]


def check_images(x: Tensor, multiple: int, model: str) -> None:
    """Raise ValueError unless ``x`` is (N, 3, H, W) with H and W divisible by ``multiple``."""
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % multiple or x.shape[3] % multiple:
        raise ValueError(
            f"{model} takes (N, 3, H, W) images with H and W divisible by {multiple}; got shape {tuple(x.shape)}"
        )

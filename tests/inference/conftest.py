"""Inference test helpers: a "dot finder" network whose answer is known, and a tiny checkpoint.

``DotNet`` outputs, as its single heatmap, the crop's brightness above mid-grey at full input
resolution; an image with one bright dot therefore has a known landmark, and the Localizer must
return the dot's image position whatever the box, batch, file type or orientation.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from binmark.data.skeletons import Skeleton
from binmark.inference import InferenceSpec
from binmark.train.checkpoint import save_checkpoint
from binmark.train.config import config_to_dict, load_config

DOT = Skeleton("dot", ("dot",), normalizer="none")
SPEC = InferenceSpec(DOT, input_size=64, heatmap_size=64, sigma=1.5, decode="dark", padding=1.25)


class DotNet(nn.Module):
    """(N, 3, H, W) normalized crops → [(N, 1, H, W)]: the brightness above the dark background,
    blurred by a Gaussian of σ = 1.5 px (so the DARK decoder locates its centre to sub-pixel)."""

    def __init__(self) -> None:
        super().__init__()
        t = torch.arange(-5, 6, dtype=torch.float32)
        g = torch.exp(-(t**2) / (2 * 1.5**2))
        self.register_buffer("kernel", (g[:, None] * g[None, :] / g.sum() ** 2)[None, None])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        bright = torch.relu(x.mean(dim=1, keepdim=True) + 1.4)
        return [torch.nn.functional.conv2d(bright, self.kernel, padding=5) + 1e-6]


def dot_image(xy: tuple[float, float], size: tuple[int, int] = (120, 160), radius: int = 3) -> np.ndarray:
    """(H, W, 3) uint8 dark image with one white dot (antialiased) centred on pixel ``xy``."""
    h, w = size
    img = np.full((h, w, 3), 30, np.uint8)
    cv2.circle(img, (int(round(xy[0] * 16)), int(round(xy[1] * 16))), radius * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    return img


@pytest.fixture()
def dotnet() -> nn.Module:
    model = DotNet()
    model.binmark_inference = SPEC
    return model


TINY_FACE = [
    "model.options={stacks: 1, depth: 2, width: 16, block: hpm}",
    "model.quant=bulat17",
    "data.dataset=synthetic_face",
    "data.input_size=64",
    "data.heatmap_size=16",
    "data.sigma=1.0",
    "eval.decode=dark",
]


@pytest.fixture(scope="session")
def face_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained binary hourglass checkpoint on the 68-point face schema, with its config."""
    from binmark.train.build import architecture, dataset_skeleton

    cfg = load_config(None, TINY_FACE + ["output_dir=unused"])
    arch = architecture(cfg, dataset_skeleton(cfg.data), cfg.model.quant)
    model = arch.build().eval()
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint(path, {"model": model.state_dict(), "arch": arch.to_dict(), "config": config_to_dict(cfg)})
    return path

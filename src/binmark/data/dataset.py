"""``TopDownDataset``: samples → (image tensor, target heatmaps, target weights, meta) for training.

For sample i it: (1) draws the augmentation from a generator seeded with (seed, epoch, i), so
results are the same with any number of DataLoader workers; (2) crops the sample's box, enlarged
by ``padding`` (1.25, the MPII/COCO pipelines' factor) and the drawn scale, rotated and possibly
mirrored, to the codec's input size (:mod:`binmark.data.transforms`); (3) encodes the keypoints with
the codec; (4) applies colour gains and normalizes the image with ``mean``/``std``.

``meta`` holds what maps predictions back to the original image: ``matrix`` (2×3, image px →
input px), ``center``, ``scale`` (the crop box, ×200 px), ``rotation``, ``flip``, the original
``keypoints`` and ``visible``, ``index``, and the sample's evaluation extras where it has them
(``head_size``, ``box_size``, ``bbox``, ``area``, ``yaw``, ``subset``, ``attributes``,
``image_id``). Batch with :func:`collate`, which keeps ``meta`` as a list of dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from binmark.data.augment import Augment, AugmentDraw
from binmark.data.skeletons import Skeleton
from binmark.data.transforms import PIXEL_STD, compose, crop_matrix, flip_matrix, transform_points, warp
from binmark.heatmaps import HeatmapCodec

__all__ = ["TopDownDataset", "IMAGENET_MEAN", "IMAGENET_STD", "normalize", "collate", "META_EXTRAS"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
META_EXTRAS = ("head_size", "box_size", "bbox", "area", "yaw", "subset", "attributes", "image_id", "occluded")


def normalize(
    image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, H, W) float32 tensor, (x/255 − mean) / std per channel."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


class TopDownDataset(Dataset):
    """Top-down training/evaluation samples from any sequence of sample dicts.

    Args:
        samples: a loaded dataset (``binmark.data.load``) or synthetic set.
        codec: the heatmap codec (input size, heatmap size, σ).
        skeleton: the schema (flip permutation); defaults to ``samples.skeleton``.
        augment: augmentation ranges, or None for evaluation (no augmentation).
        padding: the crop box is ``padding`` × the sample's box.
        seed: base seed of the augmentation draws.
        mean, std: image normalization.
    """

    def __init__(
        self,
        samples: Sequence[dict[str, Any]],
        codec: HeatmapCodec,
        skeleton: Skeleton | None = None,
        augment: Augment | None = None,
        padding: float = 1.25,
        seed: int = 0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        schema = skeleton if skeleton is not None else getattr(samples, "skeleton", None)
        if schema is None:
            raise ValueError("TopDownDataset needs a skeleton (the samples do not carry one)")
        if padding <= 0:
            raise ValueError(f"TopDownDataset padding must be > 0, got {padding}")
        self.samples = samples
        self.codec = codec
        self.skeleton: Skeleton = schema
        self.augment = augment
        self.padding = float(padding)
        self.seed = int(seed)
        self.epoch = 0
        self.mean, self.std = tuple(mean), tuple(std)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of this epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def _box_scale(self, sample: dict[str, Any]) -> float:
        """Box height / 200 px: the sample's box, fitted to the input's aspect ratio when the
        sample has a bbox (so a wide person still fits a tall crop, as HRNet does)."""
        w_in, h_in = self.codec.input_size
        if w_in != h_in and "bbox" in sample:
            bw, bh = float(sample["bbox"][2]), float(sample["bbox"][3])
            return max(bh, bw * h_in / w_in) / PIXEL_STD
        return float(sample["scale"])

    def crop_matrix(self, sample: dict[str, Any], draw: AugmentDraw = AugmentDraw()) -> tuple[np.ndarray, float]:
        """(2×3 image → input matrix, box scale) of a sample's crop under an augmentation draw
        (default: none). The flip is not included."""
        scale = self._box_scale(sample) * self.padding * draw.scale
        return crop_matrix(sample["center"], scale, self.codec.input_size, draw.rotation), scale

    def _draw(self, index: int) -> AugmentDraw:
        if self.augment is None:
            return AugmentDraw()
        return self.augment.draw(np.random.default_rng([self.seed, self.epoch, index]))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        sample = self.samples[index]
        draw = self._draw(index)
        size = self.codec.input_size
        matrix, scale = self.crop_matrix(sample, draw)
        keypoints, visible = sample["keypoints"], sample["visible"]
        points = transform_points(keypoints, matrix)
        if draw.flip:
            matrix = compose(flip_matrix(size[0]), matrix)
            perm = self.skeleton.flip_permutation
            points = transform_points(keypoints, matrix)[perm]
            visible = visible[perm]
        crop = warp(sample["image"], matrix, size)
        if draw.color != (1.0, 1.0, 1.0):
            crop = np.clip(crop * np.asarray(draw.color, dtype=np.float32), 0, 255).astype(np.uint8)
        heatmaps, weights = self.codec.encode(points, visible)
        meta = {
            "index": int(sample.get("index", index)),
            "matrix": matrix.astype(np.float64),
            "center": np.asarray(sample["center"], dtype=np.float64),
            "scale": scale,
            "rotation": draw.rotation,
            "flip": draw.flip,
            "keypoints": np.asarray(keypoints, dtype=np.float64),
            "visible": np.asarray(sample["visible"], dtype=bool),
        }
        meta.update({k: sample[k] for k in META_EXTRAS if k in sample})
        image = normalize(crop, self.mean, self.std)
        return image, torch.from_numpy(heatmaps), torch.from_numpy(weights), meta


def collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """Stack images, heatmaps and weights; keep the per-sample ``meta`` dicts as a list."""
    images, heatmaps, weights, metas = zip(*batch)
    return torch.stack(images), torch.stack(heatmaps), torch.stack(weights), list(metas)

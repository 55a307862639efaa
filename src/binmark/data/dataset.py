"""``TopDownDataset``: samples → (image tensor, target heatmaps, target weights) for training.

For sample i it: (1) draws the augmentation from a generator seeded with (seed, epoch, i), so
results are the same with any number of DataLoader workers; (2) builds the crop's one affine map —
the sample's box (:func:`sample_box`), enlarged by ``padding`` (1.25, the MPII/COCO pipelines'
factor) and the drawn scale, rotated, and mirrored when the draw flips — and applies it once to
the image and once to the keypoints (:mod:`binmark.data.transforms`); (3) encodes the keypoints
with the codec; (4) normalizes the crop with ``mean``/``std``, the colour gains applied in float.

:meth:`TopDownDataset.geometry` returns a sample's crop (:class:`Crop`: matrix, box scale,
rotation, flip, keypoints in input pixels) without touching its image, for inspection and tests.
Evaluation does not use this class: it crops through :mod:`binmark.topdown`, without targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from binmark.data.augment import Augment, AugmentDraw
from binmark.data.skeletons import Skeleton
from binmark.data.transforms import box_center_scale, compose, crop_matrix, flip_matrix, transform_points, warp
from binmark.heatmaps import HeatmapCodec
from binmark.sizes import as_size

__all__ = ["TopDownDataset", "Crop", "IMAGENET_MEAN", "IMAGENET_STD", "normalize", "sample_box", "collate", "META_EXTRAS"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the per-sample fields evaluation reports use, where a dataset has them
META_EXTRAS = ("head_size", "box_size", "bbox", "area", "yaw", "subset", "attributes", "image_id", "occluded")


def normalize(
    image: np.ndarray,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    gain: Sequence[float] | None = None,
) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, H, W) float32 tensor, (clip(x · gain, 0, 255)/255 − mean) / std
    per channel (``gain``: colour augmentation, none by default)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    if gain is not None:
        x = x.mul_(torch.tensor(gain, dtype=torch.float32).view(3, 1, 1)).clamp_(0.0, 255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x.div_(255.0) - m) / s


def sample_box(sample: dict[str, Any], input_size: int | Sequence[int]) -> tuple[np.ndarray, float]:
    """A sample's crop box before padding and augmentation: ``(center, scale)``.

    The sample's ``center`` (pixel-centre coordinates) and ``scale`` (box side / 200 px); for a
    non-square ``input_size`` (w, h) the scale of its ``bbox`` fitted to that aspect ratio, when it
    has one (so a wide person still fits a tall crop, as HRNet does).
    """
    w_in, h_in = as_size(input_size)
    center = np.asarray(sample["center"], dtype=np.float64)
    if w_in != h_in and "bbox" in sample:
        return center, box_center_scale(sample["bbox"], (w_in, h_in))[1]
    return center, float(sample["scale"])


class Crop(NamedTuple):
    """One training crop: ``matrix`` (2×3, image px → input px, the flip included), ``scale`` (the
    crop box's height / 200 px), ``rotation`` (degrees), ``flip``, and ``keypoints`` (K, 2) in input
    pixels with ``visible`` (K,), both in the crop's label order (left/right swapped when flipped)."""

    matrix: np.ndarray
    scale: float
    rotation: float
    flip: bool
    keypoints: np.ndarray
    visible: np.ndarray


class TopDownDataset(Dataset):
    """Top-down training samples from any sequence of sample dicts.

    Args:
        samples: a loaded dataset (``binmark.data.load``) or synthetic set.
        codec: the heatmap codec (input size, heatmap size, σ).
        skeleton: the schema (flip permutation); defaults to ``samples.skeleton``.
        augment: augmentation ranges, or None (no augmentation).
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

    def _draw(self, index: int) -> AugmentDraw:
        if self.augment is None:
            return AugmentDraw()
        return self.augment.draw(np.random.default_rng([self.seed, self.epoch, index]))

    def _crop(self, sample: dict[str, Any], draw: AugmentDraw) -> Crop:
        size = self.codec.input_size
        center, box_scale = sample_box(sample, size)
        scale = box_scale * self.padding * draw.scale
        matrix = crop_matrix(center, scale, size, draw.rotation)
        visible = np.asarray(sample["visible"], dtype=bool)
        order = np.arange(len(visible))
        if draw.flip:
            matrix = compose(flip_matrix(size[0]), matrix)
            order = np.asarray(self.skeleton.flip_permutation)
        points = transform_points(np.asarray(sample["keypoints"])[order], matrix)
        return Crop(matrix, scale, draw.rotation, draw.flip, points, visible[order])

    def geometry(self, index: int) -> Crop:
        """Sample ``index``'s crop under this epoch's draw, without decoding its image."""
        return self._crop(self.samples[index], self._draw(index))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        draw = self._draw(index)
        crop = self._crop(sample, draw)
        heatmaps, weights = self.codec.encode(crop.keypoints, crop.visible)
        pixels = warp(sample["image"], crop.matrix, self.codec.input_size)
        gain = draw.color if draw.color != (1.0, 1.0, 1.0) else None
        image = normalize(pixels, self.mean, self.std, gain)
        return image, torch.from_numpy(heatmaps), torch.from_numpy(weights)


def collate(batch: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """Stack a batch's tensors and arrays field by field; other fields (per-sample ``meta``
    dicts) stay lists."""
    fields = []
    for values in zip(*batch):
        if isinstance(values[0], torch.Tensor):
            fields.append(torch.stack(values))
        elif isinstance(values[0], np.ndarray):
            fields.append(np.stack(values))
        else:
            fields.append(list(values))
    return tuple(fields)

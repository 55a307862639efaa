"""TopDownDataset: targets agree with the labels through crop, augmentation and the codec, and
augmentation is reproducible across DataLoader workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from binmark.data import Augment, TopDownDataset, load
from binmark.data.dataset import collate
from binmark.data.transforms import invert, transform_points
from binmark.heatmaps import HeatmapCodec


@pytest.fixture(scope="module")
def coco(fixtures: Path):
    return load("coco", ann_file=fixtures / "coco/test_coco.json", image_dir=fixtures / "coco")


def _back_to_image(ds: TopDownDataset, heatmaps: torch.Tensor, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decoded points in image pixels, and which lie ≥ 3 heatmap px inside the map (DARK's
    Taylor step needs neighbours; at the border it keeps the integer maximum)."""
    codec = HeatmapCodec(ds.codec.input_size, ds.codec.heatmap_size, ds.codec.sigma, decode="dark")
    coords, _ = codec.decode(heatmaps[None])
    hm = codec.to_heatmap(coords[0].numpy())
    w, h = codec.heatmap_size
    inner = (hm[:, 0] >= 3) & (hm[:, 0] <= w - 4) & (hm[:, 1] >= 3) & (hm[:, 1] <= h - 4)
    return transform_points(coords[0].numpy(), invert(matrix)), inner


def test_shapes_and_geometry(coco) -> None:
    ds = TopDownDataset(coco, HeatmapCodec((192, 256), (48, 64), 2.0))
    image, heatmaps, weights = ds[0]
    assert image.shape == (3, 256, 192) and image.dtype == torch.float32
    assert heatmaps.shape == (17, 64, 48) and weights.shape == (17,)
    crop = ds.geometry(0)
    assert crop.matrix.shape == (2, 3) and crop.keypoints.shape == (17, 2)
    assert not crop.flip and crop.rotation == 0.0
    np.testing.assert_allclose(crop.keypoints, transform_points(coco[0]["keypoints"], crop.matrix))


@pytest.mark.parametrize("index", [0, 4, 9])
def test_targets_map_back_to_the_labels(coco, index: int) -> None:
    ds = TopDownDataset(coco, HeatmapCodec(256, 64, 2.0))
    _, heatmaps, weights = ds[index]
    sample = coco[index]
    back, inner = _back_to_image(ds, heatmaps, ds.geometry(index).matrix)
    annotated = weights.numpy() > 0
    np.testing.assert_array_equal(annotated, sample["visible"] & annotated)
    use = annotated & inner
    assert use.sum() >= 5
    np.testing.assert_allclose(back[use], sample["keypoints"][use], atol=0.01)  # image px


def test_augmented_targets_still_match(coco) -> None:
    aug = Augment(flip_prob=1.0, rotation_prob=1.0)
    ds = TopDownDataset(coco, HeatmapCodec(256, 64, 2.0), augment=aug, seed=3)
    perm = coco.skeleton.flip_permutation
    for index in (0, 5):
        _, heatmaps, weights = ds[index]
        crop = ds.geometry(index)
        assert crop.flip and crop.rotation != 0.0
        back, inner = _back_to_image(ds, heatmaps, crop.matrix)
        use = (weights.numpy() > 0) & inner
        assert use.sum() >= 5
        # channel i of a mirrored crop is label perm[i] of the original
        np.testing.assert_allclose(back[use], coco[index]["keypoints"][perm][use], atol=0.01)


def test_reproducible_per_seed_epoch_and_index(coco) -> None:
    codec = HeatmapCodec(128, 32, 1.0)
    a = TopDownDataset(coco, codec, augment=Augment(), seed=7)
    b = TopDownDataset(coco, codec, augment=Augment(), seed=7)
    assert torch.equal(a[2][0], b[2][0]) and torch.equal(a[2][1], b[2][1])
    a.set_epoch(1)
    assert not torch.equal(a[2][0], b[2][0])
    c = TopDownDataset(coco, codec, augment=Augment(), seed=8)
    assert not torch.equal(c[2][0], b[2][0])


@pytest.mark.slow
def test_dataloader_workers_give_the_same_batches(coco) -> None:
    ds = TopDownDataset(coco, HeatmapCodec(128, 32, 1.0), augment=Augment(), seed=1)
    serial = list(DataLoader(ds, batch_size=4, num_workers=0, collate_fn=collate))
    parallel = list(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate))
    assert len(serial) == len(parallel) == 3
    for (x0, h0, w0), (x1, h1, w1) in zip(serial, parallel):
        assert torch.equal(x0, x1) and torch.equal(h0, h1) and torch.equal(w0, w1)


def test_colour_gains_and_normalization(coco) -> None:
    plain = TopDownDataset(coco, HeatmapCodec(64, 16, 1.0), mean=(0, 0, 0), std=(1, 1, 1))
    x = plain[0][0]
    assert 0.0 <= x.min() and x.max() <= 1.0
    darker = TopDownDataset(
        coco, HeatmapCodec(64, 16, 1.0), mean=(0, 0, 0), std=(1, 1, 1),
        augment=Augment(color_low=0.5, color_high=0.5, flip_prob=0, rotation_prob=0, scale_sigma=0),
    )
    np.testing.assert_allclose(darker[0][0].numpy(), x.numpy() * 0.5, atol=1e-6)  # in float, not re-rounded to uint8


def test_wide_boxes_fit_a_tall_crop(coco) -> None:
    ds = TopDownDataset(coco, HeatmapCodec((192, 256), (48, 64), 2.0), padding=1.0)
    sample = coco[1]  # bbox 174.7 x 174.7: a square box must fit 192 px wide
    bw = sample["bbox"][2]
    assert ds.geometry(1).scale * 200 * 192 / 256 == pytest.approx(bw)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale_mode": "exp"}, "scale_mode='exp'"),
        ({"flip_prob": 1.5}, "flip_prob=1.5 must be a probability"),
        ({"scale_limit": 1.0}, "scale_limit=1.0 must be < 1"),
        ({"color_low": 2.0}, "colour range"),
        ({"rotation_sigma": -1}, "rotation_sigma=-1 must be >= 0"),
    ],
)
def test_augment_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Augment(**kwargs)


def test_augment_draw_ranges() -> None:
    aug = Augment()
    draws = [aug.draw(np.random.default_rng(i)) for i in range(2000)]
    scales = np.array([d.scale for d in draws])
    rots = np.array([d.rotation for d in draws])
    assert scales.min() >= 0.7 - 1e-12 and scales.max() <= 1.3 + 1e-12
    assert np.abs(rots).max() <= 60 and 0.5 < np.mean(rots == 0) < 0.7  # rotation off with p 0.6
    assert 0.45 < np.mean([d.flip for d in draws]) < 0.55
    log2 = Augment(scale_mode="log2", scale_sigma=0.25, scale_limit=0.5)
    s = np.array([log2.draw(np.random.default_rng(i)).scale for i in range(500)])
    assert s.min() >= 2**-0.5 - 1e-12 and s.max() <= 2**0.5 + 1e-12

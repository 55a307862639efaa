"""Both synthetic kinds: determinism, fields, errors, DataLoader workers. The renderers' own
models are tested in test_synthetic_face.py and test_synthetic_pose.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from binmark.data import TopDownDataset, skeleton, synthetic
from binmark.data.dataset import collate
from binmark.heatmaps import HeatmapCodec

KINDS = {"face": ("300w", 68), "pose": ("mpii", 16)}


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_per_seed_and_index(kind: str) -> None:
    a, b = synthetic(kind, 5, seed=7), synthetic(kind, 5, seed=7)
    for i in range(5):
        assert a[i]["image"].tobytes() == b[i]["image"].tobytes()
        np.testing.assert_array_equal(a[i]["keypoints"], b[i]["keypoints"])
    assert a[1]["image"].tobytes() != a[2]["image"].tobytes()
    assert synthetic(kind, 5, seed=8)[1]["image"].tobytes() != a[1]["image"].tobytes()
    # the same (seed, index) in a bigger dataset is the same sample
    np.testing.assert_array_equal(synthetic(kind, 50, seed=7)[3]["keypoints"], a[3]["keypoints"])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [128, 256])
def test_fields(kind: str, size: int) -> None:
    schema, k = KINDS[kind]
    ds = synthetic(kind, 3, image_size=size)
    assert ds.skeleton == skeleton(schema) and len(ds) == 3
    s = ds[2]
    assert s["image"].shape == (size, size, 3) and s["image"].dtype == np.uint8
    assert s["keypoints"].shape == (k, 2) and s["keypoints"].dtype == np.float64
    assert s["visible"].shape == (k,) and s["visible"].dtype == bool
    assert s["center"].shape == (2,) and s["scale"] > 0 and s["bbox"].shape == (4,)
    assert s["index"] == 2 and s["image_id"] == 2


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown synthetic kind 'hand'"):
        synthetic("hand", 3)
    with pytest.raises(ValueError, match="image_size must be an integer >= 32"):
        synthetic("face", 3, image_size=16)
    with pytest.raises(IndexError, match="out of range for 3 samples"):
        synthetic("face", 3)[3]


@pytest.mark.slow
def test_synthetic_works_with_dataloader_workers() -> None:
    ds = TopDownDataset(synthetic("pose", 8, seed=1), HeatmapCodec(128, 32, 1.0))
    serial = list(DataLoader(ds, batch_size=4, num_workers=0, collate_fn=collate))
    parallel = list(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate))
    for (x0, h0, *_), (x1, h1, *_) in zip(serial, parallel):
        assert torch.equal(x0, x1) and torch.equal(h0, h1)

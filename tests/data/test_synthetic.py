"""The procedural synthetic datasets: determinism, fields, the face shape model, body kinematics,
visibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from binmark.data import TopDownDataset, skeleton, synthetic
from binmark.data.dataset import collate
from binmark.data.synthetic.face import face_geometry, mean_shape, random_params
from binmark.data.synthetic.pose import BONE_LENGTHS, LENGTH_JITTER, sample_body
from binmark.heatmaps import HeatmapCodec

KINDS = {"face": ("300w", 68), "pose": ("mpii", 16)}


@pytest.fixture(scope="module")
def faces():
    ds = synthetic("face", 60, seed=3)
    return ds, [ds[i] for i in range(len(ds))]


@pytest.fixture(scope="module")
def poses():
    ds = synthetic("pose", 80, seed=3)
    return ds, [ds[i] for i in range(len(ds))]


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


class TestFaces:
    def test_mean_shape_is_mirror_symmetric(self) -> None:
        m = mean_shape()
        mirrored = m[skeleton("300w").flip_permutation] * [-1, 1]
        np.testing.assert_allclose(mirrored, m, atol=1e-6)

    def test_landmark_layout(self) -> None:
        m = mean_shape()
        assert m[8, 1] == m[:17, 1].max()  # the chin is the lowest jaw point
        assert m[36, 0] < m[39, 0] < m[42, 0] < m[45, 0]  # eye corners left to right
        assert m[19, 1] < m[37, 1] < m[30, 1] < m[51, 1] < m[57, 1] < m[8, 1]  # brow, eye, nose, lips, chin

    def test_fields_and_inter_ocular(self, faces) -> None:
        _, samples = faces
        for s in samples:
            assert s["visible"].all()  # 300-W annotates every point
            assert s["inter_ocular"] == pytest.approx(np.linalg.norm(s["keypoints"][36] - s["keypoints"][45]))
            lo, hi = s["keypoints"].min(0), s["keypoints"].max(0)
            np.testing.assert_allclose(s["center"], (lo + hi) / 2)
            assert s["scale"] == pytest.approx((hi - lo).max() / 200)
            assert (s["keypoints"] >= 0).all() and (s["keypoints"] <= 255).all()

    def test_shapes_vary(self, faces) -> None:
        _, samples = faces
        shapes = []
        for s in samples:
            kp = s["keypoints"] - s["keypoints"].mean(0)
            shapes.append(kp / np.linalg.norm(kp))
        assert np.std(np.stack(shapes), axis=0).mean() > 0.01
        sizes = np.array([s["scale"] * 200 for s in samples])
        assert sizes.min() < 0.5 * 256 < sizes.max()

    def test_some_faces_are_occluded(self, faces) -> None:
        _, samples = faces
        rate = np.mean([s["occluded"].any() for s in samples])
        assert 0.05 < rate < 0.6

    def test_expressions_move_the_mouth(self) -> None:
        rng = np.random.default_rng(0)
        gaps = [face_geometry(random_params(rng))[0][66, 1] - face_geometry(random_params(rng))[0][62, 1] for _ in range(50)]
        assert min(gaps) < 0.05 and max(gaps) > 0.15

    def test_landmarks_sit_on_drawn_features(self, faces) -> None:
        # eye corners and the mouth differ from the skin around them: pixels there are not flat
        _, samples = faces
        contrast = []
        for s in samples:
            img = s["image"].astype(float).mean(axis=2)
            x, y = np.round(s["keypoints"][48]).astype(int)  # a mouth corner
            patch = img[max(y - 3, 0) : y + 4, max(x - 3, 0) : x + 4]
            contrast.append(patch.std())
        assert np.median(contrast) > 5


class TestPoses:
    def test_bone_lengths_and_symmetry(self) -> None:
        rng = np.random.default_rng(1)
        for _ in range(100):
            body = sample_body(rng)
            p = body.points
            thigh_r, thigh_l = np.linalg.norm(p[2] - p[1]), np.linalg.norm(p[3] - p[4])
            assert thigh_r == pytest.approx(thigh_l) and thigh_r == pytest.approx(body.lengths["thigh"])
            for name, (a, b) in {"shin": (1, 0), "upper_arm": (12, 11), "forearm": (11, 10)}.items():
                length = np.linalg.norm(p[a] - p[b])
                mean = BONE_LENGTHS[name]
                assert mean * (1 - LENGTH_JITTER) - 1e-9 <= length <= mean * (1 + LENGTH_JITTER) + 1e-9

    def test_joint_angle_limits(self) -> None:
        rng = np.random.default_rng(2)
        bends, backward = [], []
        for _ in range(300):
            p = sample_body(rng).points
            for root, mid, end in ((2, 1, 0), (3, 4, 5), (12, 11, 10), (13, 14, 15)):
                upper = (p[mid] - p[root]) / np.linalg.norm(p[mid] - p[root])
                lower = (p[end] - p[mid]) / np.linalg.norm(p[end] - p[mid])
                bends.append(np.degrees(np.arccos(np.clip(upper @ lower, -1, 1))))
                if root in (2, 3) and upper[1] < -0.95:  # a hanging thigh: the knee bends backwards
                    backward.append(lower[2] - upper[2])
        assert max(bends) <= 150.0 + 1e-6 and min(bends) < 10 and max(bends) > 100
        assert len(backward) > 50 and max(backward) <= 1e-9 and min(backward) < -0.3

    def test_fields_and_head_size(self, poses) -> None:
        _, samples = poses
        for s in samples:
            kp, vis = s["keypoints"], s["visible"]
            assert s["head_size"] > 0
            head_len = np.linalg.norm(kp[9] - kp[8])
            assert s["head_size"] >= head_len - 1e-6  # the head box encloses neck-to-top
            inside = (kp >= 0).all(1) & (kp <= 255).all(1)
            assert not (vis & ~inside).any()  # visible joints are in the image
            x, y, w, h = s["bbox"]
            assert s["scale"] == pytest.approx(max(w, h) / 200)

    def test_visibility_statistics(self, poses) -> None:
        _, samples = poses
        vis = np.stack([s["visible"] for s in samples])
        assert 0.6 < vis.mean() < 0.98  # most joints visible, some hidden
        assert (~vis).any(axis=1).mean() > 0.2  # many samples hide at least one joint
        sizes = np.array([s["scale"] for s in samples]) * 200
        assert sizes.min() > 0.3 * 256 and sizes.max() <= 0.95 * 256 * 1.0 + 1


@pytest.mark.slow
def test_synthetic_works_with_dataloader_workers() -> None:
    ds = TopDownDataset(synthetic("pose", 8, seed=1), HeatmapCodec(128, 32, 1.0))
    serial = list(DataLoader(ds, batch_size=4, num_workers=0, collate_fn=collate))
    parallel = list(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate))
    for (x0, h0, *_), (x1, h1, *_) in zip(serial, parallel):
        assert torch.equal(x0, x1) and torch.equal(h0, h1)

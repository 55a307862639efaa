"""The synthetic face renderer: determinism, fields, the 300-W layout, variation, occlusion."""

from __future__ import annotations

import numpy as np
import pytest

from binmark.data.skeletons import skeleton
from binmark.data.synthetic.common import background
from binmark.data.synthetic.face import FaceParams, face_geometry, mean_shape, render_face
from binmark.data.synthetic import RENDERERS, synthetic

N = 48


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    ds = synthetic("face", N, seed=5, image_size=128)
    return [ds[i] for i in range(N)]


def test_registered_with_the_300w_skeleton() -> None:
    assert RENDERERS.get("face") == (render_face, "300w")
    assert synthetic("face", 1).skeleton.name == "300w"


def test_keypoints_lie_inside_the_image(samples: list[dict]) -> None:
    inside = [((s["keypoints"] >= 0) & (s["keypoints"] <= 127)).all() for s in samples]
    assert np.mean(inside) >= 0.95


def test_face_spans_a_third_to_three_quarters_of_the_image(samples: list[dict]) -> None:
    span = np.array([s["bbox"][2:].max() / 128 for s in samples])
    assert span.min() >= 0.34 and span.max() <= 0.76 and span.std() > 0.05


def test_inter_ocular_is_the_outer_eye_corner_distance(samples: list[dict]) -> None:
    for s in samples:
        kp = s["keypoints"]
        assert s["inter_ocular"] == pytest.approx(float(np.linalg.norm(kp[36] - kp[45])))
        assert s["inter_ocular"] > 0.2 * s["bbox"][2:].max()


def test_mean_shape_is_symmetric_under_the_300w_flip_pairs() -> None:
    mean = mean_shape()
    mirrored = mean[skeleton("300w").flip_permutation] * [-1, 1]
    np.testing.assert_allclose(mirrored, mean, atol=1e-6)


def test_mean_shape_follows_the_ibug_layout() -> None:
    m = mean_shape()
    x, y = m[:, 0], m[:, 1]
    assert x[0] < 0 < x[16] and y[8] == y[:17].max() and abs(x[8]) < 1e-9  # jaw: left → chin → right
    assert x[17] < x[21] < x[22] < x[26] and y[17:27].max() < y[36:48].min()  # brows above the eyes
    assert x[36] < x[39] < x[42] < x[45] and np.all(np.diff(y[27:31]) > 0)  # eye corners, bridge down
    assert y[37] < y[41] and y[38] < y[40] and y[43] < y[47] and y[44] < y[46]  # upper lids above lower
    assert y[30] < y[33] < y[51] < y[57] < y[8] and x[31] < x[33] < x[35]
    assert x[48] < x[60] < x[64] < x[54] and y[62] <= y[66]


def test_open_mouth_separates_the_inner_lips() -> None:
    closed, _ = face_geometry(FaceParams(mouth_open=0.0))
    opened, _ = face_geometry(FaceParams(mouth_open=0.3))
    np.testing.assert_allclose(closed[[61, 62, 63], 1], closed[[67, 66, 65], 1])
    assert (opened[66, 1] - opened[62, 1]) == pytest.approx(0.3)
    assert opened[8, 1] > closed[8, 1]  # the jaw drops with the mouth


def test_shapes_vary_across_samples(samples: list[dict]) -> None:
    # Similarity-normalize (eye-corner line horizontal, unit inter-ocular) and compare to the mean.
    shapes = []
    for s in samples:
        kp = s["keypoints"] - s["keypoints"][[36, 45]].mean(0)
        c, si = (kp[45] - kp[36]) / np.sum((kp[45] - kp[36]) ** 2)
        shapes.append(kp @ np.array([[c, -si], [si, c]]))
    spread = np.stack(shapes).std(0).mean()
    assert spread > 0.05
    assert np.ptp([s["keypoints"][8, 1] - s["keypoints"][27, 1] for s in samples]) > 10


def test_some_samples_are_occluded(samples: list[dict]) -> None:
    flagged = np.array([s["occluded"].any() for s in samples])
    assert 0.05 <= flagged.mean() <= 0.6
    assert all(s["occluded"].sum() < 68 for s in samples)


def test_the_face_is_drawn_over_the_background_at_its_landmarks() -> None:
    changed = []
    for k in range(12):
        face = render_face(np.random.default_rng([3, k]), 128)
        bg = background(np.random.default_rng([3, k]), 128)  # the renderer draws this first
        ij = np.rint(face["keypoints"]).astype(int)
        diff = np.abs(face["image"].astype(int) - bg.astype(int))[ij[:, 1], ij[:, 0]].max(1)
        changed.append(np.mean(diff > 12))
    assert np.mean(changed) > 0.85

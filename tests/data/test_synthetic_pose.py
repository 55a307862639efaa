"""The synthetic "pose" renderer: determinism, fields, the kinematic model, projection, visibility."""

from __future__ import annotations

import numpy as np
import pytest

from binmark.data.synthetic import pose  # registers the "pose" kind
from binmark.data.synthetic import synthetic

SIZE = 256
SEED = 11
BONES = {  # name → (proximal, distal) joints, right side first
    "thigh": ((2, 1), (3, 4)),
    "shin": ((1, 0), (4, 5)),
    "upper_arm": ((12, 11), (13, 14)),
    "forearm": ((11, 10), (14, 15)),
}


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    ds = synthetic("pose", 150, seed=SEED, image_size=SIZE)
    return [ds[i] for i in range(len(ds))]


@pytest.fixture(scope="module")
def bodies() -> list[pose.Body]:
    # render_pose draws the body first, so this is the body of sample i of `samples`
    return [pose.sample_body(np.random.default_rng([SEED, i])) for i in range(150)]


def test_bone_lengths_symmetric_and_in_range(bodies) -> None:
    for body in bodies:
        p = body.points
        for name, ((a, b), (c, d)) in BONES.items():
            right, left = np.linalg.norm(p[a] - p[b]), np.linalg.norm(p[c] - p[d])
            assert right == pytest.approx(left) == pytest.approx(body.lengths[name])
            mean = pose.BONE_LENGTHS[name]
            assert mean * (1 - pose.LENGTH_JITTER) - 1e-9 <= right <= mean * (1 + pose.LENGTH_JITTER) + 1e-9
        shoulders, hips = np.linalg.norm(p[12] - p[13]), np.linalg.norm(p[2] - p[3])
        assert 1.0 < shoulders / hips < 2.5  # shoulders wider than hips


def test_knees_between_hips_and_ankles(bodies) -> None:
    for body in bodies:
        p = body.points
        for hip, knee, ankle in ((2, 1, 0), (3, 4, 5)):
            axis = p[ankle] - p[hip]
            t = (p[knee] - p[hip]) @ axis / (axis @ axis)  # the knee's place along hip → ankle
            thigh, shin = p[knee] - p[hip], p[ankle] - p[knee]
            if thigh @ shin >= 0:  # bent at most 90°: strictly between, whatever the lengths
                assert 0.0 < t < 1.0
            assert -0.5 < t < 1.5  # deep bends with unequal bones overshoot a little


def test_head_above_neck_when_upright(bodies, samples) -> None:
    upright = 0
    for body in bodies:
        p = body.points
        spine = (p[7] - p[6]) / np.linalg.norm(p[7] - p[6])
        if spine[1] > 0.9:  # thorax straight above the pelvis in the body frame
            upright += 1
            assert p[9, 1] > p[8, 1] > p[7, 1]
    assert upright > len(bodies) / 2
    # in the image: where the torso is long and near vertical, the head top is above the neck
    above = [s["keypoints"][9, 1] < s["keypoints"][8, 1] for s in samples
             if _torso_upright(s["keypoints"])]  # fmt: skip
    assert len(above) > 40 and np.mean(above) > 0.95


def _torso_upright(kp: np.ndarray) -> bool:
    torso = kp[7] - kp[6]
    thigh = np.linalg.norm(kp[2] - kp[1]) + np.linalg.norm(kp[3] - kp[4])
    return bool(torso[1] < -0.9 * np.linalg.norm(torso) and np.linalg.norm(torso) > 0.4 * thigh)


def test_keypoints_are_a_scaled_orthographic_projection(bodies, samples) -> None:
    for body, s in zip(bodies, samples):
        joints = np.column_stack([body.points[:16], np.ones(16)])
        solution, *_ = np.linalg.lstsq(joints, s["keypoints"], rcond=None)
        np.testing.assert_allclose(joints @ solution, s["keypoints"], atol=1e-6)
        a = solution[:3].T  # (2, 3): k times two orthonormal rows
        k2 = a[0] @ a[0]
        np.testing.assert_allclose(a @ a.T, k2 * np.eye(2), atol=1e-6 * k2)


def test_person_box_and_head_size(samples) -> None:
    for s in samples:
        kp = s["keypoints"]
        x, y, w, h = s["bbox"]
        assert s["scale"] == pytest.approx(max(w, h) / 200)
        assert 0.4 * SIZE - 1e-6 <= max(w, h) <= 0.9 * SIZE + 1e-6
        np.testing.assert_allclose(s["center"], [x + w / 2, y + h / 2])
        assert (kp >= np.array([x, y]) - 1e-6).all() and (kp <= np.array([x + w, y + h]) + 1e-6).all()
        head_len = np.linalg.norm(kp[9] - kp[8])
        assert head_len - 1e-6 <= s["head_size"] < 0.45 * max(w, h)  # the box holds neck-to-top
    ratios = np.array([s["head_size"] / (s["scale"] * 200) for s in samples])
    assert 0.1 < np.median(ratios) < 0.3  # a head, not a body part of another size


def test_visibility(samples) -> None:
    vis = np.stack([s["visible"] for s in samples])
    assert 0.7 < vis.mean() < 0.97  # most joints visible …
    assert (~vis).any(axis=1).mean() > 0.25  # … but many samples hide some
    assert vis.mean(axis=0).min() > 0.4  # no joint is hidden most of the time
    outside = 0
    for s in samples:
        kp = s["keypoints"]
        inside = (kp > -0.5).all(1) & (kp < SIZE - 0.5).all(1)
        assert not (s["visible"] & ~inside).any()
        outside += not inside.all()
    assert 0.02 < outside / len(samples) < 0.3  # extremities sometimes leave the image


def test_incident_parts() -> None:
    adjacent = pose.ADJACENT
    knee, ankle = 1, 0
    assert set(np.nonzero(adjacent[knee])[0]) == {pose.R_THIGH, pose.R_SHIN}
    assert set(np.nonzero(adjacent[ankle])[0]) == {pose.R_SHIN}
    assert not adjacent[:, 0].any()  # background never shows a joint
    assert adjacent.any(axis=1).all()


def test_joint_angle_limits() -> None:
    rng = np.random.default_rng(2)
    bends, backward = [], []
    for _ in range(300):
        p = pose.sample_body(rng).points
        for root, mid, end in ((2, 1, 0), (3, 4, 5), (12, 11, 10), (13, 14, 15)):
            upper = (p[mid] - p[root]) / np.linalg.norm(p[mid] - p[root])
            lower = (p[end] - p[mid]) / np.linalg.norm(p[end] - p[mid])
            bends.append(np.degrees(np.arccos(np.clip(upper @ lower, -1, 1))))
            if root in (2, 3) and upper[1] < -0.95:  # a hanging thigh: the knee bends backwards
                backward.append(lower[2] - upper[2])
    assert max(bends) <= 150.0 + 1e-6 and min(bends) < 10 and max(bends) > 100
    assert len(backward) > 50 and max(backward) <= 1e-9 and min(backward) < -0.3

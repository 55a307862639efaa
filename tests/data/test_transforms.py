"""The top-down crop: exact pixel-centre geometry, inverse, rotation sense, flips."""

from __future__ import annotations

import numpy as np
import pytest

from binmark.data.transforms import (
    compose,
    crop_matrix,
    flip_keypoints,
    flip_matrix,
    invert,
    transform_points,
    warp,
)


def test_box_maps_onto_the_output_exactly() -> None:
    m = crop_matrix((100.0, 50.0), 1.0, (256, 256))  # a 200-px box around (100, 50)
    # continuous box edges [0, 200] x [-50, 150] land on the outer pixel edges [-0.5, 255.5]
    corners = np.array([[0.0, -50.0], [200.0, 150.0], [100.0, 50.0]])
    out = transform_points(corners, m)
    np.testing.assert_allclose(out, [[-0.5, -0.5], [255.5, 255.5], [127.5, 127.5]], atol=1e-9)


def test_non_square_output_keeps_aspect() -> None:
    m = crop_matrix((0.0, 0.0), 2.0, (192, 256))  # 400 px tall, 300 px wide
    np.testing.assert_allclose(m[:, :2], np.eye(2) * 256 / 400)
    np.testing.assert_allclose(transform_points(np.array([[0.0, 0.0]]), m), [[95.5, 127.5]])


@pytest.mark.parametrize("rotation", [0.0, 17.0, -45.0, 90.0])
def test_inverse_round_trip_subpixel(rotation: float) -> None:
    rng = np.random.default_rng(0)
    m = crop_matrix((321.7, 211.2), 1.37, (256, 192), rotation)
    pts = rng.uniform(0, 600, (50, 2))
    back = transform_points(transform_points(pts, m), invert(m))
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_positive_rotation_turns_content_anticlockwise() -> None:
    m = crop_matrix((0.0, 0.0), 1.0, 201, 90.0)
    right_of_centre = transform_points(np.array([[50.0, 0.0]]), m)[0]
    # a point to the right of the centre goes straight up (smaller y) on screen
    np.testing.assert_allclose(right_of_centre, [100.0, 100.0 - 50.0 * 201 / 200], atol=1e-9)


def test_warp_puts_pixels_where_the_matrix_says() -> None:
    ys, xs = np.mgrid[0:100, 0:120]
    blob = np.exp(-((xs - 70.3) ** 2 + (ys - 30.6) ** 2) / (2 * 3.0**2))  # a blob at (70.3, 30.6)
    img = np.repeat(blob[..., None], 3, axis=2).astype(np.float32)
    for rotation in (0.0, 33.0):
        m = crop_matrix((68.0, 33.0), 0.2, (64, 64), rotation)
        crop = warp(img, m, (64, 64))[..., 0].astype(float)
        target = transform_points(np.array([[70.3, 30.6]]), m)[0]
        ys, xs = np.mgrid[0:64, 0:64]
        centroid = np.array([(xs * crop).sum(), (ys * crop).sum()]) / crop.sum()
        np.testing.assert_allclose(centroid, target, atol=0.05)


def test_flip_matrix_and_keypoints() -> None:
    f = flip_matrix(64)
    np.testing.assert_allclose(transform_points(np.array([[0.0, 5.0], [63.0, 7.0]]), f), [[63, 5], [0, 7]])
    kp = np.array([[10.0, 1.0], [20.0, 2.0], [30.0, 3.0]])
    flipped, vis = flip_keypoints(kp, np.array([True, False, True]), 64, [2, 1, 0])
    np.testing.assert_allclose(flipped, [[33.0, 3.0], [43.0, 2.0], [53.0, 1.0]])
    assert vis.tolist() == [True, False, True]
    twice, _ = flip_keypoints(flipped, vis, 64, [2, 1, 0])
    np.testing.assert_allclose(twice, kp)


def test_flip_of_image_and_points_agree() -> None:
    img = np.zeros((20, 30, 3), dtype=np.uint8)
    img[4, 7] = 200
    m = flip_matrix(30)
    out = warp(img, m, (30, 20))
    assert out[4, 22, 0] == 200 and transform_points(np.array([[7.0, 4.0]]), m)[0].tolist() == [22.0, 4.0]


def test_compose_applies_inner_first() -> None:
    a = crop_matrix((10.0, 20.0), 0.3, 64, 12.0)
    b = flip_matrix(64)
    p = np.array([[13.0, 17.0]])
    np.testing.assert_allclose(transform_points(p, compose(b, a)), transform_points(transform_points(p, a), b))


def test_bad_scale() -> None:
    with pytest.raises(ValueError, match="crop scale must be a positive number, got 0"):
        crop_matrix((0, 0), 0, 64)

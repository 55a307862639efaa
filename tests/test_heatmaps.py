"""Heatmap encoding/decoding: round trips for every method (the numbers in the module docstring),
flip test, codec geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from binmark.data import skeleton
from binmark.heatmaps import (
    HeatmapCodec,
    decode,
    effective_sigma,
    encode,
    flip_average,
    flip_back,
    target_weights,
)

RNG = np.random.default_rng(0)
POINTS = RNG.uniform(8, 55, size=(2000, 2))
ONE = np.array([True])


def _maps(points: np.ndarray, method: str) -> np.ndarray:
    return np.stack([encode(p[None], ONE, 64, 2.0, method) for p in points])


# (mean, max) error bounds in heatmap px, just above what the docstring reports.
BOUNDS = {
    ("subpixel", "argmax"): (0.39, 0.71),
    ("subpixel", "quarter"): (0.20, 0.36),
    ("subpixel", "dark"): (0.001, 0.001),
    ("subpixel", "soft"): (0.006, 0.011),
    ("integer", "argmax"): (0.39, 0.71),
    ("integer", "quarter"): (0.39, 0.71),
    ("integer", "dark"): (0.39, 0.71),
    ("integer", "soft"): (0.39, 0.71),
    **{(enc, m): (0.39, 0.71) for enc in ("cunet", "torch7") for m in ("argmax", "quarter", "dark", "soft")},
}


@pytest.mark.parametrize(("encoding", "method"), BOUNDS)
def test_round_trip_errors(encoding: str, method: str) -> None:
    coords, _ = decode(_maps(POINTS, encoding), method, sigma=effective_sigma(encoding, 2.0))
    err = np.linalg.norm(coords[:, 0] - POINTS, axis=1)
    mean_bound, max_bound = BOUNDS[(encoding, method)]
    assert err.mean() <= mean_bound and err.max() <= max_bound


@pytest.mark.parametrize("encoding", ["subpixel", "integer", "cunet", "torch7"])
@pytest.mark.parametrize("method", ["argmax", "quarter", "dark", "soft"])
def test_integer_keypoints_round_trip(encoding: str, method: str) -> None:
    pts = RNG.integers(8, 56, size=(200, 2)).astype(float)  # as POINTS: DARK's blur needs room
    coords, scores = decode(_maps(pts, encoding), method, sigma=effective_sigma(encoding, 2.0))
    assert np.abs(coords[:, 0] - pts).max() <= 1e-4
    np.testing.assert_allclose(scores, 1.0)


def test_cunet_encoding_is_the_official_draw_gaussian() -> None:
    """zhiqiangdon/CU-Net pylib/HumanPts.py draw_gaussian(σ=1): exp(−d²/⌈3σ⌉²) in a 7×7 square."""
    m = encode(np.array([[10.3, 20.4]]), ONE, 32, 1.0, "cunet")[0]
    row = m[20, 7:14]
    np.testing.assert_allclose(row, [0.368, 0.641, 0.895, 1.0, 0.895, 0.641, 0.368], atol=5e-4)
    np.testing.assert_allclose(row, np.exp(-np.arange(-3, 4) ** 2 / 9.0), rtol=1e-6)
    assert m[23, 13] == pytest.approx(np.exp(-18 / 9.0), rel=1e-6)  # the window is a square
    assert (m > 0).sum() == 49 and m[20, 6] == 0 and m[20, 14] == 0 and m[16, 10] == 0
    assert effective_sigma("cunet", 1.0) == pytest.approx(2.1213, abs=1e-4)
    assert effective_sigma("cunet", 1.5) == pytest.approx(5 / np.sqrt(2))


def _torch_image_gaussian(size: int, sigma: float = 0.25) -> np.ndarray:
    """Torch's image.gaussian(size) as its C loop writes it (relative σ and mean 0.5, peak 1)."""
    centre = 0.5 * size + 0.5
    j = np.arange(size)
    g = np.exp(-(((j + 1 - centre) / (sigma * size)) ** 2) / 2)
    return g[:, None] * g[None, :]


def test_torch7_encoding_is_image_gaussian_of_size_2r_plus_1() -> None:
    """hg-train drawGaussian(σ=1): image.gaussian(7) (σ 1.75 px) on the integer pixel."""
    m = encode(np.array([[10.6, 20.2]]), ONE, 32, 1.0, "torch7")[0]
    np.testing.assert_allclose(m[17:24, 8:15], _torch_image_gaussian(7), rtol=1e-6)
    np.testing.assert_allclose(m[20, 8:15], [0.230, 0.520, 0.849, 1.0, 0.849, 0.520, 0.230], atol=5e-4)
    assert (m > 0).sum() == 49 and m[20, 7] == 0 and m[20, 15] == 0 and m[24, 11] == 0
    assert effective_sigma("torch7", 1.0) == 1.75
    m2 = encode(np.array([[16.0, 16.0]]), ONE, 32, 2.0, "torch7")[0]  # face-alignment's 13×13, σ 3.25
    np.testing.assert_allclose(m2[10:23, 10:23], _torch_image_gaussian(13), rtol=1e-6)
    assert (m2 > 0).sum() == 169


@pytest.mark.parametrize("encoding", ["cunet", "torch7"])
def test_codec_decodes_with_the_encodings_own_sigma(encoding: str) -> None:
    codec = HeatmapCodec(64, 16, 1.0, encoding, "soft")
    assert codec.effective_sigma == effective_sigma(encoding, 1.0) > 1.5
    pts = 4.0 * np.array([[4 + i, 7] for i in range(5)]) + 1.5  # input pixels of heatmap-pixel centres
    maps, weights = codec.encode(pts, np.ones(5, bool))
    coords, _ = codec.decode(maps[None])
    np.testing.assert_allclose(coords[0], pts, atol=1e-4)
    assert weights.tolist() == [1.0] * 5


def test_encode_shapes_peak_and_window() -> None:
    kp = np.array([[10.3, 20.6], [5.0, 5.0], [100.0, 100.0]])
    vis = np.array([True, False, True])
    maps = encode(kp, vis, (48, 64), 2.0)
    assert maps.shape == (3, 64, 48) and maps.dtype == np.float32
    assert maps[1].max() == 0 and maps[2].max() == 0  # not annotated; far off the map
    assert target_weights(kp, vis, (48, 64), 2.0).tolist() == [1.0, 0.0, 0.0]
    assert maps[0].max() == pytest.approx(np.exp(-(0.3**2 + 0.4**2) / 8), rel=1e-6)
    integer = encode(kp[:1], vis[:1], (48, 64), 2.0, "integer")[0]
    assert integer[21, 10] == 1.0 and integer[21, 17] == 0.0 and integer[21, 16] > 0  # 3σ window


def test_weight_keeps_points_whose_window_touches_the_map() -> None:
    w = target_weights(np.array([[-5.9, 10.0], [-6.1, 10.0], [68.9, 10.0]]), np.ones(3, bool), 64, 2.0)
    assert w.tolist() == [1.0, 0.0, 1.0]


def test_decode_keeps_input_kind_and_shapes() -> None:
    maps = _maps(POINTS[:6], "subpixel").reshape(2, 3, 64, 64)
    c, s = decode(torch.from_numpy(maps))
    assert isinstance(c, torch.Tensor) and c.shape == (2, 3, 2) and s.shape == (2, 3)
    c2, _ = decode(maps)
    assert isinstance(c2, np.ndarray)
    np.testing.assert_allclose(c2, c.numpy())


def test_border_peaks_do_not_crash() -> None:
    maps = np.zeros((1, 4, 16, 16), dtype=np.float32)
    maps[0, 0, 0, 0] = maps[0, 1, 15, 15] = maps[0, 2, 0, 15] = 1.0
    for method in ("argmax", "quarter", "dark", "soft"):
        coords, _ = decode(maps, method)
        np.testing.assert_allclose(coords[0, :3], [[0, 0], [15, 15], [15, 0]], atol=0.5)
        assert np.isfinite(coords).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="heatmap decoding 'best'"):
        decode(np.zeros((1, 1, 4, 4)), "best")
    with pytest.raises(ValueError, match="expects \\(N, K, h, w\\)"):
        decode(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="heatmap encoding 'round'"):
        encode(np.zeros((1, 2)), ONE, 8, 1.0, "round")
    with pytest.raises(ValueError, match="sigma must be > 0"):
        encode(np.zeros((1, 2)), ONE, 8, 0.0)
    with pytest.raises(ValueError, match="heatmap encoding 'gauss'"):
        effective_sigma("gauss", 1.0)


class TestFlip:
    def test_unbiased_flip_test_recovers_positions_without_shift(self) -> None:
        schema = skeleton("mpii")
        perm = schema.flip_permutation
        codec = HeatmapCodec(256, 64, 2.0)
        kp = RNG.uniform(40, 210, size=(16, 2))
        maps, _ = codec.encode(kp, np.ones(16, bool))
        # the same person mirrored in the input image: x → 255 − x, labels swapped
        mirrored = kp[perm].copy()
        mirrored[:, 0] = 255 - mirrored[:, 0]
        flipped_maps, _ = codec.encode(mirrored, np.ones(16, bool))
        avg = flip_average(torch.from_numpy(maps)[None], torch.from_numpy(flipped_maps)[None], perm)
        coords, _ = HeatmapCodec(256, 64, 2.0, decode="dark").decode(avg)
        np.testing.assert_allclose(coords[0].numpy(), kp, atol=0.01)

    def test_shift_moves_one_column(self) -> None:
        maps = torch.zeros(1, 2, 4, 5)
        maps[0, 0, 1, 1] = 1.0
        back = flip_back(maps, [1, 0])
        assert back[0, 1, 1, 3] == 1.0
        shifted = flip_back(maps, [1, 0], shift=True)
        assert shifted[0, 1, 1, 4] == 1.0


class TestCodec:
    def test_pixel_centre_mapping(self) -> None:
        codec = HeatmapCodec((192, 256), (48, 64))
        assert codec.stride == 4.0
        # input pixels 0..3 form heatmap pixel 0, whose centre is input 1.5
        np.testing.assert_allclose(codec.to_heatmap(np.array([[1.5, 1.5], [-0.5, 5.5]])), [[0, 0], [-0.5, 1]])
        np.testing.assert_allclose(codec.to_input(codec.to_heatmap(POINTS)), POINTS)

    @pytest.mark.parametrize("method", ["dark", "soft"])
    def test_input_pixel_round_trip(self, method: str) -> None:
        codec = HeatmapCodec(256, 64, 2.0, decode=method)
        kp = RNG.uniform(30, 225, size=(17, 2))
        maps, weights = codec.encode(kp, np.ones(17, bool))
        coords, _ = codec.decode(maps[None])
        np.testing.assert_allclose(coords[0], kp, atol=0.05)  # 0.05 input px
        assert weights.tolist() == [1.0] * 17

    def test_validation(self) -> None:
        with pytest.raises(ValueError, match="same stride"):
            HeatmapCodec((256, 256), (64, 48))
        with pytest.raises(ValueError, match="decoding 'x'"):
            HeatmapCodec(decode="x")

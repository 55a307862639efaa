"""Gaussian heatmap targets and their decoding: one codec for the data pipeline and the predictor.

Pixel convention (written once, here): coordinates are 0-based pixel coordinates, integer k is
the centre of pixel k, in the image they refer to. Between the network input (size ``(W, H)``)
and the heatmap (size ``(w, h)``) the stride is s = W / w, and pixel centres map exactly:

    x_heatmap = (x_input + ½) / s − ½          x_input = (x_heatmap + ½) · s − ½

(the "unbiased" mapping; HRNet uses x / s, which puts targets 3/8 of a heatmap pixel off at
stride 4 and needs its one-pixel flip shift to compensate).

Encoding (``encode``), keypoints given in heatmap pixels, σ the recipe's ``sigma`` and
r = ⌈3σ⌉ the window radius:

- ``"subpixel"`` (default): exp(−‖u − p‖² / 2σ²) at the exact location p, over the whole map
  (DARK, Zhang et al., CVPR 2020).
- ``"integer"``: the same Gaussian centred on the nearest pixel c = ⌊p + ½⌋, zero outside the
  (2r + 1)² window around c (HRNet ``JointsDataset.generate_target``, mmpose ``MSRAHeatmap``).
- ``"cunet"``: exp(−‖u − c‖² / r²) in the same window: the official CU-Net code's
  ``draw_gaussian`` (zhiqiangdon/CU-Net ``pylib/HumanPts.py``), whose exponent divides by r², not
  2σ², so its effective σ is r/√2 (2.12 px for σ = 1; the row through the peak reads 0.368,
  0.641, 0.895, 1, 0.895, 0.641, 0.368).
- ``"torch7"``: the Torch hourglass code's ``drawGaussian`` (hg-train / face-alignment-training
  ``img.lua``): Torch's ``image.gaussian(2r + 1)``, whose σ is relative to the kernel size
  (0.25), i.e. 0.25·(2r + 1) px (1.75 px for σ = 1, a 7×7 kernel), in the same window;
  face-alignment's ``utils._gaussian`` computes the same kernel.

All have peak 1 at their centre. :func:`effective_sigma` gives each encoding's σ in heatmap pixels,
the σ the decoders use. The official codes put the centre on the integer pixel of their own
frame (CU-Net truncates x/s, which at stride 4 is ⌊p + ⅜⌋ in binmark's frame; hg-train rounds);
binmark rounds in its frame, so the three integer-centred encodings share one unbiased centre.

A point's target weight is 0 when it is not annotated or its window (radius 3σ around p for
"subpixel", r around c otherwise) lies entirely outside the map; its heatmap is then all zeros.

Decoding (``decode``) returns (N, K, 2) heatmap-pixel coordinates and (N, K) scores (the maximum):

- ``"argmax"``: the integer maximum.
- ``"quarter"``: the maximum moved ¼ pixel toward the larger neighbour in x and in y (Newell's
  hourglass, HRNet, the seed models' ``getPreds``).
- ``"dark"``: Gaussian-blur the map (kernel 6σ − 1, rescaled to the original maximum), take the
  log, and apply one Newton step −H⁻¹∇ at the maximum (DARK).
- ``"soft"``: local soft-argmax, the mean position of the map's (non-negative) mass within 3σ
  of the maximum. Over the whole map, softmax(β·h) is biased on peak-1 Gaussian maps for every β
  (measured: mean error 0.20 px at β = 50, 1.10 px at β = 10), so the window form is used.

Round-trip error measured by ``tests/test_heatmaps.py`` (σ = 2, 64×64 maps, 2,000 uniformly random
sub-pixel points 8–55 px from the origin; error = Euclidean distance in heatmap pixels):

============  ===============================  ===============================
decode        on "subpixel" targets            on "integer" targets
============  ===============================  ===============================
argmax        mean 0.382, max 0.702            mean 0.382, max 0.702
quarter       mean 0.192, max 0.351            mean 0.382, max 0.702
dark          mean 0.0002, max 0.0005          mean 0.382, max 0.702
soft          mean 0.0049, max 0.0093          mean 0.382, max 0.702
============  ===============================  ===============================

From integer-peak targets ("integer", "cunet", "torch7") every method recovers the rounded
position (the ±¼ rule sees equal neighbours and does not move), so the error is the rounding
itself. Integer keypoints round-trip through every method and encoding to within 1e-4 px.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from binmark.sizes import as_size

__all__ = [
    "ENCODINGS",
    "DECODINGS",
    "effective_sigma",
    "encode",
    "target_weights",
    "decode",
    "flip_back",
    "flip_average",
    "HeatmapCodec",
]

ENCODINGS = ("subpixel", "integer", "cunet", "torch7")
DECODINGS = ("argmax", "quarter", "dark", "soft")


def _check_encoding(method: str, sigma: float) -> None:
    if method not in ENCODINGS:
        raise ValueError(f"heatmap encoding {method!r} is not one of {ENCODINGS}")
    if not sigma > 0:
        raise ValueError(f"heatmap sigma must be > 0, got {sigma}")


def _radius(sigma: float) -> int:
    """The window radius ⌈3σ⌉ of the integer-centred encodings, px."""
    return math.ceil(3 * sigma - 1e-9)


def effective_sigma(method: str, sigma: float) -> float:
    """The σ, in heatmap pixels, of the Gaussian that encoding ``method`` draws for ``sigma``.

    σ for "subpixel" and "integer"; ⌈3σ⌉/√2 for "cunet"; 0.25·(2⌈3σ⌉ + 1) for "torch7" (see the
    module docstring). For σ = 1: 1.0, 1.0, 2.12, 1.75.
    """
    _check_encoding(method, sigma)
    r = _radius(sigma)
    if method == "cunet":
        return r / math.sqrt(2.0)
    if method == "torch7":
        return 0.25 * (2 * r + 1)
    return float(sigma)


def target_weights(
    keypoints: np.ndarray,
    visible: np.ndarray,
    heatmap_size: int | Sequence[int],
    sigma: float,
    method: str = "subpixel",
) -> np.ndarray:
    """(K,) float32 weights: 1 for annotated points whose target window touches the map, else 0.

    Args:
        keypoints: (K, 2) heatmap pixels.
        visible: (K,) bool.
        heatmap_size: (w, h), or one int.
        sigma: the recipe's σ in heatmap pixels.
        method: the encoding, which sets the window: radius 3σ around the point for "subpixel",
            ⌈3σ⌉ around the nearest pixel otherwise.
    """
    _check_encoding(method, sigma)
    w, h = as_size(heatmap_size)
    kp = np.asarray(keypoints, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        centres, r = (kp, 3.0 * sigma) if method == "subpixel" else (np.floor(kp + 0.5), _radius(sigma))
        inside = (
            (centres[:, 0] + r >= 0) & (centres[:, 0] - r <= w - 1)
            & (centres[:, 1] + r >= 0) & (centres[:, 1] - r <= h - 1)
        )  # fmt: skip
    ok = np.asarray(visible, dtype=bool) & inside & np.isfinite(kp).all(axis=1)
    return ok.astype(np.float32)


def encode(
    keypoints: np.ndarray,
    visible: np.ndarray,
    heatmap_size: int | Sequence[int],
    sigma: float,
    method: str = "subpixel",
) -> np.ndarray:
    """Gaussian heatmap targets.

    Args:
        keypoints: (K, 2) keypoints in heatmap pixel coordinates (x, y).
        visible: (K,) bool; unannotated points get an all-zero map.
        heatmap_size: (w, h), or one int for a square map.
        sigma: the recipe's σ in heatmap pixels (what each encoding draws from it: the module
            docstring and :func:`effective_sigma`).
        method: "subpixel", "integer", "cunet" or "torch7".

    Returns:
        (K, h, w) float32 targets with peak 1.
    """
    _check_encoding(method, sigma)
    w, h = as_size(heatmap_size)
    kp = np.asarray(keypoints, dtype=np.float64)
    weights = target_weights(kp, visible, (w, h), sigma, method)
    centres = kp if method == "subpixel" else np.floor(kp + 0.5)
    centres = np.where(np.isfinite(centres), centres, 0.0)
    s = effective_sigma(method, sigma)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    gx = np.exp(-((xs[None, :] - centres[:, :1]) ** 2) / (2 * s**2))  # (K, w)
    gy = np.exp(-((ys[None, :] - centres[:, 1:]) ** 2) / (2 * s**2))  # (K, h)
    if method != "subpixel":  # the (2r + 1)² window around the integer centre
        r = _radius(sigma)
        gx *= np.abs(xs[None, :] - centres[:, :1]) <= r
        gy *= np.abs(ys[None, :] - centres[:, 1:]) <= r
    maps = gy[:, :, None] * gx[:, None, :] * weights[:, None, None]
    return maps.astype(np.float32)


def _argmax(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, k, h, w = heatmaps.shape
    scores, idx = heatmaps.reshape(n, k, h * w).max(dim=-1)
    coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1)
    return coords.to(heatmaps.dtype), scores


def _neighbour(padded: torch.Tensor, xy: torch.Tensor, dx: int, dy: int, pad: int) -> torch.Tensor:
    """Values of a padded (N, K, h+2p, w+2p) map at integer points xy + (dx, dy)."""
    n, k, hp, wp = padded.shape
    x = (xy[..., 0] + dx + pad).clamp(0, wp - 1)
    y = (xy[..., 1] + dy + pad).clamp(0, hp - 1)
    flat = padded.reshape(n, k, hp * wp)
    return flat.gather(-1, (y * wp + x).unsqueeze(-1)).squeeze(-1)


def _quarter(heatmaps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    h, w = heatmaps.shape[-2:]
    xy = coords.long()
    padded = F.pad(heatmaps, (1, 1, 1, 1))
    ddx = _neighbour(padded, xy, 1, 0, 1) - _neighbour(padded, xy, -1, 0, 1)
    ddy = _neighbour(padded, xy, 0, 1, 1) - _neighbour(padded, xy, 0, -1, 1)
    inner_x = (xy[..., 0] > 0) & (xy[..., 0] < w - 1)
    inner_y = (xy[..., 1] > 0) & (xy[..., 1] < h - 1)
    shift = torch.stack([torch.sign(ddx) * inner_x, torch.sign(ddy) * inner_y], dim=-1)
    return coords + 0.25 * shift.to(coords.dtype)


def _gaussian_blur(heatmaps: torch.Tensor, sigma: float) -> torch.Tensor:
    size = max(3, int(round(6 * sigma - 1)) | 1)  # DARK: 11 for σ = 2, 17 for σ = 3
    r = size // 2
    t = torch.arange(-r, r + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    n, k, h, w = heatmaps.shape
    x = heatmaps.reshape(n * k, 1, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0)), g.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r)), g.view(1, 1, -1, 1))
    return x.reshape(n, k, h, w)


def _dark(heatmaps: torch.Tensor, coords: torch.Tensor, sigma: float) -> torch.Tensor:
    h, w = heatmaps.shape[-2:]
    peak = heatmaps.amax(dim=(-2, -1), keepdim=True)
    blurred = _gaussian_blur(heatmaps, sigma)
    blurred = blurred * (peak / blurred.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12))
    log = torch.log(blurred.clamp_min(1e-10))
    xy = coords.long()
    p = F.pad(log, (2, 2, 2, 2), value=math.log(1e-10))

    def v(dx: int, dy: int) -> torch.Tensor:
        return _neighbour(p, xy, dx, dy, 2)

    c = v(0, 0)
    dx = 0.5 * (v(1, 0) - v(-1, 0))
    dy = 0.5 * (v(0, 1) - v(0, -1))
    dxx = 0.25 * (v(2, 0) - 2 * c + v(-2, 0))
    dyy = 0.25 * (v(0, 2) - 2 * c + v(0, -2))
    dxy = 0.25 * (v(1, 1) - v(1, -1) - v(-1, 1) + v(-1, -1))
    det = dxx * dyy - dxy**2
    inner = (xy[..., 0] > 1) & (xy[..., 0] < w - 2) & (xy[..., 1] > 1) & (xy[..., 1] < h - 2)
    ok = inner & (det.abs() > 1e-12)
    safe = torch.where(ok, det, torch.ones_like(det))
    off_x = -(dyy * dx - dxy * dy) / safe
    off_y = -(dxx * dy - dxy * dx) / safe
    offset = torch.stack([off_x, off_y], dim=-1) * ok.unsqueeze(-1)
    return coords + offset.clamp(-1.0, 1.0)


def _soft(heatmaps: torch.Tensor, coords: torch.Tensor, sigma: float) -> torch.Tensor:
    n, k, h, w = heatmaps.shape
    r = max(1, math.ceil(3 * sigma))
    xs = torch.arange(w, dtype=heatmaps.dtype, device=heatmaps.device)
    ys = torch.arange(h, dtype=heatmaps.dtype, device=heatmaps.device)
    near_x = (xs.view(1, 1, 1, w) - coords[..., 0, None, None]).abs() <= r
    near_y = (ys.view(1, 1, h, 1) - coords[..., 1, None, None]).abs() <= r
    mass = heatmaps.clamp_min(0) * (near_x & near_y)
    total = mass.sum(dim=(-2, -1))
    x = (mass.sum(dim=-2) * xs).sum(dim=-1) / total.clamp_min(1e-12)
    y = (mass.sum(dim=-1) * ys).sum(dim=-1) / total.clamp_min(1e-12)
    soft = torch.stack([x, y], dim=-1)
    return torch.where((total > 0).unsqueeze(-1), soft, coords)


def decode(
    heatmaps: torch.Tensor | np.ndarray,
    method: str = "quarter",
    sigma: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[np.ndarray, np.ndarray]:
    """Keypoint locations and scores from heatmaps.

    Args:
        heatmaps: (N, K, h, w) tensor or array.
        method: "argmax", "quarter", "dark" or "soft" (see the module docstring).
        sigma: the σ of the drawn Gaussians in heatmap pixels (:func:`effective_sigma` of the
            encoding), for DARK's blur kernel and the soft-argmax window.

    Returns:
        ``(coords, scores)``: (N, K, 2) (x, y) heatmap pixels and (N, K) maxima, of the input's
        kind (tensor or array).
    """
    if method not in DECODINGS:
        raise ValueError(f"heatmap decoding {method!r} is not one of {DECODINGS}")
    as_numpy = isinstance(heatmaps, np.ndarray)
    hm = torch.as_tensor(heatmaps)
    if hm.dim() != 4:
        raise ValueError(f"decode expects (N, K, h, w) heatmaps, got shape {tuple(hm.shape)}")
    if not hm.is_floating_point():
        hm = hm.float()
    with torch.no_grad():
        coords, scores = _argmax(hm)
        if method == "quarter":
            coords = _quarter(hm, coords)
        elif method == "dark":
            coords = _dark(hm, coords, sigma)
        elif method == "soft":
            coords = _soft(hm, coords, sigma)
    if as_numpy:
        return coords.cpu().numpy(), scores.cpu().numpy()
    return coords, scores


def flip_back(
    heatmaps: torch.Tensor, permutation: Sequence[int], shift: bool = False
) -> torch.Tensor:
    """Heatmaps of a horizontally flipped image, brought back to the original image's frame.

    Mirrors along x and permutes channels with ``Skeleton.flip_permutation``. ``shift=True``
    moves the result one column right (column j ← j − 1), HRNet's and mmpose's compensation for
    their biased pixel mapping; binmark's unbiased mapping needs no shift.

    Shape:
        (N, K, h, w) → (N, K, h, w).
    """
    out = heatmaps.flip(-1)[:, list(permutation)]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out


def flip_average(
    heatmaps: torch.Tensor,
    flipped: torch.Tensor,
    permutation: Sequence[int],
    shift: bool = False,
) -> torch.Tensor:
    """The flip test: (heatmaps + flip_back(flipped)) / 2, where ``flipped`` is the network's
    output on the mirrored image."""
    return 0.5 * (heatmaps + flip_back(flipped, permutation, shift))


class HeatmapCodec:
    """Keypoints in network-input pixels ↔ heatmaps, with the geometry in one place.

    Args:
        input_size: network input (W, H), px.
        heatmap_size: heatmap (w, h), px; the stride W/w must equal H/h.
        sigma: the recipe's σ in heatmap pixels; the encoding's own σ is :attr:`effective_sigma`.
        encode: "subpixel", "integer", "cunet" or "torch7".
        decode: "argmax", "quarter", "dark" or "soft"; "dark" and "soft" use the encoding's
            effective σ, so decoding matches what was drawn.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = (256, 256),
        heatmap_size: int | Sequence[int] = (64, 64),
        sigma: float = 2.0,
        encode: str = "subpixel",
        decode: str = "quarter",
    ) -> None:
        self.input_size = as_size(input_size)
        self.heatmap_size = as_size(heatmap_size)
        sx = self.input_size[0] / self.heatmap_size[0]
        sy = self.input_size[1] / self.heatmap_size[1]
        if abs(sx - sy) > 1e-9:
            raise ValueError(
                f"input {self.input_size} and heatmap {self.heatmap_size} sizes need the same "
                f"stride in x and y, got {sx} and {sy}"
            )
        _check_encoding(encode, sigma)
        if decode not in DECODINGS:
            raise ValueError(f"heatmap decoding {decode!r} is not one of {DECODINGS}")
        self.stride = sx
        self.sigma = float(sigma)
        self.encode_method = encode
        self.decode_method = decode

    @property
    def effective_sigma(self) -> float:
        """σ of the drawn Gaussian in heatmap pixels (:func:`effective_sigma`)."""
        return effective_sigma(self.encode_method, self.sigma)

    def to_heatmap(self, points: np.ndarray) -> np.ndarray:
        """Input pixels → heatmap pixels (exact pixel-centre mapping)."""
        return (np.asarray(points, dtype=np.float64) + 0.5) / self.stride - 0.5

    def to_input(self, points: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Heatmap pixels → input pixels."""
        return (points + 0.5) * self.stride - 0.5

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets for (K, 2) keypoints in input pixels: ((K, h, w) heatmaps, (K,) weights)."""
        hm_points = self.to_heatmap(keypoints)
        maps = encode(hm_points, visible, self.heatmap_size, self.sigma, self.encode_method)
        return maps, target_weights(hm_points, visible, self.heatmap_size, self.sigma, self.encode_method)

    def decode(self, heatmaps: torch.Tensor | np.ndarray) -> tuple:
        """(N, K, h, w) heatmaps → ((N, K, 2) input-pixel coordinates, (N, K) scores)."""
        coords, scores = decode(heatmaps, self.decode_method, sigma=self.effective_sigma)
        return self.to_input(coords), scores

    def __repr__(self) -> str:
        return (
            f"HeatmapCodec(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}, encode={self.encode_method!r}, decode={self.decode_method!r})"
        )

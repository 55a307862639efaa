"""Synthetic faces with 68 landmarks in the 300-W / iBUG layout (kind "face").

Shape model
    A face is built in a *face frame*: x to the image right, y down, in units where the jaw's top
    points 0 and 16 sit at x = ∓1 and the eye-corner line at y ≈ 0. Every feature is a parametric
    curve evaluated densely for drawing, and every landmark is a vertex of (or lies on a segment
    of) the curve that is drawn, so labels sit on the pixels they name:

    - jaw 0-16: the lower half of a superellipse from the image-left temple down to the chin and
      up again, resampled to 17 points of equal arc length; a forehead arc closes the head;
    - brows 17-21 / 22-26: the centre lines of arched, tapered bands, outer end → inner end;
    - nose 27-30: bridge from between the eyes to the tip; 31-35: the alar-base arc under it;
    - eyes 36-41 / 42-47: sine-arc lids on the corner-to-corner chord (iBUG order: outer or inner
      corner first, upper lid, other corner, lower lid back), points at a third and two thirds;
    - lips 48-59 / 60-67: outer and inner lip curves around a mouth line, with a cupid's bow.

    ``mean_shape()`` is the landmark set of the default :class:`FaceParams`; it is mirror-symmetric
    under the skeleton's ``FACE68_FLIP`` pairs.

Identity (uniform ranges, face units): jaw-top height -0.05..0.22, jaw squareness (superellipse
exponent) 2..3.6, chin below the lower lip 0.28..0.55, eye centres |x| 0.42..0.52, eye width
0.31..0.42, canthal tilt -0.02..0.07, brow span, height, arch and thickness, nose length
0.45..0.68 and width 0.17..0.28, mouth width 0.33..0.5, lip thicknesses, cupid's bow depth.

Expression: mouth opening 0 (half the faces) or 0.02..0.4 (the jaw drops with it), smile -0.04..0.14
(corners up and out), brow raise -0.04..0.12 per face ± 0.02 per side, eye openness 1 (75 %),
0.35..0.9 (15 %) or nearly closed 0..0.15 (10 %), ± 0.1 per eye; gaze and iris size.

Pose: yaw ±40° as a monotone squash of x (the far side compresses, the outline narrows and the
nose, lips and mid-face shift towards the far side by their protrusion), roll ±30°, scale so the
landmark box's longer side spans 35-75 % of the image, translation anywhere that keeps all 68
points inside the image.

Rendering: cluttered background, back hair, neck, clothes, ears, a textured and shaded skin
region, a fringe above a hairline, brows, eyes (sclera, iris, pupil, glint, lids), nose (bridge
shading, tip highlight, nostrils, alar wings), lips and a dark mouth interior with teeth when open,
optional nasolabial folds; then directional lighting, 1-2 occluders on 30 % of the faces
(``occluded`` flags the points under them; ``visible`` stays True as in 300-W), blur and noise.
All vertices are drawn at 1/16 px with cv2's fixed-point ``shift``.

Speed (``benchmarks/synthetic_speed.py``, image_size 256, this 2-core machine): about 135-145
samples/s in one process and about 270-320 samples/s through a DataLoader with 2 workers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from binmark.data.synthetic import RENDERERS
from binmark.data.synthetic.common import SHIFT, apply_lighting, background, draw_occluders
from binmark.data.synthetic.common import finish, random_color, to_fixed

__all__ = ["FaceParams", "random_params", "face_geometry", "mean_shape", "render_face"]

Parts = dict[str, np.ndarray]  # name → (n, 3) face-frame points (x, y, protrusion) or (n, 2) px
RGB = tuple[int, int, int]
Curve = Callable[[np.ndarray], np.ndarray]  # parameters (m,) → (m, 3) face-frame points
Painter = Callable[[tuple[int, int], np.ndarray], np.ndarray]  # (h, w), fixed-point offset → layer
_AA = cv2.LINE_AA
_HAIR = ((25, 20, 18), (60, 40, 28), (105, 70, 45), (195, 160, 105), (150, 70, 35), (165, 165, 160))
_IRIS = ((90, 55, 30), (50, 30, 20), (120, 100, 50), (80, 110, 70), (70, 110, 160), (110, 120, 130))


@dataclass(frozen=True)
class FaceParams:
    """Identity and expression of one face in face-frame units; the defaults are the mean face."""

    jaw_top: float = 0.1  # y of jaw points 0 and 16
    jaw_power: float = 2.6  # superellipse exponent: 2 round … 3.6 square
    chin_gap: float = 0.4  # lower lip → chin
    eye_x: float = 0.47  # |x| of the eye centres
    eye_w: float = 0.38  # corner-to-corner width
    lid_up: float = 0.08  # heights of the open upper / lower lid arcs
    lid_lo: float = 0.062
    eye_tilt: float = 0.03  # inner corners lower than the outer ones by
    eye_open: tuple[float, float] = (1.0, 1.0)  # image-left, image-right eye; 0 = closed
    iris: float = 0.21  # iris radius / eye width
    gaze: tuple[float, float] = (0.0, 0.0)  # iris offset / eye width, / lid height
    brow_in: float = 0.18  # |x| of the inner and outer brow ends
    brow_out: float = 0.88
    brow_y: float = -0.27  # y of the inner brow end
    brow_arch: float = 0.1
    brow_drop: float = 0.06  # outer brow end lower than the inner one by
    brow_thick: float = 0.08
    brow_raise: tuple[float, float] = (0.0, 0.0)  # image-left, image-right brow
    nose_len: float = 0.56  # y of the nose tip (30)
    nose_w: float = 0.23  # |x| of the alar-base points 31 and 35
    mouth_gap: float = 0.28  # subnasale (33) → mouth line
    mouth_w: float = 0.44  # |x| of the mouth corners
    lip_up: float = 0.09
    lip_lo: float = 0.14
    cupid: float = 0.2  # relative depth of the cupid's-bow dip
    mouth_open: float = 0.0  # inner-lip separation
    smile: float = 0.0  # mouth corners raised by


def random_params(rng: np.random.Generator) -> FaceParams:
    """A random identity and expression (ranges in the module docstring)."""
    u = rng.uniform
    r = rng.random()
    openness = 1.0 if r < 0.75 else u(0.35, 0.9) if r < 0.9 else u(0.0, 0.15)
    raised = u(-0.04, 0.12)

    def lid() -> float:
        return min(1.2, max(0.0, openness + u(-0.1, 0.1)))

    return FaceParams(
        jaw_top=u(-0.05, 0.22), jaw_power=u(2.0, 3.6), chin_gap=u(0.28, 0.55),
        eye_x=u(0.42, 0.52), eye_w=u(0.31, 0.42), lid_up=u(0.06, 0.1), lid_lo=u(0.045, 0.075),
        eye_tilt=u(-0.02, 0.07),
        eye_open=(lid(), lid()),
        iris=u(0.17, 0.24), gaze=(u(-0.15, 0.15), u(-0.3, 0.3)),
        brow_in=u(0.12, 0.24), brow_out=u(0.78, 0.95), brow_y=u(-0.36, -0.22),
        brow_arch=u(0.03, 0.14), brow_drop=u(-0.03, 0.1), brow_thick=u(0.05, 0.11),
        brow_raise=(raised + u(-0.02, 0.02), raised + u(-0.02, 0.02)),
        nose_len=u(0.45, 0.68), nose_w=u(0.17, 0.28), mouth_gap=u(0.2, 0.36), mouth_w=u(0.33, 0.5),
        lip_up=u(0.05, 0.11), lip_lo=u(0.08, 0.17), cupid=u(0.0, 0.4),
        mouth_open=0.0 if rng.random() < 0.5 else u(0.02, 0.4), smile=u(-0.04, 0.14),
    )  # fmt: skip


@functools.lru_cache(maxsize=None)
def _grid(n: int, lo: float, hi: float) -> np.ndarray:
    """``n`` even parameters in [lo, hi] (cached, read-only)."""
    t = np.linspace(lo, hi, n)
    t.flags.writeable = False
    return t


def _sample(
    curve: Curve, marks: Sequence[float], n: int, lo: float = 0.0, hi: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``curve`` on ``n`` even parameters in [lo, hi] plus ``marks``.

    Returns:
        the parameters, the (m, 3) points, and the indices of ``marks`` among them.
    """
    t = np.sort(np.concatenate([_grid(n, lo, hi), marks]))
    return t, curve(t), np.searchsorted(t, marks)


def _xyz(x: Any, y: Any, z: Any = 0.0) -> np.ndarray:
    """Stack broadcastable x, y, protrusion into (n, 3) points."""
    out = np.empty((max(np.size(x), np.size(y), np.size(z)), 3))
    out[:, 0], out[:, 1], out[:, 2] = x, y, z
    return out


def _ellipse(centre: Any, rx: float, ry: float, n: int, z: float = 0.0) -> np.ndarray:
    """(n, 3) points on an axis-aligned ellipse."""
    a = _grid(n + 1, 0.0, 2 * np.pi)[:-1]
    return _xyz(centre[0] + rx * np.cos(a), centre[1] + ry * np.sin(a), z)


def _mouth_y(p: FaceParams) -> float:
    """y of the mouth line: subnasale (nose tip + 0.2) + gap."""
    return p.nose_len + 0.2 + p.mouth_gap


def _jaw(p: FaceParams) -> tuple[np.ndarray, Parts]:
    """Jaw landmarks 0-16 (equal arc length on a superellipse) and the dense contour."""
    chin = _mouth_y(p) + 0.7 * p.mouth_open + p.lip_lo + p.chin_gap
    th = _grid(81, -np.pi / 2, np.pi / 2)
    e = 2.0 / p.jaw_power
    x = np.sign(np.sin(th)) * np.abs(np.sin(th)) ** e
    y = p.jaw_top + (chin - p.jaw_top) * np.abs(np.cos(th)) ** e
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    at = _grid(17, 0.0, 1.0) * arc[-1]
    return _xyz(np.interp(at, arc, x), np.interp(at, arc, y)), {"jaw": _xyz(x, y)}


def _brow(p: FaceParams, side: int) -> tuple[np.ndarray, Parts]:
    """Brow landmarks (outer → inner on the image left, inner → outer on the right), band outline."""
    lift = p.brow_raise[(side + 1) // 2]

    def centre(t: np.ndarray) -> np.ndarray:  # t: 0 outer end … 1 inner end
        y = p.brow_y - lift + p.brow_drop * (1 - t) - p.brow_arch * np.sin(np.pi * t**0.66)
        return _xyz(side * (p.brow_out + (p.brow_in - p.brow_out) * t), y, 0.03)

    marks = [0.0, 0.25, 0.5, 0.75, 1.0]
    t, line, idx = _sample(centre, marks if side < 0 else marks[::-1], 13)
    half = _xyz(0.0, p.brow_thick * (0.3 + 0.4 * t))
    return line[idx], {f"brow{side}": np.concatenate([line - half, (line + half)[::-1]])}


def _eye(p: FaceParams, side: int) -> tuple[np.ndarray, Parts]:
    """Eye landmarks in iBUG order, the lid polygon (outer → inner upper, back lower), iris, pupil."""
    op = p.eye_open[(side + 1) // 2]
    outer = np.array([side * (p.eye_x + p.eye_w / 2), -p.eye_tilt / 2])
    inner = np.array([side * (p.eye_x - p.eye_w / 2), p.eye_tilt / 2])

    def lid(height: float) -> Curve:
        def curve(t: np.ndarray) -> np.ndarray:
            chord = outer + np.outer(t, inner - outer)
            return _xyz(chord[:, 0], chord[:, 1] + height * np.sin(np.pi * t))

        return curve

    closed = 1.0 - min(op, 1.0)
    marks = [0.0, 1 / 3, 2 / 3, 1.0]
    _, up, iu = _sample(lid(-p.lid_up * op + 0.3 * p.lid_lo * closed), marks, 13)
    _, lo, il = _sample(lid(p.lid_lo * (1.0 - 0.7 * closed)), marks, 13)
    ring = np.concatenate([up[iu], lo[il[2:0:-1]]])  # outer corner, upper lid, inner, lower lid
    order = ring if side < 0 else ring[[3, 2, 1, 0, 5, 4]]  # 42 inner corner first
    centre = (outer + inner) / 2 + [p.gaze[0] * p.eye_w, p.gaze[1] * p.lid_up * op]
    r = p.iris * p.eye_w
    return order, {
        f"lids{side}": np.concatenate([up, lo[::-1]]), f"upper{side}": up, f"lower{side}": lo,
        f"iris{side}": _ellipse(centre, r, r, 20),
        f"pupil{side}": _ellipse(centre, 0.45 * r, 0.45 * r, 12),
        f"glint{side}": _ellipse(centre - 0.35 * r, 0.18 * r, 0.18 * r, 8),
    }  # fmt: skip


def _nose(p: FaceParams) -> tuple[np.ndarray, Parts]:
    """Bridge 27-30 and base 31-35, with bridge shading lines, tip, nostrils and alar wings."""
    k = np.arange(4) / 3
    bridge = _xyz(0.0, -0.02 + (p.nose_len + 0.02) * k, 0.08 + 0.3 * k)

    def base(u: np.ndarray) -> np.ndarray:
        return _xyz(p.nose_w * u, p.nose_len + 0.135 + 0.065 * (1 - u**2), 0.1 + 0.15 * (1 - u**2))

    _, arc, idx = _sample(base, [-1.0, -0.5, 0.0, 0.5, 1.0], 17, -1.0, 1.0)
    parts: Parts = {"nose_base": arc, "tip": _ellipse((0.0, p.nose_len - 0.03), 0.07, 0.05, 10, 0.38)}
    for side in (-1, 1):
        nostril = (side * p.nose_w * 0.5, p.nose_len + 0.15)
        parts[f"nostril{side}"] = _ellipse(nostril, 0.25 * p.nose_w, 0.03, 10, 0.2)
        a = _grid(9, 0.5 * np.pi, -0.6 * np.pi if side > 0 else 1.6 * np.pi)  # outwards, up, in
        parts[f"wing{side}"] = arc[idx[2 + 2 * side]] + _xyz(0.07 * np.cos(a), 0.08 * (np.sin(a) - 1))
        x, y = side * np.array([0.11, 0.14, 0.7 * p.nose_w]), [0.05, 0.3, p.nose_len - 0.04]
        parts[f"side{side}"] = _xyz(x, y, [0.1, 0.2, 0.25])
    return np.concatenate([bridge, arc[idx]]), parts


def _mouth(p: FaceParams) -> tuple[np.ndarray, Parts]:
    """Outer lip 48-59, inner lip 60-67 and the dense lip curves."""
    my, w, mo, ui = _mouth_y(p), p.mouth_w * (1 + 0.15 * p.smile), p.mouth_open, 0.88

    def curve(dy: Curve) -> Curve:
        return lambda u: _xyz(w * u, my - p.smile * u**2 + dy(u), 0.12 * (1 - u**2))

    def gap(u: np.ndarray) -> np.ndarray:
        return np.sqrt(np.clip(1 - (u / ui) ** 2, 0, None))

    def bow(u: np.ndarray) -> np.ndarray:
        return np.sqrt(np.clip(1 - u**2, 0, None)) * (1 - p.cupid * np.exp(-((u / 0.13) ** 2)))

    ou = curve(lambda u: -0.3 * mo * gap(u) - p.lip_up * bow(u))
    ol = curve(lambda u: 0.7 * mo * gap(u) + p.lip_lo * np.clip(1 - u**2, 0, None) ** 0.6)
    iu, il = curve(lambda u: -0.3 * mo * gap(u)), curve(lambda u: 0.7 * mo * gap(u))
    a, b = (-1.0, -0.6, -0.28, 0.0, 0.28, 0.6, 1.0), (0.6, 0.28, 0.0, -0.28, -0.6)
    _, up, i_up = _sample(ou, a, 25, -1.0, 1.0)
    _, lo, i_lo = _sample(ol, b, 25, -1.0, 1.0)
    c = (-ui, -0.4 * ui, 0.0, 0.4 * ui, ui)
    t_in, inu, i_inu = _sample(iu, c, 17, -ui, ui)
    _, inl, i_inl = _sample(il, c[3:0:-1], 17, -ui, ui)
    marks = np.concatenate([up[i_up], lo[i_lo], inu[i_inu], inl[i_inl]])
    teeth = inu + (il(t_in) - inu) * min(0.45, 0.05 / max(mo, 1e-6))
    return marks, {
        "upper_lip": np.concatenate([up, inu[::-1]]),
        "lower_lip": np.concatenate([lo[::-1], inl[::-1]]),
        "mouth": np.concatenate([inu, inl[::-1]]),
        "teeth": np.concatenate([inu, teeth[::-1]]),
        "lip_line": inu,
    }


def face_geometry(p: FaceParams) -> tuple[np.ndarray, Parts]:
    """The (68, 3) face-frame landmarks of ``p`` and the dense parts that draw them."""
    pieces = [_jaw(p), _brow(p, -1), _brow(p, 1), _nose(p), _eye(p, -1), _eye(p, 1), _mouth(p)]
    marks = np.concatenate([m for m, _ in pieces])  # jaw, brows, nose, eyes, lips: the 300-W order
    parts: Parts = {}
    for _, extra in pieces:
        parts.update(extra)
    return marks, parts


def mean_shape() -> np.ndarray:
    """The (68, 2) face-frame landmarks of the mean face (default :class:`FaceParams`)."""
    return face_geometry(FaceParams())[0][:, :2]


@dataclass(frozen=True)
class _Style:
    """Colours and the head's non-landmark geometry (face units) of one rendered face."""

    skin: np.ndarray  # (3,) float RGB
    hair: np.ndarray
    lips: RGB
    brow: RGB
    iris: RGB
    sclera: RGB
    clothes: RGB
    forehead: float  # head top above the eye line
    hairline: float | None  # y of the hairline's middle; None: bald
    hair_volume: float  # hair beyond the head outline
    hair_len: float  # back hair below the temples
    ears: bool
    folds: bool  # nasolabial folds


def _random_style(rng: np.random.Generator, p: FaceParams) -> _Style:
    """Skin from dark to light, natural (sometimes dyed) hair, eyes, lipstick, hair style."""
    u = rng.uniform
    skin = np.array([80, 50, 35]) + u(0, 1) * np.array([165, 160, 150]) + rng.normal(0, 8, 3)
    hair = np.array(_HAIR[rng.integers(len(_HAIR))]) + rng.normal(0, 12, 3)
    if rng.random() < 0.08:
        hair = np.array(random_color(rng), dtype=np.float64)
    lipstick = rng.random() < 0.1
    lips = np.array([170, 30, 60]) + rng.normal(0, 20, 3) if lipstick else skin * [0.82, 0.6, 0.62]
    brow = skin + (np.minimum(hair, 110) * 0.7 - skin) * u(0.55, 0.95)
    brow_top = p.brow_y - max(p.brow_raise) - p.brow_arch - p.brow_thick
    return _Style(
        skin=np.clip(skin, 0, 255), hair=np.clip(hair, 0, 255), lips=_rgb(lips), brow=_rgb(brow),
        iris=_rgb(np.array(_IRIS[rng.integers(len(_IRIS))]) + rng.normal(0, 10, 3)),
        sclera=_rgb(np.array([235, 225, 220]) * u(0.75, 1.0)), clothes=random_color(rng),
        forehead=u(1.1, 1.45), hairline=None if rng.random() < 0.1 else brow_top - u(0.12, 0.45),
        hair_volume=u(0.03, 0.3), hair_len=u(0.1, 2.5) if rng.random() < 0.4 else u(0.0, 0.4),
        ears=bool(rng.random() < 0.6), folds=bool(rng.random() < 0.5),
    )  # fmt: skip


def _rgb(c: Any) -> RGB:
    """A colour as the int tuple cv2 wants."""
    r, g, b = (min(255, max(0, round(float(v)))) for v in c)
    return r, g, b


def _head(p: FaceParams, st: _Style, chin: float) -> Parts:
    """Forehead arc, back hair, fringe, ears, neck and clothes around the face."""
    t = _grid(25, 0.0, np.pi)
    jt, top = p.jaw_top, p.jaw_top + st.forehead
    parts: Parts = {"forehead": _xyz(np.cos(t), jt - top * np.sin(t))}
    v = st.hair_volume
    back = _xyz(np.cos(t + np.pi) * (1 + v), jt + st.hair_len * np.sin(t))
    parts["back_hair"] = np.concatenate([_xyz((1 + v) * np.cos(t), jt - (top + v) * np.sin(t)), back])
    if st.hairline is not None:  # over the top from temple to temple, back along the hairline
        a = _grid(21, 0.25, np.pi - 0.25)
        arc = _xyz(1.02 * np.cos(a), jt - 1.02 * top * np.sin(a))
        s = _grid(15, -1.0, 1.0)
        mid = max(st.hairline, jt - top + 0.2)
        line = _xyz(arc[0, 0] * s, mid + (arc[0, 1] - mid) * s**4)
        parts["fringe"] = np.concatenate([arc, line])
    for side in (-1, 1):
        parts[f"ear{side}"] = _ellipse((side * 1.0, jt + 0.22), 0.14, 0.3, 12, -0.1)
    parts["neck"] = _xyz([-0.55, 0.55, 0.65, -0.65], [chin - 0.6, chin - 0.6, chin + 3, chin + 3])
    parts["clothes"] = _ellipse((0.0, chin + 2.1), 2.4, 1.0, 24)
    s = _grid(7, 0.0, 1.0)[:, None]  # folds: from beside the nose wing to beside the mouth corner
    ends = np.array([[p.nose_w + 0.06, p.nose_len + 0.1], [p.mouth_w + 0.06, _mouth_y(p) + 0.12]])
    fold = (1 - s) * ends[0] + s * ends[1] + 0.05 * np.sin(np.pi * s) * [1, -0.3]
    for side in (-1, 1):
        parts[f"fold{side}"] = _xyz(side * fold[:, 0], fold[:, 1])
    return parts


def _warp(pts: np.ndarray, yaw: float) -> np.ndarray:
    """Yaw-like squash of face-frame (x, y, protrusion) points to (n, 2).

    x ↦ c·x + d·(1 - x²) inside the outline (|x| ≤ 1; monotone, so nothing crosses it) and
    linearly beyond it, plus protrusion · sin(yaw): the outline narrows to ±c, the mid-face moves
    by d and the nose and lips by more, towards the far side, which compresses.
    """
    sn = np.sin(yaw)
    c, d = np.sqrt(np.cos(yaw) ** 2 + 0.35 * sn**2), 0.5 * sn
    x = pts[:, 0]
    side = np.sign(x)
    beyond = side * c + (x - side) * np.maximum(c - 2 * d * side, 0.25 * c)
    xw = np.where(np.abs(x) <= 1, c * x + d * (1 - x**2), beyond) + pts[:, 2] * sn
    return np.stack([xw, pts[:, 1]], axis=1)


def _place(
    rng: np.random.Generator, marks: np.ndarray, parts: Parts, size: int
) -> tuple[np.ndarray, Parts, float]:
    """Random yaw, roll, scale and translation (all landmarks stay inside the image).

    Returns:
        the (68, 2) landmarks in px, the parts as cv2 fixed-point int32 px (``SHIFT`` fractional
        bits, converted once here), and the scale in px per face unit.
    """
    yaw, roll = np.radians(rng.uniform(-40, 40)), np.radians(rng.uniform(-30, 30))
    pts = _warp(np.concatenate([marks, *parts.values()]), yaw)
    cr, sr = np.cos(roll), np.sin(roll)
    pts = pts @ np.array([[cr, sr], [-sr, cr]])
    lo, hi = pts[:68].min(0), pts[:68].max(0)
    scale = rng.uniform(0.35, 0.75) * size / (hi - lo).max()
    pts = pts * scale + (2 - lo * scale + rng.uniform(0, 1, 2) * (size - 5 - (hi - lo) * scale))
    split = np.split(to_fixed(pts[68:]), np.cumsum([len(v) for v in parts.values()])[:-1])
    return pts[:68], dict(zip(parts, split)), float(scale)


def _fill(img: np.ndarray, poly: np.ndarray, colour: Any) -> None:
    """Anti-aliased polygon fill of fixed-point vertices."""
    cv2.fillPoly(img, [poly], colour, _AA, SHIFT)


def _line(img: np.ndarray, pts: np.ndarray, colour: Any, width: float, closed: bool = False) -> None:
    """Anti-aliased polyline through fixed-point vertices, ``width`` px wide (at least 1)."""
    cv2.polylines(img, [pts], closed, colour, max(1, int(round(width))), _AA, SHIFT)


def _paste(img: np.ndarray, poly: np.ndarray, paint: Painter) -> None:
    """Blend ``paint(shape, offset)``, a uint8 (h, w, 3) layer of the box around ``poly``, into it.

    ``poly`` and ``offset`` (the box's top-left corner) are cv2 fixed point; the edge is antialiased.
    """
    h, w = img.shape[:2]
    x0, y0 = np.maximum((poly.min(0) >> SHIFT) - 1, 0)
    x1, y1 = np.minimum((poly.max(0) >> SHIFT) + 3, (w, h))
    if x1 <= x0 or y1 <= y0:
        return
    offset = np.array([x0, y0], dtype=np.int32) << SHIFT
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    _fill(mask, poly - offset, 255)
    alpha = mask.astype(np.float32) * np.float32(1 / 255)
    layer = paint((y1 - y0, x1 - x0), offset)
    img[y0:y1, x0:x1] = cv2.blendLinear(layer, img[y0:y1, x0:x1], alpha, 1 - alpha)


def _fill_textured(
    rng: np.random.Generator, img: np.ndarray, poly: np.ndarray, colour: np.ndarray,
    amp: float, grid: tuple[int, int], shade: float = 0.0,
) -> None:  # fmt: skip
    """Fill ``poly`` with ``colour`` × smooth noise (``grid`` = (nx, ny) knots) × a radial shade."""
    gy, gx = np.mgrid[-1 : 1 : grid[1] * 1j, -1 : 1 : grid[0] * 1j]
    gain = 1 + amp * rng.standard_normal(gx.shape) - shade * (gx**2 + gy**2)
    knots = np.clip(gain[..., None] * colour, 0, 255).astype(np.uint8)
    smooth = cv2.resize(knots, (4 * grid[0], 4 * grid[1]), interpolation=cv2.INTER_CUBIC)

    def paint(shape: tuple[int, int], _: np.ndarray) -> np.ndarray:
        return cv2.resize(smooth, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)

    _paste(img, poly, paint)


def _draw_eye(img: np.ndarray, px: Parts, side: int, st: _Style, scale: float) -> None:
    """Sclera, iris, pupil and glint clipped to the lids, then the lid lines."""

    def paint(shape: tuple[int, int], offset: np.ndarray) -> np.ndarray:
        layer = np.empty((*shape, 3), np.uint8)
        layer[:] = st.sclera
        _fill(layer, px[f"iris{side}"] - offset, st.iris)
        _line(layer, px[f"iris{side}"] - offset, _rgb(np.array(st.iris) * 0.5), 0.02 * scale, True)
        _fill(layer, px[f"pupil{side}"] - offset, (12, 10, 10))
        _fill(layer, px[f"glint{side}"] - offset, (245, 245, 245))
        return layer

    _paste(img, px[f"lids{side}"], paint)
    _line(img, px[f"upper{side}"], _rgb(st.skin * 0.2), 0.03 * scale)
    _line(img, px[f"lower{side}"], _rgb(st.skin * 0.6), 0.012 * scale)


def _draw_head(rng: np.random.Generator, img: np.ndarray, px: Parts, st: _Style) -> None:
    """Back hair, neck, clothes, ears, the textured skin, and the fringe."""
    if st.hairline is not None:
        _fill_textured(rng, img, px["back_hair"], st.hair, 0.15, (12, 3))
    _fill(img, px["neck"], _rgb(st.skin * 0.7))
    _fill_textured(rng, img, px["clothes"], np.array(st.clothes, np.float64), 0.1, (4, 4))
    if st.ears:
        for side in (-1, 1):
            _fill(img, px[f"ear{side}"], _rgb(st.skin * 0.88))
    _fill_textured(rng, img, np.concatenate([px["jaw"], px["forehead"]]), st.skin, 0.05, (6, 6), 0.2)
    if st.hairline is not None:
        _fill_textured(rng, img, px["fringe"], st.hair, 0.15, (12, 3))


def _draw_features(img: np.ndarray, px: Parts, p: FaceParams, st: _Style, scale: float) -> None:
    """Brows, eyes, nose, lips and mouth, nasolabial folds."""
    skin = st.skin
    for side in (-1, 1):
        _fill(img, px[f"brow{side}"], st.brow)
        _draw_eye(img, px, side, st, scale)
        _line(img, px[f"side{side}"], _rgb(skin * 0.85), 0.025 * scale)
        _line(img, px[f"wing{side}"], _rgb(skin * 0.65), 0.02 * scale)
        _fill(img, px[f"nostril{side}"], _rgb(skin * 0.35))
        if st.folds:
            _line(img, px[f"fold{side}"], _rgb(skin * 0.8), 0.02 * scale)
    _fill(img, px["tip"], _rgb(np.minimum(skin * 1.12, 255)))
    _line(img, px["nose_base"], _rgb(skin * 0.7), 0.015 * scale)
    if p.mouth_open > 0.01:
        _fill(img, px["mouth"], _rgb(np.array(st.lips) * 0.25))
        if p.mouth_open > 0.06:
            _fill(img, px["teeth"], (225, 220, 205))
    _fill(img, px["upper_lip"], _rgb(np.array(st.lips) * 0.9))
    _fill(img, px["lower_lip"], st.lips)
    _line(img, px["lip_line"], _rgb(np.array(st.lips) * 0.5), 0.015 * scale)


def render_face(rng: np.random.Generator, image_size: int) -> dict[str, Any]:
    """One synthetic face with its 68 300-W landmarks, a pure function of ``rng``'s state."""
    img = background(rng, image_size)
    p = random_params(rng)
    st = _random_style(rng, p)
    marks, parts = face_geometry(p)
    parts.update(_head(p, st, chin=float(marks[8, 1])))
    kp, px, scale = _place(rng, marks, parts, image_size)
    _draw_head(rng, img, px, st)
    _draw_features(img, px, p, st, scale)
    img = apply_lighting(rng, img)
    occluded = np.zeros(68, dtype=bool)
    lo, hi = kp.min(0), kp.max(0)
    if rng.random() < 0.3:
        mask = draw_occluders(rng, img, int(rng.integers(1, 3)), (lo[0], lo[1], hi[0], hi[1]))
        ij = np.clip(np.rint(kp).astype(int), 0, image_size - 1)
        occluded = mask[ij[:, 1], ij[:, 0]]
    return {
        "image": finish(rng, img), "keypoints": kp, "visible": np.ones(68, dtype=bool),
        "occluded": occluded, "center": (lo + hi) / 2, "scale": float((hi - lo).max() / 200),
        "bbox": np.concatenate([lo, hi - lo]), "inter_ocular": float(np.linalg.norm(kp[36] - kp[45])),
    }  # fmt: skip


RENDERERS.register("face")((render_face, "300w"))

"""Synthetic articulated people on the MPII 16-joint skeleton (``synthetic("pose", …)``).

Kinematic model (:func:`sample_body`), in a 3-D body frame: x the person's left, y up, z forward,
lengths in units of the standing height (means in ``BONE_LENGTHS``, each scaled by U(0.88, 1.12),
left and right equal):

- spine: forward bend N(8°, 12°) in [−20°, 50°] (10 %: 30°–80°, bending over), side bend ±25°,
  shoulder twist ±40°; head turn ±70°, nod [−35°, 45°], tilt ±25°;
- limbs: the upper segment's direction is an azimuth around the vertical (outwards, forwards,
  backwards, across) and an elevation from hanging down, capped per azimuth (hips: 30° back,
  55° out, 125° forward, 25° across; shoulders: 60° back, 175° out/forward, 110° across);
  knees bend backwards only (0°–150°), elbows forwards only (0°–150°) in a plane turned by the
  hip / humeral rotation; feet sit perpendicular to the shin, hands continue the forearm;
- camera: any yaw (front, side and back views — turning narrows shoulders and hips, and decides
  which side is nearer), pitch ±20°, in-plane lean N(0°, 15°) clipped to ±40° (10 %: 40°–110°),
  orthographic projection; the person box (joints ∪ head box) is scaled to 40–90 % of the image
  and placed inside it, or (10 %) pushed 5–30 % over an edge so extremities leave the image.

Drawing: a cluttered :func:`~binmark.data.synthetic.common.background`, sometimes one or two
limb-like capsules (hard negatives), then the body by the painter's rule — parts sorted by depth,
the torso (a convex hull of a 3-D box) and neck treated as slightly deeper so limbs level with
them lie on top. Limbs are tapered capsules with a shaded core, in skin and clothing colours;
the head is a face and a hair ellipse (their depth order shows front vs back views) with eyes and
nose where they face the camera. A low-frequency texture, occluders (30 % of samples, 1–2),
lighting and camera noise follow. Everything is drawn with cv2 fixed-point sub-pixel vertices.

Visibility: every part is also drawn, in the same order, into a label map. A joint is visible
when its pixel lies in the image, shows a part incident to the joint (knee: that leg's thigh or
shin; hip: that thigh or the torso; thorax: torso or neck; head top: head …), and is not covered
by an occluder.

Speed (``benchmarks/synthetic_speed.py``, image_size 256, this 2-core machine, otherwise idle):
about 150-200 samples/s in one process and 270-300 samples/s through a DataLoader with 2 workers.
Of the ≈ 6 ms a sample takes, the body (pose, drawing, texture, visibility) is ≈ 2 ms; the shared
background, lighting, occluders and camera noise are the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np

from binmark.data.synthetic import RENDERERS
from binmark.data.synthetic.common import (
    SHIFT,
    apply_lighting,
    background,
    draw_occluders,
    finish,
    random_color,
    to_fixed,
)

__all__ = ["render_pose", "sample_body", "Body", "BONE_LENGTHS", "LENGTH_JITTER"]

R_ANK, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANK, PELVIS, THORAX, NECK, HEAD_TOP = range(10)
R_WRI, R_ELB, R_SHO, L_SHO, L_ELB, L_WRI = range(10, 16)
R_HAND, L_HAND, R_TOE, L_TOE = range(16, 20)  # extra points: hand and toe tips
HULL = slice(20, 28)  # the torso box's 8 corners

#: mean bone lengths as fractions of the standing height ("shoulder"/"hip": half widths)
BONE_LENGTHS = {
    "torso": 0.30, "neck": 0.055, "head": 0.125, "upper_arm": 0.175, "forearm": 0.155,
    "thigh": 0.245, "shin": 0.245, "hand": 0.075, "foot": 0.11, "shoulder": 0.105, "hip": 0.07,
}  # fmt: skip
LENGTH_JITTER = 0.12  # each length is its mean × U(1 − jitter, 1 + jitter)
CHEST_DEPTH = 0.06  # half the torso's front-to-back depth

# part labels (0 = background) and the parts incident to each joint
TORSO, HEAD, NECK_PART, R_THIGH, R_SHIN, L_THIGH, L_SHIN, R_UPPER, R_FORE, L_UPPER, L_FORE = range(1, 12)
_INCIDENT = (
    (R_SHIN,), (R_THIGH, R_SHIN), (R_THIGH, TORSO), (L_THIGH, TORSO), (L_THIGH, L_SHIN), (L_SHIN,),
    (TORSO, R_THIGH, L_THIGH), (TORSO, NECK_PART), (NECK_PART, HEAD), (HEAD,),
    (R_FORE,), (R_UPPER, R_FORE), (R_UPPER, TORSO), (L_UPPER, TORSO), (L_UPPER, L_FORE), (L_FORE,),
)  # fmt: skip
ADJACENT = np.zeros((16, 12), dtype=bool)
for _joint, _parts in enumerate(_INCIDENT):
    ADJACENT[_joint, list(_parts)] = True

# capsule radii (start, end) in standing heights
_RADII = {
    "thigh": (0.05, 0.036), "shin": (0.034, 0.024), "upper_arm": (0.03, 0.025),
    "forearm": (0.025, 0.02), "hand": (0.022, 0.018), "foot": (0.022, 0.02), "neck": (0.032, 0.03),
}  # fmt: skip
# drawn capsules: label, start point, end point, start and end radius, depth bias (× CHEST_DEPTH)
_CAPSULE_TABLE = (
    (R_THIGH, R_HIP, R_KNEE, "thigh", "pants", 0), (L_THIGH, L_HIP, L_KNEE, "thigh", "pants", 0),
    (R_SHIN, R_KNEE, R_ANK, "shin", "shin", 0), (L_SHIN, L_KNEE, L_ANK, "shin", "shin", 0),
    (R_SHIN, R_ANK, R_TOE, "foot", "shoes", -0.01), (L_SHIN, L_ANK, L_TOE, "foot", "shoes", -0.01),
    (R_UPPER, R_SHO, R_ELB, "upper_arm", "shirt", 0), (L_UPPER, L_SHO, L_ELB, "upper_arm", "shirt", 0),
    (R_FORE, R_ELB, R_WRI, "forearm", "sleeve", 0), (L_FORE, L_ELB, L_WRI, "forearm", "sleeve", 0),
    (R_FORE, R_WRI, R_HAND, "hand", "skin", -0.01), (L_FORE, L_WRI, L_HAND, "hand", "skin", -0.01),
    (NECK_PART, THORAX, NECK, "neck", "skin", 2),
)  # fmt: skip
_CAPSULES = np.array(
    [(part, a, b, *_RADII[r], bias * CHEST_DEPTH) for part, a, b, r, _, bias in _CAPSULE_TABLE]
)
_CAPSULE_COLORS = [color for *_, color, _ in _CAPSULE_TABLE]
_SKIN = np.array([(255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36),
                  (92, 51, 23)])  # fmt: skip
_HAIR = np.array([(20, 15, 10), (60, 40, 25), (110, 75, 40), (200, 170, 110), (140, 140, 140),
                  (150, 50, 20)])  # fmt: skip


class _LimbSpec(NamedTuple):
    """Joint-angle limits of one kind of two-segment limb (see :func:`_limb`)."""

    azimuth: tuple[float, ...]  # degrees: −90 back, 0 out, 90 forward, 180 across the body
    max_elevation: tuple[float, ...]  # degrees from hanging down, at each azimuth knot
    bend_towards: tuple[float, float, float]  # direction the lower segment bends, limb hanging
    twist: tuple[float, float]  # degrees of hip/humeral rotation, positive inwards
    bend_power: float  # bend = 150° · U^power


_LEG = _LimbSpec((-90, 0, 90, 180), (30, 55, 125, 25), (0.0, 0.0, -1.0), (-20, 20), 1.8)
_ARM = _LimbSpec((-90, 0, 90, 160), (60, 175, 175, 110), (0.0, 0.0, 1.0), (-30, 90), 1.2)
_MAX_BEND = np.radians(150.0)
_UP = np.array([0.0, -1.0])  # image up: the distractors' light direction


@dataclass(frozen=True)
class Body:
    """A sampled pose in the body frame (x the person's left, y up, z forward; standing height 1).

    Attributes:
        points: (28, 3): the 16 MPII joints, hand and toe tips, the torso box's 8 corners.
        lengths: the bone lengths used (keys of ``BONE_LENGTHS``).
        head: (3, 3) head frame, columns: left, up (upper neck → head top), forward (the face).
    """

    points: np.ndarray
    lengths: dict[str, float]
    head: np.ndarray


def _rot(axis: int, degrees: float) -> np.ndarray:
    """Right-handed rotation by ``degrees`` about axis 0 (x), 1 (y) or 2 (z)."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = ((1, 2), (2, 0), (0, 1))[axis]
    r = np.eye(3)
    r[i, i] = r[j, j] = c
    r[i, j], r[j, i] = -s, s
    return r


def _clipped_normal(rng: np.random.Generator, mean: float, std: float, low: float, high: float) -> float:
    """A normal draw clipped to [low, high]."""
    return float(np.clip(rng.normal(mean, std), low, high))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a × b for 3-vectors (``np.cross`` costs ~20× more on single vectors)."""
    (a0, a1, a2), (b0, b1, b2) = a.tolist(), b.tolist()
    return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


def _limb(
    rng: np.random.Generator, root: np.ndarray, frame: np.ndarray, out: float, spec: _LimbSpec,
    upper: float, lower: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A two-segment limb hanging from ``root`` in ``frame`` (columns: left, up, forward).

    ``out`` is −1 for a right limb, +1 for a left one. Returns the middle joint, the end joint,
    and the tip direction (along the forearm; perpendicular to the shin, forwards, for a leg).
    """
    az = rng.uniform(spec.azimuth[0], spec.azimuth[-1])
    el = np.radians(np.interp(az, spec.azimuth, spec.max_elevation) * rng.random() ** 1.5)
    az = np.radians(az)
    horizontal = np.array([out * np.cos(az), 0.0, np.sin(az)])
    down = np.array([0.0, -1.0, 0.0])
    u = np.cos(el) * down + np.sin(el) * horizontal
    axis = _cross(down, horizontal)  # Rodrigues: the rotation taking down to u
    ref = np.asarray(spec.bend_towards)
    ref = ref * np.cos(el) + _cross(axis, ref) * np.sin(el) + axis * (axis @ ref) * (1 - np.cos(el))
    twist = np.radians(out * rng.uniform(*spec.twist))
    ref = np.cos(twist) * ref + np.sin(twist) * _cross(u, ref)
    bend = _MAX_BEND * rng.random() ** spec.bend_power
    v = np.cos(bend) * u + np.sin(bend) * ref
    if spec is _LEG:
        ankle = bend + np.radians(rng.uniform(-20, 30))
        tip = np.sin(ankle) * u - np.cos(ankle) * ref
    else:
        tip = v
    mid = root + frame @ (upper * u)
    return mid, mid + frame @ (lower * v), frame @ tip


def _lengths(rng: np.random.Generator) -> dict[str, float]:
    """Bone lengths: the means of ``BONE_LENGTHS`` jittered independently (left = right)."""
    factors = rng.uniform(1 - LENGTH_JITTER, 1 + LENGTH_JITTER, len(BONE_LENGTHS))
    return {name: mean * f for (name, mean), f in zip(BONE_LENGTHS.items(), factors)}


def _spine_and_head(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Chest frame (spine bend and twist) and head frame, as rotation matrices."""
    if rng.random() < 0.1:
        bend = rng.uniform(30, 80)
    else:
        bend = _clipped_normal(rng, 8, 12, -20, 50)
    side_bend, twist = _clipped_normal(rng, 0, 8, -25, 25), _clipped_normal(rng, 0, 12, -40, 40)
    chest = _rot(2, side_bend) @ _rot(0, bend) @ _rot(1, twist)
    turn = _clipped_normal(rng, 0, 25, -70, 70)
    nod = _clipped_normal(rng, 5, 12, -35, 45)
    head = chest @ _rot(1, turn) @ _rot(0, nod) @ _rot(2, _clipped_normal(rng, 0, 8, -25, 25))
    return chest, head


def sample_body(rng: np.random.Generator) -> Body:
    """Sample bone lengths and joint angles (see the module docstring) and pose the skeleton."""
    n = _lengths(rng)
    chest, head = _spine_and_head(rng)
    p = np.zeros((28, 3))
    p[[R_HIP, L_HIP]] = [[-n["hip"], -0.01, 0.0], [n["hip"], -0.01, 0.0]]
    p[THORAX] = chest[:, 1] * n["torso"]
    p[[R_SHO, L_SHO]] = p[THORAX] + np.array([[-1.0, -0.1, 0.0], [1.0, -0.1, 0.0]]) * n["shoulder"] @ chest.T
    p[NECK] = p[THORAX] + n["neck"] * head[:, 1]
    p[HEAD_TOP] = p[NECK] + n["head"] * head[:, 1]
    for side, (hip, knee, ankle, toe) in ((-1, (R_HIP, R_KNEE, R_ANK, R_TOE)),
                                          (1, (L_HIP, L_KNEE, L_ANK, L_TOE))):
        p[knee], p[ankle], tip = _limb(rng, p[hip], np.eye(3), side, _LEG, n["thigh"], n["shin"])
        p[toe] = p[ankle] + n["foot"] * tip
    for side, (sho, elb, wri, hand) in ((-1, (R_SHO, R_ELB, R_WRI, R_HAND)),
                                        (1, (L_SHO, L_ELB, L_WRI, L_HAND))):
        p[elb], p[wri], tip = _limb(rng, p[sho], chest, side, _ARM, n["upper_arm"], n["forearm"])
        p[hand] = p[wri] + n["hand"] * tip
    top = p[[R_SHO, L_SHO]] + np.array([[0.012, 0.025, 0.0], [-0.012, 0.025, 0.0]]) @ chest.T
    bottom = p[[R_HIP, L_HIP]] + np.array([[-0.03, -0.02, 0.0], [0.03, -0.02, 0.0]])
    front = np.array([chest[:, 2], chest[:, 2], [0, 0, 1.0], [0, 0, 1.0]]) * CHEST_DEPTH
    corners = np.concatenate([top, bottom])
    p[HULL] = np.concatenate([corners + front, corners - front])
    return Body(points=p, lengths=n, head=head)


class _Head(NamedTuple):
    """The head in pixels: hair and face ellipses (centres, depths), semi-axes, angle, features."""

    centres: np.ndarray  # (2, 2): hair, face
    depths: np.ndarray  # (2,)
    axes: tuple[float, float]  # along the neck → head-top axis, across it
    angle: float  # degrees
    features: np.ndarray  # (k, 3): x, y, radius of the eyes and nose that face the camera


def _camera(rng: np.random.Generator) -> np.ndarray:
    """Rotation from the body frame to the camera's (X right, Y down, D away): yaw, pitch, lean."""
    if rng.random() < 0.1:
        lean = rng.uniform(40, 110) * rng.choice([-1.0, 1.0])
    else:
        lean = _clipped_normal(rng, 0, 15, -40, 40)
    pitch, yaw = _clipped_normal(rng, 0, 8, -20, 20), rng.uniform(-180, 180)
    return _rot(2, lean) @ np.diag([1.0, -1.0, -1.0]) @ _rot(0, pitch) @ _rot(1, yaw)


def _head(body: Body, cam: np.ndarray, q: np.ndarray) -> _Head:
    """Head ellipses and facial features in camera units (``q``: the projected body points)."""
    size = body.lengths["head"]
    across = 0.42 * size
    left, up, fwd = body.head.T
    centre = (body.points[NECK] + body.points[HEAD_TOP]) / 2
    offsets = np.array([  # hair centre, face centre, right eye, left eye, nose
        -0.35 * fwd + 0.25 * up, 0.2 * fwd - 0.1 * up, 0.8 * fwd - 0.4 * left + 0.1 * up,
        0.8 * fwd + 0.4 * left + 0.1 * up, fwd - 0.15 * up,
    ])  # fmt: skip
    pts = (centre + across * offsets) @ cam.T
    normals = np.array([0.8 * fwd - 0.6 * left, 0.8 * fwd + 0.6 * left, fwd]) @ cam.T
    shown = normals[:, 2] < -0.15
    radii = np.array([0.08, 0.08, 0.1]) * across
    axis = q[HEAD_TOP, :2] - q[NECK, :2]
    along = max(0.5 * float(np.hypot(*axis)) + 0.08 * size, across)
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    features = np.column_stack([pts[2:, :2], radii])[shown]
    return _Head(pts[:2, :2], pts[:2, 2], (along, across), angle, features)


def _head_box(head: _Head) -> np.ndarray:
    """(x0, y0, x1, y1) around both head ellipses."""
    a, b = head.axes
    c, s = np.cos(np.radians(head.angle)), np.sin(np.radians(head.angle))
    half = np.array([np.hypot(a * c, b * s), np.hypot(a * s, b * c)])
    return np.concatenate([head.centres.min(0) - half, head.centres.max(0) + half])


def _scaled(head: _Head, k: float, t: np.ndarray) -> _Head:
    """The head mapped by x → k·x + t."""
    features = head.features * k
    features[:, :2] += t
    axes = (head.axes[0] * k, head.axes[1] * k)
    return _Head(head.centres * k + t, head.depths, axes, head.angle, features)


def _place(rng: np.random.Generator, box: np.ndarray, size: int) -> tuple[float, np.ndarray]:
    """Scale k and shift t putting ``box`` (x0, y0, x1, y1) at 40–90 % of the image, inside it or
    (10 %) partly over one edge."""
    extent = box[2:] - box[:2]
    k = rng.uniform(0.4, 0.9) * size / max(extent.max(), 1e-6)
    extent = extent * k
    low = box[:2] * k
    start = np.array([rng.uniform(1, max(size - 2 - e, 1)) for e in extent])
    if rng.random() < 0.1:
        axis = int(rng.integers(0, 2))
        over = rng.uniform(0.05, 0.3) * extent[axis]
        start[axis] = -over if rng.random() < 0.5 else size - 1 - extent[axis] + over
    return k, start - low


def _fixed(p: np.ndarray) -> tuple[int, int]:
    """One (x, y) point in cv2 fixed point, as the int tuple cv2's point arguments take."""
    x, y = to_fixed(p)
    return int(x), int(y)


def _shade(color: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shadow, lit) versions of an RGB colour."""
    return tuple(int(v) for v in color * 0.65), tuple(int(v) for v in np.minimum(color * 1.1 + 12, 255))


def _capsule_geometry(
    p0: np.ndarray, p1: np.ndarray, r0: np.ndarray, r1: np.ndarray, light: np.ndarray
) -> tuple[list[list[list[int]]], list[list[int]], np.ndarray]:
    """Fixed-point geometry of n tapered capsules from p0 (radius r0) to p1 (radius r1).

    Returns per capsule the end centres and radii of the rim and of the lit core (rim p0, rim p1,
    core p0, core p1), and (n, 2, 4, 2) quads: rim, core. The core is thinner and shifted towards
    the light.
    """
    d = p1 - p0
    normal = np.stack([-d[:, 1], d[:, 0]], 1) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
    core = np.where((normal @ light >= 0)[:, None], 0.3, -0.3) * normal
    radii = np.stack([r0, r1, 0.55 * r0, 0.55 * r1], 1)
    ends = np.stack([p0, p1, p0 + r0[:, None] * core, p1 + r1[:, None] * core], 1)
    offset = radii[..., None] * normal[:, None]
    fixed = to_fixed(np.concatenate([ends, ends + offset, ends - offset], 1))
    quads = np.ascontiguousarray(fixed[:, [4, 5, 9, 8, 6, 7, 11, 10]]).reshape(-1, 2, 4, 2)
    return fixed[:, :4].tolist(), np.round(radii * (1 << SHIFT)).astype(np.int64).tolist(), quads


def _capsule(img: np.ndarray, label: np.ndarray | None, part: int, centres: list[list[int]], radii: list[int],
             quads: np.ndarray, shades: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    """Draw one capsule of :func:`_capsule_geometry`: shadowed rim, lit core, and its label."""
    layers = [(img, shades[0], quads[0], 0, cv2.LINE_AA), (img, shades[1], quads[1], 2, cv2.LINE_AA)]
    if label is not None:
        layers.append((label, part, quads[0], 0, cv2.LINE_8))
    for canvas, value, quad, first, line in layers:
        cv2.fillConvexPoly(canvas, quad, value, line, SHIFT)
        cv2.circle(canvas, centres[first], radii[first], value, -1, line, SHIFT)
        cv2.circle(canvas, centres[first + 1], radii[first + 1], value, -1, line, SHIFT)


def _torso(img: np.ndarray, label: np.ndarray, pts: np.ndarray, color: np.ndarray, light: np.ndarray) -> None:
    """The torso: the convex hull of the projected torso box, shadowed rim and lit core."""
    hull = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(np.float64)
    centre = hull.mean(0)
    shadow, lit = _shade(color)
    core = centre + 0.7 * (hull - centre) + 0.12 * np.ptp(hull, 0).max() * light
    cv2.fillConvexPoly(img, to_fixed(hull), shadow, cv2.LINE_AA, SHIFT)
    cv2.fillConvexPoly(img, to_fixed(core), lit, cv2.LINE_AA, SHIFT)
    cv2.fillConvexPoly(label, to_fixed(hull), TORSO, cv2.LINE_8, SHIFT)


def _draw_head(img: np.ndarray, label: np.ndarray, head: _Head, skin: np.ndarray, hair: np.ndarray) -> None:
    """Hair and face ellipses, farther one first, then the eyes and nose that face the camera."""
    axes = _fixed(np.array(head.axes))
    for i in np.argsort(-head.depths):
        color = tuple(int(v) for v in (hair, skin)[i])
        for canvas, value, line in ((img, color, cv2.LINE_AA), (label, HEAD, cv2.LINE_8)):
            cv2.ellipse(canvas, _fixed(head.centres[i]), axes, head.angle, 0, 360, value, -1, line, SHIFT)
    dark = tuple(int(v) for v in skin * 0.3)
    for x, y, r in head.features:
        radius = int(round(max(r, 0.6) * (1 << SHIFT)))
        cv2.circle(img, _fixed(np.array([x, y])), radius, dark, -1, cv2.LINE_AA, SHIFT)


def _palette(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Skin, hair and clothing colours; short sleeves and shorts show skin."""
    skin = np.clip(_SKIN[rng.integers(len(_SKIN))] + rng.integers(-15, 16, 3), 0, 255).astype(np.float64)
    shirt, pants, shoes = (np.array(random_color(rng), dtype=np.float64) for _ in range(3))
    return {
        "skin": skin, "hair": _HAIR[rng.integers(len(_HAIR))].astype(np.float64), "shirt": shirt,
        "pants": pants, "sleeve": shirt if rng.random() < 0.5 else skin,
        "shin": pants if rng.random() < 0.7 else skin, "shoes": shoes,
    }  # fmt: skip


def _draw_body(rng: np.random.Generator, img: np.ndarray, label: np.ndarray, xy: np.ndarray,
               depth: np.ndarray, head: _Head, k: float) -> None:
    """Draw the parts far to near into the image and the label map (see the module docstring)."""
    col = _palette(rng)
    a = rng.uniform(0, 2 * np.pi)
    light = np.array([np.cos(a), np.sin(a)])
    shades = {name: _shade(c) for name, c in col.items()}
    start, end = _CAPSULES[:, 1].astype(np.int64), _CAPSULES[:, 2].astype(np.int64)
    r0, r1 = _CAPSULES[:, 3] * k, _CAPSULES[:, 4] * k
    centres, radii, quads = _capsule_geometry(xy[start], xy[end], r0, r1, light)
    key = (depth[start] + depth[end]) / 2 + _CAPSULES[:, 5] * k  # bigger = drawn earlier
    order = sorted([*zip(key.tolist(), range(len(key))), (float(depth[HULL].mean()) + CHEST_DEPTH * k, -1),
                    (float(head.depths.mean()), -2)], reverse=True)
    for _, i in order:
        if i == -1:
            _torso(img, label, xy[HULL], col["shirt"], light)
        elif i == -2:
            _draw_head(img, label, head, col["skin"], col["hair"])
        else:
            part, shade = int(_CAPSULES[i, 0]), shades[_CAPSULE_COLORS[i]]
            _capsule(img, label, part, centres[i], radii[i], quads[i], shade)


def _distractors(rng: np.random.Generator, img: np.ndarray, k: float) -> None:
    """One or two bent limb-like capsules in the background (hard negatives)."""
    size = img.shape[0]
    for _ in range(int(rng.integers(1, 3))):
        color = _SKIN[rng.integers(len(_SKIN))] if rng.random() < 0.5 else np.array(random_color(rng))
        points, radius = [rng.uniform(0, size, 2)], []
        a = rng.uniform(0, 2 * np.pi)
        for _ in range(2):
            points.append(points[-1] + rng.uniform(0.15, 0.25) * k * np.array([np.cos(a), np.sin(a)]))
            radius.append(rng.uniform(0.02, 0.045) * k)
            a += rng.uniform(-2.2, 2.2)
        r = np.array(radius)
        geometry = _capsule_geometry(np.array(points[:2]), np.array(points[1:]), r, 0.8 * r, _UP)
        for segment in zip(*geometry):
            _capsule(img, None, 0, *segment, _shade(color.astype(np.float64)))


def _texture(rng: np.random.Generator, img: np.ndarray, label: np.ndarray) -> None:
    """Multiply the body's pixels by smooth noise (fabric and skin variation), in place."""
    size = img.shape[0]
    cells = int(rng.integers(8, 24))
    coarse = rng.normal(128.0, 128.0 * rng.uniform(0.04, 0.15), (cells, cells, 1))
    field = cv2.resize(np.clip(coarse, 0, 255).astype(np.uint8).repeat(3, 2), (size, size),
                       interpolation=cv2.INTER_LINEAR)
    cv2.copyTo(cv2.multiply(img, field, scale=1 / 128), label, img)


def _visible(points: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Joints inside the image whose pixel shows a part incident to them."""
    size = label.shape[0]
    ij = np.round(points).astype(np.int64)
    inside = ((ij >= 0) & (ij < size)).all(1)
    visible = np.zeros(len(points), dtype=bool)
    idx = np.nonzero(inside)[0]
    visible[idx] = ADJACENT[idx, label[ij[idx, 1], ij[idx, 0]]]
    return visible


def render_pose(rng: np.random.Generator, image_size: int) -> dict[str, Any]:
    """One synthetic person on the MPII skeleton (see the module docstring)."""
    body = sample_body(rng)
    cam = _camera(rng)
    q = body.points @ cam.T
    head = _head(body, cam, q)
    box = np.concatenate([np.minimum(q[:16, :2].min(0), _head_box(head)[:2]),
                          np.maximum(q[:16, :2].max(0), _head_box(head)[2:])])
    k, t = _place(rng, box, image_size)
    xy, box, head = q[:, :2] * k + t, box * k + np.tile(t, 2), _scaled(head, k, t)
    img = background(rng, image_size)
    if rng.random() < 0.35:
        _distractors(rng, img, k)
    label = np.zeros((image_size, image_size), dtype=np.uint8)
    _draw_body(rng, img, label, xy, q[:, 2] * k, head, k)
    _texture(rng, img, label)
    keypoints = xy[:16].copy()
    visible = _visible(keypoints, label)
    if rng.random() < 0.3:
        covered = draw_occluders(rng, img, int(rng.integers(1, 3)), tuple(box))
        visible[visible] &= ~covered[tuple(np.round(keypoints[visible, ::-1]).astype(np.int64).T)]
    img = finish(rng, apply_lighting(rng, img))
    x0, y0, x1, y1 = box
    head_box = _head_box(head)
    return {
        "image": img, "keypoints": keypoints, "visible": visible,
        "center": np.array([(x0 + x1) / 2, (y0 + y1) / 2]), "scale": float(max(x1 - x0, y1 - y0) / 200),
        "head_size": float(np.hypot(*(head_box[2:] - head_box[:2]))),
        "bbox": np.array([x0, y0, x1 - x0, y1 - y0]),
    }  # fmt: skip


RENDERERS.register("pose")((render_pose, "mpii"))

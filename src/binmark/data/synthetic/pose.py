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

Speed (``benchmarks/synthetic_speed.py``, image_size 256, this 2-core machine): about 130-140
samples/s in one process and about 210-230 samples/s through a DataLoader with 2 workers.
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
_SKIN = np.array([(255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 51, 23)])
_HAIR = np.array([(20, 15, 10), (60, 40, 25), (110, 75, 40), (200, 170, 110), (140, 140, 140), (150, 50, 20)])


class _LimbSpec(NamedTuple):
    azimuth: tuple[float, ...]  # degrees: −90 back, 0 out, 90 forward, 180 across the body
    max_elevation: tuple[float, ...]  # degrees from hanging down, at each azimuth knot
    bend_towards: tuple[float, float, float]  # direction the lower segment bends, limb hanging
    twist: tuple[float, float]  # degrees of hip/humeral rotation, positive inwards
    bend_power: float  # bend = 150° · U^power


_LEG = _LimbSpec((-90, 0, 90, 180), (30, 55, 125, 25), (0.0, 0.0, -1.0), (-20, 20), 1.8)
_ARM = _LimbSpec((-90, 0, 90, 160), (60, 175, 175, 110), (0.0, 0.0, 1.0), (-30, 90), 1.2)
_MAX_BEND = np.radians(150.0)


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
    return float(np.clip(rng.normal(mean, std), low, high))


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
    axis = np.cross(down, horizontal)  # Rodrigues: the rotation taking down to u
    ref = np.asarray(spec.bend_towards)
    ref = ref * np.cos(el) + np.cross(axis, ref) * np.sin(el) + axis * (axis @ ref) * (1 - np.cos(el))
    twist = np.radians(out * rng.uniform(*spec.twist))
    ref = np.cos(twist) * ref + np.sin(twist) * np.cross(u, ref)
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
    chest = _rot(2, _clipped_normal(rng, 0, 8, -25, 25)) @ _rot(0, bend) @ _rot(1, _clipped_normal(rng, 0, 12, -40, 40))
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
    for side, (hip, knee, ankle, toe) in ((-1, (R_HIP, R_KNEE, R_ANK, R_TOE)), (1, (L_HIP, L_KNEE, L_ANK, L_TOE))):
        p[knee], p[ankle], tip = _limb(rng, p[hip], np.eye(3), side, _LEG, n["thigh"], n["shin"])
        p[toe] = p[ankle] + n["foot"] * tip
    for side, (sho, elb, wri, hand) in ((-1, (R_SHO, R_ELB, R_WRI, R_HAND)), (1, (L_SHO, L_ELB, L_WRI, L_HAND))):
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
    offsets = np.array([-0.35 * fwd + 0.25 * up, 0.2 * fwd - 0.1 * up,
                        0.8 * fwd - 0.4 * left + 0.1 * up, 0.8 * fwd + 0.4 * left + 0.1 * up, fwd - 0.15 * up])
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
    return _Head(head.centres * k + t, head.depths, (head.axes[0] * k, head.axes[1] * k), head.angle, features)


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
    x, y = to_fixed(p)
    return int(x), int(y)


def _shade(color: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shadow, lit) versions of an RGB colour."""
    return tuple(int(v) for v in color * 0.65), tuple(int(v) for v in np.minimum(color * 1.1 + 12, 255))


def _capsule(img: np.ndarray, label: np.ndarray | None, part: int, p0: np.ndarray, p1: np.ndarray,
             r0: float, r1: float, color: np.ndarray, light: np.ndarray) -> None:
    """A tapered capsule from p0 (radius r0) to p1 (radius r1): shadowed rim, lit core."""
    d = p1 - p0
    normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
    shadow, lit = _shade(color)
    core = 0.3 * np.sign(normal @ light + 1e-9) * normal
    for canvas, value, scale, shift, line in ((img, shadow, 1.0, 0.0, cv2.LINE_AA), (img, lit, 0.55, 1.0, cv2.LINE_AA),
                                              (label, part, 1.0, 0.0, cv2.LINE_8)):
        if canvas is None:
            continue
        a, b = p0 + shift * r0 * core, p1 + shift * r1 * core
        ra, rb = r0 * scale, r1 * scale
        quad = to_fixed(np.array([a + ra * normal, b + rb * normal, b - rb * normal, a - ra * normal]))
        cv2.fillConvexPoly(canvas, quad, value, line, SHIFT)
        cv2.circle(canvas, _fixed(a), int(round(ra * (1 << SHIFT))), value, -1, line, SHIFT)
        cv2.circle(canvas, _fixed(b), int(round(rb * (1 << SHIFT))), value, -1, line, SHIFT)


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
        cv2.circle(img, _fixed(np.array([x, y])), int(round(max(r, 0.6) * (1 << SHIFT))), dark, -1, cv2.LINE_AA, SHIFT)


def _palette(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Skin, hair and clothing colours; short sleeves and shorts show skin."""
    skin = np.clip(_SKIN[rng.integers(len(_SKIN))] + rng.integers(-15, 16, 3), 0, 255).astype(np.float64)
    shirt, pants, shoes = (np.array(random_color(rng), dtype=np.float64) for _ in range(3))
    return {
        "skin": skin, "hair": _HAIR[rng.integers(len(_HAIR))].astype(np.float64), "shirt": shirt, "pants": pants,
        "sleeve": shirt if rng.random() < 0.5 else skin, "shin": pants if rng.random() < 0.7 else skin,
        "shoes": shoes,
    }  # fmt: skip


def _draw_body(rng: np.random.Generator, img: np.ndarray, label: np.ndarray, xy: np.ndarray,
               depth: np.ndarray, head: _Head, k: float) -> None:
    """Draw the parts far to near into the image and the label map (see the module docstring)."""
    col = _palette(rng)
    a = rng.uniform(0, 2 * np.pi)
    light = np.array([np.cos(a), np.sin(a)])
    margin = CHEST_DEPTH * k
    capsules = [  # (label, start, end, radii, colour)
        (R_THIGH, R_HIP, R_KNEE, "thigh", "pants"), (L_THIGH, L_HIP, L_KNEE, "thigh", "pants"),
        (R_SHIN, R_KNEE, R_ANK, "shin", "shin"), (L_SHIN, L_KNEE, L_ANK, "shin", "shin"),
        (R_SHIN, R_ANK, R_TOE, "foot", "shoes"), (L_SHIN, L_ANK, L_TOE, "foot", "shoes"),
        (R_UPPER, R_SHO, R_ELB, "upper_arm", "shirt"), (L_UPPER, L_SHO, L_ELB, "upper_arm", "shirt"),
        (R_FORE, R_ELB, R_WRI, "forearm", "sleeve"), (L_FORE, L_ELB, L_WRI, "forearm", "sleeve"),
        (R_FORE, R_WRI, R_HAND, "hand", "skin"), (L_FORE, L_WRI, L_HAND, "hand", "skin"),
        (NECK_PART, THORAX, NECK, "neck", "skin"),
    ]  # fmt: skip
    order = [(float(depth[[s, e]].mean()) - 1e-3 * (r in ("foot", "hand")), i) for i, (_, s, e, r, _) in enumerate(capsules)]
    order[-1] = (order[-1][0] + 2 * margin, order[-1][1])
    order += [(float(depth[HULL].mean()) + margin, -1), (float(head.depths.mean()), -2)]
    for _, i in sorted(order, reverse=True):
        if i == -1:
            _torso(img, label, xy[HULL], col["shirt"], light)
        elif i == -2:
            _draw_head(img, label, head, col["skin"], col["hair"])
        else:
            part, s, e, radii, color = capsules[i]
            r0, r1 = _RADII[radii]
            _capsule(img, label, part, xy[s], xy[e], r0 * k, r1 * k, col[color], light)


def _distractors(rng: np.random.Generator, img: np.ndarray, k: float) -> None:
    """One or two bent limb-like capsules in the background (hard negatives)."""
    size = img.shape[0]
    for _ in range(int(rng.integers(1, 3))):
        color = _SKIN[rng.integers(len(_SKIN))] if rng.random() < 0.5 else np.array(random_color(rng))
        p = rng.uniform(0, size, 2)
        a = rng.uniform(0, 2 * np.pi)
        for _ in range(2):
            q = p + rng.uniform(0.15, 0.25) * k * np.array([np.cos(a), np.sin(a)])
            r = rng.uniform(0.02, 0.045) * k
            _capsule(img, None, 0, p, q, r, r * 0.8, color.astype(np.float64), np.array([0.0, -1.0]))
            p, a = q, a + rng.uniform(-2.2, 2.2)


def _texture(rng: np.random.Generator, img: np.ndarray, label: np.ndarray) -> None:
    """Multiply the body's pixels by smooth noise (fabric and skin variation)."""
    size = img.shape[0]
    cells = int(rng.integers(8, 24))
    field = cv2.resize(rng.normal(1.0, rng.uniform(0.04, 0.15), (cells, cells)).astype(np.float32),
                       (size, size), interpolation=cv2.INTER_LINEAR)
    body = label > 0
    img[body] = np.clip(img[body] * field[body][:, None], 0, 255).astype(np.uint8)


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
        "head_size": float(np.hypot(*(head_box[2:] - head_box[:2]))), "bbox": np.array([x0, y0, x1 - x0, y1 - y0]),
    }  # fmt: skip


RENDERERS.register("pose")((render_pose, "mpii"))

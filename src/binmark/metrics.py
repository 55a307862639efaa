"""Landmark metrics that agree with the benchmarks' reference code. Pure functions over arrays.

Shapes: N samples, K keypoints; coordinates are pixels (x, y) of the same image for prediction
and ground truth. Inputs are never modified. Formulas, sources and the choices made where
codebases disagree are in ``docs/metrics.md``.

- ``pckh``: MPII PCKh (official ``evalMPII`` semantics: distance ≤ threshold · 0.6 · head-box
  diagonal; unannotated joints excluded; groups average left and right; "mean" drops pelvis and
  thorax and weighs joints by their annotated counts). ``pckh_auc``: area under the Mean curve over
  thresholds 0..0.5.
- ``pck``: PCK with any per-sample normalizer; ``torso_size`` gives LSP's (CPM benchmark).
- ``nme``: per-sample normalized mean error (fraction, not percent); ``auc``, ``failure_rate``,
  ``ced`` on those errors; ``subset_means`` and ``yaw_bin_means`` for the per-subset reports.
- ``coco_keypoint_ap``: COCO keypoint AP/AR through pycocotools' COCOeval; ``oks``, ``oks_nms``
  and ``rescore`` for the top-down pipeline.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from binmark.data.skeletons import SKELETONS, Skeleton, skeleton

__all__ = [
    "HEAD_FACTOR",
    "pckh",
    "pckh_auc",
    "pck",
    "torso_size",
    "nme",
    "face_normalizer",
    "auc",
    "failure_rate",
    "ced",
    "subset_means",
    "yaw_bin_means",
    "coco_keypoint_ap",
    "COCO_STATS",
    "oks",
    "oks_nms",
    "rescore",
]

HEAD_FACTOR = 0.6  # SC_BIAS of the official MPII evaluation: head size = 0.6 × head-box diagonal
GROUPS = ("head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
COCO_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _arrays(pred: Any, gt: Any, visible: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"pred and gt must both be (N, K, 2); got {p.shape} and {g.shape}")
    v = np.ones(p.shape[:2], bool) if visible is None else np.asarray(visible, dtype=bool)
    if v.shape != p.shape[:2]:
        raise ValueError(f"visible must be (N, K) = {p.shape[:2]}, got {v.shape}")
    return p, g, v


def _per_sample(norm: Any, n: int, what: str, needed: np.ndarray) -> np.ndarray:
    """A (N,) positive normalizer; zero or non-finite values are an error where they are used
    (and replaced by 1 where they are not, e.g. samples with no annotated point)."""
    d = np.broadcast_to(np.asarray(norm, dtype=np.float64), (n,)).copy()
    valid = np.isfinite(d) & (d > 0)
    bad = np.flatnonzero(needed & ~valid)
    if bad.size:
        raise ValueError(f"{what} of sample {int(bad[0])} is {d[bad[0]]}; it must be a positive number")
    return np.where(valid, d, 1.0)


def _body_skeleton(k: int, schema: Skeleton | str | None) -> Skeleton | None:
    if isinstance(schema, Skeleton):
        return schema
    if isinstance(schema, str):
        return skeleton(schema)
    matches = [s for s in SKELETONS.names() if s in ("mpii", "lsp", "coco") and skeleton(s).num_keypoints == k]
    return skeleton(matches[0]) if matches else None


def _hit_rates(dist: np.ndarray, visible: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint percent of annotated joints with dist ≤ threshold, and annotated counts."""
    hits = ((dist <= threshold) & visible).sum(axis=0)
    counts = visible.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(counts > 0, 100.0 * hits / counts, np.nan)
    return rate, counts


def _grouped(rate: np.ndarray, counts: np.ndarray, schema: Skeleton | None, exclude: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"per_joint": rate, "counts": counts}
    names = schema.keypoints if schema is not None else ()
    keep = np.array([n not in exclude for n in names]) if names else np.ones(len(rate), bool)
    used = keep & (counts > 0)
    out["mean"] = float((rate[used] * counts[used]).sum() / counts[used].sum()) if used.any() else float("nan")
    for group in GROUPS if schema is not None else ():
        idx = [i for i, n in enumerate(names) if (n == "head_top" if group == "head" else group in n)]
        if idx:
            vals = rate[idx]
            out[group] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    return out


def pckh(
    pred: Any, gt: Any, visible: Any, head_sizes: Any, threshold: float = 0.5
) -> dict[str, Any]:
    """MPII PCKh.

    A joint is correct when ‖pred − gt‖ ≤ threshold · 0.6 · head_size (``≤`` as the official
    evalMPII ``computePCK``; mmpose uses ``<``).

    Args:
        pred, gt: (N, 16, 2) pixels, MPII joint order.
        visible: (N, 16) bool, annotated joints (the others are excluded).
        head_sizes: (N,) head-box diagonals in px, *before* the 0.6 factor (applied here, once).
        threshold: 0.5 for PCKh@0.5, 0.1 for PCKh@0.1.

    Returns:
        ``per_joint`` (16,) percent (NaN where no joint is annotated), ``counts`` (16,),
        ``mean`` (annotated-count-weighted over all joints but pelvis and thorax), and the groups
        ``head``, ``shoulder``, ``elbow``, ``wrist``, ``hip``, ``knee``, ``ankle`` (plain mean of left
        and right), all in percent.

    Raises:
        ValueError: shapes disagree, or a sample with an annotated joint has a head size that is
            zero, negative or not finite.
    """
    p, g, v = _arrays(pred, gt, visible)
    if p.shape[1] != 16:
        raise ValueError(f"pckh expects the 16 MPII joints, got K = {p.shape[1]}")
    heads = _per_sample(head_sizes, len(p), "head size", v.any(axis=1)) * HEAD_FACTOR
    dist = np.linalg.norm(p - g, axis=-1) / heads[:, None]
    rate, counts = _hit_rates(dist, v, threshold)
    return _grouped(rate, counts, skeleton("mpii"), ("pelvis", "thorax"))


def pckh_auc(
    pred: Any, gt: Any, visible: Any, head_sizes: Any, max_threshold: float = 0.5, steps: int = 51
) -> float:
    """Normalized area under the PCKh "mean" curve over thresholds 0..max_threshold (percent).

    The curve is the official evaluation's range 0:0.01:0.5; the area is the trapezoid rule
    divided by ``max_threshold``. Neither HRNet nor mmpose defines an MPII AUC; this is binmark's.
    """
    ts = np.linspace(0.0, max_threshold, steps)
    means = np.array([pckh(pred, gt, visible, head_sizes, t)["mean"] for t in ts])
    area = float(((means[1:] + means[:-1]) / 2 * np.diff(ts)).sum())  # trapezoid rule
    return area / max_threshold


def torso_size(gt: Any, schema: Skeleton | str = "lsp") -> np.ndarray:
    """Per-sample torso size ‖gt[left shoulder] − gt[right hip]‖ (LSP, CPM's benchmark code)."""
    s = schema if isinstance(schema, Skeleton) else skeleton(schema)
    if s.torso is None:
        raise ValueError(f"skeleton {s.name!r} defines no torso pair")
    g = np.asarray(gt, dtype=np.float64)
    a, b = s.torso
    return np.linalg.norm(g[:, a] - g[:, b], axis=-1)


def pck(
    pred: Any,
    gt: Any,
    visible: Any,
    norm: Any,
    threshold: float = 0.2,
    schema: Skeleton | str | None = None,
) -> dict[str, Any]:
    """PCK with a per-sample normalizer: correct when ‖pred − gt‖ ≤ threshold · norm.

    Args:
        pred, gt: (N, K, 2) pixels.
        visible: (N, K) bool annotated joints.
        norm: (N,) normalizer in px (e.g. ``torso_size(gt)`` for LSP PCK@0.2, a box size), or a
            scalar.
        threshold: fraction of the normalizer.
        schema: skeleton for the group names (default: the body schema with K keypoints, if any).

    Returns:
        ``per_joint``, ``counts``, ``mean`` (annotated-count-weighted over all joints) and, for body
        skeletons, the groups ``head`` … ``ankle``; percent.
    """
    p, g, v = _arrays(pred, gt, visible)
    d = _per_sample(norm, len(p), "PCK normalizer", v.any(axis=1))
    dist = np.linalg.norm(p - g, axis=-1) / d[:, None]
    rate, counts = _hit_rates(dist, v, threshold)
    return _grouped(rate, counts, _body_skeleton(p.shape[1], schema), ())


def face_normalizer(gt: Any, kind: str, schema: Skeleton | str | None = None, visible: Any | None = None) -> np.ndarray:
    """Per-sample NME normalizer in px.

    Args:
        gt: (N, K, 2) ground truth.
        kind: "inter_ocular" (outer eye corners: 300-W 36/45, WFLW 60/72, COFW 8/9),
            "inter_pupil" (distance between the pupil centroids: 300-W eyes 36–41 / 42–47, WFLW
            96/97, COFW 16/17), "bbox" (√(w·h) of the ground-truth landmark box, AFLW2000-3D) or
            "diagonal" (√(w² + h²) of that box).
        schema: the face skeleton (default: inferred from K: 68 → 300w, 98 → wflw, 29 → cofw,
            19 → aflw19).
        visible: (N, K) points used for the boxes (default: all).
    """
    g = np.asarray(gt, dtype=np.float64)
    if kind in ("bbox", "diagonal"):
        v = np.ones(g.shape[:2], bool) if visible is None else np.asarray(visible, bool)
        big = np.where(v[..., None], g, np.nan)
        w, h = (np.nanmax(big, axis=1) - np.nanmin(big, axis=1)).T
        return np.sqrt(w * h) if kind == "bbox" else np.sqrt(w**2 + h**2)
    s = _face_skeleton(g.shape[1], schema)
    if kind == "inter_ocular":
        if s.ocular is None:
            raise ValueError(f"skeleton {s.name!r} defines no outer eye corners")
        a, b = s.ocular
        return np.linalg.norm(g[:, a] - g[:, b], axis=-1)
    if kind == "inter_pupil":
        if s.pupils is None:
            raise ValueError(f"skeleton {s.name!r} defines no pupils")
        left, right = (g[:, list(idx)].mean(axis=1) for idx in s.pupils)
        return np.linalg.norm(left - right, axis=-1)
    raise ValueError(f"NME normalizer {kind!r} is not one of inter_ocular, inter_pupil, bbox, diagonal")


def _face_skeleton(k: int, schema: Skeleton | str | None) -> Skeleton:
    if isinstance(schema, Skeleton):
        return schema
    if isinstance(schema, str):
        return skeleton(schema)
    by_k = {68: "300w", 98: "wflw", 29: "cofw", 19: "aflw19"}
    if k not in by_k:
        raise ValueError(f"no face schema has {k} keypoints; pass schema= or a per-sample norm array")
    return skeleton(by_k[k])


def nme(
    pred: Any, gt: Any, norm: Any, visible: Any | None = None, schema: Skeleton | str | None = None
) -> np.ndarray:
    """Per-sample normalized mean error: mean_i ‖pred_i − gt_i‖ / d over the sample's points.

    Args:
        pred, gt: (N, K, 2) pixels.
        norm: (N,) normalizers in px, or one of "inter_ocular", "inter_pupil", "bbox", "diagonal"
            (see :func:`face_normalizer`).
        visible: (N, K) points to average over (default: all; SAN averages visible points only).
        schema: face skeleton for named normalizers (default: inferred from K).

    Returns:
        (N,) errors as fractions (not percent). The dataset NME is their mean (HRNet-face, STAR,
        PIPNet; mmpose pools all points instead).

    Raises:
        ValueError: a normalizer is zero or not finite, or a sample has no point to average.
    """
    p, g, v = _arrays(pred, gt, visible)
    d = face_normalizer(g, norm, schema, v) if isinstance(norm, str) else norm
    d = _per_sample(d, len(p), "NME normalizer", np.ones(len(p), bool))
    counts = v.sum(axis=1)
    if (counts == 0).any():
        raise ValueError(f"sample {int(np.flatnonzero(counts == 0)[0])} has no visible point to average")
    err = np.where(v, np.linalg.norm(p - g, axis=-1), 0.0).sum(axis=1) / counts
    return err / d


def auc(errors: Any, threshold: float = 0.08) -> float:
    """Area under the cumulative error distribution up to ``threshold``, normalized to [0, 1].

    AUC@t = (1/t) ∫₀ᵗ CED(x) dx with CED(x) = #{e ≤ x} / N, computed exactly as
    (1/(N·t)) Σ max(0, t − e) (STAR/PIPNet integrate the same step function numerically).
    """
    e = np.asarray(errors, dtype=np.float64).ravel()
    if e.size == 0 or threshold <= 0:
        raise ValueError("auc needs at least one error and a positive threshold")
    return float(np.clip(threshold - e, 0.0, None).sum() / (e.size * threshold))


def failure_rate(errors: Any, threshold: float = 0.08) -> float:
    """Fraction of samples with error > ``threshold`` (HRNet-face's strict ``>``)."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    if e.size == 0:
        raise ValueError("failure_rate needs at least one error")
    return float((e > threshold).mean())


def ced(errors: Any, max_threshold: float = 0.1, steps: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """The cumulative error distribution: (thresholds, fraction of errors ≤ each threshold)."""
    e = np.sort(np.asarray(errors, dtype=np.float64).ravel())
    ts = np.linspace(0.0, max_threshold, steps)
    return ts, np.searchsorted(e, ts, side="right") / max(e.size, 1)


def subset_means(errors: Any, subsets: Sequence[str]) -> dict[str, float]:
    """Mean error per subset label (e.g. 300-W common / challenging), plus "full" over all."""
    e = np.asarray(errors, dtype=np.float64)
    labels = np.asarray(subsets)
    out = {str(s): float(e[labels == s].mean()) for s in dict.fromkeys(labels.tolist())}
    out["full"] = float(e.mean())
    return out


def yaw_bin_means(errors: Any, yaw_degrees: Any) -> dict[str, float]:
    """AFLW2000-3D by |yaw|: bins [0, 30], (30, 60], (60, 90], and their mean (3DDFA's balanced
    "[0, 90]" figure: the mean of the three bin means, not the pooled mean)."""
    e = np.asarray(errors, dtype=np.float64)
    yaw = np.abs(np.asarray(yaw_degrees, dtype=np.float64))
    bins = {"[0,30]": yaw <= 30, "(30,60]": (yaw > 30) & (yaw <= 60), "(60,90]": yaw > 60}
    out = {k: float(e[m].mean()) if m.any() else float("nan") for k, m in bins.items()}
    out["mean"] = float(np.nanmean(list(out.values())))
    return out


def oks(a: np.ndarray, b: np.ndarray, area: float, sigmas: Sequence[float], visible: Any | None = None) -> float:
    """Object keypoint similarity of (K, 2) points a and b for an instance of ``area`` px².

    OKS = mean over points of exp(−d² / (2·area·(2σ)²)) (COCOeval's ``computeOks``).
    """
    s = np.asarray(sigmas, dtype=np.float64)
    d2 = ((np.asarray(a) - np.asarray(b)) ** 2).sum(axis=-1)
    e = d2 / (2.0 * (area + np.spacing(1)) * (2.0 * s) ** 2)
    v = np.ones(len(s), bool) if visible is None else np.asarray(visible, bool)
    return float(np.exp(-e)[v].mean()) if v.any() else 0.0


def rescore(results: list[dict[str, Any]], threshold: float = 0.2) -> list[dict[str, Any]]:
    """Top-down rescoring: score = box score × mean of the keypoint scores above ``threshold``
    (HRNet ``IN_VIS_THRE``; mmpose ``keypoint_score_thr``). Keypoint scores are the v values of
    ``keypoints``; the box score is ``box_score`` (default 1). Returns new dicts."""
    out = []
    for r in results:
        kp_scores = np.asarray(r["keypoints"], dtype=np.float64)[2::3]
        confident = kp_scores[kp_scores > threshold]
        mean = float(confident.mean()) if confident.size else 0.0
        new = dict(r)
        new["score"] = float(r.get("box_score", 1.0)) * mean
        out.append(new)
    return out


def oks_nms(results: list[dict[str, Any]], threshold: float = 0.9, sigmas: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Greedy OKS non-maximum suppression per image (HRNet ``oks_nms``: the OKS area is the mean
    of the two instances' areas; an instance's area is ``area`` or its keypoint box)."""
    s = np.asarray(sigmas if sigmas is not None else skeleton("coco").sigmas, dtype=np.float64)
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    kept: list[dict[str, Any]] = []
    for group in by_image.values():
        group = sorted(group, key=lambda r: -r["score"])
        points = [np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2] for r in group]
        areas = [float(r.get("area", np.prod(np.ptp(p, axis=0)))) for r, p in zip(group, points)]
        alive = list(range(len(group)))
        while alive:
            i = alive.pop(0)
            kept.append(group[i])
            alive = [j for j in alive if oks(points[i], points[j], (areas[i] + areas[j]) / 2, s) <= threshold]
    return kept


def _coco_ground_truth(gt: str | Path | Mapping[str, Any]):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(gt, (str, Path)):
            if not Path(gt).is_file():
                raise FileNotFoundError(f"COCO ground-truth file {gt} does not exist")
            return COCO(str(gt))
        coco = COCO()
        coco.dataset = copy.deepcopy(dict(gt))
        coco.createIndex()
        return coco


def coco_keypoint_ap(
    results: Sequence[Mapping[str, Any]],
    gt_json_path_or_dict: str | Path | Mapping[str, Any],
    sigmas: Sequence[float] | None = None,
    use_area: bool = True,
) -> dict[str, float]:
    """COCO keypoint AP/AR computed by pycocotools' COCOeval (iouType "keypoints").

    Args:
        results: the official result format: dicts with ``image_id``, ``category_id``,
            ``keypoints`` (K × (x, y, v), v ignored by OKS) and ``score``.
        gt_json_path_or_dict: the ground-truth annotation file or its parsed dict.
        sigmas: per-keypoint OKS sigmas for custom skeletons (default: COCO's 17).
        use_area: OKS area from the ground truth's ``area`` (True, COCO) or its box (False).

    Returns:
        The 10 COCOeval stats by name: AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl.

    Raises:
        ValueError: no results, or results for images the ground truth does not have.
    """
    from pycocotools.cocoeval import COCOeval

    if not results:
        raise ValueError("coco_keypoint_ap: no results to score")
    coco = _coco_ground_truth(gt_json_path_or_dict)
    unknown = {r["image_id"] for r in results} - set(coco.getImgIds())
    if unknown:
        raise ValueError(f"coco_keypoint_ap: results name image ids the ground truth lacks: {sorted(unknown)[:5]}")
    with contextlib.redirect_stdout(io.StringIO()):
        dets = coco.loadRes([dict(r) for r in results])
        ev = COCOeval(coco, dets, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.params.useSegm = None
        if not use_area:
            for ann in coco.dataset["annotations"]:
                ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(COCO_STATS, ev.stats)}

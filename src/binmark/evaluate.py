"""``Evaluator``: run a model over a dataset, map predictions back to image pixels, report.

Every sample goes through the same top-down step as the Localizer's images
(:mod:`binmark.topdown`): its box cropped (no augmentation) as the :class:`InferenceSpec` says,
the model run (with the flip test, also on the mirrored crop), the final output decoded and the
points mapped back through the inverse crop. The report is the dataset's standard one, chosen from
its skeleton's normalizer:

======  =======================================================================================
kind    report
======  =======================================================================================
pckh    MPII: PCKh@0.5 per group, Mean, Mean@0.1, PCKh AUC (needs ``head_size`` per sample)
pck     LSP: PCK@0.2 with the torso normalizer, per group and Mean
coco    COCO / custom: AP/AR from pycocotools on the dataset's annotation file (top-down on the
        ground-truth boxes; instance score = mean keypoint score above 0.2, HRNet's rescoring)
nme     faces: NME (%) with the benchmark's normalizer, AUC and failure rate at 0.08 and 0.10,
        and per subset (300-W), attribute (WFLW) and yaw bin (AFLW2000-3D) where samples say
======  =======================================================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from binmark import metrics
from binmark._registry import Registry
from binmark.data.dataset import META_EXTRAS, collate, sample_box
from binmark.data.skeletons import Skeleton
from binmark.data.transforms import invert, transform_points
from binmark.progress import bar as progress_bar
from binmark.topdown import InferenceSpec, SampleCrops, crop_matrix_of, landmarks

__all__ = ["Predictions", "Report", "Evaluator", "REPORTS", "report_kind", "mean_shape_baseline"]

MPII_COLUMNS = ("head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "mean")


@dataclass
class Predictions:
    """Model predictions and ground truth, in the original images' pixels."""

    coords: np.ndarray  # (N, K, 2)
    scores: np.ndarray  # (N, K)
    gt: np.ndarray  # (N, K, 2)
    visible: np.ndarray  # (N, K) bool
    meta: list[dict[str, Any]] = field(default_factory=list)

    def extra(self, key: str, what: str) -> list[Any]:
        """A per-sample extra (``head_size``, ``box_size`` …); an error naming it if absent."""
        missing = [i for i, m in enumerate(self.meta) if key not in m]
        if missing:
            raise ValueError(f"{what} needs '{key}' for every sample; sample {missing[0]} has none")
        return [m[key] for m in self.meta]


@dataclass
class Report:
    """A dataset's standard report: headline ``metrics`` (floats) and ``details`` (arrays)."""

    dataset: str
    kind: str
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        """The metrics as a two-row table (names over values)."""
        names = list(self.metrics)
        cells = [_fmt(self.metrics[n]) for n in names]
        widths = [max(len(n), len(c)) for n, c in zip(names, cells)]
        head = "  ".join(n.rjust(w) for n, w in zip(names, widths))
        row = "  ".join(c.rjust(w) for c, w in zip(cells, widths))
        return f"{self.dataset} ({self.kind})\n{head}\n{row}"

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: metrics and details (arrays as lists, NaN as None)."""
        return {"dataset": self.dataset, "kind": self.kind, "metrics": _jsonable(self.metrics), "details": _jsonable(self.details)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _fmt(v: float) -> str:
    return "nan" if v != v else f"{v:.2f}"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (float, np.floating)):
        return None if x != x else float(x)
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    return x


ReportFn = Callable[[Predictions, Skeleton, str, dict[str, Any]], Report]
REPORTS: Registry[ReportFn] = Registry("report")


def report_kind(schema: Skeleton) -> str:
    """The report a skeleton's benchmark uses (see the module docstring)."""
    return {"head": "pckh", "torso": "pck", "area": "coco"}.get(schema.normalizer, "nme")


@REPORTS.register("pckh")
def _pckh_report(p: Predictions, schema: Skeleton, name: str, info: dict[str, Any]) -> Report:
    heads = np.asarray(p.extra("head_size", "PCKh (MPII head boxes: gt_valid.mat)"), dtype=np.float64)
    at05 = metrics.pckh(p.coords, p.gt, p.visible, heads, 0.5)
    at01 = metrics.pckh(p.coords, p.gt, p.visible, heads, 0.1)
    values = {k.capitalize(): at05[k] for k in MPII_COLUMNS}
    values["Mean@0.1"] = at01["mean"]
    values["AUC"] = metrics.pckh_auc(p.coords, p.gt, p.visible, heads)
    return Report(name, "pckh", values, {"per_joint@0.5": at05["per_joint"], "per_joint@0.1": at01["per_joint"], "joints": list(schema.keypoints)})


@REPORTS.register("pck")
def _pck_report(p: Predictions, schema: Skeleton, name: str, info: dict[str, Any]) -> Report:
    r = metrics.pck(p.coords, p.gt, p.visible, metrics.torso_size(p.gt, schema), 0.2, schema)
    values = {k.capitalize(): r[k] for k in MPII_COLUMNS if k in r}
    return Report(name, "pck", values, {"per_joint@0.2": r["per_joint"], "joints": list(schema.keypoints)})


@REPORTS.register("coco")
def _coco_report(p: Predictions, schema: Skeleton, name: str, info: dict[str, Any]) -> Report:
    if "ann_file" not in info:
        raise ValueError(f"COCO evaluation of {name!r} needs the dataset's annotation file (dataset.info['ann_file'])")
    if schema.sigmas is None and schema.num_keypoints != 17:
        raise ValueError(f"COCO AP for skeleton {schema.name!r} needs OKS sigmas: build it with Skeleton.from_coco(..., sigmas=[...])")
    ids = p.extra("image_id", "COCO evaluation")
    results = []
    for i, image_id in enumerate(ids):
        kp = np.concatenate([p.coords[i], p.scores[i, :, None]], axis=1)
        results.append({"image_id": image_id, "category_id": int(info.get("category_id", 1)), "keypoints": kp.ravel().tolist()})
    results = metrics.rescore(results, info.get("keypoint_score_threshold", 0.2))
    if info.get("oks_nms") is not None:
        results = metrics.oks_nms(results, info["oks_nms"], schema.sigmas)
    stats = metrics.coco_keypoint_ap(results, info["ann_file"], schema.sigmas)
    return Report(name, "coco", stats, {"results": results})


def _face_norm(p: Predictions, schema: Skeleton) -> np.ndarray:
    if schema.normalizer == "box":
        return np.asarray(p.extra("box_size", "AFLW-19 NME"), dtype=np.float64)
    kind = "bbox" if schema.normalizer == "bbox" else "inter_ocular"
    return metrics.face_normalizer(p.gt, kind, schema, p.visible)


@REPORTS.register("nme")
def _nme_report(p: Predictions, schema: Skeleton, name: str, info: dict[str, Any]) -> Report:
    norm = _face_norm(p, schema)
    errors = metrics.nme(p.coords, p.gt, norm, p.visible, schema)
    values = {"NME": 100 * float(errors.mean())}
    for t in (0.08, 0.10):
        values[f"AUC@{t:g}"] = 100 * metrics.auc(errors, t)
        values[f"FR@{t:g}"] = 100 * metrics.failure_rate(errors, t)
    if all("subset" in m for m in p.meta):
        for k, v in metrics.subset_means(errors, [m["subset"] for m in p.meta]).items():
            values[f"NME[{k}]"] = 100 * v
    if all("yaw" in m for m in p.meta):
        for k, v in metrics.yaw_bin_means(errors, [m["yaw"] for m in p.meta]).items():
            values[f"NME yaw {k}"] = 100 * v
    if all("attributes" in m for m in p.meta):
        for attr in p.meta[0]["attributes"]:
            chosen = np.array([bool(m["attributes"][attr]) for m in p.meta])
            values[f"NME[{attr}]"] = 100 * float(errors[chosen].mean()) if chosen.any() else float("nan")
    dist = np.linalg.norm(p.coords - p.gt, axis=-1) / np.asarray(norm, dtype=np.float64).reshape(-1, 1)
    shown = np.asarray(p.visible, bool)
    with np.errstate(invalid="ignore"):
        per_landmark = 100 * np.where(shown, dist, 0.0).sum(axis=0) / shown.sum(axis=0)
    return Report(name, "nme", values, {"errors": errors, "per_landmark": per_landmark, "landmarks": list(schema.keypoints)})


class Evaluator:
    """Evaluate models on one dataset.

    Args:
        samples: a dataset (``binmark.data.load`` / ``synthetic``): a sequence of sample dicts
            with ``skeleton`` (and ``info``, ``name``) attributes.
        spec: crop geometry, decoding, output activation and flip test, as for the Localizer;
            default ``InferenceSpec(samples.skeleton, flip_test=True)`` (256 → 64, σ 2, "quarter").
            A training config's is ``binmark.train.build.build_evaluator``'s.
        batch_size, num_workers: DataLoader settings.
        device: where the model runs.
        kind: report kind (default from the skeleton, see :func:`report_kind`).
        progress: show progress (a bar on a terminal, periodic lines otherwise).
        options: report options (``oks_nms`` threshold, ``category_id``, …) added to the
            dataset's ``info``.

    Raises:
        ValueError: the samples carry no skeleton, or ``spec``'s has another keypoint count.
    """

    def __init__(
        self,
        samples: Sequence[dict[str, Any]],
        spec: InferenceSpec | None = None,
        *,
        batch_size: int = 16,
        num_workers: int = 0,
        device: str | torch.device = "cpu",
        kind: str | None = None,
        progress: bool = True,
        **options: Any,
    ) -> None:
        schema = getattr(samples, "skeleton", None)
        if schema is None:
            raise ValueError("Evaluator needs a dataset that carries its skeleton")
        spec = spec or InferenceSpec(schema, flip_test=True)
        if spec.skeleton.num_keypoints != schema.num_keypoints:
            raise ValueError(f"Evaluator: the spec's skeleton {spec.skeleton.name!r} has {spec.skeleton.num_keypoints} keypoints "
                             f"but the dataset's {schema.name!r} has {schema.num_keypoints}")  # fmt: skip
        self.samples = samples
        self.schema: Skeleton = schema
        self.spec = spec
        self.batch_size, self.num_workers = batch_size, num_workers
        self.device = torch.device(device)
        self.kind = kind or report_kind(schema)
        REPORTS.get(self.kind)
        self.progress = progress
        self.info = {**getattr(samples, "info", {}), **options}

    @torch.no_grad()
    def predict(self, model: nn.Module) -> Predictions:
        """Run ``model`` (in eval mode, restored afterwards) over every sample."""
        data = SampleCrops(self.samples, self.spec)
        loader = DataLoader(data, self.batch_size, num_workers=self.num_workers, collate_fn=collate)
        was_training = model.training
        model.eval()
        coords, scores, metas = [], [], []
        shown = progress_bar(len(data), "eval", "img", enabled=self.progress)
        try:
            for inputs, matrices, meta in loader:
                shown.update(len(inputs))
                c, s = landmarks(model, inputs, matrices, self.spec, self.device)
                coords.append(c)
                scores.append(s)
                metas.extend(meta)
        finally:
            shown.close()
            model.train(was_training)
        gt = np.stack([m["keypoints"] for m in metas])
        visible = np.stack([m["visible"] for m in metas])
        return Predictions(np.concatenate(coords), np.concatenate(scores), gt, visible, metas)

    def report(self, predictions: Predictions) -> Report:
        """The dataset's standard report for ``predictions``."""
        name = getattr(self.samples, "name", self.schema.name)
        return REPORTS.get(self.kind)(predictions, self.schema, name, self.info)

    def __call__(self, model: nn.Module) -> Report:
        return self.report(self.predict(model))


def mean_shape_baseline(
    train_samples: Sequence[dict[str, Any]],
    samples: Sequence[dict[str, Any]],
    spec: InferenceSpec,
    max_train: int = 500,
) -> Predictions:
    """The mean-shape baseline: every sample gets the training set's mean landmark layout in the
    crop, mapped back to its image.

    The mean is taken over the annotated points of the first ``max_train`` training samples, in
    network-input pixels of their (unaugmented) crops as ``spec`` makes them. A model that does not
    beat this by a wide margin has learned nothing about the image.
    """

    def matrix(sample: dict[str, Any]) -> np.ndarray:
        return crop_matrix_of(*sample_box(sample, spec.input_size), spec)

    k = spec.skeleton.num_keypoints
    total, count = np.zeros((k, 2)), np.zeros((k, 1))
    for i in range(min(max_train, len(train_samples))):
        sample = train_samples[i]
        vis = np.asarray(sample["visible"], bool)[:, None]
        total += np.where(vis, transform_points(sample["keypoints"], matrix(sample)), 0.0)
        count += vis
    mean = total / np.maximum(count, 1)
    coords, gt, vis, metas = [], [], [], []
    for i in range(len(samples)):
        sample = samples[i]
        coords.append(transform_points(mean, invert(matrix(sample))))
        gt.append(np.asarray(sample["keypoints"], dtype=np.float64))
        vis.append(np.asarray(sample["visible"], dtype=bool))
        metas.append({key: sample[key] for key in META_EXTRAS if key in sample})
    n = len(coords)
    return Predictions(np.stack(coords), np.ones((n, k)), np.stack(gt), np.stack(vis), metas)

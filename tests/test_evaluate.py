"""Evaluator: predictions map back to image pixels; reports per dataset kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from binmark.data import load
from binmark.evaluate import Evaluator, Predictions, report_kind
from binmark.topdown import InferenceSpec

FIXTURES = Path(__file__).resolve().parent / "fixtures"


class CentreModel(nn.Module):
    """Predicts every keypoint at the centre of the crop (a Gaussian on the middle pixels)."""

    def __init__(self, k: int, size: int = 64) -> None:
        super().__init__()
        self.k, self.size = k, size
        self.dummy = nn.Parameter(torch.zeros(()))
        c = (size - 1) / 2
        ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        self.register_buffer("blob", torch.exp(-((xs - c) ** 2 + (ys - c) ** 2) / 8.0))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.blob.expand(x.shape[0], self.k, -1, -1) + self.dummy]


def _perfect(ds) -> Predictions:
    metas = []
    for i in range(len(ds)):
        rec = ds.records[i]
        metas.append(dict(rec.extras))
    gt = np.stack([r.keypoints for r in ds.records])
    vis = np.stack([r.visible for r in ds.records])
    return Predictions(gt.copy(), np.ones(vis.shape), gt, vis, metas)


@pytest.mark.parametrize("flip", [False, True])
def test_predictions_map_back_to_the_box_centre(flip: bool) -> None:
    ds = load("cofw", ann_file=FIXTURES / "cofw/test_cofw.json", image_dir=FIXTURES / "cofw")
    ev = Evaluator(ds, InferenceSpec(ds.skeleton, decode="dark", flip_test=flip), batch_size=2)
    model = CentreModel(29)
    model.train()
    pred = ev.predict(model)
    assert model.training  # restored
    for i, rec in enumerate(ds.records):
        np.testing.assert_allclose(pred.coords[i], np.broadcast_to(rec.center, (29, 2)), atol=0.01)
    # the blob is centred between pixels: its maximum is exp(-(0.5² + 0.5²) / 8)
    assert pred.scores.shape == (2, 29) and np.allclose(pred.scores, np.exp(-0.5 / 8), atol=1e-5)


def test_report_kinds_follow_the_skeleton() -> None:
    from binmark.data import skeleton

    assert [report_kind(skeleton(n)) for n in ("mpii", "lsp", "coco", "300w", "aflw19", "aflw2000")] == [
        "pckh", "pck", "coco", "nme", "nme", "nme"]


def test_perfect_coco_predictions_give_ap_one() -> None:
    ds = load("coco", ann_file=FIXTURES / "coco/test_coco.json", image_dir=FIXTURES / "coco")
    report = Evaluator(ds).report(_perfect(ds))
    assert report.kind == "coco" and report.metrics["AP"] == 1.0 and report.metrics["AR"] == 1.0
    assert len(report.details["results"]) == 12


def test_mpii_report_needs_head_sizes(tmp_path: Path) -> None:
    ds = load("mpii", ann_file=FIXTURES / "mpii/test_mpii.json", image_dir=FIXTURES / "mpii")
    with pytest.raises(ValueError, match="needs 'head_size' for every sample; sample 0 has none"):
        Evaluator(ds).report(_perfect(ds))
    entries = json.loads((FIXTURES / "mpii/test_mpii.json").read_text())
    for e in entries:
        e["head_size"] = 60.0
    (tmp_path / "m.json").write_text(json.dumps(entries))
    ds = load("mpii", ann_file=tmp_path / "m.json", image_dir=FIXTURES / "mpii")
    perfect = _perfect(ds)
    report = Evaluator(ds).report(perfect)
    assert report.metrics["Mean"] == 100.0 and report.metrics["Head"] == 100.0
    assert report.metrics["AUC"] == pytest.approx(100.0 * 50 / 50, abs=2.0)
    perfect.coords[:, 9, 0] += 20.0  # head_top 20 px off: 20 > 0.5·0.6·60 = 18
    assert Evaluator(ds).report(perfect).metrics["Head"] == 0.0
    text = report.table()
    assert "Shoulder" in text and "Mean@0.1" in text


@pytest.mark.parametrize(
    ("name", "ann", "folder"),
    [("300w", "300w/test_300w.json", "300w"), ("aflw19", "aflw/test_aflw.json", "aflw"),
     ("wflw", "wflw/test_wflw.json", "wflw"), ("aflw2000", "300wlp/test_300wlp.json", "300wlp")],
)
def test_face_reports(name: str, ann: str, folder: str) -> None:
    ds = load(name, ann_file=FIXTURES / ann, image_dir=FIXTURES / folder)
    perfect = _perfect(ds)
    report = Evaluator(ds).report(perfect)
    assert report.kind == "nme" and report.metrics["NME"] == 0.0
    assert report.metrics["AUC@0.08"] == 100.0 and report.metrics["FR@0.08"] == 0.0
    perfect.coords = perfect.coords + [3.0, 4.0]  # 5 px everywhere
    errors = Evaluator(ds).report(perfect).details["errors"]
    assert errors.shape == (len(ds),) and np.all(errors > 0)


def test_300w_nme_is_inter_ocular_by_hand() -> None:
    ds = load("300w", ann_file=FIXTURES / "300w/test_300w.json", image_dir=FIXTURES / "300w")
    p = _perfect(ds)
    p.coords = p.coords + [0.0, 2.0]
    iod = np.linalg.norm(p.gt[:, 36] - p.gt[:, 45], axis=1)
    report = Evaluator(ds).report(p)
    assert report.metrics["NME"] == pytest.approx(100 * np.mean(2.0 / iod))
    assert json.loads(report.to_json())["metrics"]["NME"] == pytest.approx(report.metrics["NME"])


def test_bad_options() -> None:
    ds = load("cofw", ann_file=FIXTURES / "cofw/test_cofw.json", image_dir=FIXTURES / "cofw")
    with pytest.raises(ValueError, match="unknown report 'auc'"):
        Evaluator(ds, kind="auc")
    with pytest.raises(ValueError, match="output_activation"):
        Evaluator(ds, InferenceSpec(ds.skeleton, output_activation="softmax"))
    with pytest.raises(ValueError, match="has 68 keypoints but the dataset's 'cofw' has 29"):
        Evaluator(ds, InferenceSpec("300w"))

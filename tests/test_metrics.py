"""Metrics: hand-computed cases, edge cases, and COCO AP exactly as pycocotools computes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from binmark.metrics import (
    auc,
    ced,
    coco_keypoint_ap,
    face_normalizer,
    failure_rate,
    nme,
    oks,
    oks_nms,
    pck,
    pckh,
    pckh_auc,
    rescore,
    subset_means,
    torso_size,
    yaw_bin_means,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _mpii_case():
    """Two people, head sizes 100 and 50 px (PCKh radius at 0.5: 30 and 15 px)."""
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    visible = np.ones((2, 16), bool)
    pred[0, 9] = [30.0, 0.0]  # head_top exactly at the radius: ≤ counts as correct
    pred[1, 9] = [15.1, 0.0]  # just outside
    pred[0, 12] = [0.0, 40.0]  # right shoulder wrong
    pred[:, 6] = [99.0, 0.0]  # pelvis wrong everywhere, excluded from the mean
    visible[1, 15] = False  # left wrist not annotated for person 2
    pred[1, 15] = [1e6, 0.0]  # ... so its wild prediction does not count
    return pred, gt, visible, np.array([100.0, 50.0])


class TestPCKh:
    def test_hand_computed(self) -> None:
        pred, gt, vis, heads = _mpii_case()
        r = pckh(pred, gt, vis, heads)
        assert r["per_joint"][9] == 50.0 and r["per_joint"][12] == 50.0 and r["per_joint"][6] == 0.0
        assert r["per_joint"][15] == 100.0 and r["counts"][15] == 1
        assert r["head"] == 50.0
        assert r["shoulder"] == pytest.approx((50.0 + 100.0) / 2)
        assert r["wrist"] == 100.0
        # mean: 14 joints (no pelvis, thorax), weighted by counts: 27 annotated, 25 correct
        assert r["mean"] == pytest.approx(100 * 25 / 27)

    def test_threshold_0_1(self) -> None:
        pred, gt, vis, heads = _mpii_case()
        pred[0, 0] = [5.0, 0.0]  # 5 px: inside 0.1·0.6·100 = 6, person 1 only
        r = pckh(pred, gt, vis, heads, threshold=0.1)
        assert r["per_joint"][0] == 100.0 and r["per_joint"][9] == 0.0

    def test_all_joints_invisible_in_one_sample(self) -> None:
        pred, gt, vis, heads = _mpii_case()
        vis[1] = False
        heads[1] = 0.0  # irrelevant: nothing annotated
        r = pckh(pred, gt, vis, heads)
        assert r["counts"].tolist() == [1] * 16 and r["head"] == 100.0

    def test_no_annotated_joint_anywhere_gives_nan(self) -> None:
        r = pckh(np.zeros((1, 16, 2)), np.zeros((1, 16, 2)), np.zeros((1, 16), bool), [10.0])
        assert np.isnan(r["mean"]) and np.isnan(r["per_joint"]).all()

    def test_zero_head_size_is_an_error(self) -> None:
        pred, gt, vis, heads = _mpii_case()
        heads[1] = 0.0
        with pytest.raises(ValueError, match="head size of sample 1 is 0.0"):
            pckh(pred, gt, vis, heads)

    def test_inputs_are_not_modified(self) -> None:
        pred, gt, vis, heads = _mpii_case()
        copies = [a.copy() for a in (pred, gt, vis, heads)]
        pckh(pred, gt, vis, heads)
        for a, b in zip((pred, gt, vis, heads), copies):
            np.testing.assert_array_equal(a, b)

    def test_auc(self) -> None:
        gt = np.zeros((1, 16, 2))
        pred = gt.copy()
        pred[0, :, 0] = 15.0  # every joint at 0.25 of the head size (60 → 0.6·100)
        value = pckh_auc(pred, gt, np.ones((1, 16), bool), [100.0])
        assert value == pytest.approx(100 * (0.5 - 0.25) / 0.5, abs=1.1)  # step at 0.25 on a 0.01 grid
        assert pckh_auc(gt, gt, np.ones((1, 16), bool), [100.0]) == pytest.approx(100.0)

    def test_shape_errors(self) -> None:
        with pytest.raises(ValueError, match="16 MPII joints"):
            pckh(np.zeros((1, 14, 2)), np.zeros((1, 14, 2)), np.ones((1, 14), bool), [1.0])
        with pytest.raises(ValueError, match="must both be \\(N, K, 2\\)"):
            pckh(np.zeros((1, 16, 2)), np.zeros((2, 16, 2)), np.ones((1, 16), bool), [1.0])


class TestPCK:
    def test_lsp_torso(self) -> None:
        gt = np.zeros((1, 14, 2))
        gt[0, 9] = [0.0, 0.0]  # left shoulder
        gt[0, 2] = [30.0, 40.0]  # right hip: torso 50 px → radius 10 at 0.2
        assert torso_size(gt).tolist() == [50.0]
        pred = gt.copy()
        pred[0, 0] += [10.0, 0.0]  # exactly at the radius: correct
        pred[0, 1] += [10.01, 0.0]
        r = pck(pred, gt, np.ones((1, 14), bool), torso_size(gt))
        assert r["per_joint"][0] == 100.0 and r["per_joint"][1] == 0.0
        assert r["mean"] == pytest.approx(100 * 13 / 14) and r["knee"] == 50.0

    def test_generic_normalizer_and_no_groups_for_unknown_k(self) -> None:
        gt = np.zeros((2, 3, 2))
        pred = gt + [[[1.0, 0.0]], [[3.0, 0.0]]]
        r = pck(pred, gt, np.ones((2, 3), bool), [10.0, 10.0], threshold=0.2)
        assert r["per_joint"].tolist() == [50.0] * 3 and "head" not in r
        with pytest.raises(ValueError, match="PCK normalizer of sample 0 is -1"):
            pck(pred, gt, np.ones((2, 3), bool), [-1.0, 1.0])


class TestNME:
    def test_inter_ocular_hand_computed(self) -> None:
        gt = np.zeros((1, 68, 2))
        gt[0, 36], gt[0, 45] = [0.0, 0.0], [100.0, 0.0]
        pred = gt.copy()
        pred[0, :, 1] += 2.0  # every point 2 px off → NME 2 / 100
        assert nme(pred, gt, "inter_ocular").tolist() == pytest.approx([0.02])

    def test_inter_pupil_and_boxes(self) -> None:
        gt = np.zeros((1, 68, 2))
        gt[0, 36:42] = [10.0, 5.0]
        gt[0, 42:48] = [70.0, 5.0]
        gt[0, 0], gt[0, 1] = [0.0, 0.0], [80.0, 45.0]
        assert face_normalizer(gt, "inter_pupil").tolist() == [60.0]
        assert face_normalizer(gt, "bbox").tolist() == pytest.approx([np.sqrt(80 * 45)])
        assert face_normalizer(gt, "diagonal").tolist() == pytest.approx([np.hypot(80, 45)])

    @pytest.mark.parametrize(("k", "pair"), [(98, (60, 72)), (29, (8, 9))])
    def test_schema_from_k(self, k: int, pair: tuple[int, int]) -> None:
        gt = np.zeros((1, k, 2))
        gt[0, pair[1]] = [0.0, 8.0]
        assert face_normalizer(gt, "inter_ocular").tolist() == [8.0]

    def test_visible_only_and_per_sample_norm(self) -> None:
        gt = np.zeros((2, 4, 2))
        pred = gt.copy()
        pred[:, 0, 0] = 4.0
        vis = np.array([[True, True, False, False], [True, True, True, True]])
        out = nme(pred, gt, np.array([2.0, 1.0]), visible=vis)
        assert out.tolist() == pytest.approx([4 / 2 / 2, 4 / 4 / 1])

    def test_zero_normalizer_and_no_points(self) -> None:
        gt = np.zeros((2, 68, 2))
        with pytest.raises(ValueError, match="NME normalizer of sample 0 is 0.0"):
            nme(gt, gt, "inter_ocular")
        with pytest.raises(ValueError, match="sample 1 has no visible point"):
            nme(gt[:, :4], gt[:, :4], [1.0, 1.0], visible=np.array([[1, 0, 0, 0], [0, 0, 0, 0]], bool))
        with pytest.raises(ValueError, match="no face schema has 5 keypoints"):
            nme(gt[:, :5], gt[:, :5], "inter_ocular")


class TestCurves:
    def test_auc_exact(self) -> None:
        e = np.array([0.0, 0.04, 0.08, 0.2])
        # CED integral to 0.08: (0.08 + 0.04 + 0 + 0) / 4 / 0.08
        assert auc(e, 0.08) == pytest.approx(0.375)
        assert auc(np.zeros(5), 0.1) == 1.0 and auc(np.ones(5), 0.1) == 0.0

    def test_auc_matches_a_fine_numerical_integral(self) -> None:
        e = np.random.default_rng(0).uniform(0, 0.12, 500)
        ts, frac = ced(e, 0.08, 80001)
        numeric = float(((frac[1:] + frac[:-1]) / 2 * np.diff(ts)).sum() / 0.08)
        assert auc(e, 0.08) == pytest.approx(numeric, abs=1e-4)

    def test_failure_rate_is_strict(self) -> None:
        assert failure_rate([0.05, 0.08, 0.081, 0.5], 0.08) == 0.5

    def test_ced(self) -> None:
        ts, frac = ced([0.01, 0.02, 0.05], max_threshold=0.04, steps=5)
        assert ts.tolist() == pytest.approx([0, 0.01, 0.02, 0.03, 0.04])
        assert frac.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 2 / 3])

    def test_subsets_and_yaw_bins(self) -> None:
        r = subset_means([0.02, 0.04, 0.09], ["common", "common", "challenging"])
        assert r == pytest.approx({"common": 0.03, "challenging": 0.09, "full": 0.05})
        y = yaw_bin_means([0.01, 0.03, 0.05, 0.07], [-10, 29.9, 45, -80])
        assert y["[0,30]"] == pytest.approx(0.02) and y["(30,60]"] == 0.05 and y["(60,90]"] == 0.07
        assert y["mean"] == pytest.approx((0.02 + 0.05 + 0.07) / 3)  # balanced, not pooled (0.04)


class TestCOCO:
    GT = FIXTURES / "coco/test_coco.json"

    def _results(self, shift: float = 0.0, seed: int = 0) -> list[dict]:
        data = json.loads(self.GT.read_text())
        rng = np.random.default_rng(seed)
        out = []
        for a in data["annotations"]:
            if a["num_keypoints"] == 0:
                continue
            kp = np.asarray(a["keypoints"], dtype=float).reshape(-1, 3)
            kp[:, :2] += rng.normal(0, shift, (17, 2))
            out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": float(rng.uniform(0.5, 1))})
        return out

    def test_perfect_predictions_score_one(self) -> None:
        stats = coco_keypoint_ap(self._results(), self.GT)
        assert list(stats) == ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
        assert all(v == 1.0 for v in stats.values())

    def test_perturbed_predictions_match_pycocotools(self) -> None:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        results = self._results(shift=6.0)
        ours = coco_keypoint_ap(results, json.loads(self.GT.read_text()))
        gt = COCO(str(self.GT))
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert list(ours.values()) == list(ev.stats)
        assert 0.0 < ours["AP"] < 1.0

    def test_custom_sigmas_change_the_score(self) -> None:
        results = self._results(shift=6.0)
        default = coco_keypoint_ap(results, self.GT)["AP"]
        loose = coco_keypoint_ap(results, self.GT, sigmas=[0.5] * 17)["AP"]
        assert loose > default

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match="no results"):
            coco_keypoint_ap([], self.GT)
        bad = self._results()
        bad[0]["image_id"] = 123456789
        with pytest.raises(ValueError, match="image ids the ground truth lacks: \\[123456789\\]"):
            coco_keypoint_ap(bad, self.GT)
        with pytest.raises(FileNotFoundError, match="does not exist"):
            coco_keypoint_ap(self._results(), FIXTURES / "nope.json")


class TestTopDownHelpers:
    def test_oks_formula(self) -> None:
        sig = np.full(2, 0.1)
        a = np.zeros((2, 2))
        b = np.array([[2.0, 0.0], [0.0, 0.0]])
        expected = (np.exp(-4 / (2 * 100 * 0.2**2)) + 1) / 2
        assert oks(a, b, 100.0, sig) == pytest.approx(expected)

    def test_rescore(self) -> None:
        r = rescore([{"keypoints": [0, 0, 0.9, 0, 0, 0.1, 0, 0, 0.5], "box_score": 0.8, "image_id": 1}])
        assert r[0]["score"] == pytest.approx(0.8 * 0.7)

    def test_oks_nms_drops_duplicates(self) -> None:
        kp = np.random.default_rng(0).uniform(0, 100, (17, 2))
        make = lambda p, s: {"image_id": 1, "keypoints": np.c_[p, np.ones(17)].ravel().tolist(), "score": s, "area": 5000.0}
        results = [make(kp, 0.9), make(kp + 0.5, 0.8), make(kp + 60, 0.7)]
        kept = oks_nms(results, 0.9)
        assert [r["score"] for r in kept] == [0.9, 0.7]

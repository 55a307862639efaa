"""binmark.topdown: the Evaluator (dataset samples) and the Localizer (boxes on image files) go
through one top-down step and give the same landmarks for the same image and box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from binmark.data import load
from binmark.data.transforms import PIXEL_STD, box_center_scale
from binmark.evaluate import Evaluator
from binmark.inference import Localizer
from binmark.models import build
from binmark.topdown import InferenceSpec

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _model(k: int) -> torch.nn.Module:
    """A small random real-valued hourglass: its heatmaps depend on every pixel of the crop."""
    torch.manual_seed(0)
    return build("hourglass", k, stacks=1, depth=2, width=16).eval()


def _localizer_on_files(ds, model, spec: InferenceSpec, boxes: list[np.ndarray], batch: int) -> tuple[np.ndarray, np.ndarray]:
    loc = Localizer(model, spec=spec, max_batch_size=batch)
    paths = [str(r.image_path) for r in ds.records]
    results = loc.predict_batch(paths, [b[None] for b in boxes])
    return np.concatenate([r.keypoints for r in results]), np.concatenate([r.scores for r in results])


@pytest.mark.parametrize("flip_test", [False, True])
@pytest.mark.parametrize("size", [(64, 64), (48, 64)])
def test_coco_boxes_give_the_evaluators_landmarks(flip_test: bool, size: tuple[int, int]) -> None:
    ds = load("coco", ann_file=FIXTURES / "coco/test_coco.json", image_dir=FIXTURES / "coco")
    w, h = size
    spec = InferenceSpec(ds.skeleton, input_size=(w, h), heatmap_size=(w // 4, h // 4), decode="dark", flip_test=flip_test)
    model = _model(17)
    pred = Evaluator(ds, spec, batch_size=4, progress=False).predict(model)
    coords, scores = _localizer_on_files(ds, model, spec, [np.asarray(r.extras["bbox"]) for r in ds.records], 4)
    np.testing.assert_array_equal(coords, pred.coords)
    np.testing.assert_array_equal(scores, pred.scores)


def test_face_boxes_give_the_evaluators_landmarks() -> None:
    """WFLW samples carry a centre and scale (the landmark box); the COCO box with that centre and
    side gives the Localizer the same crop."""
    ds = load("wflw", ann_file=FIXTURES / "wflw/test_wflw.json", image_dir=FIXTURES / "wflw")
    spec = InferenceSpec(ds.skeleton, input_size=64, heatmap_size=16, decode="dark", flip_test=True)
    model = _model(98)
    pred = Evaluator(ds, spec, batch_size=2, progress=False).predict(model)
    boxes = []
    for r in ds.records:
        side = r.scale * PIXEL_STD
        box = np.array([r.center[0] + 0.5 - side / 2, r.center[1] + 0.5 - side / 2, side, side])
        center, scale = box_center_scale(box)
        np.testing.assert_allclose(center, r.center, atol=1e-9)
        assert scale == pytest.approx(r.scale, abs=1e-12)
        boxes.append(box)
    coords, _ = _localizer_on_files(ds, model, spec, boxes, 2)
    np.testing.assert_allclose(coords, pred.coords, atol=1e-4)  # image px; the box round trip is 1e-13 px off


def test_box_centre_follows_coco() -> None:
    """Box (x, y, w, h) covers pixels x … x + w − 1: its centre is x + w/2 − ½ in pixel-centre
    coordinates, and the whole image (0, 0, W, H) is centred on ((W − 1)/2, (H − 1)/2)."""
    center, scale = box_center_scale([0, 0, 640, 480])
    np.testing.assert_allclose(center, [319.5, 239.5])
    assert scale == pytest.approx(640 / PIXEL_STD)
    _, tall = box_center_scale([10, 10, 100, 50], (48, 64))
    assert tall == pytest.approx(100 * 64 / 48 / PIXEL_STD)
    with pytest.raises(ValueError, match="positive width and height"):
        box_center_scale([0, 0, 0, 10])

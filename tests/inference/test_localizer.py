"""Localizer: the crop/uncrop geometry on a network with a known answer, batching, detectors,
model sources (module, checkpoint, .bmk), bad inputs and tracking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from binmark import Localizer
from binmark.data import synthetic
from binmark.deploy import load, pack
from binmark.inference import HaarFaceDetector, InferenceSpec, OneEuroFilter, WholeImage
from binmark.inference.localizer import Result

from .conftest import DOT, SPEC, DotNet, dot_image


@pytest.mark.parametrize("xy,box", [((80.0, 60.0), None), ((33.0, 71.0), [[10, 40, 50, 60]]), ((101.5, 20.25), [[70, 0, 64, 64]])])
def test_predict_returns_the_dot_in_image_pixels(dotnet, xy, box) -> None:
    kp, scores = Localizer(dotnet).predict(dot_image(xy), box)
    assert kp.shape == (1, 1, 2) and scores.shape == (1, 1)
    # one crop pixel is (box side × 1.25 / 64) image pixels: about 2.5 px for the whole 160×120 image
    assert np.allclose(kp[0, 0], xy, atol=1.0), kp


def test_predict_batch_matches_predict_and_batches_crops(dotnet) -> None:
    points = [(20.0, 30.0), (90.0, 80.0), (140.0, 100.0)]
    images = [dot_image(p) for p in points]
    boxes = [np.array([[p[0] - 25, p[1] - 25, 50, 50], [0, 0, 160, 120]]) for p in points]
    calls = []
    net = DotNet()
    net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    loc = Localizer(net, spec=SPEC, max_batch_size=4)
    results = loc.predict_batch(images, boxes)
    assert calls == [4, 2]  # 6 crops in batches of at most 4
    for p, r, image, b in zip(points, results, images, boxes):
        assert r.keypoints.shape == (2, 1, 2) and np.allclose(r.boxes, b)
        assert np.allclose(r.keypoints[:, 0], [p, p], atol=1.0)
        single, _ = loc.predict(image, b)
        assert np.allclose(single, r.keypoints, atol=1e-6)


def test_bgr_arrays_and_rgb_give_the_same_result(dotnet) -> None:
    img = dot_image((50, 50))
    img[..., 2] = 0  # a colour image: the blue channel differs from red
    loc = Localizer(dotnet)
    a = loc.predict(img)[0]
    b = loc.predict(np.ascontiguousarray(img[..., ::-1]), color="bgr")[0]
    assert np.array_equal(a, b)


def test_detector_is_used_without_boxes_and_none_found_is_empty() -> None:
    found: list[np.ndarray] = []

    def nothing(image: np.ndarray) -> np.ndarray:
        found.append(image)
        return np.zeros((0, 4))

    loc = Localizer(DotNet(), spec=SPEC, detector=nothing)
    kp, scores = loc.predict(dot_image((40, 40)))
    assert len(found) == 1 and found[0].shape == (120, 160, 3)
    assert kp.shape == (0, 1, 2) and scores.shape == (0, 1)


def test_face_schemas_detect_faces_and_bodies_use_the_whole_image(face_checkpoint) -> None:
    assert isinstance(Localizer(face_checkpoint).detector, HaarFaceDetector)
    assert isinstance(Localizer(DotNet(), spec=SPEC).detector, WholeImage)


def test_haar_detector_finds_the_face_in_a_photograph() -> None:
    import matplotlib.cbook

    from binmark.inference import read_image

    image = read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    boxes = HaarFaceDetector()(image)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    # the face (eyes around y ≈ 190, chin ≈ 350 in this 512×600 portrait) is inside the box
    assert 100 < x < 200 and 80 < y < 160 and 200 < w < 320 and w == h
    assert len(HaarFaceDetector()(np.full((200, 200, 3), 128, np.uint8))) == 0


def test_checkpoint_and_packed_file_carry_the_inference_spec(face_checkpoint, tmp_path: Path) -> None:
    from binmark.train.build import model_from_checkpoint

    loc = Localizer(face_checkpoint)
    assert loc.skeleton.name == "300w" and loc.spec.input_size == (64, 64) and loc.spec.heatmap_size == (16, 16)
    assert loc.spec.decode == "dark" and loc.spec.sigma == 1.0
    model, _ = model_from_checkpoint(face_checkpoint)
    path = pack(model).save(tmp_path / "m.bmk")
    assert load(path).inference == loc.spec
    packed = Localizer(path)
    assert packed.spec == loc.spec
    face = synthetic("face", 1, seed=3, image_size=64)[0]
    box = [[5, 5, 54, 54]]
    for l in (loc, packed):
        kp, scores = l.predict(face["image"], box)
        assert kp.shape == (1, 68, 2) and np.isfinite(kp).all() and scores.shape == (1, 68)


def test_spec_round_trips_custom_skeletons() -> None:
    spec = InferenceSpec(DOT, input_size=(48, 64), heatmap_size=(12, 16), output_activation="sigmoid", flip_test=True)
    assert InferenceSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown field"):
        InferenceSpec.from_dict({**spec.to_dict(), "paddding": 1.0})


def test_spec_decodes_with_the_training_encodings_sigma() -> None:
    spec = InferenceSpec(DOT, input_size=64, heatmap_size=16, sigma=1.0, encode="cunet", decode="dark")
    assert InferenceSpec.from_dict(spec.to_dict()) == spec
    assert spec.codec.effective_sigma == pytest.approx(3 / np.sqrt(2))
    old = {k: v for k, v in spec.to_dict().items() if k != "encode"}  # a spec saved before "encode"
    assert InferenceSpec.from_dict(old).encode == "subpixel"
    with pytest.raises(ValueError, match="encode 'gauss'"):
        InferenceSpec(DOT, encode="gauss")


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="skeleton="):
        Localizer(DotNet())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Localizer("no/such/model.bmk")
    loc = Localizer(DotNet(), spec=SPEC)
    with pytest.raises(ValueError, match="positive width"):
        loc.predict(dot_image((5, 5)), [[0, 0, 0, 10]])
    with pytest.raises(ValueError, match=r"\(P, 4\)"):
        loc.predict(dot_image((5, 5)), [[0, 0, 10]])
    with pytest.raises(ValueError, match="max_batch_size"):
        Localizer(DotNet(), spec=SPEC, max_batch_size=0)


def test_wrong_skeleton_for_the_model_is_refused(face_checkpoint) -> None:
    with pytest.raises(ValueError, match="68 keypoints but skeleton 'mpii' has 16"):
        Localizer(face_checkpoint, skeleton="mpii")


def test_track_follows_a_moving_dot_and_smooths_jitter(dotnet) -> None:
    rng = np.random.default_rng(0)
    path = [(40 + 2 * t, 60 + t) for t in range(30)]
    frames = [dot_image((x + rng.uniform(-1, 1), y + rng.uniform(-1, 1))) for x, y in path]
    raw = [r.keypoints[0, 0] for r in Localizer(dotnet, smoothing=False).track(frames)]
    smooth = [r.keypoints[0, 0] for r in Localizer(dotnet, smoothing=OneEuroFilter(min_cutoff=0.5, beta=0.0)).track(frames)]
    assert len(raw) == len(smooth) == 30
    # the box follows the subject: each frame after the first is cropped around the previous landmarks
    assert np.abs(np.array(raw) - np.array(path)).max() < 2.0
    jitter = lambda pts: np.abs(np.diff(np.array(pts), n=2, axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < 0.5 * jitter(raw)


def test_track_redetects_when_the_subject_is_lost() -> None:
    calls = []

    def detector(image: np.ndarray) -> np.ndarray:
        calls.append(1)
        return np.array([[0.0, 0.0, 160.0, 120.0]])

    blank = np.full((120, 160, 3), 30, np.uint8)
    frames = [dot_image((50, 50)), blank, dot_image((100, 60))]
    out = list(Localizer(DotNet(), spec=SPEC, detector=detector, smoothing=False).track(frames))
    assert [len(r.keypoints) for r in out] == [1, 1, 1]
    assert len(calls) == 2  # first frame, then again after the blank frame lost the dot
    assert np.allclose(out[2].keypoints[0, 0], (100, 60), atol=1.5)


def test_result_to_dict_is_json_ready() -> None:
    r = Result(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[[5.0, 6.0]]]), np.array([[0.5]]))
    d = r.to_dict(DOT)
    assert d == {"schema": "dot", "keypoint_names": ["dot"], "instances": [{"box": [1.0, 2.0, 3.0, 4.0], "keypoints": [[5.0, 6.0]], "scores": [0.5]}]}


def test_oneeuro_filter_passes_constant_and_lags_less_with_beta() -> None:
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    assert np.allclose([f(np.array([3.0]), 1 / 30) for _ in range(5)], 3.0)
    ramp = np.arange(60, dtype=float) * 2
    slow, fast = OneEuroFilter(1.0, 0.0), OneEuroFilter(1.0, 1.0)
    lag_slow = ramp[-1] - [slow(np.array([v]), 1 / 30) for v in ramp][-1]
    lag_fast = ramp[-1] - [fast(np.array([v]), 1 / 30) for v in ramp][-1]
    assert 0 < lag_fast < lag_slow
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)


def test_localizer_runs_on_the_model_device(dotnet) -> None:
    loc = Localizer(dotnet, device="cpu")
    assert loc.device == torch.device("cpu")

"""``binmark predict`` on images, folders, videos and bad files; ``binmark report``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from binmark.cli import main
from binmark.data import synthetic
from binmark.deploy import pack
from binmark.inference import Localizer
from binmark.inference.run import predict_paths
from binmark.train.build import model_from_checkpoint

from .conftest import dot_image


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def test_predict_paths_images_folder_video_and_bad_files(dotnet, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    points = {"a.png": (30.0, 40.0), "b.jpg": (100.0, 70.0)}
    for name, p in points.items():
        Image.fromarray(dot_image(p)).save(folder / name, quality=98)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "notes.txt").write_text("not an image, not listed")
    _write_video(tmp_path / "clip.mp4", [dot_image((40 + 3 * t, 50)) for t in range(12)])
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    out = tmp_path / "out"
    report = predict_paths(Localizer(dotnet), [folder, tmp_path / "clip.mp4", tmp_path / "bad.mp4", tmp_path / "missing.png"], out)

    assert set(report["images"]) == {str(folder / "a.png"), str(folder / "b.jpg")}
    for name, p in points.items():
        inst = report["images"][str(folder / name)]["instances"]
        assert len(inst) == 1 and np.allclose(inst[0]["keypoints"][0], p, atol=1.0)
        assert (out / Path(name).with_suffix(".png").name).is_file()
    assert set(report["skipped"]) == {str(folder / "broken.png"), str(tmp_path / "bad.mp4"), str(tmp_path / "missing.png")}
    assert json.loads((out / "predictions.json").read_text()) == json.loads(json.dumps(report))

    video = json.loads((out / "clip.json").read_text())
    assert video["schema"] == "dot" and len(video["frames"]) == 12
    xs = [f["instances"][0]["keypoints"][0][0] for f in video["frames"]]
    assert xs[-1] > xs[0] + 20  # the dot moved right by 33 px; the tracked point follows (smoothed)
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
    assert not list(out.glob(".*"))  # no temporary files left


def test_boxes_file_and_annotated_picture(dotnet, tmp_path: Path) -> None:
    image = dot_image((30.0, 40.0))
    Image.fromarray(image).save(tmp_path / "a.png")
    report = predict_paths(Localizer(dotnet), [tmp_path / "a.png"], tmp_path / "out", boxes={"a.png": [[10, 20, 40, 40], [0, 0, 160, 120]]})
    inst = report["images"][str(tmp_path / "a.png")]["instances"]
    assert [i["box"] for i in inst] == [[10, 20, 40, 40], [0, 0, 160, 120]]
    drawn = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert drawn.shape == image.shape and (drawn != image).any()


@pytest.mark.slow
def test_cli_predict_with_a_packed_face_model(face_checkpoint, tmp_path: Path, capsys) -> None:
    import matplotlib.cbook

    model, _ = model_from_checkpoint(face_checkpoint)
    bmk = pack(model).save(tmp_path / "m.bmk")
    faces = synthetic("face", 2, seed=4, image_size=64)
    for i in range(2):
        Image.fromarray(faces[i]["image"]).save(tmp_path / f"f{i}.png")
    (tmp_path / "boxes.json").write_text(json.dumps({"f0.png": [[4, 4, 56, 56]]}))
    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    argv = ["predict", str(bmk), str(tmp_path / "f0.png"), str(tmp_path / "f1.png"), photo, "--out", str(tmp_path / "o"),
            "--boxes", str(tmp_path / "boxes.json"), "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    assert "3 image(s) (2 instance(s)), 0 video(s), 0 skipped" in capsys.readouterr().out
    doc = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert doc["schema"] == "300w" and len(doc["keypoint_names"]) == 68
    assert len(doc["images"][str(tmp_path / "f0.png")]["instances"]) == 1  # the given box
    assert len(doc["images"][str(tmp_path / "f1.png")]["instances"]) == 0  # a cartoon face: Haar finds none
    assert len(doc["images"][photo]["instances"]) == 1  # the Haar detector finds the real face
    assert np.array(doc["images"][photo]["instances"][0]["keypoints"]).shape == (68, 2)


def test_cli_predict_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["predict", str(tmp_path / "none.bmk"), "x.png"]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "b.json").write_text("[1, 2]")
    assert main(["predict", str(tmp_path / "none.bmk"), "x.png", "--boxes", str(tmp_path / "b.json")]) == 1
    assert "b.json: expected an object" in capsys.readouterr().err


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` × ``height`` RGB pixels, with (almost) no data: the
    shape of a decompression bomb, 60-odd bytes on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_predict_skips_oversized_images_and_refused_boxes_but_runs_the_rest(dotnet, tmp_path: Path) -> None:
    Image.fromarray(dot_image((30.0, 40.0))).save(tmp_path / "good.png")
    (tmp_path / "bomb.png").write_bytes(_png_header(200_000, 200_000))  # over Pillow's own hard limit
    (tmp_path / "big.png").write_bytes(_png_header(10_000, 10_000))  # 1e8 px: over MAX_PIXELS only
    (tmp_path / "small_limit.png").write_bytes((tmp_path / "good.png").read_bytes())
    boxes = {"good.png": [[10, 20, 40, 40], [float("nan"), 0, 10, 10], [0, 0, float("inf"), 5], [0, 0, 1e12, 1e12],
                          [500, 500, 10, 10], [0, 0, 0, 10]]}  # fmt: skip
    loc = Localizer(dotnet)
    out = tmp_path / "out"
    report = predict_paths(loc, [tmp_path / n for n in ("good.png", "bomb.png", "big.png")], out, boxes=boxes)
    good = str(tmp_path / "good.png")
    assert [i["box"] for i in report["images"][good]["instances"]] == [[10, 20, 40, 40]]
    assert set(report["skipped"]) == {str(tmp_path / "bomb.png"), str(tmp_path / "big.png")} | {f"{good} box {i}" for i in range(1, 6)}
    assert "bomb.png" in report["skipped"][str(tmp_path / "bomb.png")]
    assert "100,000,000 pixels is over the limit" in report["skipped"][str(tmp_path / "big.png")]
    assert "non-finite" in report["skipped"][f"{good} box 1"] and "non-finite" in report["skipped"][f"{good} box 2"]
    assert "over 8×" in report["skipped"][f"{good} box 3"] and "outside" in report["skipped"][f"{good} box 4"]
    assert "positive width" in report["skipped"][f"{good} box 5"]
    assert (out / "good.png").is_file()
    # a lower limit refuses an ordinary image, from its header
    small = predict_paths(loc, [tmp_path / "small_limit.png"], tmp_path / "out2", max_pixels=100)
    assert "over the limit of 100" in small["skipped"][str(tmp_path / "small_limit.png")]


def test_predict_never_overwrites_inputs_or_other_files(dotnet, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, p in {"a.jpg": (30.0, 40.0), "a.png": (60.0, 40.0), "a_1.png": (90.0, 40.0)}.items():
        Image.fromarray(dot_image(p)).save(folder / name, quality=98)
    (folder / "notes.json").write_text("{}")
    _write_video(folder / "predictions.mp4", [dot_image((40 + 3 * t, 50)) for t in range(3)])
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    report = predict_paths(Localizer(dotnet), [folder], folder)  # --out is the input folder
    assert {f.name: f.read_bytes() for f in folder.iterdir() if f.name in before} == before
    annotated = [e["annotated"] for e in report["images"].values()]
    assert len(set(annotated)) == 3 and not set(annotated) & set(before)
    video = report["videos"][str(folder / "predictions.mp4")]
    assert video["json"] not in ("predictions.json", "predictions_coco.json") and video["annotated"] not in before
    assert json.loads((folder / video["json"]).read_text())["frames"]
    assert json.loads((folder / "predictions.json").read_text())["images"]
    # a second run into the same folder replaces its own outputs, never the inputs: same names
    again = predict_paths(Localizer(dotnet), [folder / n for n in ("a.jpg", "a.png", "a_1.png")], folder)
    assert [e["annotated"] for e in again["images"].values()] == annotated
    assert {f.name: f.read_bytes() for f in folder.iterdir() if f.name in before} == before


def test_predict_reports_a_failed_drawing_and_keeps_the_landmarks(dotnet, tmp_path: Path, monkeypatch) -> None:
    import binmark.inference.run as run

    Image.fromarray(dot_image((30.0, 40.0))).save(tmp_path / "a.png")

    def broken(path: str, image: np.ndarray) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(run, "write_png", broken)
    report = predict_paths(Localizer(dotnet), [tmp_path / "a.png"], tmp_path / "out")
    entry = report["images"][str(tmp_path / "a.png")]
    assert entry["annotated"] is None and len(entry["instances"]) == 1
    assert "disk full" in report["skipped"][f"{tmp_path / 'a.png'} (annotated image)"]


def test_predict_coco_results_load_in_pycocotools(dotnet, tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    Image.fromarray(dot_image((30.0, 40.0))).save(tmp_path / "000000000042.png")
    report = predict_paths(Localizer(dotnet), [tmp_path / "000000000042.png"], tmp_path / "out", coco=True)
    results = json.loads((tmp_path / "out" / "predictions_coco.json").read_text())
    assert "predictions_coco.json" in report["written"]
    assert len(results) == 1 and results[0]["image_id"] == 42 and len(results[0]["keypoints"]) == 3
    x, y, s = results[0]["keypoints"]
    assert abs(x - 30.0) < 1.0 and abs(y - 40.0) < 1.0 and results[0]["score"] == round(s, 4)
    gt = COCO()
    gt.dataset = {"images": [{"id": 42, "width": 160, "height": 120}],
                  "annotations": [{"id": 1, "image_id": 42, "category_id": 1, "keypoints": [30, 40, 2], "num_keypoints": 1,
                                   "area": 4800.0, "bbox": [0, 0, 160, 120], "iscrowd": 0}],
                  "categories": [{"id": 1, "name": "dot", "keypoints": ["dot"], "skeleton": []}]}  # fmt: skip
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(results), "keypoints")
    ev.params.kpt_oks_sigmas = np.array([0.1])
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] > 0.99  # the one point is found: AP 1


def test_cli_predict_exits_3_when_nothing_was_processed(face_checkpoint, tmp_path: Path, capsys) -> None:
    from binmark.cli import NOTHING_PROCESSED

    assert main(["predict", str(face_checkpoint), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == NOTHING_PROCESSED == 3
    assert "no input could be processed" in capsys.readouterr().err
    assert str(tmp_path / "missing.png") in json.loads((tmp_path / "o" / "predictions.json").read_text())["skipped"]


def test_read_image_refuses_fifos_and_folders_without_blocking(tmp_path: Path) -> None:
    import os

    from binmark.inference import ImageReadError, read_image

    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageReadError, match="pipe.png: not a regular file"):
        read_image(tmp_path / "pipe.png")  # opening a FIFO for reading would block forever
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path)

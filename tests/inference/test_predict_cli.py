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

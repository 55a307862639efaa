"""Every loader on real files: the shared fixtures, and files written here in the formats the
fixtures lack (LSP joints.mat, AFLW2000-3D .mat, MPII head boxes, AFLW .mat/CSV, WFLW text, COFW
.mat, the 300-W folder layout). Coordinates are compared with values read by hand from the files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from binmark.data import datasets, load, skeleton


def _image(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_registered_datasets() -> None:
    assert set(datasets()) >= {"mpii", "lsp", "coco", "coco_custom", "300w", "300vw", "aflw19", "aflw2000", "wflw", "cofw"}


class TestMPII:
    def test_json_conversion(self, fixtures: Path) -> None:
        ds = load("mpii", ann_file=fixtures / "mpii/test_mpii.json", image_dir=fixtures / "mpii")
        assert len(ds) == 5 and ds.skeleton.name == "mpii"
        s = ds[0]  # 005808361.jpg: joints[0] = [804, 711], center [966, 340], scale 4.718488
        assert s["image"].shape == (720, 1280, 3) and s["image"].dtype == np.uint8
        np.testing.assert_allclose(s["keypoints"][0], [803.0, 710.0])
        np.testing.assert_allclose(s["keypoints"][9], [961.2409, 79.0306])
        np.testing.assert_allclose(s["center"], [965.0, 340.0 + 15 * 4.718488 - 1])
        assert s["scale"] == pytest.approx(4.718488) and s["image_id"] == 5808361
        assert s["visible"].all() and "head_size" not in s

    def test_missing_joints_are_invisible(self, fixtures: Path) -> None:
        ds = load("mpii", ann_file=fixtures / "mpii/test_mpii.json", image_dir=fixtures / "mpii")
        s = next(ds[i] for i in range(5) if ds.records[i].image_path.name == "051423444.jpg")
        assert not s["visible"][0] and not s["visible"][5] and s["visible"][1:5].all()
        np.testing.assert_array_equal(s["keypoints"][[0, 5]], 0.0)

    def test_head_boxes_from_mat(self, fixtures: Path, tmp_path: Path) -> None:
        shutil.copy(fixtures / "mpii/test_mpii.json", tmp_path / "valid.json")
        boxes = np.zeros((2, 2, 5))
        boxes[1] = [[30.0, 40.0, 0, 0, 6], [40.0, 30.0, 0, 0, 8]]  # diagonals 50, 50, 0, 0, 10
        scipy.io.savemat(tmp_path / "gt_valid.mat", {"headboxes_src": boxes})
        ds = load("mpii", ann_file=tmp_path / "valid.json", image_dir=fixtures / "mpii")
        assert [ds.records[i].extras["head_size"] for i in range(5)] == pytest.approx([50, 50, 0, 0, 10])
        with pytest.raises(ValueError, match="has 5 head boxes but the annotation file has 4"):
            (tmp_path / "valid.json").write_text(json.dumps(json.loads((tmp_path / "valid.json").read_text())[:4]))
            load("mpii", ann_file=tmp_path / "valid.json", image_dir=fixtures / "mpii")

    def test_standard_layout_and_json_head_size(self, fixtures: Path, tmp_path: Path) -> None:
        entries = json.loads((fixtures / "mpii/test_mpii.json").read_text())
        for e in entries:
            e["normalizer"] = 42.0  # the CU-Net conversion's head size field
        (tmp_path / "annot").mkdir()
        (tmp_path / "annot/train.json").write_text(json.dumps(entries))
        shutil.copytree(fixtures / "mpii", tmp_path / "images")
        ds = load("mpii", tmp_path, split="train")
        assert len(ds) == 5 and ds[1]["head_size"] == 42.0


def test_lsp_joints_mat(tmp_path: Path) -> None:
    joints = np.zeros((3, 14, 3))
    joints[0] = np.arange(14)[:, None] + 11  # x = 11.. (1-based)
    joints[1] = 21
    joints[2, 4, 1] = 1  # image 2, joint 4 occluded
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": joints})
    for i in range(3):
        _image(tmp_path / "images" / f"im{i + 1:04d}.jpg")
    ds = load("lsp", ann_file=tmp_path / "joints.mat", split="test")
    assert len(ds) == 3 and ds.skeleton.name == "lsp"
    s = ds[1]
    np.testing.assert_allclose(s["keypoints"][0], [10.0, 20.0])
    assert s["visible"].all() and s["occluded"][4] and s["occluded"].sum() == 1
    assert ds.records[2].image_path.name == "im0003.jpg"


def test_lspet_layout(tmp_path: Path) -> None:
    joints = np.ones((14, 3, 2))
    joints[:, 0, :] = np.arange(14)[:, None] + 5
    joints[3, 2, 0] = 0  # not visible
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": joints})
    for i in range(2):
        _image(tmp_path / "images" / f"im{i + 1:05d}.jpg")
    ds = load("lsp", ann_file=tmp_path / "joints.mat", split="train")
    assert len(ds) == 2 and not ds[0]["visible"][3] and ds[1]["visible"].all()


class TestCOCO:
    def test_person_keypoints(self, fixtures: Path) -> None:
        ds = load("coco", ann_file=fixtures / "coco/test_coco.json", image_dir=fixtures / "coco")
        assert len(ds) == 12  # 14 annotations, 2 without keypoints
        assert ds.info["no_keypoints_ignored"] == 2 and ds.info["crowd_ignored"] == 0
        s = ds[0]  # annotation 442619: keypoints start 367, 81, 2, 374, 73, 2
        np.testing.assert_allclose(s["keypoints"][:2], [[367, 81], [374, 73]])
        assert s["image_id"] == 785 and s["ann_id"] == 442619 and s["area"] == pytest.approx(27789.11055)
        # bbox [280.79, 44.73, 218.7, 346.68] lies inside the 640 × 425 image: kept as it is; its
        # centre (COCO box convention) is HRNet's x + (w - 1) / 2, its side h (HRNet: h - 1)
        np.testing.assert_allclose(s["bbox"], [280.79, 44.73, 218.7, 346.68])
        np.testing.assert_allclose(s["center"], [280.79 + 217.7 / 2, 44.73 + 345.68 / 2])
        assert s["scale"] == pytest.approx(346.68 / 200)

    def test_boxes_are_clipped_to_the_image(self) -> None:
        from binmark.data.loaders.coco import clean_bbox

        np.testing.assert_allclose(clean_bbox([-10, 5, 30, 20], 100, 50), [0, 5, 20, 20])
        np.testing.assert_allclose(clean_bbox([90, 40, 30, 20], 100, 50), [90, 40, 10, 10])
        assert clean_bbox([100, 0, 5, 5], 100, 50) is None and clean_bbox([0, 0, 0, 5], 100, 50) is None

    def test_labelled_but_hidden_points(self, fixtures: Path) -> None:
        ds = load("coco", ann_file=fixtures / "coco/test_coco.json", image_dir=fixtures / "coco")
        raw = json.loads((fixtures / "coco/test_coco.json").read_text())["annotations"]
        by_id = {a["id"]: np.asarray(a["keypoints"]).reshape(-1, 3) for a in raw}
        for i in range(len(ds)):
            rec = ds.records[i]
            v = by_id[rec.extras["ann_id"]][:, 2]
            np.testing.assert_array_equal(rec.visible, v > 0)
            np.testing.assert_array_equal(rec.extras["occluded"], v == 1)
        assert any(r.extras["occluded"].any() for r in ds.records)

    def test_crowd_is_ignored(self, fixtures: Path, tmp_path: Path) -> None:
        data = json.loads((fixtures / "coco/test_coco.json").read_text())
        data["annotations"][0]["iscrowd"] = 1
        (tmp_path / "c.json").write_text(json.dumps(data))
        ds = load("coco", ann_file=tmp_path / "c.json", image_dir=fixtures / "coco")
        assert len(ds) == 11 and ds.info["crowd_ignored"] == 1

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda kp: kp.__setitem__(0, "367"), r"annotation 0 \(id 442619\): 'keypoints' must be a list of numbers"),
            (lambda kp: kp.__setitem__(2, 5), r"annotation 0 \(id 442619\): keypoint 0 has visibility flag 5; COCO's flags are 0"),
            (lambda kp: kp.__setitem__(2, float("nan")), r"annotation 0 .*keypoint 0 has visibility flag nan"),
            (lambda kp: kp.__setitem__(slice(0, None), [float("nan")] * len(kp)), r"annotation 0 .*visibility flag nan"),
        ],
    )
    def test_bad_keypoints_name_the_file_and_annotation(self, fixtures: Path, tmp_path: Path, edit, message: str) -> None:
        data = json.loads((fixtures / "coco/test_coco.json").read_text())
        edit(data["annotations"][0]["keypoints"])
        (tmp_path / "c.json").write_text(json.dumps(data))
        with pytest.raises(ValueError, match=str(tmp_path / "c.json") + ", " + message):
            load("coco", ann_file=tmp_path / "c.json", image_dir=fixtures / "coco")

    def test_custom_skeleton(self, fixtures: Path, tmp_path: Path) -> None:
        data = json.loads((fixtures / "coco/test_coco.json").read_text())
        data["categories"][0].update(name="critter", keypoints=[f"left_k{i}" if i % 2 else f"k{i}" for i in range(17)])
        (tmp_path / "annotations").mkdir()
        (tmp_path / "annotations/val.json").write_text(json.dumps(data))
        ds = load("coco_custom", tmp_path, image_dir=fixtures / "coco")
        assert ds.skeleton.name == "critter" and ds.skeleton.num_keypoints == 17
        assert ds.skeleton.limbs[0] == (15, 13) and len(ds) == 12


@pytest.mark.parametrize(
    ("name", "ann", "folder", "count", "k", "first"),
    [
        # values read by hand from each file's first annotation (origin noted per format)
        ("300w", "300w/test_300w.json", "300w", 2, 68, [268.0 - 1, 398.882 - 1]),
        ("300vw", "300vw/anno_300vw.json", "300vw", 3, 68, [743.224 - 1, 197.764 - 1]),
        ("aflw19", "aflw/test_aflw.json", "aflw", 2, 19, [337.28341384863, 205.78904991948002]),
        ("wflw", "wflw/test_wflw.json", "wflw", 4, 98, [440.696106, 132.732559]),
        ("cofw", "cofw/test_cofw.json", "cofw", 2, 29, [46.562534549474826, 120.07575548185008]),
        ("aflw2000", "300wlp/test_300wlp.json", "300wlp", 2, 68, [144.78085327148438, 253.39178466796875]),
    ],
)
def test_mmpose_face_jsons(fixtures: Path, name: str, ann: str, folder: str, count: int, k: int, first: list) -> None:
    ds = load(name, ann_file=fixtures / ann, image_dir=fixtures / folder)
    assert len(ds) == count and ds.skeleton.num_keypoints == k
    s = ds[0]
    np.testing.assert_allclose(s["keypoints"][0], first)
    assert s["image"].ndim == 3 and s["visible"].all()


def test_face_json_extras(fixtures: Path) -> None:
    aflw = load("aflw19", ann_file=fixtures / "aflw/test_aflw.json", image_dir=fixtures / "aflw")
    assert sorted(r.extras["box_size"] for r in aflw.records) == [128.0, 362.0]
    cofw = load("cofw", ann_file=fixtures / "cofw/test_cofw.json", image_dir=fixtures / "cofw")
    assert [int(r.extras["occluded"].sum()) for r in cofw.records] == [6, 9]
    wflw = load("wflw", ann_file=fixtures / "wflw/test_wflw.json", image_dir=fixtures / "wflw")
    assert wflw[2]["center"].tolist() == [786.5, 787.0]  # center/scale, not the broken bbox


def test_300vw_pts_match_its_json(fixtures: Path) -> None:
    pts = load("300vw", fixtures / "300vw", split="all")
    assert len(pts) == 4  # frame 731 of video 401 has a .pts but is not in the JSON
    js = load("300vw", ann_file=fixtures / "300vw/anno_300vw.json", image_dir=fixtures / "300vw")
    by_path = {str(r.image_path): r.keypoints for r in pts.records}
    for r in js.records:
        np.testing.assert_allclose(by_path[str(r.image_path)], r.keypoints)
    raw = np.loadtxt(fixtures / "300vw/001/annot/000006.pts", skiprows=3, max_rows=68)
    np.testing.assert_allclose(pts.records[0].keypoints, raw - 1)


def test_300w_folder_splits(fixtures: Path, tmp_path: Path) -> None:
    src = fixtures / "300vw/001"
    for folder, frame in (("helen/testset", "000006"), ("lfpw/testset", "000009"), ("ibug", "000006")):
        (tmp_path / folder).mkdir(parents=True)
        shutil.copy(src / f"annot/{frame}.pts", tmp_path / folder / f"{frame}.pts")
        shutil.copy(src / f"imgs/{frame}.jpg", tmp_path / folder / f"{frame}.jpg")
    assert len(load("300w", tmp_path, split="common")) == 2
    assert len(load("300w", tmp_path, split="challenging")) == 1
    full = load("300w", tmp_path, split="full")
    assert [r.extras["subset"] for r in full.records] == ["common", "common", "challenging"]
    assert len(load("300w", tmp_path)) == 3  # "val" is the full set
    with pytest.raises(FileNotFoundError, match="needs folder .*afw"):
        load("300w", tmp_path, split="train")


def test_aflw2000_mat(tmp_path: Path) -> None:
    pts = np.stack([np.linspace(10, 50, 68), np.linspace(20, 40, 68), np.zeros(68)])
    pose = np.array([[0.1, np.radians(45.0), -0.2, 0, 0, 0, 1]])
    folder = tmp_path / "AFLW2000"
    folder.mkdir()
    scipy.io.savemat(folder / "image00002.mat", {"pt3d_68": pts, "Pose_Para": pose})
    _image(folder / "image00002.jpg", (64, 64))
    ds = load("aflw2000", tmp_path)
    s = ds[0]
    np.testing.assert_allclose(s["keypoints"][0], [10, 20])
    assert s["yaw"] == pytest.approx(45.0) and s["image_id"] == "image00002"
    np.testing.assert_allclose(s["bbox"], [10, 20, 40, 20])


def test_aflw19_mat_and_csv(tmp_path: Path) -> None:
    n = 20003
    rng = np.random.default_rng(1)
    xs, ys = rng.uniform(20, 40, (n, 19)), rng.uniform(20, 40, (n, 19))
    mask = np.ones((n, 19))
    mask[-1, 3] = 0
    bbox = np.tile([10.0, 50.0, 12.0, 52.0], (n, 1))  # x1, x2, y1, y2
    names = np.empty((n, 1), dtype=object)
    names[:, 0] = [f"0/img{i}.jpg" for i in range(n)]
    ra = np.arange(1, n + 1)[None]
    scipy.io.savemat(tmp_path / "AFLWinfo_release.mat", {"data": np.hstack([xs, ys]), "mask_new": mask, "bbox": bbox, "nameList": names, "ra": ra})
    for i in range(20000, n):
        _image(tmp_path / "flickr" / f"0/img{i}.jpg")
    test = load("aflw19", tmp_path, split="test")
    assert len(test) == 3
    np.testing.assert_allclose(test[0]["keypoints"][:, 0], xs[20000] - 1)
    assert test[0]["box_size"] == pytest.approx(40.0) and not test[2]["visible"][3]
    assert len(load("aflw19", tmp_path, split="test_frontal")) == 2  # the last face has a hidden point
    row = ["0/img20000.jpg", "0.3", "60", "30", "31"] + [f"{v:.3f}" for v in np.stack([xs[20000], ys[20000]], 1).ravel()]
    (tmp_path / "test.csv").write_text("image,scale,box,cw,ch,coords\n" + ",".join(row) + "\n")
    csv = load("aflw19", ann_file=tmp_path / "test.csv", image_dir=tmp_path / "flickr")
    assert len(csv) == 1 and csv[0]["box_size"] == 60.0
    np.testing.assert_allclose(csv[0]["keypoints"], test[0]["keypoints"], atol=1e-3)
    np.testing.assert_allclose(csv[0]["center"], [29.0, 30.0])


def test_wflw_text(fixtures: Path, tmp_path: Path) -> None:
    data = json.loads((fixtures / "wflw/test_wflw.json").read_text())
    files = {img["id"]: img["file_name"] for img in data["images"]}
    lines = []
    for j, a in enumerate(data["annotations"]):
        coords = np.asarray(a["keypoints"]).reshape(-1, 3)[:, :2].ravel()
        attrs = [1 if j == 0 else 0, 0, 0, 0, 1, 0]
        lines.append(" ".join([f"{v:.6f}" for v in coords] + ["1", "2", "30", "40"] + [str(v) for v in attrs] + [files[a["image_id"]]]))
    txt = tmp_path / "WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_test.txt"
    txt.parent.mkdir(parents=True)
    txt.write_text("\n".join(lines) + "\n")
    shutil.copytree(fixtures / "wflw", tmp_path / "WFLW_images")
    ds = load("wflw", tmp_path, split="test")
    assert len(ds) == 4
    np.testing.assert_allclose(ds[0]["keypoints"][0], [440.696106, 132.732559])
    np.testing.assert_allclose(ds[0]["bbox"], [1, 2, 29, 38])
    assert len(load("wflw", tmp_path, split="test_largepose")) == 1
    assert len(load("wflw", tmp_path, split="test_occlusion")) == 4
    assert ds[0]["attributes"]["largepose"] and not ds[1]["attributes"]["largepose"]


def _cofw_arrays():
    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 255, (40, 30, 3), dtype=np.uint8), rng.integers(0, 255, (36, 32), dtype=np.uint8)]
    phis = np.zeros((2, 87))
    phis[:, :29] = rng.uniform(5, 25, (2, 29))
    phis[:, 29:58] = rng.uniform(5, 30, (2, 29))
    phis[1, 58 + 3] = 1  # occluded
    boxes = np.array([[3.0, 4.0, 20.0, 25.0], [2.0, 2.0, 25.0, 30.0]])
    return imgs, phis, boxes


def test_cofw_mat_v5(tmp_path: Path) -> None:
    imgs, phis, boxes = _cofw_arrays()
    cell = np.empty((2, 1), dtype=object)
    cell[0, 0], cell[1, 0] = imgs
    scipy.io.savemat(tmp_path / "COFW_test_color.mat", {"IsT": cell, "phisT": phis, "bboxesT": boxes})
    ds = load("cofw", tmp_path)
    assert len(ds) == 2
    np.testing.assert_array_equal(ds[0]["image"], imgs[0])
    assert ds[1]["image"].shape == (36, 32, 3)
    np.testing.assert_allclose(ds[1]["keypoints"][:, 0], phis[1, :29] - 1)
    assert ds[1]["occluded"][3] and ds[1]["occluded"].sum() == 1 and ds[1]["visible"].all()


def test_cofw_mat_v73(tmp_path: Path) -> None:
    imgs, phis, boxes = _cofw_arrays()
    with h5py.File(tmp_path / "COFW_test_color.mat", "w") as fh:
        refs = []
        for i, img in enumerate(imgs):
            refs.append(fh.create_dataset(f"#refs#/{i}", data=img.T).ref)  # MATLAB layout
        fh.create_dataset("IsT", data=np.array(refs, dtype=h5py.ref_dtype)[:, None])
        fh.create_dataset("phisT", data=phis.T)
        fh.create_dataset("bboxesT", data=boxes.T)
    ds = load("cofw", tmp_path)
    np.testing.assert_array_equal(ds[0]["image"], imgs[0])
    np.testing.assert_allclose(ds[0]["keypoints"][:, 1], phis[0, 29:58] - 1)


class TestBadInput:
    def _mpii(self, fixtures: Path, tmp_path: Path, edit=None) -> Path:
        entries = json.loads((fixtures / "mpii/test_mpii.json").read_text())
        if edit:
            edit(entries)
        path = tmp_path / "mpii.json"
        path.write_text(json.dumps(entries))
        return path

    def test_missing_image_names_file_and_entry(self, fixtures: Path, tmp_path: Path) -> None:
        ann = self._mpii(fixtures, tmp_path)
        with pytest.raises(FileNotFoundError, match=r"image .*empty/005808361.jpg does not exist \(needed by .*entry 0"):
            load("mpii", ann_file=ann, image_dir=tmp_path / "empty")

    def test_truncated_image(self, fixtures: Path, tmp_path: Path) -> None:
        images = tmp_path / "images"
        shutil.copytree(fixtures / "mpii", images)
        data = (images / "052475643.jpg").read_bytes()
        (images / "052475643.jpg").write_bytes(data[: len(data) // 2])
        ann = self._mpii(fixtures, tmp_path)
        ds = load("mpii", ann_file=ann, image_dir=images)
        with pytest.raises(ValueError, match="052475643.jpg is unreadable or truncated"):
            ds[1]
        skipped = load("mpii", ann_file=ann, image_dir=images, on_error="skip")
        assert len(skipped) == 4 and len(skipped.skipped) == 1
        assert "entry 1" in skipped.skipped[0][0] and "truncated" in skipped.skipped[0][1]

    def test_not_an_image(self, fixtures: Path, tmp_path: Path) -> None:
        images = tmp_path / "images"
        shutil.copytree(fixtures / "mpii", images)
        (images / "060754485.jpg").write_text("not a jpeg")
        ds = load("mpii", ann_file=self._mpii(fixtures, tmp_path), image_dir=images, on_error="skip")
        assert len(ds) == 4 and "060754485.jpg" in ds.skipped[0][1]

    def test_wrong_keypoint_count(self, fixtures: Path, tmp_path: Path) -> None:
        ann = self._mpii(fixtures, tmp_path, lambda e: e[2]["joints"].pop())
        with pytest.raises(ValueError, match=r"mpii.json, entry 2 \(051423444.jpg\) has 15 keypoints, skeleton 'mpii' expects 16"):
            load("mpii", ann_file=ann, image_dir=fixtures / "mpii")

    def test_nan_coordinates(self, fixtures: Path, tmp_path: Path) -> None:
        text = (fixtures / "300vw/001/annot/000006.pts").read_text().replace("743.224 197.764", "nan 197.764")
        (tmp_path / "a.pts").write_text(text)
        shutil.copy(fixtures / "300vw/001/imgs/000006.jpg", tmp_path / "a.jpg")
        with pytest.raises(ValueError, match=r"a.pts: keypoint 0 \(jaw_0\) is annotated but its coordinates are \[nan"):
            load("300w", ann_file=tmp_path / "a.pts")

    def test_far_outside_the_image(self, fixtures: Path, tmp_path: Path) -> None:
        data = json.loads((fixtures / "coco/test_coco.json").read_text())
        data["annotations"][0]["keypoints"][0] = 99999
        (tmp_path / "c.json").write_text(json.dumps(data))
        with pytest.raises(ValueError, match=r"c.json, annotation 0 \(id 442619\): keypoint 0 \(nose\) at \(99999.0, 81.0\) is far outside the 640x425 image"):
            load("coco", ann_file=tmp_path / "c.json", image_dir=fixtures / "coco")

    def test_far_outside_checked_on_access_when_size_unknown(self, fixtures: Path, tmp_path: Path) -> None:
        ann = self._mpii(fixtures, tmp_path, lambda e: e[0]["joints"].__setitem__(3, [50000.0, 10.0]))
        ds = load("mpii", ann_file=ann, image_dir=fixtures / "mpii")
        with pytest.raises(ValueError, match=r"keypoint 3 \(left_hip\) .* far outside the 1280x720 image"):
            ds[0]
        assert len(load("mpii", ann_file=ann, image_dir=fixtures / "mpii", on_error="skip")) == 4

    def test_malformed_files(self, tmp_path: Path) -> None:
        (tmp_path / "bad.json").write_text('{"images": [}')
        with pytest.raises(ValueError, match=r"bad.json is not valid JSON \(line 1"):
            load("coco", ann_file=tmp_path / "bad.json")
        (tmp_path / "x.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
        with pytest.raises(ValueError, match="header says n_points 68 but 1 points follow"):
            load("300w", ann_file=tmp_path / "x.pts")
        (tmp_path / "w.txt").write_text("1 2 3\n")
        with pytest.raises(ValueError, match="w.txt, line 1 has 3 fields, expected 207"):
            load("wflw", ann_file=tmp_path / "w.txt")

    def test_missing_annotation_file_lists_tried_paths(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="tried: .*annot/valid.json, .*annotations/mpii_val.json"):
            load("mpii", tmp_path)

    def test_bad_split_and_options(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="dataset 'coco' has no split 'test'; choose one of: train, val"):
            load("coco", tmp_path, split="test")
        with pytest.raises(ValueError, match="on_error must be one of"):
            load("300vw", Path(__file__).parents[1] / "fixtures/300vw", split="all", on_error="ignore")
        with pytest.raises(ValueError, match="unknown dataset 'mpi'"):
            load("mpi", tmp_path)


def test_samples_have_the_api_fields(fixtures: Path) -> None:
    ds = load("coco", ann_file=fixtures / "coco/test_coco.json", image_dir=fixtures / "coco")
    s = ds[3]
    assert s["keypoints"].shape == (17, 2) and s["keypoints"].dtype == np.float64
    assert s["visible"].shape == (17,) and s["visible"].dtype == bool
    assert s["center"].shape == (2,) and isinstance(s["scale"], float)
    assert s["bbox"].shape == (4,) and "image_id" in s
    assert skeleton("coco") == ds.skeleton


def test_deeply_nested_annotation_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="deep.json is nested too deeply"):
        load("coco", ann_file=tmp_path / "deep.json", image_dir=tmp_path)

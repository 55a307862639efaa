"""Keypoint schemas: counts, flip pairs from the references, custom skeletons."""

from __future__ import annotations

import pytest

from binmark.data import Skeleton, infer_flip_pairs, skeleton

COUNTS = {"mpii": 16, "lsp": 14, "coco": 17, "300w": 68, "aflw19": 19, "aflw2000": 68, "wflw": 98, "cofw": 29}


@pytest.mark.parametrize(("name", "k"), COUNTS.items())
def test_counts_and_api_fields(name: str, k: int) -> None:
    s = skeleton(name)
    assert s.name == name and s.num_keypoints == k and len(s.keypoints) == k
    assert len(s.colors) == k
    perm = s.flip_permutation
    assert sorted(perm) == list(range(k))
    assert all(perm[perm[i]] == i for i in range(k))  # an involution


def test_reference_flip_pairs() -> None:
    # MPII, COCO: github.com/leoxiaobin/deep-high-resolution-net.pytorch, lib/dataset/{mpii,coco}.py;
    # LSP: derived from the joint order in github.com/bearpaw/pytorch-pose, miscs/gen_lsp.m
    assert skeleton("mpii").flip_pairs == ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
    assert skeleton("coco").flip_pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    assert skeleton("lsp").flip_pairs == ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9))
    # face-alignment's shuffle_lr permutation for 68 points
    fa = [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20,
          19, 18, 17, 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36,
          41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
    assert skeleton("300w").flip_permutation == fa
    assert skeleton("wflw").flip_permutation[96] == 97 and skeleton("wflw").ocular == (60, 72)
    assert skeleton("cofw").ocular == (8, 9) and skeleton("300w").ocular == (36, 45)


def test_normalizers() -> None:
    assert skeleton("mpii").normalizer == "head"
    assert skeleton("lsp").normalizer == "torso" and skeleton("lsp").torso == (9, 2)
    assert skeleton("coco").normalizer == "area" and skeleton("coco").sigmas[0] == 0.026
    assert skeleton("300w").normalizer == "ocular"
    assert skeleton("aflw19").normalizer == "box" and skeleton("aflw2000").normalizer == "bbox"


def test_infer_flip_pairs_handles_case_and_position() -> None:
    names = ["nose", "Left_Eye", "Right_Eye", "paw_left", "paw_right", "leftover", "right"]
    assert infer_flip_pairs(names) == [(1, 2), (3, 4)]


def test_from_coco_category() -> None:
    cat = {"name": "animal", "keypoints": ["nose", "left_ear", "right_ear", "tail"], "skeleton": [[1, 2], [1, 3], [1, 4]]}
    s = Skeleton.from_coco(cat)
    assert s.name == "animal" and s.num_keypoints == 4
    assert s.flip_pairs == ((1, 2),) and s.limbs == ((0, 1), (0, 2), (0, 3))
    explicit = Skeleton.from_coco(cat, flip_pairs=[(1, 2)], sigmas=[0.1] * 4, name="zoo")
    assert explicit.name == "zoo" and explicit.sigmas == (0.1,) * 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"flip_pairs": ((0, 9),)}, "flip_pairs index 9 is out of range 0..2"),
        ({"flip_pairs": ((0, 1), (1, 2))}, "repeats an index"),
        ({"flip_pairs": ((1, 1),)}, "repeats an index or pairs a point with itself"),
        ({"keypoints": ("a", "a", "b")}, "duplicate keypoint names \\['a'\\]"),
        ({"sigmas": (0.1,)}, "1 sigmas for 3 keypoints"),
        ({"normalizer": "eyes"}, "normalizer 'eyes'"),
    ],
)
def test_invalid_skeletons(kwargs: dict, message: str) -> None:
    base = {"name": "t", "keypoints": ("a", "b", "c")}
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Skeleton(**base)


def test_from_coco_without_names() -> None:
    with pytest.raises(ValueError, match="no keypoint names"):
        Skeleton.from_coco({"name": "face", "keypoints": []})


def test_unknown_skeleton() -> None:
    with pytest.raises(ValueError, match="unknown skeleton 'mpi'.*mpii"):
        skeleton("mpi")

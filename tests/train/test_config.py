"""Strict configs: unknown keys, wrong types, overrides, and every shipped recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from binmark import models
from binmark.losses import Distilled, KLDistill
from binmark.train.build import architecture, build_augment, build_codec, build_loss, dataset_skeleton
from binmark.train.config import Config, load_config
from binmark.train.schedule import learning_rate
from binmark.data import skeleton

from tests.conftest import deadline

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml"))


def test_defaults_are_valid() -> None:
    cfg = load_config()
    assert isinstance(cfg, Config) and cfg.model.name == "hourglass" and cfg.optim.name == "rmsprop"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.epoch=3"], "unknown config key 'train.epoch'; did you mean 'epochs'"),
        (["trian={epochs: 3}"], "unknown config key 'trian'; did you mean 'train'"),
        (["data.augment={rotation: 10}"], None),  # caught when the augmentation is built
        (["train.epochs=three"], "config key 'train.epochs' = 'three' is not int or NoneType"),
        (["optim.name=lamb"], "config key 'optim.name' = 'lamb'; choose one of: rmsprop, adam, sgd"),
        (["train.batch_size=8.5"], "config key 'train.batch_size' must be int"),
        (["stages=[]"], "'stages' is empty"),
        (["stages=[{name: a, epochs: 1}]"], "with 'stages', set train.epochs to null"),
        (["train.epochs=null", "stages=[{name: a}, {name: a}]"], "stage names must be unique"),
        (["train.epochs"], "is not KEY=VALUE"),
    ],
)
def test_config_errors_name_the_key(overrides: list[str], message: str | None) -> None:
    if message is None:
        cfg = load_config(None, overrides)
        with pytest.raises(ValueError, match="unknown config key 'data.augment.rotation'"):
            build_augment(cfg.data)
        return
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file .*nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match=r"bad.yaml:2:1: not valid YAML: expected .,. or .\]."):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  nmae: hourglass\n")
    with pytest.raises(ValueError, match="typo.yaml: unknown config key 'model.nmae'; did you mean 'name'"):
        load_config(typo)


def test_overrides_parse_yaml_values() -> None:
    cfg = load_config(None, ["train.epochs=3", "optim.lr=1e-3", "model.options={width: 32}", "data.augment=null", "schedule.gamma=[0.1, 0.5]"])
    assert cfg.train.epochs == 3 and cfg.optim.lr == 1e-3 and cfg.model.options == {"width": 32}
    assert cfg.data.augment is None and cfg.schedule.gamma == [0.1, 0.5]


def test_quant_belongs_in_model_quant() -> None:
    cfg = load_config(None, ["model.options={quant: xnor}"])
    with pytest.raises(ValueError, match="put the quant preset in model.quant"):
        architecture(cfg, skeleton("300w"), "real")


def test_loss_options_are_checked() -> None:
    cfg = load_config(None, ["loss.name=awing", "loss.options={omgea: 3}"])
    with pytest.raises(ValueError, match="loss.options do not fit loss 'awing'"):
        build_loss(cfg.loss)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_recipes_validate_and_build(path: Path) -> None:
    cfg = load_config(path)
    stages = cfg.stages or [None]
    for stage in stages:
        quant = stage.quant if stage is not None else cfg.model.quant
        k = cfg.model.num_keypoints or dataset_skeleton(cfg.data).num_keypoints
        models.build(cfg.model.name, k, **cfg.model.options, quant=quant)
    build_loss(cfg.loss)
    build_augment(cfg.data)


class TestSchedule:
    def _lr(self, overrides: list[str], step: int, spe: int = 10, total: int = 100) -> float:
        cfg = load_config(None, overrides)
        return learning_rate(cfg.schedule, 1.0, step, spe, total)

    def test_constant_and_warmup(self) -> None:
        assert self._lr([], 57) == 1.0
        assert self._lr(["schedule.warmup_epochs=1"], 4) == pytest.approx(0.5)
        assert self._lr(["schedule.warmup_epochs=1"], 10) == 1.0

    def test_step_and_multistep(self) -> None:
        assert self._lr(["schedule.name=step", "schedule.step_size=2", "schedule.gamma=0.5"], 45) == pytest.approx(0.25)
        fan = ["schedule.name=multistep", "schedule.milestones=[5, 7, 9]", "schedule.gamma=[0.4, 0.5, 0.2]"]
        assert [self._lr(fan, s) for s in (49, 50, 70, 95)] == pytest.approx([1.0, 0.4, 0.2, 0.04])
        with pytest.raises(ValueError, match="lists 3 factors for 2 milestones"):
            self._lr(["schedule.name=multistep", "schedule.milestones=[1, 2]", "schedule.gamma=[1, 2, 3]"], 5)

    def test_cosine(self) -> None:
        c = ["schedule.name=cosine", "schedule.min_lr=0.1"]
        assert self._lr(c, 0) == pytest.approx(1.0)
        assert self._lr(c, 50) == pytest.approx(0.55)
        assert self._lr(c, 100) == pytest.approx(0.1)


DISTILL_CONFIGS = [p for p in CONFIGS if load_config(p).loss.distill is not None]


@pytest.mark.parametrize("path", DISTILL_CONFIGS, ids=[p.name for p in DISTILL_CONFIGS])
def test_distillation_recipes_give_the_kl_term_weight(path: Path) -> None:
    """With a teacher whose heatmaps are Gaussians in [0, 1] (MSE/AWing-trained), softmax at T = 1
    is nearly flat and KL·T² vanishes next to the task loss; the shipped recipes' temperature and
    weight must make the KL term count (docs/models.md, "Choosing the temperature")."""
    cfg = load_config(path)
    codec = build_codec(cfg.data)
    w, h = codec.input_size
    maps, _ = codec.encode(np.array([[w / 3, h / 2]]), np.array([True]))
    teacher = torch.from_numpy(maps).float()[None]
    student = torch.zeros_like(teacher)
    loss = build_loss(cfg.loss)
    task = loss.task_weight * loss.task(student, teacher)
    kl = loss.kl_weight * loss.kl(student, teacher)
    assert kl > 0.5 * task
    flat = Distilled(loss.task, KLDistill(1.0))  # T = 1, weight 1
    assert flat.kl_weight * flat.kl(student, teacher) < 0.05 * task


FULL_SCALE = [p for p in CONFIGS if p.parent.name != "synthetic"]
PAPER_ENCODING = {"hourglass": "torch7", "cunet": "cunet", "hrnet": "integer", "bihrnet": "integer"}


@pytest.mark.parametrize("path", FULL_SCALE, ids=[p.name for p in FULL_SCALE])
def test_full_scale_recipes_follow_their_papers_code(path: Path) -> None:
    """Each real-data recipe draws its paper's code's targets (docs/data.md) and its header names
    the paper's number it targets."""
    cfg = load_config(path)
    assert cfg.data.encode == PAPER_ENCODING[cfg.model.name], (path.name, cfg.data.encode)
    header = "".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    assert "Target:" in header, f"{path.name}: the header does not name the paper's target number"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.epochs=-1"], r"train.epochs must be >= 1"),
        (["train.batch_size=0"], r"'train.batch_size' = 0 must be >= 1"),
        (["optim.lr=.inf"], r"'optim.lr' = inf must be >= 0"),
        (["optim.lr=-1e-3"], r"'optim.lr' = -0.001 must be >= 0"),
        (["data.sigma=0"], r"'data.sigma' = 0.0 must be > 0"),
        (["data.input_size=[256, 0]"], r"'data.input_size' = \[256, 0\] must be one or two integers >= 1"),
        (["train.ema=1.5"], r"'train.ema' = 1.5 must be in \(0, 1\)"),
        (["train.divergence_factor=0.5"], r"'train.divergence_factor' = 0.5 must be 0 \(off\) or > 1"),
        (["train.epochs=null", "stages=[{name: a, epochs: 2}, {name: b, epochs: 0}]"], r"'stages\[1\].epochs' = 0 must be >= 1"),
        (["optim.betas=[0.9]"], r"'optim.betas' = \[0.9\] must be two values"),
        (["train.log_every=0"], r"'train.log_every' = 0 must be >= 1"),
    ],
)
def test_numeric_ranges_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_yaml_alias_bombs_and_recursion_are_refused_quickly(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("model:\n  options:\n    " + "\n    ".join(levels) + "\n")
    assert bomb.stat().st_size < 1100  # 10⁹ values when expanded
    with deadline(30), pytest.raises(ValueError, match=r"bomb.yaml: the YAML expands to more than 100,000 values"):
        load_config(bomb)
    loop = tmp_path / "loop.yaml"
    loop.write_text("model:\n  options: &x\n    more: *x\n")
    with pytest.raises(ValueError, match=r"loop.yaml:\d+: a YAML alias refers to itself"):
        load_config(loop)
    with pytest.raises(ValueError, match=r"override 'model.options=\[1, 2':1:6: not valid YAML"):
        load_config(None, ["model.options=[1, 2"])
    # ordinary anchors still work
    ok = tmp_path / "ok.yaml"
    ok.write_text("model:\n  options: &o {width: 16}\ndata:\n  augment: {}\n")
    assert load_config(ok).model.options == {"width": 16}


def test_config_paths_that_are_not_files(tmp_path: Path) -> None:
    import os

    with pytest.raises(ValueError, match="is not a regular file"):
        load_config(tmp_path)
    os.mkfifo(tmp_path / "fifo.yaml")
    with deadline(10), pytest.raises(ValueError, match="fifo.yaml is not a regular file"):
        load_config(tmp_path / "fifo.yaml")  # reading it would block forever

"""The trainer: a tiny run end to end, stages, distillation, NaN stop, refusal of foreign
checkpoints, and kill-and-resume equality."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from binmark.train import Trainer, TrainingDiverged, load_config
from binmark.train.build import model_from_checkpoint
from binmark.train.checkpoint import load_checkpoint
from binmark.train.trainer import EpochBatches


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_epoch_batches_split_global_batches_between_ranks() -> None:
    one = list(EpochBatches(10, 2, (0, 0, 0)))
    assert len(one) == 5 and sorted(i for b in one for i in b) == list(range(10))
    r0 = list(EpochBatches(10, 2, (0, 0, 0), rank=0, world=2))
    r1 = list(EpochBatches(10, 2, (0, 0, 0), rank=1, world=2))
    assert len(r0) == len(r1) == 2  # 10 // (2·2): the partial global batch is dropped
    assert [a + b for a, b in zip(r0, r1)] == [one[0] + one[1], one[2] + one[3]]
    assert list(EpochBatches(10, 2, (0, 0, 0), start=3)) == one[3:]
    assert list(EpochBatches(10, 2, (0, 0, 1))) != one  # another epoch, another order


def test_tiny_run_end_to_end(tiny: list[str], tmp_path: Path) -> None:
    cfg = load_config(None, tiny)
    report = Trainer(cfg).fit()
    run = tmp_path / "run"
    assert {"last.pt", "best.pt", "main.pt", "log.jsonl"} <= {p.name for p in run.iterdir()}
    assert (run / "tb").is_dir()
    assert report is not None and report.kind == "nme" and "NME" in report.metrics
    records = _records(run)
    assert records[0]["event"] == "config" and records[0]["config"]["model"]["quant"] == "bulat17"
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 12 and all(l > 0 for l in losses)  # 2 epochs × 48 // 8 steps
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["position"] == {"stage": 0, "epoch": 2, "batch": 0, "step": 12}
    assert ckpt["arch"]["options"]["quant"]["weight_bits"] == 1 and ckpt["best"]["metric"] == "NME"
    # latent binary weights stay in [-1, 1]
    model, _ = model_from_checkpoint(run / "last.pt")
    assert model.stem.block1.conv1.conv.weight.abs().max() <= 1.0


@pytest.mark.parametrize("setting", ["true", "false"])
def test_cpu_training_installs_the_block_allocator_as_configured(tiny: list[str], setting: str) -> None:
    """A fresh process (the allocator stays installed once enabled): a CPU Trainer installs it
    with train.block_allocator true, and not with false."""
    script = (
        "import sys; from binmark.allocator import block_allocator_enabled; "
        "from binmark.train import Trainer, load_config; "
        "assert not block_allocator_enabled(); "
        "Trainer(load_config(None, sys.argv[1:])); print(block_allocator_enabled())"
    )
    args = tiny + ["train.device=cpu", f"train.block_allocator={setting}"]
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == ("True" if setting == "true" else "False")


def test_stages_start_from_the_previous_stage(tiny: list[str], tmp_path: Path) -> None:
    stages = "stages=[{name: real, epochs: 1, quant: real}, {name: binary, epochs: 1, quant: bulat17, lr: 0.0}]"
    cfg = load_config(None, tiny + ["train.epochs=null", stages])
    Trainer(cfg).fit()
    run = tmp_path / "run"
    real, binary = load_checkpoint(run / "real.pt"), load_checkpoint(run / "binary.pt")
    assert real["arch"]["options"]["quant"]["weight_bits"] == 32 and binary["arch"]["options"]["quant"]["weight_bits"] == 1
    # with lr 0 the binary stage keeps the real stage's weights (BN statistics still move)
    for key, value in real["model"].items():
        if key.endswith("weight") and value.dim() == 4:
            assert torch.equal(value, binary["model"][key]), key
    assert binary["position"]["stage"] == 1


def test_distillation_from_a_teacher(tiny: list[str], tmp_path: Path) -> None:
    teacher = load_config(None, tiny + ["model.quant=real", "train.epochs=1", f"output_dir={tmp_path / 'teacher'}"])
    Trainer(teacher).fit()
    student = load_config(None, tiny + ["train.epochs=1", "loss.name=awing", f"loss.distill={{teacher: {tmp_path / 'teacher' / 'last.pt'}, kl_weight: 2.0}}"])
    report = Trainer(student).fit()
    assert report is not None and report.metrics["NME"] > 0


def test_nan_loss_stops_with_a_clear_message(tiny: list[str], tmp_path: Path) -> None:
    cfg = load_config(None, tiny + ["optim.lr=1e30", "train.clip_binary_weights=false", "model.quant=real", "train.checkpoint_every=1"])
    with pytest.raises(TrainingDiverged, match=r"the loss became (nan|inf) .* the last good checkpoint is .*last.pt"):
        Trainer(cfg).fit()
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_resume_refuses_another_config(tiny: list[str], tmp_path: Path) -> None:
    Trainer(load_config(None, tiny + ["train.epochs=1"])).fit()
    changed = load_config(None, tiny + ["train.epochs=1", "model.options={stacks: 2, depth: 2, width: 32, block: hpm}"])
    with pytest.raises(ValueError, match=r"another config; it differs in: model.options.width: 16 != 32"):
        Trainer(changed, resume=True)
    # runtime-only keys may change
    Trainer(load_config(None, tiny + ["train.epochs=1", "train.log_every=5"]), resume=True)


def test_corrupted_checkpoint_is_refused(tiny: list[str], tmp_path: Path) -> None:
    Trainer(load_config(None, tiny + ["train.epochs=1"])).fit()
    last = tmp_path / "run" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        load_checkpoint(last)


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "binmark.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _config_file(path: Path, overrides: list[str]) -> Path:
    """Write the config that ``overrides`` describe as YAML (what a user would pass)."""
    import yaml

    from binmark.train.config import config_to_dict

    path.write_text(yaml.safe_dump(config_to_dict(load_config(None, overrides))))
    return path


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_same_weights(tiny: list[str], tmp_path: Path) -> None:
    common = [o for o in tiny if not o.startswith(("output_dir", "train.epochs", "data.train"))]
    common += ["train.epochs=3", "data.train={size: 96, seed: 0}", "train.checkpoint_every=4", "train.eval_every=0"]
    cfg = str(_config_file(tmp_path / "cfg.yaml", common))
    straight = _cli("train", cfg, "--output-dir", str(tmp_path / "a"))
    assert straight.wait(timeout=600) == 0, straight.stdout.read()
    # the same run, killed with SIGKILL once its first checkpoint exists, then resumed
    victim = _cli("train", cfg, "--output-dir", str(tmp_path / "b"))
    last = tmp_path / "b" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert victim.poll() is None, "the run ended before it could be killed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = load_checkpoint(last)["position"]["step"]
    assert 0 < killed_at < 36
    resumed = _cli("train", cfg, "--output-dir", str(tmp_path / "b"), "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["position"] == b["position"] and a["position"]["step"] == 36
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert any(r.get("event") == "resume" for r in _records(tmp_path / "b"))


@pytest.mark.slow
def test_two_gloo_processes_stay_in_sync(tiny: list[str], tmp_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    cfg = _config_file(tmp_path / "cfg.yaml", tiny + ["train.epochs=1"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "binmark.cli", "train",
         str(cfg), "--output-dir", str(tmp_path / "ddp")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = _records(tmp_path / "ddp")
    sync = [r for r in records if r.get("event") == "replicas"]
    assert sync and all(r["in_sync"] and r["world_size"] == 2 for r in sync)
    losses = [r for r in records if "loss" in r]
    assert len(losses) == 3  # 48 // (8 × 2 ranks) steps, logged once (rank 0)
    evals = [r for r in records if "val/NME" in r]
    assert evals and evals[-1]["val/samples"] == 8  # both ranks' halves gathered


def test_eval_command_prints_and_writes_the_report(tiny: list[str], tmp_path: Path) -> None:
    Trainer(load_config(None, tiny + ["train.epochs=1"])).fit()
    cfg = _config_file(tmp_path / "cfg.yaml", tiny + ["train.epochs=1"])
    out = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, "-m", "binmark.cli", "eval", str(cfg), "--checkpoint", str(tmp_path / "run" / "last.pt"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "NME" in proc.stdout and json.loads(out.read_text())["kind"] == "nme"


def test_eval_with_a_checkpoint_of_another_keypoint_count_says_so(tiny: list[str], tmp_path: Path, capsys) -> None:
    from binmark.cli import main

    Trainer(load_config(None, tiny + ["train.epochs=1"])).fit()  # 68 face landmarks
    cfg = _config_file(tmp_path / "pose.yaml", tiny + ["train.epochs=1", "data.dataset=synthetic_pose"])
    assert main(["eval", str(cfg), "--checkpoint", str(tmp_path / "run" / "last.pt")]) == 1
    err = capsys.readouterr().err
    assert "predicts 68 keypoints but dataset 'synthetic_pose'" in err and "has 16" in err


def test_ema_grad_clip_and_sgd(tiny: list[str], tmp_path: Path) -> None:
    cfg = load_config(None, tiny + ["train.epochs=1", "train.ema=0.5", "optim.name=sgd", "optim.momentum=0.9", "optim.lr=0.01", "optim.grad_clip=0.1"])
    Trainer(cfg).fit()
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["ema"] is not None and set(ckpt["ema"]) == set(ckpt["model"])
    # the EMA weights trail the trained ones, and evaluation/export use them
    key = "stem.conv.weight"
    assert not torch.equal(ckpt["ema"][key], ckpt["model"][key])
    model, _ = model_from_checkpoint(tmp_path / "run" / "last.pt")
    assert torch.equal(model.state_dict()[key], ckpt["ema"][key])
    assert "momentum_buffer" in str(ckpt["optimizer"]["state"][0].keys())


def test_distillation_step_moves_the_student_toward_the_teacher() -> None:
    from binmark import models
    from binmark.losses import Distilled, KLDistill

    torch.manual_seed(0)
    # HRNet's initialisation (conv weights N(0, 0.001²)) makes an untrained teacher in eval mode
    # output ≈ 0 everywhere, a flat distribution the student already matches. Batch statistics
    # (train-mode BN, no update kept) and a unit-scale head give it peaked heatmaps.
    teacher = models.build("hrnet", 4, width=8)
    torch.nn.init.normal_(teacher.head.weight, std=1.0)
    student = models.build("bihrnet", 4, width=8)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        target = teacher(x)[-1]
    teacher.eval()
    kl = KLDistill(temperature=1.0)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    before = kl(student(x), target).item()
    loss_fn = Distilled(task_weight=0.0, kl_weight=1.0)
    for _ in range(10):
        loss = loss_fn(student(x), torch.zeros_like(target), teacher=target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert kl(student(x), target).item() < 0.8 * before


def test_a_teacher_of_the_wrong_architecture_is_refused(tiny: list[str], tmp_path: Path) -> None:
    pose = load_config(None, tiny + ["data.dataset=synthetic_pose", "train.epochs=1", f"output_dir={tmp_path / 'pose'}"])
    Trainer(pose).fit()
    student = load_config(None, tiny + ["train.epochs=1", f"loss.distill={{teacher: {tmp_path / 'pose' / 'last.pt'}}}"])
    with pytest.raises(ValueError, match=r"teacher checkpoint .*\(hourglass, 16 keypoints\) predicts heatmaps \(16, 16, 16\) for 64x64 inputs; the student needs \(68, 16, 16\)"):
        Trainer(student)


def test_an_infinite_learning_rate_is_refused_by_the_config(tiny: list[str]) -> None:
    with pytest.raises(ValueError, match=r"'optim.lr' = inf must be >= 0"):
        load_config(None, tiny + ["optim.lr=.inf"])


@pytest.mark.parametrize("every", [0, 1])
def test_no_checkpoint_ever_holds_non_finite_state(tiny: list[str], tmp_path: Path, every: int) -> None:
    # a finished run of another config left a good last.pt in the folder; the diverging run must
    # never call that file its own last good checkpoint (with every = 0 it writes none of its own)
    Trainer(load_config(None, tiny + ["train.epochs=1"])).fit()
    before = (tmp_path / "run" / "last.pt").read_bytes()
    cfg = load_config(None, tiny + ["optim.name=sgd", "optim.lr=1e6", "model.quant=real", "train.clip_binary_weights=false",
                                    f"train.checkpoint_every={every}", "train.epochs=4"])  # fmt: skip
    named = r"the last good checkpoint is .*last.pt" if every else "this run has written no checkpoint yet"
    with pytest.raises(TrainingDiverged, match=r"(became non-finite|loss became|diverged).* " + named):
        Trainer(cfg).fit()
    if not every:
        assert (tmp_path / "run" / "last.pt").read_bytes() == before
    for name in ("last.pt", "best.pt", "main.pt"):
        if (tmp_path / "run" / name).is_file():
            state = load_checkpoint(tmp_path / "run" / name)["model"]
            assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), name


def test_a_growing_loss_stops_the_run_naming_a_finite_checkpoint(tiny: list[str], tmp_path: Path) -> None:
    cfg = load_config(None, tiny + ["train.epochs=20", "train.checkpoint_every=2", "train.divergence_factor=100"])
    trainer = Trainer(cfg)
    task, calls = trainer.loss_fn, [0]

    def growing(*args, **kwargs):  # finite everywhere, ×2 per step after 24 steps
        calls[0] += 1
        return task(*args, **kwargs) * 2.0 ** max(0, calls[0] - 24)

    trainer.loss_fn = growing
    with pytest.raises(TrainingDiverged, match=r"the loss diverged \(smoothed .* over train.divergence_factor = 100 × its minimum .* the last good checkpoint is .*last.pt"):
        trainer.fit()
    assert 24 < calls[0] < 45
    state = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    # with the test off the same run goes on (the loss stays finite)
    calls[0] = 0
    off = Trainer(load_config(None, tiny + ["train.epochs=6", "train.divergence_factor=0", f"output_dir={tmp_path / 'off'}"]))
    task_off = off.loss_fn
    off.loss_fn = lambda *a, **k: task_off(*a, **k) * 2.0 ** max(0, (calls.__setitem__(0, calls[0] + 1) or calls[0]) - 24)
    off.fit()


def test_a_bad_later_stage_fails_before_anything_trains_or_is_written(tiny: list[str], tmp_path: Path) -> None:
    stages = "stages=[{name: real, epochs: 1, quant: real}, {name: binary, epochs: 1, quant: bulat71}]"
    cfg = load_config(None, tiny + ["train.epochs=null", stages])
    with pytest.raises(ValueError, match=r"stage 'binary' \(quant 'bulat71'\).*bulat17"):
        Trainer(cfg)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="unknown config key 'data.augment.rotation'"):
        Trainer(load_config(None, tiny + ["data.augment={rotation: 10}"]))
    assert not (tmp_path / "run").exists()


def test_progress_lines_when_stderr_is_not_a_terminal(tiny: list[str], tmp_path: Path, capsys) -> None:
    Trainer(load_config(None, tiny)).fit()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if " img/s ETA " in ln]
    assert len(lines) >= 2  # at least each epoch's end
    assert lines[0].startswith("main epoch 1/2 step 6/6 (run 6/12) loss ") and lines[-1].endswith("ETA 0s")


def test_a_time_based_checkpoint_is_written_within_the_first_epoch(tiny: list[str], tmp_path: Path, monkeypatch) -> None:
    import binmark.train.trainer as trainer_module

    saved = []
    real_save = trainer_module.save_checkpoint
    monkeypatch.setattr(trainer_module, "save_checkpoint", lambda path, payload: (saved.append((Path(path).name, dict(payload["position"]))), real_save(path, payload)))
    Trainer(load_config(None, tiny + ["train.epochs=1", "train.checkpoint_minutes=1e-9"])).fit()
    mid = [pos["batch"] for name, pos in saved if name == "last.pt" and 0 < pos["batch"] < 6]
    assert mid == [1, 2, 3, 4, 5]  # at every log step (log_every 1), since any time has passed


def test_a_checkpoint_asking_for_a_huge_network_is_refused_quickly(tiny: list[str], tmp_path: Path) -> None:
    from binmark.train.checkpoint import save_checkpoint
    from tests.conftest import deadline

    Trainer(load_config(None, tiny + ["train.epochs=1"])).fit()
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    for option in ({"stacks": 1_000_000}, {"width": 1_000_000}, {"width": "16"}):
        ckpt["arch"]["options"] = {**ckpt["arch"]["options"], **option}
        save_checkpoint(tmp_path / "bad.pt", ckpt)
        with deadline(60), pytest.raises(ValueError, match=r"bad.pt: its architecture record cannot be built"):
            model_from_checkpoint(tmp_path / "bad.pt")

"""Training configs: YAML → typed dataclasses, strictly.

Unknown or mistyped keys are errors naming the key (with a close match when there is one), values
are checked against the field types, and ``--set a.b=value`` overrides any field (the value is
parsed as YAML: ``--set train.epochs=3``, ``--set model.options={width: 64}``). The resolved config
is logged and stored in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "Config",
    "ModelConfig",
    "SplitConfig",
    "DataConfig",
    "DistillConfig",
    "LossConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "EvalConfig",
    "StageConfig",
    "load_config",
    "from_dict",
    "apply_overrides",
    "config_to_dict",
]


@dataclass
class ModelConfig:
    """A registered model: ``name``, its ``options`` (as ``models.build``) and ``quant``."""

    name: str = "hourglass"
    options: dict[str, Any] = field(default_factory=dict)
    quant: str | dict[str, Any] = "real"
    num_keypoints: int | None = None  # default: the dataset skeleton's K


@dataclass
class SplitConfig:
    """One split: a real dataset's split/files, or a synthetic set's size and seed."""

    split: str | None = None  # default: "train" for data.train, "val" for data.val
    ann_file: str | None = None
    image_dir: str | None = None
    size: int = 1000  # synthetic datasets: number of samples
    seed: int = 0  # synthetic datasets: the dataset seed
    on_error: Literal["raise", "skip"] = "raise"


@dataclass
class DataConfig:
    """Dataset, geometry and augmentation (fields of :class:`binmark.data.Augment`, or null)."""

    dataset: str = "synthetic_face"  # a binmark.data.load name, or synthetic_face / synthetic_pose
    root: str | None = None
    train: SplitConfig = field(default_factory=SplitConfig)
    val: SplitConfig = field(default_factory=lambda: SplitConfig(size=200, seed=1))
    input_size: int | list[int] = 256  # (w, h) or one int
    heatmap_size: int | list[int] = 64
    sigma: float = 2.0
    encode: Literal["subpixel", "integer", "cunet", "torch7"] = "subpixel"  # binmark.heatmaps
    padding: float = 1.25
    augment: dict[str, Any] | None = field(default_factory=dict)  # {} = FAN defaults
    num_workers: int = 0


@dataclass
class DistillConfig:
    """Teacher distillation: the teacher checkpoint and the loss weights."""

    teacher: str = ""
    kl_weight: float = 1.0
    task_weight: float = 1.0
    temperature: float = 1.0
    device: str | None = None  # where the teacher runs (default: with the student)


@dataclass
class LossConfig:
    """A loss of :data:`binmark.losses.LOSSES` with its options."""

    name: Literal["mse", "sigmoid_ce", "awing", "kl"] = "mse"
    options: dict[str, Any] = field(default_factory=dict)
    stack_weights: list[float] | None = None
    distill: DistillConfig | None = None

    @property
    def output_activation(self) -> str | None:
        """"sigmoid" when the model trained with this loss outputs logits (sigmoid_ce), else None."""
        return "sigmoid" if self.name == "sigmoid_ce" else None


@dataclass
class OptimConfig:
    """Optimizer (defaults: the seeds' RMSprop, lr 2.5e-4)."""

    name: Literal["rmsprop", "adam", "sgd"] = "rmsprop"
    lr: float = 2.5e-4
    weight_decay: float = 0.0
    momentum: float = 0.0
    alpha: float = 0.99  # RMSprop smoothing
    eps: float = 1e-8
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float | None = None  # max global gradient norm


@dataclass
class ScheduleConfig:
    """Learning rate as a function of the step (epochs may be fractional)."""

    name: Literal["constant", "step", "multistep", "cosine"] = "constant"
    warmup_epochs: float = 0.0  # linear warm-up from 0
    step_size: float = 30.0  # "step": decay every step_size epochs
    milestones: list[float] = field(default_factory=list)  # "multistep": epochs
    gamma: float | list[float] = 0.1  # one factor, or one per milestone
    min_lr: float = 0.0  # "cosine": the final learning rate


@dataclass
class TrainConfig:
    """The training loop."""

    epochs: int | None = 10  # null when ``stages`` give the epochs
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    amp: bool = False  # mixed precision (GPU only)
    ema: float | None = None  # EMA decay of the weights, e.g. 0.999
    clip_binary_weights: bool = True  # keep latent binary weights in [-1, 1] (BinaryConnect)
    checkpoint_every: int = 0  # also checkpoint every N steps (0: only at epoch ends)
    log_every: int = 10  # steps
    eval_every: int = 1  # epochs (0: only at the end)
    threads: int | None = None  # torch CPU threads


@dataclass
class EvalConfig:
    """Evaluation during and after training."""

    flip_test: bool = True
    batch_size: int = 32
    decode: Literal["argmax", "quarter", "dark", "soft"] = "quarter"
    metric: str | None = None  # the metric that picks the best checkpoint (default per report)


@dataclass
class StageConfig:
    """One stage of a multi-stage recipe; initialised from the previous stage's weights."""

    name: str = "stage"
    epochs: int = 1
    quant: str | dict[str, Any] = "real"
    lr: float | None = None  # default: optim.lr


@dataclass
class Config:
    """A whole training recipe."""

    output_dir: str = "runs/run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    stages: list[StageConfig] | None = None

    def __post_init__(self) -> None:
        if self.stages is not None and not self.stages:
            raise ValueError("config: 'stages' is empty; remove it or list at least one stage")
        if self.stages is None and (self.train.epochs is None or self.train.epochs < 1):
            raise ValueError("config: train.epochs must be >= 1 (or give 'stages')")
        if self.stages is not None and self.train.epochs is not None:
            raise ValueError("config: with 'stages', set train.epochs to null (each stage has its epochs)")
        names = [s.name for s in self.stages or []]
        if len(set(names)) != len(names):
            raise ValueError(f"config: stage names must be unique, got {names}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (recursing into dataclasses and lists)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, where)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        allowed = " or ".join(_type_name(a) for a in typing.get_args(tp))
        raise ValueError(f"config key '{where}' = {value!r} is not {allowed}")
    if tp is type(None):
        if value is None:
            return None
        raise ValueError(f"config key '{where}' must be null")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ValueError(f"config key '{where}' = {value!r}; choose one of: {', '.join(map(str, typing.get_args(tp)))}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"config key '{where}' must be a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"config key '{where}' must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config key '{where}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-3 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise ValueError(f"config key '{where}' must be {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a dict; unknown keys and wrong types are errors naming the key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            full = f"{where}.{key}" if where else key
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys here: {', '.join(names)}"
            raise ValueError(f"unknown config key '{full}'{hint}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as plain data (for YAML, logs and checkpoints)."""
    return dataclasses.asdict(config)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a raw config dict."""
    out = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not KEY=VALUE (e.g. train.epochs=3)")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: '{part}' is not a mapping")
            node = child
        node[parts[-1]] = yaml.safe_load(text)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply overrides.

    Raises:
        FileNotFoundError: no such file.
        ValueError: YAML syntax, unknown keys, wrong types; the message names the file and key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {p} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"config file {p} must hold a mapping at the top level")
    data = apply_overrides(data, overrides or [])
    try:
        return from_dict(Config, data)
    except ValueError as exc:
        raise ValueError(f"{path or 'config'}: {exc}") from None

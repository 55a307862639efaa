"""Training configs: YAML → typed dataclasses, strictly.

Unknown or mistyped keys are errors naming the key (with a close match when there is one), values
are checked against the field types, and ``--set a.b=value`` overrides any field (the value is
parsed as YAML: ``--set train.epochs=3``, ``--set model.options={width: 64}``). The resolved config
is logged and stored in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
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
    "load_yaml",
    "check_ranges",
    "RANGES",
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
    packed_saves: bool = True  # quantized layers keep bits / codes for backward (binmark.quant.saving; same gradients)
    block_allocator: bool = True  # on the CPU, large tensors from binmark's block allocator (binmark.allocator; same values)
    checkpoint_every: int = 0  # also checkpoint every N steps (0: only at epoch ends)
    checkpoint_minutes: float = 10.0  # also checkpoint when this long has passed since the last save (0: off)
    divergence_factor: float = 100.0  # stop when the smoothed loss exceeds this × its stage minimum (0: off)
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
        check_ranges(self)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_POSITIVE = ("> 0", lambda v: _finite(v) and v > 0)
_AT_LEAST_1 = (">= 1", lambda v: _finite(v) and v >= 1)
_AT_LEAST_0 = (">= 0", lambda v: _finite(v) and v >= 0)
_UNIT = ("in [0, 1)", lambda v: _finite(v) and 0 <= v < 1)
_SIZE = ("one or two integers >= 1", lambda v: all(_finite(x) and x >= 1 for x in (v if isinstance(v, list) else [v]))
         and len(v if isinstance(v, list) else [v]) in (1, 2))  # fmt: skip

#: numeric ranges of config keys (None always allowed where the type allows it); a value outside
#: is an error naming the key
RANGES: dict[str, tuple[str, Any]] = {
    "model.num_keypoints": _AT_LEAST_1,
    "data.input_size": _SIZE, "data.heatmap_size": _SIZE, "data.sigma": _POSITIVE, "data.padding": _POSITIVE,
    "data.num_workers": _AT_LEAST_0, "data.train.size": _AT_LEAST_1, "data.val.size": _AT_LEAST_1,
    "loss.distill.temperature": _POSITIVE, "loss.distill.kl_weight": _AT_LEAST_0, "loss.distill.task_weight": _AT_LEAST_0,
    "optim.lr": _AT_LEAST_0, "optim.weight_decay": _AT_LEAST_0, "optim.momentum": _UNIT, "optim.alpha": _UNIT,
    "optim.eps": _POSITIVE, "optim.grad_clip": _POSITIVE,
    "optim.betas": ("two values in [0, 1)", lambda v: len(v) == 2 and all(_UNIT[1](b) for b in v)),
    "schedule.warmup_epochs": _AT_LEAST_0, "schedule.step_size": _POSITIVE, "schedule.min_lr": _AT_LEAST_0,
    "schedule.milestones": (">= 0 each", lambda v: all(_AT_LEAST_0[1](m) for m in v)),
    "schedule.gamma": ("> 0 (each)", lambda v: all(_POSITIVE[1](g) for g in (v if isinstance(v, list) else [v]))),
    "train.epochs": _AT_LEAST_1, "train.batch_size": _AT_LEAST_1, "train.ema": ("in (0, 1)", lambda v: _finite(v) and 0 < v < 1),
    "train.checkpoint_every": _AT_LEAST_0, "train.checkpoint_minutes": _AT_LEAST_0, "train.log_every": _AT_LEAST_1,
    "train.divergence_factor": ("0 (off) or > 1", lambda v: _finite(v) and (v == 0 or v > 1)),
    "train.eval_every": _AT_LEAST_0, "train.threads": _AT_LEAST_1, "eval.batch_size": _AT_LEAST_1,
    "stages[].epochs": _AT_LEAST_1, "stages[].lr": _AT_LEAST_0,
}  # fmt: skip


def check_ranges(config: Config) -> None:
    """Every key of :data:`RANGES` within its range.

    Raises:
        ValueError: naming the key, its value and the range.
    """
    for key, (text, ok) in RANGES.items():
        head, _, rest = key.partition("[].")
        if rest:  # one value per stage
            values = [(f"{head}[{i}].{rest}", getattr(item, rest)) for i, item in enumerate(getattr(config, head) or [])]
        else:
            node: Any = config
            for part in key.split("."):
                node = getattr(node, part) if node is not None else None
            values = [(key, node)]
        for where, value in values:
            if value is not None and not ok(value):
                raise ValueError(f"config key '{where}' = {value!r} must be {text}")


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


#: most nodes a YAML document may stand for, each alias counted at every use: a few hundred bytes
#: of nested aliases ("billion laughs") otherwise expand to gigabytes when the config is copied
MAX_YAML_NODES = 100_000


def _yaml_problem(exc: yaml.YAMLError, where: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return f"{at}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def _expanded_size(root: yaml.Node, where: str) -> int:
    """Nodes ``root`` stands for with every alias expanded (iterative; recursive aliases refused)."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [c for pair in node.value for c in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if done:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            if size[id(node)] > MAX_YAML_NODES:
                raise ValueError(f"{where}: the YAML expands to more than {MAX_YAML_NODES:,} values (nested aliases); write it out plainly")
            continue
        if id(node) in open_:
            raise ValueError(f"{where}:{node.start_mark.line + 1}: a YAML alias refers to itself; configs cannot be recursive")
        open_.add(id(node))
        stack.append((node, True))
        stack += [(c, False) for c in children if id(c) not in size]
    return size[id(root)]


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML safely (no Python objects), with alias expansion bounded by
    :data:`MAX_YAML_NODES`.

    Raises:
        ValueError: naming ``where`` and the line and column of a syntax error, or the bound.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(_yaml_problem(exc, where)) from None
    except RecursionError:
        raise ValueError(f"{where}: the YAML is nested too deeply") from None
    if node is None:
        return None
    _expanded_size(node, where)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ValueError(_yaml_problem(exc, where)) from None
    finally:
        loader.dispose()


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
        node[parts[-1]] = load_yaml(text, f"override {item!r}")
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
        if not p.exists():
            raise FileNotFoundError(f"config file {p} does not exist")
        if not p.is_file():
            raise ValueError(f"config file {p} is not a regular file")
        data = load_yaml(p.read_text(encoding="utf-8"), f"config file {p}") or {}
        if not isinstance(data, dict):
            raise ValueError(f"config file {p} must hold a mapping at the top level")
    data = apply_overrides(data, overrides or [])
    try:
        return from_dict(Config, data)
    except ValueError as exc:
        raise ValueError(f"{path or 'config'}: {exc}") from None

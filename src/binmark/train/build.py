"""From a config to the objects a run needs: datasets, codec, evaluator, model, loss, optimizer."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from binmark.models import Architecture
from binmark.data import RENDERERS, SKELETONS, Augment, Skeleton, load, skeleton, synthetic
from binmark.evaluate import Evaluator
from binmark.heatmaps import HeatmapCodec
from binmark.topdown import INFERENCE_ATTR, InferenceSpec
from binmark.losses import LOSSES, Distilled, HeatmapLoss, KLDistill
from binmark.quant import QuantConv2d, as_spec
from binmark.train.checkpoint import load_checkpoint
from binmark.train.config import Config, DataConfig, LossConfig, OptimConfig, SplitConfig, from_dict

__all__ = [
    "SYNTHETIC",
    "dataset_skeleton",
    "build_split",
    "build_codec",
    "build_augment",
    "build_evaluator",
    "architecture",
    "model_from_checkpoint",
    "build_loss",
    "build_optimizer",
    "binary_weights",
]

SYNTHETIC = {"synthetic_face": "face", "synthetic_pose": "pose"}
_SCHEMA_OF = {"300vw": "300w"}  # datasets whose schema has another name


def dataset_skeleton(data: DataConfig) -> Skeleton | None:
    """The skeleton a dataset name implies, without reading it (None for ``coco_custom``)."""
    if data.dataset in SYNTHETIC:
        return skeleton(RENDERERS.get(SYNTHETIC[data.dataset])[1])
    name = _SCHEMA_OF.get(data.dataset, data.dataset)
    return skeleton(name) if name in SKELETONS else None


def build_split(data: DataConfig, role: str) -> Any:
    """The "train" or "val" split of ``data`` as a sequence of samples."""
    split: SplitConfig = getattr(data, role)
    if data.dataset in SYNTHETIC:
        size = max(data.input_size) if isinstance(data.input_size, list) else data.input_size
        return synthetic(SYNTHETIC[data.dataset], split.size, seed=split.seed, image_size=max(int(size), 32))
    name = split.split or role
    return load(data.dataset, data.root, name, split.ann_file, split.image_dir, split.on_error)


def build_codec(data: DataConfig, decode: str = "quarter") -> HeatmapCodec:
    return HeatmapCodec(data.input_size, data.heatmap_size, data.sigma, data.encode, decode)


def build_augment(data: DataConfig) -> Augment | None:
    """The augmentation of ``data.augment`` (null: none; {}: the FAN defaults)."""
    if data.augment is None:
        return None
    known = {f.name for f in dataclasses.fields(Augment)}
    unknown = sorted(set(data.augment) - known)
    if unknown:
        raise ValueError(f"unknown config key 'data.augment.{unknown[0]}'; valid keys: {', '.join(sorted(known))}")
    return Augment(**data.augment)


def build_evaluator(
    config: Config, samples: Any, device: str | torch.device = "cpu", progress: bool = True, num_workers: int = 0
) -> Evaluator:
    """The Evaluator of ``config`` on ``samples``: the config's :class:`InferenceSpec` with its
    ``eval.flip_test``, and its ``eval.batch_size`` (the one place training, ``binmark eval``, the
    report and the demo build it)."""
    schema = getattr(samples, "skeleton", None) or dataset_skeleton(config.data)
    if schema is None:
        raise ValueError(f"config data.dataset {config.data.dataset!r}: the samples carry no skeleton to evaluate against")
    spec = InferenceSpec.from_config(config, schema, flip_test=config.eval.flip_test)
    return Evaluator(samples, spec, batch_size=config.eval.batch_size, num_workers=num_workers, device=device, progress=progress)


def architecture(config: Config, schema: Skeleton, quant: str | dict[str, Any]) -> Architecture:
    """The model of ``config`` for data of ``schema`` at a stage's ``quant`` (resolved to a
    ``QuantSpec`` dict): what a checkpoint must match to load into it."""
    if "quant" in config.model.options:
        raise ValueError("config: put the quant preset in model.quant, not in model.options")
    k = config.model.num_keypoints or schema.num_keypoints
    options = {**config.model.options, "quant": as_spec(quant).to_dict()}
    return Architecture.from_dict({"name": config.model.name, "num_keypoints": k, "options": options}, "config model")


def model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """A model with a checkpoint's weights (EMA weights when the checkpoint has them), in eval mode,
    carrying its :class:`binmark.inference.InferenceSpec` as ``binmark_inference`` when the
    checkpoint's config names a known schema.

    Returns:
        (model, checkpoint dict).
    """
    ckpt = load_checkpoint(path, device)
    state = ckpt.get("ema") or ckpt["model"]
    try:  # its cost bounded by the checkpoint's own tensors before anything real is built
        arch = Architecture.from_dict(ckpt["arch"], "field 'arch'")
        arch.dry_build(None, 2 * len(state) + 256, 2 * sum(t.numel() for t in state.values()) + 1_000_000)
        model = arch.build()
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path}: its architecture record cannot be built ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path}: weights do not fit its architecture ({str(exc)[:300]})") from None
    if "config" in ckpt:
        cfg = from_dict(Config, ckpt["config"])
        schema = dataset_skeleton(cfg.data)
        if schema is not None:
            setattr(model, INFERENCE_ATTR, InferenceSpec.from_config(cfg, schema))
    return model.to(device).eval(), ckpt


def build_loss(cfg: LossConfig) -> nn.Module:
    """The configured loss, wrapped in ``Distilled`` when a teacher is configured."""
    try:
        loss: HeatmapLoss = LOSSES.get(cfg.name)(**cfg.options, stack_weights=cfg.stack_weights)
    except TypeError as exc:
        raise ValueError(f"config loss.options do not fit loss {cfg.name!r}: {exc}") from None
    if cfg.distill is None:
        return loss
    kl = KLDistill(cfg.distill.temperature, stack_weights=cfg.stack_weights)
    return Distilled(loss, kl, cfg.distill.task_weight, cfg.distill.kl_weight)


def build_optimizer(cfg: OptimConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    params = list(params)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def binary_weights(model: nn.Module) -> list[torch.Tensor]:
    """Latent weights of the 1-bit convolutions (clipped to [-1, 1] after each step)."""
    return [m.weight for m in model.modules() if isinstance(m, QuantConv2d) and m.spec.weight_bits == 1]

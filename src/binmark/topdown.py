"""The top-down step, from a box to landmarks, shared by evaluation and inference.

:class:`InferenceSpec` is what a model needs around it to turn an image and a box into landmarks:
a network alone does not say how big its input is, how its crops are padded, how its heatmaps
decode or which keypoint schema its outputs follow. Training checkpoints carry it in their config;
packed ``.bmk`` files carry it in their manifest (``"inference"``). Both round-trip through
:meth:`InferenceSpec.to_dict` / :meth:`InferenceSpec.from_dict` (plain JSON, no code).

The step itself, used by :class:`binmark.evaluate.Evaluator` (dataset samples) and
:class:`binmark.inference.Localizer` (boxes on user images) alike:

1. :func:`crop`: the box's centre and scale (a COCO box through
   :func:`binmark.data.transforms.box_center_scale`; a dataset sample through
   :func:`binmark.data.dataset.sample_box`), × ``padding``, warped to ``input_size`` and normalized;
2. :func:`landmarks`: the network on the crops in batches (with the flip test, also on the
   mirrored crops, averaged), the final output decoded by the spec's codec, and the points mapped
   back through each crop's inverse matrix.

Coordinates are 0-based image pixels, integer k = centre of pixel k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from binmark.data.dataset import META_EXTRAS, normalize, sample_box
from binmark.data.skeletons import SKELETONS, Skeleton, skeleton
from binmark.data.transforms import crop_matrix, invert, transform_points, warp
from binmark.heatmaps import DECODINGS, ENCODINGS, HeatmapCodec, flip_average
from binmark.sizes import as_size

__all__ = ["InferenceSpec", "INFERENCE_ATTR", "crop_matrix_of", "crop", "model_heatmaps", "landmarks", "SampleCrops"]

#: the attribute under which a loaded model carries its InferenceSpec
INFERENCE_ATTR = "binmark_inference"
#: the largest network input side a spec may ask for, in pixels
MAX_INPUT_SIDE = 4096


@dataclass(frozen=True)
class InferenceSpec:
    """Crop geometry, decoding and schema of a trained model.

    Args:
        skeleton: the keypoint schema of the model's outputs (or a registered schema's name).
        input_size: network input (w, h) in pixels.
        heatmap_size: heatmap (w, h) in pixels.
        sigma: the training recipe's target σ in heatmap pixels.
        encode: the training targets' encoding ("subpixel", "integer", "cunet", "torch7"); with
            ``sigma`` it gives the σ the "dark" and "soft" decoders use.
        decode: heatmap decoder ("argmax", "quarter", "dark", "soft").
        padding: the crop is ``padding`` × the box (1.25 as in training).
        output_activation: "sigmoid" for models trained with sigmoid cross-entropy (they output
            logits), else None.
        flip_test: average with the mirrored crop's heatmaps (twice the compute).
    """

    skeleton: Skeleton
    input_size: tuple[int, int] = (256, 256)
    heatmap_size: tuple[int, int] = (64, 64)
    sigma: float = 2.0
    encode: str = "subpixel"
    decode: str = "quarter"
    padding: float = 1.25
    output_activation: str | None = None
    flip_test: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.skeleton, str):
            object.__setattr__(self, "skeleton", skeleton(self.skeleton))
        object.__setattr__(self, "input_size", as_size(self.input_size))
        object.__setattr__(self, "heatmap_size", as_size(self.heatmap_size))
        if self.encode not in ENCODINGS:
            raise ValueError(f"inference spec: encode {self.encode!r} is not one of {ENCODINGS}")
        if self.decode not in DECODINGS:
            raise ValueError(f"inference spec: decode {self.decode!r} is not one of {DECODINGS}")
        if self.output_activation not in (None, "sigmoid"):
            raise ValueError(f"inference spec: output_activation must be null or 'sigmoid', got {self.output_activation!r}")
        for name in ("sigma", "padding"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"inference spec: {name} must be a number > 0, got {value!r}")
        if not isinstance(self.flip_test, bool):
            raise ValueError(f"inference spec: flip_test must be true or false, got {self.flip_test!r}")
        if max(self.input_size) > MAX_INPUT_SIDE:
            raise ValueError(f"inference spec: input_size {self.input_size} is over {MAX_INPUT_SIDE} px a side")
        if any(m > i for m, i in zip(self.heatmap_size, self.input_size)):
            raise ValueError(f"inference spec: heatmap_size {self.heatmap_size} is larger than input_size {self.input_size}")

    def __repr__(self) -> str:
        return (f"InferenceSpec(skeleton={self.skeleton.name!r} ({self.skeleton.num_keypoints} keypoints), "
                f"input_size={self.input_size}, heatmap_size={self.heatmap_size}, sigma={self.sigma}, "
                f"encode={self.encode!r}, decode={self.decode!r}, padding={self.padding}, output_activation={self.output_activation!r}, "
                f"flip_test={self.flip_test})")  # fmt: skip

    def check_output(self, shape: tuple[int, ...]) -> None:
        """The network's final output ``shape`` (N, K, h, w) for an input of ``input_size`` must
        be K of the schema and ``heatmap_size``.

        Raises:
            ValueError: naming the field that disagrees with the network.
        """
        k, (w, h) = self.skeleton.num_keypoints, self.heatmap_size
        if len(shape) != 4 or shape[1] != k:
            raise ValueError(f"field 'skeleton' ({self.skeleton.name!r}) has {k} keypoints but the network outputs {tuple(shape)}")
        if (shape[3], shape[2]) != (w, h):
            raise ValueError(
                f"field 'heatmap_size' is {w}x{h} but the network outputs {shape[3]}x{shape[2]} heatmaps for "
                f"{self.input_size[0]}x{self.input_size[1]} inputs"
            )

    @property
    def codec(self) -> HeatmapCodec:
        """The heatmap codec of this geometry."""
        return HeatmapCodec(self.input_size, self.heatmap_size, self.sigma, self.encode, self.decode)

    @classmethod
    def from_config(cls, config: Any, schema: Skeleton, flip_test: bool = False) -> InferenceSpec:
        """The spec of a training :class:`binmark.train.Config` whose data follow ``schema``
        (``flip_test``: the config's ``eval.flip_test`` for its evaluations; off in the spec a
        packed or checkpointed model carries for the Localizer)."""
        return cls(
            skeleton=schema,
            input_size=config.data.input_size,
            heatmap_size=config.data.heatmap_size,
            sigma=config.data.sigma,
            encode=config.data.encode,
            decode=config.eval.decode,
            padding=config.data.padding,
            output_activation=config.loss.output_activation,
            flip_test=flip_test,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; a registered schema is stored by name, a custom one in full."""
        d = asdict(self)
        registered = self.skeleton.name in SKELETONS and skeleton(self.skeleton.name) == self.skeleton
        d["skeleton"] = self.skeleton.name if registered else _skeleton_dict(self.skeleton)
        d["input_size"], d["heatmap_size"] = list(self.input_size), list(self.heatmap_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "inference spec") -> InferenceSpec:
        """Inverse of :meth:`to_dict`; errors name ``where`` and the field."""
        if not isinstance(d, dict) or "skeleton" not in d:
            raise ValueError(f"{where}: expected an object with a 'skeleton' field, got {d!r}")
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
        s = d["skeleton"]
        try:
            schema = skeleton(s) if isinstance(s, str) else _skeleton_from(s)
            return cls(**{**d, "skeleton": schema})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None


def _skeleton_dict(s: Skeleton) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()}


def _skeleton_from(d: dict[str, Any]) -> Skeleton:
    def tuples(v: Any) -> Any:
        return tuple(tuples(x) for x in v) if isinstance(v, list) else v

    return Skeleton(**{k: tuples(v) for k, v in d.items()})


def crop_matrix_of(center: Sequence[float], scale: float, spec: InferenceSpec) -> np.ndarray:
    """The 2×3 matrix (image px → input px) of the box ``center``/``scale`` (box height / 200 px
    before padding; ``spec.padding`` is applied here) at ``spec.input_size``."""
    return crop_matrix(center, scale * spec.padding, spec.input_size)


def crop(image: np.ndarray, center: Sequence[float], scale: float, spec: InferenceSpec) -> tuple[torch.Tensor, np.ndarray]:
    """The network input of one box.

    Args:
        image: (H, W, 3) uint8 RGB.
        center: the box centre (x, y), pixel-centre coordinates.
        scale: the box height / 200 px before padding (``spec.padding`` is applied here).
        spec: input size and padding.

    Returns:
        ``(input, matrix)``: the normalized (3, h, w) crop and its 2×3 matrix, image px → input px.
    """
    m = crop_matrix_of(center, scale, spec)
    return normalize(warp(image, m, spec.input_size)), m


def model_heatmaps(
    model: nn.Module,
    images: torch.Tensor,
    output_activation: str | None = None,
    flip_permutation: Sequence[int] | None = None,
) -> torch.Tensor:
    """The final stack's heatmaps (N, K, h, w), float32, for normalized crops (N, 3, H, W).

    Args:
        model: returns a tensor or a list of per-stack tensors (the last one is used).
        images: network inputs.
        output_activation: "sigmoid" for logit outputs (sigmoid cross-entropy training).
        flip_permutation: with the flip test, the skeleton's flip permutation: the mirrored
            crops' heatmaps are flipped back and averaged in.
    """

    def run(x: torch.Tensor) -> torch.Tensor:
        out = model(x)
        heatmaps = (out[-1] if isinstance(out, (list, tuple)) else out).float()
        return torch.sigmoid(heatmaps) if output_activation == "sigmoid" else heatmaps

    heatmaps = run(images)
    if flip_permutation is not None:
        heatmaps = flip_average(heatmaps, run(images.flip(-1)), flip_permutation)
    return heatmaps


@torch.no_grad()
def landmarks(
    model: nn.Module,
    inputs: torch.Tensor,
    matrices: np.ndarray,
    spec: InferenceSpec,
    device: str | torch.device = "cpu",
    max_batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks in image pixels from crops (:func:`crop`).

    Args:
        model: the network, in eval mode.
        inputs: (N, 3, h, w) normalized crops.
        matrices: (N, 2, 3) their image → input matrices.
        spec: output activation, flip test, schema and decoding.
        device: where the network runs.
        max_batch_size: crops per network call (default: all at once).

    Returns:
        ``(coords, scores)``: (N, K, 2) float64 image pixels and (N, K) heatmap maxima.
    """
    n, k = len(inputs), spec.skeleton.num_keypoints
    coords, scores = np.zeros((n, k, 2)), np.zeros((n, k))
    flip = spec.skeleton.flip_permutation if spec.flip_test else None
    codec, step = spec.codec, max_batch_size or max(n, 1)
    for start in range(0, n, step):
        heatmaps = model_heatmaps(model, inputs[start : start + step].to(device), spec.output_activation, flip)
        c, s = codec.decode(heatmaps.cpu())
        for j in range(len(c)):
            coords[start + j] = transform_points(c[j].numpy(), invert(matrices[start + j]))
        scores[start : start + len(c)] = s.numpy()
    return coords, scores


class SampleCrops(Dataset):
    """Dataset samples as network inputs: item i is ``(input, matrix, meta)`` from :func:`crop`
    of the sample's box (:func:`binmark.data.dataset.sample_box`), with ``meta`` the sample's
    ``index``, ground-truth ``keypoints`` (K, 2) image px, ``visible`` (K,) and its evaluation
    extras (``META_EXTRAS``). No targets are drawn. Batch with :func:`binmark.data.dataset.collate`.
    """

    def __init__(self, samples: Sequence[dict[str, Any]], spec: InferenceSpec) -> None:
        self.samples, self.spec = samples, spec

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, np.ndarray, dict[str, Any]]:
        sample = self.samples[index]
        center, scale = sample_box(sample, self.spec.input_size)
        inputs, matrix = crop(sample["image"], center, scale, self.spec)
        meta = {
            "index": int(sample.get("index", index)),
            "keypoints": np.asarray(sample["keypoints"], dtype=np.float64),
            "visible": np.asarray(sample["visible"], dtype=bool),
        }
        meta.update({key: sample[key] for key in META_EXTRAS if key in sample})
        return inputs, matrix, meta

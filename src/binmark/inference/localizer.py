"""``Localizer``: landmarks from images with any binmark model, in three lines.

    from binmark import Localizer
    loc = Localizer("face.bmk")                 # a packed file, a checkpoint or an nn.Module
    keypoints, scores = loc.predict("photo.jpg")  # (P, K, 2) pixels, (P, K)

Top-down: each box (given, detected for faces, the whole image for bodies) goes through the step
the Evaluator uses (:mod:`binmark.topdown`): cropped as in training (``padding`` × the box, fitted
to the input's aspect ratio), the network run on the crops in batches of at most
``max_batch_size``, the heatmaps decoded and the points mapped back through the inverse crop.
Coordinates are 0-based image pixels, integer k = centre of pixel k; boxes are (x, y, w, h) in
pixels with (x, y) the top-left corner of the box's top-left pixel (COCO; its centre is
(x + w/2 − ½, y + h/2 − ½), see :func:`binmark.data.transforms.box_center_scale`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from binmark.data.io import read_image
from binmark.data.skeletons import Skeleton, skeleton as named_skeleton
from binmark.data.transforms import box_center_scale
from binmark.inference.detect import Detector, HaarFaceDetector, WholeImage
from binmark.inference.smoothing import OneEuroFilter
from binmark.models import ARCH_ATTR, Architecture
from binmark.topdown import INFERENCE_ATTR, InferenceSpec, crop, landmarks

__all__ = ["Localizer", "Result", "FACE_NORMALIZERS", "check_boxes"]

#: skeleton normalizers of face benchmarks: such models detect faces when no boxes are given
FACE_NORMALIZERS = ("ocular", "box", "bbox")
#: a person box is about this much larger than the extent of its keypoints (COCO)
BODY_BOX_MARGIN = 1.2
#: the fused engine's precision for packed models the Localizer loads: "fast" keeps landmarks
#: within 0.05 px (mean) of "exact" on a trained model (tests/deploy/test_precision.py; measured
#: 0.0007 px on the demo's model, docs/deploy.md)
PRECISION = "fast"
#: a box side longer than this many times the image's longer side is refused (its crop would be
#: the image shrunk to a few pixels; such boxes come from unit mix-ups, e.g. normalized vs pixels)
MAX_BOX_FACTOR = 8.0


def check_boxes(boxes: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Split boxes into usable ones and refused ones, for an image of ``shape`` (H, W[, C]).

    A box (x, y, w, h) in pixels, (x, y) its top-left corner, is refused when a value is not
    finite, w or h is not positive, it does not overlap the image, or a side exceeds
    :data:`MAX_BOX_FACTOR` × the image's longer side.

    Returns:
        ``(kept, refused)``: kept boxes (P', 4) float64 in input order, and (index, reason) for
        each refused box.

    Raises:
        ValueError: ``boxes`` is not a (P, 4) array of numbers.
    """
    try:
        b = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"boxes must be (P, 4) numbers (x, y, w, h), got {boxes!r:.80} ({exc})") from None
    if b.size % 4 or (b.ndim > 1 and b.shape[-1] != 4):
        raise ValueError(f"boxes must be (P, 4) as (x, y, w, h), got shape {np.shape(b)}")
    b = b.reshape(-1, 4)
    h, w = shape[:2]
    limit = MAX_BOX_FACTOR * max(h, w)
    kept, refused = [], []
    for i, (x, y, bw, bh) in enumerate(b):
        if not np.isfinite(b[i]).all():
            refused.append((i, f"box {i} {b[i].tolist()} has a non-finite value"))
        elif bw <= 0 or bh <= 0:
            refused.append((i, f"box {i} {b[i].tolist()} needs positive width and height (x, y, w, h)"))
        elif max(bw, bh) > limit:
            refused.append((i, f"box {i} {b[i].tolist()} is over {MAX_BOX_FACTOR:g}× the {w}×{h} image"))
        elif x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
            refused.append((i, f"box {i} {b[i].tolist()} lies outside the {w}×{h} image"))
        else:
            kept.append(i)
    return b[kept], refused


@dataclass
class Result:
    """Landmarks of one image: ``boxes`` (P, 4) (x, y, w, h) px, ``keypoints`` (P, K, 2) px,
    ``scores`` (P, K) heatmap maxima."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def to_dict(self, schema: Skeleton) -> dict[str, Any]:
        """JSON-ready: the schema's name and keypoint names, and one entry per box."""
        return {
            "schema": schema.name,
            "keypoint_names": list(schema.keypoints),
            "instances": [
                {"box": b.round(2).tolist(), "keypoints": k.round(2).tolist(), "scores": s.round(4).tolist()}
                for b, k, s in zip(self.boxes, self.keypoints, self.scores)
            ],
        }


def _load(model: Any, device: torch.device, precision: str | None) -> tuple[nn.Module, InferenceSpec | None]:
    """(network, its spec if the source records one) from a .bmk or OpenVINO .xml path, a checkpoint or a module;
    ``precision`` is set on packed models (default :data:`PRECISION` for files, unchanged for a
    given PackedModel)."""
    from binmark.deploy import PackedModel

    if isinstance(model, nn.Module):
        if precision is not None and isinstance(model, PackedModel):
            model.precision = precision
        return model.to(device).eval(), getattr(model, INFERENCE_ATTR, None)
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"Localizer: model file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"Localizer: model file {path} is not a regular file")
    if path.suffix == ".xml":  # an OpenVINO IR from binmark export --openvino: OpenVINO runs it
        if device.type != "cpu":
            raise ValueError(f"Localizer: {path} is an OpenVINO IR run on the CPU; use device='cpu'")
        from binmark.deploy.openvino_ir import load_openvino

        ir = load_openvino(path, "bf16" if precision == "bf16" else "exact")
        return ir, ir.inference  # type: ignore[return-value]
    with path.open("rb") as f:
        head = f.read(2)
    if head == b"PK":  # torch.save's zip: a training checkpoint
        from binmark.train.build import model_from_checkpoint

        net, _ = model_from_checkpoint(path, device)
        return net, getattr(net, INFERENCE_ATTR, None)
    if device.type != "cpu":
        raise ValueError(f"Localizer: {path} is a packed CPU model; use device='cpu'")
    from binmark.deploy import load

    packed = load(path, precision=precision or PRECISION)
    return packed, packed.inference


class Localizer:
    """Predict landmarks on images, batches and video.

    Args:
        model: a packed ``.bmk`` file, an OpenVINO IR (``.xml`` from ``binmark export
            --openvino``, run by OpenVINO), a training checkpoint (``.pt``) or an ``nn.Module`` (a
            registry model; give ``spec`` unless it carries ``binmark_inference``).
        skeleton: the keypoint schema (a Skeleton or a registered name); default: the model's.
        device: where the network runs ("cpu", "cuda", …; packed models run on the CPU).
        spec: crop/decoding settings; default: the model file's (see :class:`InferenceSpec`).
        detector: callable image → boxes (P, 4) used when ``boxes`` is None; default: OpenCV's
            Haar face detector for face schemas, the whole image otherwise.
        max_batch_size: crops per network call.
        smoothing: the video filter of :meth:`track` (default ``OneEuroFilter()``); None-like
            ``False`` turns smoothing off.
        precision: the fused engine's arithmetic for packed models ("fast", "exact", "bf16"; see
            ``binmark.deploy.engine``); default "fast" for a ``.bmk`` file, and a given
            ``PackedModel``'s own setting. An OpenVINO IR runs in float32, or with "bf16" in
            OpenVINO's CPU default precision (bfloat16 where the CPU has AMX).

    Raises:
        ValueError: the schema cannot be determined, or does not match the model's K.
    """

    def __init__(
        self,
        model: str | Path | nn.Module,
        skeleton: Skeleton | str | None = None,
        device: str | torch.device = "cpu",
        *,
        spec: InferenceSpec | None = None,
        detector: Detector | None = None,
        max_batch_size: int = 32,
        smoothing: OneEuroFilter | bool = True,
        precision: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.net, found = _load(model, self.device, precision)
        spec = spec or found
        schema = named_skeleton(skeleton) if isinstance(skeleton, str) else skeleton
        if spec is None:
            if schema is None:
                raise ValueError(
                    "Localizer: the model records no inference settings; pass skeleton= (and spec= for a "
                    "non-default input size) or use a checkpoint/.bmk written by binmark"
                )
            spec = InferenceSpec(schema)
        elif schema is not None:
            spec = replace(spec, skeleton=schema)
        self.spec = spec
        self._check_keypoints()
        if max_batch_size < 1:
            raise ValueError(f"Localizer: max_batch_size must be >= 1, got {max_batch_size}")
        self.max_batch_size = max_batch_size
        self.is_face = spec.skeleton.normalizer in FACE_NORMALIZERS
        self._detector = detector
        self.smoothing = OneEuroFilter() if smoothing is True else (smoothing or None)

    def _check_keypoints(self) -> None:
        arch = getattr(self.net, ARCH_ATTR, None)
        k = arch.num_keypoints if isinstance(arch, Architecture) else None
        if k is not None and k != self.spec.skeleton.num_keypoints:
            raise ValueError(
                f"Localizer: the model predicts {k} keypoints but skeleton {self.spec.skeleton.name!r} has "
                f"{self.spec.skeleton.num_keypoints}; pass the matching skeleton="
            )

    @property
    def skeleton(self) -> Skeleton:
        """The keypoint schema of the outputs."""
        return self.spec.skeleton

    @property
    def detector(self) -> Detector:
        """The box source used when none are given (created on first use)."""
        if self._detector is None:
            self._detector = HaarFaceDetector() if self.is_face else WholeImage()
        return self._detector

    def _crop(self, image: np.ndarray, box: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        center, scale = box_center_scale(box, self.spec.input_size)
        return crop(image, center, scale, self.spec)

    def _run(self, crops: list[torch.Tensor], matrices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return landmarks(self.net, torch.stack(crops), np.stack(matrices), self.spec, self.device, self.max_batch_size)

    def boxes(self, image: np.ndarray, boxes: Any = None) -> np.ndarray:
        """The boxes (P, 4) used for an RGB image: ``boxes`` validated, or the detector's when None.

        Raises:
            ValueError: boxes that are not (P, 4), or a box :func:`check_boxes` refuses.
        """
        kept, refused = check_boxes(self.detector(image) if boxes is None else boxes, image.shape)
        if refused:
            raise ValueError(f"Localizer: {'; '.join(reason for _, reason in refused)}")
        return kept

    def predict_batch(
        self, images: Sequence[Any], boxes: Sequence[Any] | None = None, color: str = "rgb"
    ) -> list[Result]:
        """Landmarks for several images, their crops batched together.

        Args:
            images: paths, PIL images or arrays (see :func:`binmark.inference.read_image`).
            boxes: per image an (P, 4) array of (x, y, w, h) boxes, or None to detect; or None
                for all.
            color: channel order of array images ("rgb", or "bgr" for OpenCV frames).

        Returns:
            one :class:`Result` per image (P = 0 when no face was found).
        """
        if boxes is not None and len(boxes) != len(images):
            raise ValueError(f"predict_batch: {len(images)} images but {len(boxes)} box lists")
        crops, matrices, owners, all_boxes = [], [], [], []
        for i, source in enumerate(images):
            image = read_image(source, color)
            b = self.boxes(image, None if boxes is None else boxes[i])
            all_boxes.append(b)
            for box in b:
                crop, m = self._crop(image, box)
                crops.append(crop)
                matrices.append(m)
                owners.append(i)
        coords, scores = self._run(crops, matrices) if crops else (np.zeros((0, self.skeleton.num_keypoints, 2)), np.zeros((0, self.skeleton.num_keypoints)))
        owner = np.asarray(owners, dtype=int)
        return [Result(all_boxes[i], coords[owner == i], scores[owner == i]) for i in range(len(images))]

    def predict(self, image: Any, boxes: Any = None, color: str = "rgb") -> tuple[np.ndarray, np.ndarray]:
        """Landmarks on one image.

        Args:
            image: a path, a PIL image or an (H, W[, C]) array (uint8/uint16/float, gray/RGB/RGBA).
            boxes: (P, 4) (x, y, w, h) pixels; None: detect faces (face models) or use the whole
                image (body models).
            color: channel order of an array image ("rgb" or "bgr").

        Returns:
            ``(keypoints, scores)``: (P, K, 2) image pixels and (P, K) scores; P = 0 when no
            face is found.
        """
        r = self.predict_batch([image], None if boxes is None else [boxes], color)[0]
        return r.keypoints, r.scores

    def track(self, frames: Iterable[Any], fps: float = 30.0, color: str = "rgb") -> Iterator[Result]:
        """Landmarks of one subject through a video, frame by frame.

        The box of each frame comes from the previous frame's landmarks (see ``_follow``); the detector runs on the first frame and again whenever the subject is lost (mean
        score below 0.1 or the box leaves the image). Landmarks are smoothed by ``smoothing``
        (reset at each re-detection).

        Args:
            frames: images (paths, PIL images, arrays), e.g. OpenCV frames with ``color="bgr"``.
            fps: frame rate, for the filter's time step.
            color: channel order of array frames.

        Yields:
            one :class:`Result` per frame (P = 0 or 1).
        """
        box: np.ndarray | None = None
        if self.smoothing is not None:
            self.smoothing.reset()
        for frame in frames:
            image = read_image(frame, color)
            if box is None:
                found = self.boxes(image, None)
                if len(found) == 0:
                    yield Result(np.zeros((0, 4)), np.zeros((0, self.skeleton.num_keypoints, 2)), np.zeros((0, self.skeleton.num_keypoints)))
                    continue
                box = found[0]
                if self.smoothing is not None:
                    self.smoothing.reset()
            crop, m = self._crop(image, box)
            coords, scores = self._run([crop], [m])
            kp = self.smoothing(coords[0], 1.0 / fps) if self.smoothing is not None else coords[0]
            yield Result(box[None].copy(), kp[None], scores)
            box = self._follow(kp, scores[0], image.shape, box)

    def _follow(self, kp: np.ndarray, scores: np.ndarray, shape: tuple[int, ...], box: np.ndarray) -> np.ndarray | None:
        """The next frame's box: ``box`` re-centred on this frame's landmarks and resized to their
        extent (× ``BODY_BOX_MARGIN`` for bodies; the old size is kept when the extent collapses
        below a quarter of it, e.g. one keypoint). None (re-detect) when the subject is lost."""
        h, w = shape[:2]
        lo, hi = kp.min(axis=0), kp.max(axis=0)
        if float(scores.mean()) < 0.1 or hi[0] < 0 or hi[1] < 0 or lo[0] >= w or lo[1] >= h:
            return None
        side = (float(max(hi - lo)) + 1.0) * (1.0 if self.is_face else BODY_BOX_MARGIN)
        if side < 0.25 * max(box[2], box[3]):
            side = float(max(box[2], box[3]))
        cx, cy = (lo + hi) / 2 + 0.5  # pixel-centre coordinates → COCO box coordinates
        return np.array([cx - side / 2, cy - side / 2, side, side])

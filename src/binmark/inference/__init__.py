"""Inference for people: :class:`Localizer` (images, batches, video), detectors, temporal
smoothing, and ``binmark predict`` (:mod:`binmark.inference.run`). Image reading
(``read_image``, ``to_rgb8``, ``ImageReadError``) is :mod:`binmark.data.io`'s one decoder,
re-exported here."""

from binmark.data.io import ImageReadError, read_image, to_rgb8
from binmark.inference.detect import HAAR_TO_LANDMARK_BOX, Detector, HaarFaceDetector, WholeImage
from binmark.inference.localizer import Localizer, Result
from binmark.inference.smoothing import OneEuroFilter
from binmark.topdown import InferenceSpec

__all__ = [
    "Localizer", "Result", "InferenceSpec", "Detector", "HaarFaceDetector", "WholeImage",
    "HAAR_TO_LANDMARK_BOX", "OneEuroFilter", "ImageReadError", "read_image", "to_rgb8",
]  # fmt: skip

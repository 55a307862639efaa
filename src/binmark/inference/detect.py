"""Box detectors for :class:`binmark.Localizer`: a small interface and the built-in ones.

A detector is any callable ``detector(image) -> boxes`` taking an (H, W, 3) uint8 RGB image and
returning an (P, 4) float array of boxes (x, y, w, h) in pixels (COCO convention: top-left corner,
width, height), best first. Plug in a better one (RetinaFace, YOLO, …) by passing such a callable
to ``Localizer(..., detector=...)``.

Built in:

- :class:`HaarFaceDetector`: OpenCV's Viola-Jones frontal-face cascade, shipped inside
  opencv-python-headless < 5 (no download). Frontal faces only, a few ms per VGA image. Its boxes
  are mapped onto binmark's face-box convention (the landmark box: jaw to brows, see
  :data:`HAAR_TO_LANDMARK_BOX`).
- :class:`WholeImage`: one box covering the image (bodies, or crops that are already a face).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

__all__ = ["Detector", "HaarFaceDetector", "WholeImage", "HAAR_TO_LANDMARK_BOX"]

Detector = Callable[[np.ndarray], np.ndarray]

#: (centre shift down, size factor), both × the Haar box side: the Haar box sits on eyes–mouth
#: and is a little smaller than the 68-point landmark box, whose centre lies lower (towards the chin).
HAAR_TO_LANDMARK_BOX = (0.10, 1.10)


class WholeImage:
    """The whole image as one box."""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return np.array([[0.0, 0.0, float(w), float(h)]])


class HaarFaceDetector:
    """OpenCV's Haar cascade frontal-face detector.

    Args:
        cascade: the cascade XML (default: ``haarcascade_frontalface_default.xml`` from
            ``cv2.data``).
        scale_factor, min_neighbors: ``detectMultiScale`` settings (higher neighbours: fewer,
            surer faces).
        min_size: the smallest face side in pixels.
        max_side: images are downscaled so their longer side is at most this for detection
            (speed); boxes are returned in the original pixels.
    """

    def __init__(
        self,
        cascade: str | Path | None = None,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        max_side: int = 800,
    ) -> None:
        path = Path(cascade) if cascade is not None else Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FileNotFoundError(
                f"face cascade {path} could not be loaded; opencv-python-headless < 5 ships it "
                "(pip install 'opencv-python-headless<5') or pass cascade=PATH"
            )
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.min_size, self.max_side = min_size, max_side

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Face boxes (P, 4) as (x, y, w, h) in ``image``'s pixels, largest first."""
        gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        zoom = min(1.0, self.max_side / max(gray.shape))
        if zoom < 1.0:
            gray = cv2.resize(gray, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        side = max(8, int(round(self.min_size * zoom)))
        found = self._cascade.detectMultiScale(gray, self.scale_factor, self.min_neighbors, minSize=(side, side))
        if len(found) == 0:
            return np.zeros((0, 4))
        boxes = np.asarray(found, dtype=np.float64) / zoom
        shift, grow = HAAR_TO_LANDMARK_BOX
        cx = boxes[:, 0] + boxes[:, 2] / 2
        cy = boxes[:, 1] + boxes[:, 3] / 2 + shift * boxes[:, 3]
        size = boxes[:, 2:].max(axis=1) * grow
        out = np.stack([cx - size / 2, cy - size / 2, size, size], axis=1)
        return out[np.argsort(-size, kind="stable")]

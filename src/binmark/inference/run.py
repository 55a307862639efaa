"""``binmark predict``: landmarks for image files, folders and videos, written as JSON and pictures.

For each input: images get ``OUT/<name>.png`` (the image with boxes, limbs and points in the
schema's colours) and an entry in ``OUT/predictions.json``; videos get ``OUT/<name>.mp4`` (the
annotated video, tracked and smoothed by :meth:`binmark.Localizer.track`) and ``OUT/<name>.json``
(one entry per frame). Unreadable files are reported and listed under ``"skipped"``; they never
stop the batch. A progress bar runs over folders' images and videos' frames.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from binmark.draw import draw_keypoints, write_png
from binmark.fileio import atomic_write
from binmark.inference.images import ImageReadError, read_image
from binmark.inference.localizer import Localizer, Result

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "collect_inputs", "annotate", "predict_paths"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files named on the command line, and the images and videos inside named folders (sorted,
    not recursive). A missing path is kept (it is reported as skipped)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        else:
            out.append(p)
    return out


def annotate(image: np.ndarray, result: Result, localizer: Localizer, min_score: float = 0.0) -> np.ndarray:
    """``image`` (RGB uint8) with each instance's box, limbs and points drawn; points scoring
    below ``min_score`` are drawn hollow."""
    out = image.copy()
    thick = max(1, round(min(image.shape[:2]) / 300))
    for box, kp, sc in zip(result.boxes, result.keypoints, result.scores):
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 255), thick, cv2.LINE_AA)
        out = draw_keypoints(out, kp, localizer.skeleton, sc >= min_score)
    return out


def _names(paths: Sequence[Path]) -> list[str]:
    """Output stems, unique (a counter is added to repeats)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        n = seen.get(p.stem, 0)
        seen[p.stem] = n + 1
        names.append(p.stem if n == 0 else f"{p.stem}_{n}")
    return names


def _lookup(boxes: dict[str, Any] | None, path: Path) -> Any:
    if boxes is None:
        return None
    for key in (str(path), path.name):
        if key in boxes:
            return boxes[key]
    return None


def _image_batches(paths: list[tuple[Path, str]], size: int) -> Iterator[list[tuple[Path, str]]]:
    for i in range(0, len(paths), size):
        yield paths[i : i + size]


def _predict_images(
    loc: Localizer, items: list[tuple[Path, str]], out: Path, boxes: dict[str, Any] | None,
    min_score: float, draw: bool, report: dict[str, Any],
) -> None:  # fmt: skip
    bar = tqdm(total=len(items), desc="images", unit="img", disable=len(items) < 2)
    for chunk in _image_batches(items, loc.max_batch_size):
        readable = []
        for path, name in chunk:
            try:
                image = read_image(path)
                readable.append((path, name, image, loc.boxes(image, _lookup(boxes, path))))
            except (ImageReadError, ValueError) as exc:
                report["skipped"][str(path)] = str(exc)
                tqdm.write(f"skipped {path}: {exc}")
        results = loc.predict_batch([r[2] for r in readable], [r[3] for r in readable])
        for (path, name, image, _), result in zip(readable, results):
            entry = result.to_dict(loc.skeleton)
            del entry["schema"], entry["keypoint_names"]
            if draw:
                write_png(str(out / f"{name}.png"), annotate(image, result, loc, min_score))
                entry["annotated"] = f"{name}.png"
            report["images"][str(path)] = entry
        bar.update(len(chunk))
    bar.close()


def _predict_video(loc: Localizer, path: Path, out: Path, name: str, fps: float | None, min_score: float, draw: bool) -> dict[str, Any]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageReadError(f"{path}: not a readable video")
    rate = fps or cap.get(cv2.CAP_PROP_FPS) or 30.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    current: dict[str, np.ndarray] = {}

    def frames() -> Iterator[np.ndarray]:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            current["frame"] = frame  # track() reads one frame per result it yields
            yield frame

    target, tmp = out / f"{name}.mp4", out / f".{name}.tmp.mp4"
    writer = None
    records = []
    try:
        for i, result in enumerate(tqdm(loc.track(frames(), rate, "bgr"), total=total, desc=path.name, unit="frame")):
            entry = result.to_dict(loc.skeleton)
            records.append({"frame": i, "instances": entry["instances"]})
            if draw:
                frame = current["frame"]
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), rate, (w, h))
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                writer.write(cv2.cvtColor(annotate(rgb, result, loc, min_score), cv2.COLOR_RGB2BGR))
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if not records:
        tmp.unlink(missing_ok=True)
        raise ImageReadError(f"{path}: no frame could be decoded")
    if writer is not None:
        os.replace(tmp, target)
    doc = {"schema": loc.skeleton.name, "keypoint_names": list(loc.skeleton.keypoints), "video": str(path), "fps": rate,
           "annotated": target.name if writer is not None else None, "frames": records}  # fmt: skip
    atomic_write(out / f"{name}.json", json.dumps(doc))
    return {"frames": len(records), "json": f"{name}.json", "annotated": doc["annotated"]}


def predict_paths(
    localizer: Localizer,
    inputs: Sequence[str | Path],
    out: str | Path,
    boxes: dict[str, Any] | None = None,
    fps: float | None = None,
    min_score: float = 0.0,
    draw: bool = True,
) -> dict[str, Any]:
    """Run ``localizer`` over image files, folders and videos; write results under ``out``.

    Args:
        localizer: the model.
        inputs: files and folders.
        out: output folder (created).
        boxes: optional {file path or name: [[x, y, w, h], ...]} (pixels); files without an entry
            use the localizer's detector.
        fps: video frame rate for smoothing (default: the file's).
        min_score: points below this score are drawn hollow.
        draw: write annotated images / videos.

    Returns:
        the ``predictions.json`` document: schema, keypoint names, per-image results, videos and
        skipped files with the reason.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = collect_inputs(inputs)
    report: dict[str, Any] = {"schema": localizer.skeleton.name, "keypoint_names": list(localizer.skeleton.keypoints),
                              "images": {}, "videos": {}, "skipped": {}}  # fmt: skip
    named = list(zip(paths, _names(paths)))
    images = [(p, n) for p, n in named if p.suffix.lower() not in VIDEO_SUFFIXES]
    _predict_images(localizer, images, out, boxes, min_score, draw, report)
    for path, name in named:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            try:
                report["videos"][str(path)] = _predict_video(localizer, path, out, name, fps, min_score, draw)
            except ImageReadError as exc:
                report["skipped"][str(path)] = str(exc)
                tqdm.write(f"skipped {path}: {exc}")
    atomic_write(out / "predictions.json", json.dumps(report, indent=1))
    return report

"""``binmark predict``: landmarks for image files, folders and videos, written as JSON and pictures.

For each input: images get ``OUT/<name>.png`` (the image with boxes, limbs and points in the
schema's colours) and an entry in ``OUT/predictions.json``; videos get ``OUT/<name>.mp4`` (the
annotated video, tracked and smoothed by :meth:`binmark.Localizer.track`) and ``OUT/<name>.json``
(one entry per frame). Anything that fails for one input (unreadable or oversized files, refused
boxes, a failed drawing) is reported and listed under ``"skipped"``; it never stops the batch. A
progress bar runs over folders' images and videos' frames.
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

from binmark.data.io import MAX_PIXELS, ImageReadError, read_image
from binmark.draw import draw_keypoints, write_png
from binmark.fileio import atomic_write, temp_path
from binmark.inference.localizer import Localizer, Result, check_boxes
from binmark.progress import bar as progress_bar

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "collect_inputs", "annotate", "coco_results", "predict_paths"]

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


#: files ``predict_paths`` writes in every run; no input's outputs may take these names
SUMMARY = "predictions.json"
COCO_RESULTS = "predictions_coco.json"


def _outputs(stem: str, path: Path, draw: bool) -> list[str]:
    """The file names one input writes under its output stem."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return [f"{stem}.json"] + ([f"{stem}.mp4"] if draw else [])
    return [f"{stem}.png"] if draw else []


def _previous_outputs(out: Path) -> set[str]:
    """Names a previous run wrote into ``out`` (its summary's ``written`` list): those may be
    replaced; any other file already there is the user's and is never overwritten."""
    try:
        written = json.loads((out / SUMMARY).read_text(encoding="utf-8")).get("written", [])
        return {n for n in written if isinstance(n, str)}
    except (OSError, ValueError, AttributeError):
        return set()


def _names(paths: Sequence[Path], out: Path, draw: bool) -> list[str]:
    """An output stem per input such that no two inputs write the same file, no output replaces
    an input or the summary files, and no file already in ``out`` is replaced unless a previous
    run wrote it. Repeats get a counter: ``a``, ``a_1``, ``a_2``, …"""
    previous = _previous_outputs(out)
    taken = {SUMMARY, COCO_RESULTS} | {f.name for f in out.iterdir() if f.name not in previous}
    names = []
    for p in paths:
        stem, n = p.stem, 0
        while any(f in taken for f in _outputs(stem, p, draw)):
            n += 1
            stem = f"{p.stem}_{n}"
        taken.update(_outputs(stem, p, draw))
        names.append(stem)
    return names


def _lookup(boxes: dict[str, Any] | None, path: Path) -> Any:
    if boxes is None:
        return None
    for key in (str(path), path.name):
        if key in boxes:
            return boxes[key]
    return None


def _skip(report: dict[str, Any], key: str, exc: BaseException | str) -> None:
    reason = exc if isinstance(exc, str) else (str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}")
    report["skipped"][key] = reason
    tqdm.write(f"skipped {key}: {reason}")


def _read(loc: Localizer, path: Path, given: Any, max_pixels: int, report: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The image and its usable boxes; refused boxes are reported as ``"PATH box I"``."""
    image = read_image(path, max_pixels=max_pixels)
    if given is None:
        return image, loc.boxes(image)
    kept, refused = check_boxes(given, image.shape)
    for i, reason in refused:
        _skip(report, f"{path} box {i}", reason)
    return image, kept


def _predict_images(
    loc: Localizer, items: list[tuple[Path, str]], out: Path, boxes: dict[str, Any] | None,
    min_score: float, draw: bool, max_pixels: int, report: dict[str, Any],
) -> None:  # fmt: skip
    bar = progress_bar(len(items), "images", "img", enabled=len(items) > 1)
    for start in range(0, len(items), loc.max_batch_size):
        chunk = items[start : start + loc.max_batch_size]
        readable = []
        for path, name in chunk:
            try:
                readable.append((path, name, *_read(loc, path, _lookup(boxes, path), max_pixels, report)))
            except Exception as exc:  # noqa: BLE001 — one input never stops the batch
                _skip(report, str(path), exc)
        try:
            ran = list(zip(readable, loc.predict_batch([r[2] for r in readable], [r[3] for r in readable])))
        except Exception:  # noqa: BLE001 — find the input that fails, run the others
            ran = []
            for r in readable:
                try:
                    ran.append((r, loc.predict_batch([r[2]], [r[3]])[0]))
                except Exception as exc:  # noqa: BLE001
                    _skip(report, str(r[0]), exc)
        for (path, name, image, _), result in ran:
            entry = result.to_dict(loc.skeleton)
            del entry["schema"], entry["keypoint_names"]
            if draw:
                try:
                    write_png(str(out / f"{name}.png"), annotate(image, result, loc, min_score))
                    entry["annotated"] = f"{name}.png"
                    report["written"].append(f"{name}.png")
                except Exception as exc:  # noqa: BLE001 — the landmarks are still reported
                    entry["annotated"] = None
                    _skip(report, f"{path} (annotated image)", exc)
            report["images"][str(path)] = entry
        bar.update(len(chunk))
    bar.close()


def _predict_video(
    loc: Localizer, path: Path, out: Path, name: str, fps: float | None, min_score: float, draw: bool, max_pixels: int
) -> dict[str, Any]:
    if not path.is_file():
        raise ImageReadError(f"{path}: {'no such file' if not path.exists() else 'not a regular file'}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageReadError(f"{path}: not a readable video")
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if w * h > max_pixels:
        cap.release()
        raise ImageReadError(f"{path}: {w} × {h} frames are over the limit of {max_pixels:,} pixels (--max-pixels)")
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

    target = out / f"{name}.mp4"
    tmp = temp_path(target, ".mp4")
    writer = None
    records: list[dict[str, Any]] = []
    written: list[str] = []
    bar = progress_bar(total, path.name, "frame")
    try:
        for i, result in enumerate(loc.track(frames(), rate, "bgr")):
            bar.update(1)
            entry = result.to_dict(loc.skeleton)
            records.append({"frame": i, "instances": entry["instances"]})
            if draw:
                frame = current["frame"]
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), rate, (w, h))
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                writer.write(cv2.cvtColor(annotate(rgb, result, loc, min_score), cv2.COLOR_RGB2BGR))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
        cap.release()
        if writer is not None:
            writer.release()
    if not records:
        tmp.unlink(missing_ok=True)
        raise ImageReadError(f"{path}: no frame could be decoded")
    if writer is not None:
        os.replace(tmp, target)
        written.append(target.name)
    doc = {"schema": loc.skeleton.name, "keypoint_names": list(loc.skeleton.keypoints), "video": str(path), "fps": rate,
           "annotated": target.name if writer is not None else None, "frames": records}  # fmt: skip
    atomic_write(out / f"{name}.json", json.dumps(doc))
    written.append(f"{name}.json")
    return {"frames": len(records), "json": f"{name}.json", "annotated": doc["annotated"], "written": written}


def coco_results(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The images of a ``predictions.json`` document as a COCO keypoint results list (the file
    pycocotools' ``COCO.loadRes`` and mmpose's evaluators read): per instance ``image_id`` (the
    file stem as an integer when it is all digits, as COCO's ``000000397133.jpg``; otherwise the
    file name), ``category_id`` 1, ``keypoints`` [x1, y1, s1, x2, …] (pixels, s = the point's
    heatmap score), ``score`` (mean point score) and ``bbox`` (x, y, w, h)."""
    results = []
    for path, entry in report["images"].items():
        stem = Path(path).stem
        image_id: int | str = int(stem) if stem.isdigit() else Path(path).name
        for inst in entry["instances"]:
            flat = [v for (x, y), s in zip(inst["keypoints"], inst["scores"]) for v in (x, y, s)]
            score = float(np.mean(inst["scores"])) if inst["scores"] else 0.0
            results.append({"image_id": image_id, "category_id": 1, "keypoints": flat, "score": round(score, 4), "bbox": inst["box"]})
    return results


def predict_paths(
    localizer: Localizer,
    inputs: Sequence[str | Path],
    out: str | Path,
    boxes: dict[str, Any] | None = None,
    fps: float | None = None,
    min_score: float = 0.0,
    draw: bool = True,
    max_pixels: int = MAX_PIXELS,
    coco: bool = False,
) -> dict[str, Any]:
    """Run ``localizer`` over image files, folders and videos; write results under ``out``.

    A batch job: an input that cannot be read, decoded, run or drawn, and a box that
    :func:`~binmark.inference.localizer.check_boxes` refuses, is listed under ``"skipped"`` with
    the reason, and the rest go on. No output replaces an input or a file already in ``out``
    (unless a previous run into ``out`` wrote it, per its ``written`` list): colliding names get a
    counter.

    Args:
        localizer: the model.
        inputs: files and folders.
        out: output folder (created).
        boxes: optional {file path or name: [[x, y, w, h], ...]} (pixels); files without an entry
            use the localizer's detector.
        fps: video frame rate for smoothing (default: the file's).
        min_score: points below this score are drawn hollow.
        draw: write annotated images / videos.
        max_pixels: images (and video frames) with more pixels are skipped before decoding.
        coco: also write ``predictions_coco.json`` (:func:`coco_results`).

    Returns:
        the ``predictions.json`` document: schema, keypoint names, per-image results, videos,
        skipped inputs and boxes with the reason, and the file names written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = collect_inputs(inputs)
    report: dict[str, Any] = {"schema": localizer.skeleton.name, "keypoint_names": list(localizer.skeleton.keypoints),
                              "images": {}, "videos": {}, "skipped": {}, "written": []}  # fmt: skip
    named = list(zip(paths, _names(paths, out, draw)))
    images = [(p, n) for p, n in named if p.suffix.lower() not in VIDEO_SUFFIXES]
    _predict_images(localizer, images, out, boxes, min_score, draw, max_pixels, report)
    for path, name in named:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            try:
                video = _predict_video(localizer, path, out, name, fps, min_score, draw, max_pixels)
                report["written"] += video.pop("written")
                report["videos"][str(path)] = video
            except Exception as exc:  # noqa: BLE001 — one input never stops the batch
                _skip(report, str(path), exc)
    if coco:
        atomic_write(out / COCO_RESULTS, json.dumps(coco_results(report)))
        report["written"].append(COCO_RESULTS)
    report["written"].append(SUMMARY)
    atomic_write(out / SUMMARY, json.dumps(report, indent=1))
    return report

"""Localizer throughput (images/s, end to end: read, crop, network, decode, uncrop) of the packed
binary model — module by module, and in the fused engine at precision "exact" and "fast" — against
the same architecture in PyTorch: the real-valued (fp32) twin and the fake-quantized binary model.

Each image is one synthetic face with its box; the whole set goes through ``predict_batch`` in
chunks of ``--batch`` images (crops batched together). The median of ``--runs`` timed passes
after one warm-up pass is reported. Weights are untrained (speed does not depend on them).

Run: .venv/bin/python benchmarks/predict_throughput.py [--size 256] [--n 64] [--batch 1 16]
         [--threads 2] [--width 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import torch

from binmark.data import synthetic
from binmark.data.transforms import PIXEL_STD
from binmark.deploy import pack
from binmark.inference import InferenceSpec, Localizer
from binmark.models import build


def _images_and_boxes(n: int, size: int) -> tuple[list, list]:
    faces = synthetic("face", n, seed=7, image_size=size)
    images, boxes = [], []
    for i in range(n):
        s = faces[i]
        side = s["scale"] * PIXEL_STD
        images.append(s["image"])
        boxes.append([[s["center"][0] + 0.5 - side / 2, s["center"][1] + 0.5 - side / 2, side, side]])
    return images, boxes


def _throughput(loc: Localizer, images: list, boxes: list, batch: int, runs: int) -> float:
    def once() -> float:
        tic = time.perf_counter()
        for i in range(0, len(images), batch):
            loc.predict_batch(images[i : i + batch], boxes[i : i + batch])
        return time.perf_counter() - tic

    once()  # warm-up (the packed runtime measures its backends per layer shape here)
    return len(images) / statistics.median(once() for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256, help="network input and image side, px (default 256)")
    ap.add_argument("--n", type=int, default=64, help="images per pass (default 64)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16], help="images per predict_batch call")
    ap.add_argument("--runs", type=int, default=5, help="timed passes; the median is reported")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=64, help="hourglass width (default 64)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    opts = {"stacks": 1, "depth": 4, "width": args.width, "block": "hpm"}
    spec = InferenceSpec("300w", input_size=args.size, heatmap_size=args.size // 4, sigma=1.0)
    binary = build("hourglass", 68, quant="bulat17", **opts).eval()
    variants = {
        "pytorch fp32 (real twin)": build("hourglass", 68, quant="real", **opts).eval(),
        "pytorch fake-quant binary": binary,
        "packed, module by module": pack(binary, runtime="modules"),
        "packed, fused exact": pack(binary, precision="exact"),
        "packed, fused fast": pack(binary, precision="fast"),
    }
    images, boxes = _images_and_boxes(args.n, args.size)
    rows = []
    print(f"1-stack HPM hourglass (width {args.width}), {args.size}×{args.size}, 68 keypoints, {args.threads} threads")
    print(f"{'variant':<28}{'batch':>6}{'images/s':>10}")
    gc.disable()  # a full collection in a timed pass would land on one variant at random
    for name, net in variants.items():
        loc = Localizer(net, spec=spec, max_batch_size=max(args.batch))
        for batch in args.batch:
            rate = _throughput(loc, images, boxes, batch, args.runs)
            rows.append({"variant": name, "batch": batch, "images_per_s": rate})
            print(f"{name:<28}{batch:>6}{rate:>10.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()

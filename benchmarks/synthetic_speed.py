"""Rendering speed of the synthetic datasets: samples/s in one process and through a DataLoader.

Run: .venv/bin/python benchmarks/synthetic_speed.py [--n 400] [--size 256]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from binmark.data import synthetic


def _rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for kind in ("face", "pose"):
        ds = synthetic(kind, args.n, seed=1, image_size=args.size)
        ds[0]  # warm-up (noise bank, imports)
        single = _rate(lambda: [ds[i] for i in range(args.n)], args.n)
        loader = DataLoader(ds, batch_size=16, num_workers=2, collate_fn=lambda b: b)
        workers = _rate(lambda: [None for _ in loader], args.n)
        print(f"{kind}: {single:.0f} samples/s in one process, {workers:.0f} samples/s with 2 DataLoader workers ({args.size}x{args.size})")


if __name__ == "__main__":
    main()

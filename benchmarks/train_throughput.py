"""Training throughput (images/s) of the real and binary HPM hourglass: forward, backward and an
RMSprop step on random data, after warm-up; median over timed steps.

Run: .venv/bin/python benchmarks/train_throughput.py [--batch 16] [--steps 6]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from binmark import models


def throughput(size: int, quant: str, width: int, stacks: int, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    model = models.build("hourglass", 16, stacks=stacks, width=width, quant=quant)
    opt = torch.optim.RMSprop(model.parameters(), lr=2.5e-4)
    x = torch.randn(batch, 3, size, size)
    y = torch.rand(batch, 16, size // 4, size // 4)
    times = []
    for i in range(steps + 1):
        tic = time.perf_counter()
        loss = sum(((o - y) ** 2).mean() for o in model(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - tic)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch}")
    for size in (128, 256):
        for width in (64, 256):
            for quant in ("real", "bulat17"):
                rate = throughput(size, quant, width, 1, args.batch, args.steps)
                print(f"{size}x{size}  width {width:3d}  {quant:8s}  {rate:7.1f} images/s")


if __name__ == "__main__":
    main()

"""Peak training memory of binary networks: real-valued, float fake quantization, packed saves.

Each configuration runs in a fresh process: build the model (16 keypoints), then two training
steps (``--steps N``: N) (forward, MSE on every output, backward, SGD step) on random 256×256
images. Memory on the CPU is the growth of the process's peak resident set (``ru_maxrss``) from
just before the first step, and — in one more step, profiled — the peak of live tensor bytes
(:func:`binmark.memory.peak_live_bytes`, what ``torch.cuda.max_memory_allocated`` reports on a
GPU; it leaves out the free memory the allocators keep); on a GPU (``--cuda``) it is
``torch.cuda.max_memory_allocated`` over the steps. Time is the median of the steps after the
first (with two steps: the second step's). "fake-quant" is binmark with ``packed_saves(False)``
(float32 tensors kept for backward, as every PyTorch binary-network library keeps them),
"packed" the default. On the CPU the tensors come from binmark's block allocator, as in
``binmark train`` (``--allocator default``: PyTorch's, on glibc's ``malloc``). With
``--repeat N`` each configuration runs N times (fresh processes) and the medians are reported.
``--src DIR`` measures the binmark in ``DIR/src`` instead, e.g. a ``git worktree`` of an earlier
commit; where that code has no packed saves every configuration runs as it runs there, where it
has no block allocator PyTorch's is used (the row says which), and where it has no
``binmark.memory`` the live column is left out.

Run: .venv/bin/python benchmarks/train_memory.py [--batch 8 16] [--only TEXT] [--steps N] [--allocator block|default] [--repeat N] [--src DIR] [--cuda] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

HG = {"stacks": 1, "block": "hpm"}
CUNET = {"num_unets": 8, "order": 1}
CONFIGS = {  # name → (model, options, packed saves)
    "hourglass 1-stack HPM, real": ("hourglass", {**HG, "quant": "real"}, True),
    "hourglass 1-stack HPM, binary fake-quant": ("hourglass", {**HG, "quant": "bulat17"}, False),
    "hourglass 1-stack HPM, binary packed": ("hourglass", {**HG, "quant": "bulat17"}, True),
    "CU-Net N=8, real": ("cunet", {**CUNET, "memory_efficient": False, "quant": "real"}, True),
    "CU-Net N=8, W1A1 fake-quant": ("cunet", {**CUNET, "memory_efficient": False, "quant": "cunet_w1a1g8"}, False),
    "CU-Net N=8, W1A1 packed": ("cunet", {**CUNET, "memory_efficient": False, "quant": "cunet_w1a1g8"}, True),
    "CU-Net N=8, real, memory-efficient": ("cunet", {**CUNET, "memory_efficient": True, "quant": "real"}, True),
    "CU-Net N=8, W1A1 fake-quant, memory-efficient": ("cunet", {**CUNET, "memory_efficient": True, "quant": "cunet_w1a1g8"}, False),
    "CU-Net N=8, W1A1 packed, memory-efficient": ("cunet", {**CUNET, "memory_efficient": True, "quant": "cunet_w1a1g8"}, True),
    "CU-Net N=8, W1A8 fake-quant, memory-efficient": ("cunet", {**CUNET, "memory_efficient": True, "quant": "cunet_w1a8g8"}, False),
    "CU-Net N=8, W1A8 packed, memory-efficient": ("cunet", {**CUNET, "memory_efficient": True, "quant": "cunet_w1a8g8"}, True),
    "BiHRNet-W32, real": ("bihrnet", {"width": 32, "quant": "real"}, True),
    "BiHRNet-W32, binary fake-quant": ("bihrnet", {"width": 32}, False),
    "BiHRNet-W32, binary packed": ("bihrnet", {"width": 32}, True),
}  # fmt: skip


def _packed_saves(enabled: bool) -> Any:
    """binmark's switch, or nothing where the measured code has none (before packed saves)."""
    try:
        from binmark.quant import packed_saves
    except ImportError:
        return contextlib.nullcontext()
    return packed_saves(enabled)


def _peak_resident_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _use_allocator(name: str) -> str:
    """Install the CPU allocator ``name`` ("block": binmark's, as ``binmark train`` does on the CPU;
    "default": PyTorch's, on glibc's malloc); the one in use, "default" where the measured code
    has no block allocator."""
    if name == "block":
        try:
            from binmark.allocator import enable_block_allocator
        except ImportError:
            return "default"
        if enable_block_allocator():
            return "block"
        raise SystemExit("the block allocator did not build (see the warning above); measure with --allocator default")
    return "default"


def train_steps(name: str, batch: int, size: int, cuda: bool, steps: int, allocator: str) -> dict:
    """In a child process: build, ``steps`` training steps (memory growth; the median time of the
    steps after the first), then on the CPU one more, profiled step for the peak of live tensor
    bytes."""
    from binmark import models

    allocator = _use_allocator(allocator) if not cuda else "default"

    torch.manual_seed(0)
    model_name, opts, packed = CONFIGS[name]
    device = torch.device("cuda" if cuda else "cpu")
    model = models.build(model_name, 16, **opts).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, size, size, device=device)
    target = torch.rand(batch, 16, size // 4, size // 4, device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = sum(((o - target) ** 2).mean() for o in model(x))
        loss.backward()
        optimizer.step()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    before = _peak_resident_mib()
    times = []
    with _packed_saves(packed):
        for _ in range(steps):
            if cuda:
                torch.cuda.synchronize()
            tic = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - tic)
        seconds = statistics.median(times[1:])
        if cuda:
            return {"name": name, "batch": batch, "steps": steps, "allocator": allocator, "peak_mb": (torch.cuda.max_memory_allocated() - start) / 2**20, "step_s": seconds}
        row = {"name": name, "batch": batch, "steps": steps, "allocator": allocator, "peak_mb": _peak_resident_mib() - before, "step_s": seconds}
        try:
            from binmark.memory import peak_live_bytes
        except ImportError:
            return row
        row["live_mb"] = peak_live_bytes(step) / 2**20
    return row


def _median_row(runs: list[dict]) -> dict:
    row = dict(runs[0])
    for key in ("peak_mb", "live_mb", "step_s"):
        if key in row:
            row[key] = statistics.median(r[key] for r in runs)
    row["runs"] = len(runs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2, help="training steps measured (at least 2)")
    parser.add_argument("--allocator", choices=("block", "default"), default="block",
                        help="CPU allocator: binmark's block allocator (as binmark train uses) or PyTorch's default")
    parser.add_argument("--only", default="", help="measure only the configurations whose name contains TEXT")
    parser.add_argument("--cuda", action="store_true", help="measure on the GPU (torch.cuda.max_memory_allocated)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration (fresh processes); medians reported")
    parser.add_argument("--src", help="measure the binmark in DIR/src (e.g. a git worktree of an earlier commit)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error(f"--steps must be at least 2 (the first step's time is left out), got {args.steps}")
    if args.child:
        if args.src:
            sys.path.insert(0, os.path.join(args.src, "src"))
        print(json.dumps(train_steps(args.child, args.batch[0], args.size, args.cuda, args.steps, args.allocator)))
        return
    where = torch.cuda.get_device_name() if args.cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"peak training memory, {args.size}x{args.size}, 16 keypoints, SGD, {args.steps} steps, {where}; allocator per row")
    rows = []
    for batch in args.batch:
        for name in (n for n in CONFIGS if args.only in n):
            cmd = [sys.executable, __file__, "--child", name, "--batch", str(batch), "--size", str(args.size), "--steps", str(args.steps), "--allocator", args.allocator]
            cmd += (["--cuda"] if args.cuda else []) + (["--src", args.src] if args.src else [])
            runs = [json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]) for _ in range(args.repeat)]
            r = _median_row(runs)
            rows.append(r)
            live = f"   live {r['live_mb']:8.0f} MB" if "live_mb" in r else ""
            print(f"  batch {batch:3d}  {name:48s} peak +{r['peak_mb']:8.0f} MB{live}   step {r['step_s']:6.2f} s   ({r['allocator']})", flush=True)
    if args.json:
        from binmark.fileio import atomic_write

        atomic_write(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

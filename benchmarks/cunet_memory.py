"""CU-Net vs stacked hourglass: training memory of one step, parameters and packed size.

The hourglass is the CU-Net paper's baseline, Newell's 8-stack hourglass of bottleneck blocks
(``block="bottleneck"``, width 256: 25.4 M parameters).

Memory: each configuration runs in a fresh process; the figure is the growth of the peak resident
set (ru_maxrss) over one training step (forward + backward, batch 8, 256×256, MSE on all outputs),
measured from just before the step. On a GPU the same script reports torch.cuda peak allocation.

Run: .venv/bin/python benchmarks/cunet_memory.py [--batch 8] [--size 256] [--only TEXT]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from binmark import models
from binmark.quant import summary

CONFIGS = {  # name → (model, options)
    "CU-Net N=8 K=1, real, plain": ("cunet", {"num_unets": 8, "order": 1, "memory_efficient": False, "quant": "real"}),
    "CU-Net N=8 K=1, real, memory-efficient": ("cunet", {"num_unets": 8, "order": 1, "memory_efficient": True, "quant": "real"}),
    "CU-Net N=8 K=1, W1A8G8, plain": ("cunet", {"num_unets": 8, "order": 1, "memory_efficient": False, "quant": "cunet_w1a8g8"}),
    "CU-Net N=8 K=1, W1A8G8, memory-efficient": ("cunet", {"num_unets": 8, "order": 1, "memory_efficient": True, "quant": "cunet_w1a8g8"}),
    "hourglass 8 stacks (bottleneck), real": ("hourglass", {"stacks": 8, "block": "bottleneck", "quant": "real"}),
}
SIZES = {
    "CU-Net N=8 K=1 real": ("cunet", {"num_unets": 8, "order": 1, "quant": "real"}),
    **{f"CU-Net N=8 K=1 {p[6:].upper()}": ("cunet", {"num_unets": 8, "order": 1, "quant": p})
       for p in ("cunet_w1a8g8", "cunet_w1a1g8", "cunet_w2a2g8", "cunet_w4a4g8", "cunet_w8a8g8")},
    "CU-Net N=8 K=1 W1A8G8, 1×1 quantized too": ("cunet", {"num_unets": 8, "order": 1, "quant": "cunet_w1a8g8", "quantize_1x1": True}),
    "CU-Net N=8 K=1 W1A1G8, 1×1 quantized too": ("cunet", {"num_unets": 8, "order": 1, "quant": "cunet_w1a1g8", "quantize_1x1": True}),
    "CU-Net N=4 K=1, 2 refinement passes, W1A8G8": ("cunet", {"num_unets": 4, "order": 1, "refine_iters": 2, "quant": "cunet_w1a8g8"}),
    "hourglass 8 stacks (bottleneck) real": ("hourglass", {"stacks": 8, "block": "bottleneck", "quant": "real"}),
    "hourglass 8 stacks (bottleneck) bulat17": ("hourglass", {"stacks": 8, "block": "bottleneck", "quant": "bulat17"}),
}  # fmt: skip


def one_step(name: str, batch: int, size: int) -> dict:
    """Run in a child process: build, then one training step; report the memory growth."""
    torch.manual_seed(0)
    model_name, opts = CONFIGS[name]
    model = models.build(model_name, 16, **opts).train()
    x = torch.randn(batch, 3, size, size)
    target = torch.rand(batch, 16, size // 4, size // 4)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tic = time.perf_counter()
    loss = sum(((o - target) ** 2).mean() for o in model(x))
    loss.backward()
    seconds = time.perf_counter() - tic
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"name": name, "peak_mb": (after - before) / 1024, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--only", default="", help="measure only the configurations whose name contains TEXT")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_step(args.child, args.batch, args.size)))
        return
    print(f"training memory, one step, batch {args.batch}, {args.size}x{args.size}, threads {torch.get_num_threads()}")
    for name in (n for n in CONFIGS if args.only in n):
        out = subprocess.run([sys.executable, __file__, "--child", name, "--batch", str(args.batch), "--size", str(args.size)],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        r = json.loads(out.strip().splitlines()[-1])
        print(f"  {name:45s} peak +{r['peak_mb']:8.0f} MB   {r['seconds']:6.1f} s")
    print("\nparameters and sizes (binmark summary, 256x256)")
    for name, (model_name, opts) in ((n, v) for n, v in SIZES.items() if args.only in n):
        s = summary(models.build(model_name, 16, **opts), (1, 3, 256, 256))
        print(f"  {name:45s} params {s.total_params:>11,}   packed {s.packed_bytes / 1e6:7.3f} MB   "
              f"float32 {s.float32_bytes / 1e6:7.3f} MB   {s.compression_ratio:5.1f}x   binary MACs {100 * s.binary_mac_share:5.1f} %")  # fmt: skip


if __name__ == "__main__":
    main()

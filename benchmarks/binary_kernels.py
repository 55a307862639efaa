"""AMX ±1 int8 tiles against the popcount kernel, per binary-conv shape of a model.

    .venv/bin/python benchmarks/binary_kernels.py [--width 256] [--size 256]

For every binary convolution shape of the 1-stack binary HPM hourglass (width and input size
configurable) the fused engine times its two kernels once, on random data, one thread, kernel
only (no epilogue), best of 3 runs — the measurement behind its per-shape choice
(``binmark.deploy.engine.binary_choices``). Prints one row per shape: the popcount tier, AMX
(TDPBSSD on ±1 bytes), the ratio and the binary GMAC/s of the faster. Needs a CPU with AMX for
the AMX column (otherwise only popcount is timed).
"""

from __future__ import annotations

import argparse

from binmark.deploy import pack
from binmark.deploy.engine import binary_choices, config_for
from binmark.models import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    packed = pack(build("hourglass", 16, quant="bulat17", width=args.width).eval(), precision="fast")
    packed.plan(args.size, args.size)  # builds the plan, which times each shape once
    print(f"kernel config: {config_for('fast')}")
    print(f"{'binary conv (C_in→C_out k @ H×W)':<34}{'popcount ms':>12}{'AMX ms':>9}{'AMX/pop':>9}{'chosen':>9}{'GMAC/s':>9}")
    for (cin, cout, kh, kw, _, _, _, _, h, w), t in sorted(binary_choices().items(), key=lambda kv: (-kv[0][8], -kv[0][0])):
        macs = cin * cout * kh * kw * h * w
        best = min(t["popcount"], t["amx"]) if t["amx"] > 0 else t["popcount"]
        ratio = f"{t['amx'] / t['popcount']:.2f}" if t["amx"] > 0 else "-"
        amx = f"{1e3 * t['amx']:.3f}" if t["amx"] > 0 else "-"
        print(f"{f'{cin}→{cout} {kh}x{kw} @ {h}x{w}':<34}{1e3 * t['popcount']:>12.3f}{amx:>9}{ratio:>9}{t['chosen']:>9}{macs / best / 1e9:>9.0f}")


if __name__ == "__main__":
    main()

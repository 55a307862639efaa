"""Landmark drift of the fused engine's precision settings against ``precision="exact"``.

    .venv/bin/python benchmarks/precision.py [MODEL.bmk] [--faces 200]

Runs the Localizer with the packed model (default ``demo_out/model.bmk``, written by ``make
demo``) on held-out synthetic faces with their boxes, once per setting, and reports the distance
between each setting's landmarks and the exact setting's, in pixels of the 256×256 input images:
mean, maximum, and the share of landmarks that moved more than 0.01 px. The issue's criterion for
making "fast" the default: mean ≤ 0.05 px.
"""

from __future__ import annotations

import argparse

import numpy as np

from binmark import Localizer
from binmark.data import synthetic
from binmark.deploy.engine import config_for


def landmarks(model: str, precision: str, faces: int) -> np.ndarray:
    loc = Localizer(model, precision=precision)
    val = synthetic("face", faces, seed=1, image_size=256)
    out = []
    for i in range(faces):
        s = val[i]
        side = s["scale"] * 200
        box = np.array([[s["center"][0] + 0.5 - side / 2, s["center"][1] + 0.5 - side / 2, side, side]])
        out.append(loc.predict(s["image"], boxes=box)[0][0])
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="demo_out/model.bmk")
    parser.add_argument("--faces", type=int, default=200)
    args = parser.parse_args()
    exact = landmarks(args.model, "exact", args.faces)
    print(f"{args.model}: {args.faces} faces, {exact.shape[1]} landmarks each")
    for precision in ("fast", "bf16"):
        d = np.linalg.norm(landmarks(args.model, precision, args.faces) - exact, axis=-1)
        print(f"{precision:5s} ({config_for(precision)}): mean {d.mean():.4f} px, max {d.max():.3f} px, "
              f"moved > 0.01 px: {100 * np.mean(d > 0.01):.2f} %")  # fmt: skip


if __name__ == "__main__":
    main()

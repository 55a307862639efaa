"""How many weight-gradient entries of CU-Net's binary 3×3 convs survive 8-bit gradient quantization.

One training step's backward of CU-Net W1A8G8 on synthetic 300-W-style faces with the official
recipe's geometry (256×256 input, 64×64 heatmaps, the code's "cunet" targets at σ = 1, MSE summed
over the supervised outputs), once per ``grad_scale``, same weights and batch. Reported: the share
of nonzero entries of the quantized 3×3 convs' latent-weight gradients.

Run: .venv/bin/python benchmarks/grad_survival.py [--unets 4] [--batch 8]
"""

from __future__ import annotations

import argparse

import torch

from binmark import models
from binmark.data import TopDownDataset, synthetic
from binmark.data.dataset import collate
from binmark.heatmaps import HeatmapCodec
from binmark.quant import QuantConv2d, QuantSpec
from binmark.quant.grad import GRAD_SCALES


def survival(scale: str, unets: int, images: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of nonzero 3×3 binary-weight gradient entries after one backward pass."""
    torch.manual_seed(0)
    spec = QuantSpec.preset("cunet_w1a8g8").replace(grad_scale=scale)
    model = models.build("cunet", 68, num_unets=unets, order=1, quant=spec).train()
    loss = sum(((out - targets) ** 2).mean() for out in model(images))
    loss.backward()
    grads = [m.weight.grad for m in model.modules() if isinstance(m, QuantConv2d) and m.kernel_size == (3, 3)]
    return sum(int(g.count_nonzero()) for g in grads) / sum(g.numel() for g in grads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unets", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    codec = HeatmapCodec(256, 64, 1.0, "cunet")
    data = TopDownDataset(synthetic("face", args.batch, seed=0), codec)
    images, targets, _ = collate([data[i] for i in range(args.batch)])
    for scale in GRAD_SCALES:
        share = survival(scale, args.unets, images, targets)
        print(f"grad_scale={scale:9s} nonzero 3×3 weight-gradient entries: {100 * share:.1f} %")


if __name__ == "__main__":
    main()

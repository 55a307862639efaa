"""``summary(model)``: parameters and MACs per bit width, packed size, compression (larq style).

Counting rules (larq ``models.summary``, adapted):

- A parameter's bit width is its layer's: the latent weight of a ``QuantConv2d`` counts at
  ``spec.weight_bits`` (1 for binary, 2 for ternary, k for k-bit); every other
  parameter (biases, BN γ/β, learned scales and thresholds, real layers) counts at 32 bits.
- MACs are counted for ``nn.Conv2d`` (``QuantConv2d`` included) and ``nn.Linear`` by running one
  forward pass on ``input_size``: output elements × (C_in/groups · kh · kw), for the whole batch
  given. A MAC's bit width is max(input bits, weight bits), a ``QuantConv2d``'s from its ``spec``
  (``act_bits``, ``weight_bits``); binary ops (1-bit × 1-bit, done as
  XNOR-popcount) are the MACs under bits = 1. BN, pooling, additions and upsampling are not counted.
- ``packed_bytes`` = Σ over parameter tensors of ⌈bits · count / 8⌉: 1-bit weights bit-packed,
  k-bit at k bits, the rest float32. BN running statistics are buffers, not parameters: once folded
  into a per-channel scale and bias they cost what γ and β cost, which are counted.
- ``float32_bytes`` = 4 bytes per parameter. Sizes print in MB (10^6 bytes) and MiB (2^20).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from binmark.quant.conv import QuantConv2d

__all__ = ["LayerProfile", "ModelSummary", "summary", "compare"]


@dataclass(frozen=True)
class LayerProfile:
    """One convolution or linear layer: its bit widths, weight count and MACs."""

    name: str
    kind: str
    weight_bits: int
    input_bits: int
    weights: int
    macs: int
    output_shape: tuple[int, ...]

    @property
    def mac_bits(self) -> int:
        """max(input bits, weight bits)."""
        return max(self.weight_bits, self.input_bits)


@dataclass
class ModelSummary:
    """What :func:`summary` measured. ``str()`` renders the totals; ``table()`` can add layers."""

    model_name: str
    input_size: tuple[int, ...]
    params_by_bits: dict[int, int]
    macs_by_bits: dict[int, int]
    packed_bytes: int
    float32_bytes: int
    layers: list[LayerProfile] = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return sum(self.params_by_bits.values())

    @property
    def total_macs(self) -> int:
        return sum(self.macs_by_bits.values())

    @property
    def compression_ratio(self) -> float:
        """float32 size / packed size."""
        return self.float32_bytes / self.packed_bytes if self.packed_bytes else float("nan")

    @property
    def ops(self) -> float:
        """Operations in the usual binary-network convention: real MACs + binary MACs / 64
        (ReActNet, Bi-Real Net); a b-bit MAC counts b²/64 (its bit operations / 64)."""
        return float(sum(m if b >= 32 else m * b * b / 64 for b, m in self.macs_by_bits.items()))

    @property
    def binary_mac_share(self) -> float:
        """Fraction (0..1) of MACs that are binary ops."""
        total = self.total_macs
        return self.macs_by_bits.get(1, 0) / total if total else 0.0

    def to_dict(self) -> dict[str, object]:
        """Totals as plain numbers (bytes, counts, ratios)."""
        return {
            "model": self.model_name,
            "input_size": list(self.input_size),
            "params": self.total_params,
            "params_by_bits": {str(k): v for k, v in sorted(self.params_by_bits.items())},
            "macs": self.total_macs,
            "macs_by_bits": {str(k): v for k, v in sorted(self.macs_by_bits.items())},
            "packed_bytes": self.packed_bytes,
            "float32_bytes": self.float32_bytes,
            "compression_ratio": self.compression_ratio,
            "ops": self.ops,
            "binary_mac_share": self.binary_mac_share,
        }

    def table(self, per_layer: bool = False) -> str:
        """The totals table, preceded by a per-layer table when ``per_layer``."""
        head = f"{self.model_name}, input {tuple(self.input_size)}"
        totals = compare({"value": self})
        if not per_layer:
            return f"{head}\n{totals}"
        return f"{head}\n{_layer_table(self.layers)}\n\n{totals}"

    def __str__(self) -> str:
        return self.table()


def _bits_of_param(module: nn.Module, pname: str) -> int:
    if isinstance(module, QuantConv2d) and pname == "weight":
        return module.spec.weight_bits
    return 32


def _count_params(model: nn.Module) -> tuple[dict[int, int], int]:
    by_bits: dict[int, int] = defaultdict(int)
    packed = 0
    seen: set[int] = set()
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:  # shared parameters count once
                continue
            seen.add(id(p))
            bits = _bits_of_param(module, pname)
            by_bits[bits] += p.numel()
            packed += math.ceil(bits * p.numel() / 8)
    return dict(by_bits), packed


def _layer_bits(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, QuantConv2d):
        return module.spec.weight_bits, module.spec.act_bits
    return 32, 32


def _profile_layers(model: nn.Module, input_size: Sequence[int]) -> list[LayerProfile]:
    layers: list[LayerProfile] = []
    handles = []

    def hook(name: str):
        def record(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                per_output = module.in_channels // module.groups * kh * kw
            else:
                per_output = module.in_features  # type: ignore[assignment]
            w_bits, a_bits = _layer_bits(module)
            layers.append(
                LayerProfile(
                    name=name,
                    kind=type(module).__name__,
                    weight_bits=w_bits,
                    input_bits=a_bits,
                    weights=module.weight.numel(),
                    macs=output.numel() * per_output,
                    output_shape=tuple(output.shape),
                )
            )

        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        model.eval()
        with torch.no_grad():
            model(torch.zeros(*input_size, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return layers


def summary(model: nn.Module, input_size: Sequence[int] = (1, 3, 256, 256)) -> ModelSummary:
    """Measure a model: parameters and MACs per bit width, packed and float32 sizes.

    Args:
        model: any module whose quantized layers are ``QuantConv2d``; it is run once in eval mode
            (its mode is restored).
        input_size: the input: an image size (w, h) in pixels, as everywhere in binmark (one
            RGB image), or a whole input tensor shape (N, C, H, W), as torchinfo takes it; MACs
            are for this whole batch. :attr:`ModelSummary.input_size` is the tensor shape.

    Returns:
        A :class:`ModelSummary`; see the module docstring for the counting rules.
    """
    shape = tuple(input_size)
    if len(shape) == 2:
        shape = (1, 3, shape[1], shape[0])
    if len(shape) != 4:
        raise ValueError(f"summary: input_size is (w, h) or (N, C, H, W), got {tuple(input_size)}")
    params_by_bits, packed = _count_params(model)
    layers = _profile_layers(model, shape)
    macs: dict[int, int] = defaultdict(int)
    for layer in layers:
        macs[layer.mac_bits] += layer.macs
    return ModelSummary(
        model_name=type(model).__name__,
        input_size=shape,
        params_by_bits=params_by_bits,
        macs_by_bits=dict(macs),
        packed_bytes=packed,
        float32_bytes=4 * sum(params_by_bits.values()),
        layers=layers,
    )


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3f} {unit}"
    return f"{int(n)}"


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e6:.3f} MB ({nbytes / 2**20:.3f} MiB)"


def _bits_label(bits: int) -> str:
    return "binary" if bits == 1 else f"{bits}-bit"


def _rows(s: ModelSummary, all_param_bits: list[int], all_mac_bits: list[int]) -> list[str]:
    rows = [f"{s.total_params:,}"]
    rows += [f"{s.params_by_bits.get(b, 0):,}" for b in all_param_bits]
    rows += [_count(s.total_macs)]
    rows += [_count(s.macs_by_bits.get(b, 0)) for b in all_mac_bits]
    rows += [
        _count(s.ops),
        _size(s.packed_bytes),
        _size(s.float32_bytes),
        f"{s.compression_ratio:.1f}x",
        f"{100 * s.binary_mac_share:.1f} %",
    ]
    return rows


def compare(summaries: Mapping[str, ModelSummary]) -> str:
    """Render one or more summaries side by side, one column per entry."""
    param_bits = sorted({b for s in summaries.values() for b in s.params_by_bits})
    mac_bits = sorted({b for s in summaries.values() for b in s.macs_by_bits})
    labels = ["parameters"] + [f"  {_bits_label(b)} weights" for b in param_bits]
    labels += ["MACs"] + [f"  {_bits_label(b)} MACs" for b in mac_bits]
    labels += ["OPs (real MACs + binary/64)", "packed size", "float32 size", "compression", "binary-op share of MACs"]
    columns = [_rows(s, param_bits, mac_bits) for s in summaries.values()]
    headers = list(summaries)
    widths = [max(len(h), *(len(c) for c in col)) for h, col in zip(headers, columns)]
    label_w = max(len(x) for x in labels)
    lines = ["  ".join([" " * label_w] + [h.rjust(w) for h, w in zip(headers, widths)])]
    lines.append("-" * len(lines[0]))
    for i, label in enumerate(labels):
        cells = [col[i].rjust(w) for col, w in zip(columns, widths)]
        lines.append("  ".join([label.ljust(label_w)] + cells))
    return "\n".join(lines)


def _layer_table(layers: list[LayerProfile]) -> str:
    header = ("layer", "type", "W", "A", "weights", "MACs", "output")
    rows = [
        (
            lp.name,
            lp.kind,
            str(lp.weight_bits),
            str(lp.input_bits),
            f"{lp.weights:,}",
            _count(lp.macs),
            "x".join(str(d) for d in lp.output_shape),
        )
        for lp in layers
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)

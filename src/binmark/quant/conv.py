"""``QuantConv2d``: ``nn.Conv2d`` whose forward quantizes its input and its latent float weight.

Training uses fake quantization in float: the layer keeps the float ("latent") weight, and every
forward computes

    y = conv2d(q_in(g(x)), q_w(g(W)), bias)

where q_in and q_w are the input and weight quantizers chosen by the ``QuantSpec`` and g is the
gradient quantizer (identity in forward; with ``grad_scale="official"`` it acts on the weight
only, as the CU-Net code). The modules are exposed as ``input_quantizer``,
``weight_quantizer`` and ``grad_quantizer``.

Bit widths: the layer's read-only ``spec`` is the one source of its bit widths —
``spec.weight_bits``, ``spec.act_bits``, ``spec.grad_bits`` and ``spec.is_binary`` are what
:func:`binmark.quant.summary`, training's weight clipping and the packer read. The quantizers are built from the
spec (``make_*_quantizer``), and their ``bits`` attributes equal the spec's by construction (a
ternary weight quantizer has ``bits = 2`` = ``weight_bits``); they are there for display, not to be
read instead of the spec. The spec is fixed at construction: a layer with other bit widths is a
new layer (:meth:`QuantConv2d.from_conv`).

Padding: zero padding is applied *after* the input quantizer, so with 1-bit activations the
border taps of a padded convolution see 0, not ±1 (the input is ternary there). This is what the
seed models were trained with (Torch's and PyTorch's convolutions pad with zeros). A bit-packed
XNOR-popcount kernel cannot represent 0, so the packed runtime computes with +1 in the padding and
subtracts a per-position correction on the border outputs, reproducing zero padding exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from binmark.quant.kbit import DoReFaAct, WageQuant
from binmark.quant.saving import Grid, packed_saves_enabled, quant_conv2d
from binmark.quant.spec import (
    QuantSpec,
    as_spec,
    make_grad_quantizer,
    make_input_quantizer,
    make_weight_quantizer,
)

__all__ = ["QuantConv2d"]


def _input_grid(q: nn.Module, bits: int) -> Grid | None:
    """What a layer's quantized input holds, for packed saves (:mod:`binmark.quant.saving`)."""
    if bits == 1:
        return (0.0, torch.int8)  # ±1: signs as bits
    if isinstance(q, WageQuant) and bits <= 8:
        return (1.0, torch.int8) if bits == 2 else (float(2 ** (bits - 1)), torch.int8)  # codes |c| ≤ 2^(k−1) − 1
    if isinstance(q, DoReFaAct) and bits <= 8:
        return (float(2**bits - 1), torch.int8 if bits < 8 else torch.uint8)  # codes 0 … 2^k − 1
    return None


class QuantConv2d(nn.Conv2d):
    """A 2-D convolution with quantized input, weight and gradients (see the module docstring).

    Takes ``nn.Conv2d``'s arguments, with ``bias=False`` by default (binary layers are followed by
    BN), plus:

    Args:
        spec: a ``QuantSpec`` or a preset name ("real", "xnor", "bulat17", …). With "real" the
            layer computes exactly what ``nn.Conv2d`` computes.

    Shape:
        x: (N, C_in, H, W) → (N, C_out, H_out, W_out), as ``nn.Conv2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        spec: QuantSpec | str = QuantSpec(),
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        self._spec = as_spec(spec)
        self.input_quantizer = make_input_quantizer(self.spec, in_channels)
        self.weight_quantizer = make_weight_quantizer(self.spec, out_channels)
        self.grad_quantizer = make_grad_quantizer(self.spec)
        self._grid = _input_grid(self.input_quantizer, self.spec.act_bits)
        self.to(device=self.weight.device, dtype=self.weight.dtype)
        self.reset_scales()

    @property
    def spec(self) -> QuantSpec:
        """The layer's quantization (read-only): the one source of its bit widths (module docstring)."""
        return self._spec

    def reset_scales(self) -> None:
        """Initialise learned weight scales from the current weight (call after loading weights)."""
        reset = getattr(self.weight_quantizer, "reset_scale", None)
        if reset is not None:
            reset(self.weight)

    def quantized_weight(self) -> Tensor:
        """The weight the convolution uses: q_w(W), shape (C_out, C_in/groups, kh, kw)."""
        return self.weight_quantizer(self.grad_quantizer(self.weight))

    def keeps_input_packed(self) -> bool:
        """Whether, for backward, the layer now keeps only bits or bytes of its input (packed
        saves on; a clipped sign or WAGE input quantizer, whose mask is kept as bits; ±1 or k-bit
        codes into the conv; numeric zero padding). A float tensor given to it is then not kept
        by it."""
        spec = self.spec
        masked = spec.ste == "clipped" if spec.act_bits == 1 else spec.kbit == "wage"
        numeric = self.padding_mode == "zeros" and not isinstance(self.padding, str)
        return self._grid is not None and masked and numeric and packed_saves_enabled()

    def forward(self, x: Tensor) -> Tensor:
        if getattr(self.grad_quantizer, "inputs", False):
            x = self.grad_quantizer(x)
        x = self.input_quantizer(x)
        if self.padding_mode != "zeros":
            return self._conv_forward(x, self.quantized_weight(), self.bias)
        return quant_conv2d(x, self.quantized_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups, self._grid)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, spec: QuantSpec | str) -> QuantConv2d:
        """A ``QuantConv2d`` with ``conv``'s hyper-parameters, a copy of its weight and bias, on
        its device and dtype, quantized per ``spec``."""
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding,  # type: ignore[arg-type]
            dilation=conv.dilation,  # type: ignore[arg-type]
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
            spec=spec,
        )
        with torch.no_grad():
            new.weight.copy_(conv.weight)
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        new.reset_scales()
        new.train(conv.training)
        return new

    def extra_repr(self) -> str:
        s = self.spec
        return (
            super().extra_repr()
            + f", bits=W{s.weight_bits}A{s.act_bits}G{s.grad_bits}"
        )

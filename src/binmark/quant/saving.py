"""What quantized layers keep for the backward pass: packed, so that training a binary network
really needs less memory.

Fake quantization in float keeps float32 tensors for backward that hold a few bits of information:
a sign's straight-through estimator keeps its whole input to compute a 0/1 mask, and the
convolution keeps its ±1 (or k-bit) input as float32. With packed saves (on by default):

- a clipped straight-through estimator (``sign_ste``, WAGE's ``|x| < 1`` mask) keeps the mask as
  bits (1 bit an element instead of 32);
- a ``QuantConv2d`` with 1-bit inputs keeps their signs as bits; with WAGE or DoReFa k-bit inputs
  (k ≤ 8) it keeps the integer codes in 8 bits (int8, uint8 for 8-bit DoReFa) and rebuilds the
  values exactly;
- the quantized weight is kept as the convolution keeps it (weights are small).

Backward computes from the unpacked values with the same operations autograd runs
(``aten.convolution_backward``, the same mask product), so gradients are identical bit for bit
(``tests/quant/test_saving.py`` checks every straight-through estimator, weight scale and k-bit
mode). Surrogates that need the input's value (ApproxSign, SignSwish) keep it in float, as before;
their layers still keep the convolution input as bits. The packing is plain PyTorch, so it runs on
any device.

Turn it off with ``set_packed_saves(False)`` or, for a block of code, ``with packed_saves(False):``
(training: ``train.packed_saves: false``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["packed_saves", "set_packed_saves", "packed_saves_enabled", "pack_bits", "unpack_bits", "unpack_values", "masked_ste", "quant_conv2d", "Grid"]

#: what a quantized conv input holds: ``(levels, code dtype)`` — levels 0: ±1 values (kept as
#: bits); k > 0: values code / k with integer codes that fit the dtype (kept as those codes)
Grid = tuple[float, torch.dtype]

_ENABLED = True


def set_packed_saves(enabled: bool) -> None:
    """Switch packed saves on or off for the whole process."""
    global _ENABLED
    _ENABLED = bool(enabled)


def packed_saves_enabled() -> bool:
    """Whether quantized layers currently save packed tensors for backward (switched on, and not
    inside a TorchScript trace or an ONNX export, which record plain ops)."""
    return _ENABLED and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export()


@contextlib.contextmanager
def packed_saves(enabled: bool) -> Iterator[None]:
    """Packed saves on or off inside a ``with`` block (the previous setting afterwards)."""
    previous = _ENABLED
    set_packed_saves(enabled)
    try:
        yield
    finally:
        set_packed_saves(previous)


_SPREAD = 0x0102040810204080  # × 8 bytes of 0/1 → their bits, LSB first, in the top byte
_SHIFTS: dict[torch.device, Tensor] = {}


def pack_bits(mask: Tensor) -> Tensor:
    """A boolean tensor as uint8 bytes, 8 elements a byte (LSB first), flattened and zero-padded."""
    flat = mask.reshape(-1)
    pad = (-flat.numel()) % 8
    if pad or flat.storage_offset() % 8:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    words = flat.view(torch.uint8).view(torch.int64)  # 8 elements a word, one byte each
    return ((words * _SPREAD) >> 56).to(torch.uint8)


def _bits01(packed: Tensor, n: int) -> Tensor:
    """The first ``n`` bits of ``packed`` as a flat uint8 tensor of 0/1."""
    shifts = _SHIFTS.get(packed.device)
    if shifts is None:
        shifts = _SHIFTS[packed.device] = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = packed[:, None] >> shifts
    return bits.bitwise_and_(1).reshape(-1)[:n]


def unpack_bits(packed: Tensor, shape: Sequence[int]) -> Tensor:
    """Inverse of :func:`pack_bits`: the boolean tensor of ``shape``."""
    return _bits01(packed, _numel(shape)).reshape(tuple(shape)).bool()


def unpack_values(packed: Tensor, shape: Sequence[int], dtype: torch.dtype, low: float) -> Tensor:
    """Bits as a float tensor of ``shape``: 1 → 1, 0 → ``low`` (0 for a mask, −1 for signs)."""
    x = _bits01(packed, _numel(shape)).reshape(tuple(shape)).to(dtype)
    return x if low == 0 else x.mul_(1.0 - low).add_(low)


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


class _MaskedSTE(torch.autograd.Function):
    """``value`` forward; backward the gradient times the 0/1 mask, kept as bits."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, value: Tensor, passes: Tensor) -> Tensor:  # type: ignore[override]
        ctx.shape, ctx.dtype = passes.shape, x.dtype
        ctx.save_for_backward(pack_bits(passes))
        return value.view_as(value)  # a view: no copy of the value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (bits,) = ctx.saved_tensors
        return unpack_values(bits, ctx.shape, ctx.dtype, 0.0).mul_(grad), None, None


def masked_ste(x: Tensor, value: Tensor, passes: Tensor) -> Tensor:
    """``value`` in forward; in backward the gradient of ``x`` times the boolean ``passes``.

    With packed saves the mask is kept as bits; otherwise as autograd keeps ``x · mask``.
    """
    if x.requires_grad and torch.is_grad_enabled() and packed_saves_enabled():
        return _MaskedSTE.apply(x, value.detach(), passes.detach())
    return value.detach() + (x - x.detach()) * passes.to(x.dtype)


class _PackedInputConv(torch.autograd.Function):
    """F.conv2d that keeps its quantized input packed (signs as bits, k-bit codes as int8)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, conv: tuple, grid: Grid) -> Tensor:  # type: ignore[override]
        stride, padding, dilation, groups = conv
        levels, dtype = grid
        ctx.conv, ctx.levels, ctx.shape, ctx.dtype = conv, levels, x.shape, x.dtype
        ctx.bias_sizes = None if bias is None else list(bias.shape)
        packed = pack_bits(x > 0) if levels == 0 else torch.round(x * levels).to(dtype)
        ctx.save_for_backward(packed, weight)
        return torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        packed, weight = ctx.saved_tensors
        if ctx.levels == 0:
            x = unpack_values(packed, ctx.shape, ctx.dtype, -1.0)
        else:
            x = packed.to(ctx.dtype) / ctx.levels
        stride, padding, dilation, groups = ctx.conv
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, ctx.bias_sizes, list(stride), list(padding), list(dilation), False, [0, 0], groups, mask
        )
        return gx, gw, gb, None, None


def quant_conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any, dilation: Any, groups: int, grid: Grid | None
) -> Tensor:
    """``F.conv2d`` of a quantized input (zero padding, numeric ``padding``).

    Args:
        grid: what ``x`` holds (:data:`Grid`), or None for anything else (kept as autograd keeps it).
    """
    wanted = grid is not None and (x.requires_grad or weight.requires_grad) and torch.is_grad_enabled()
    if wanted and not isinstance(padding, str) and packed_saves_enabled():
        return _PackedInputConv.apply(x, weight, bias, (stride, padding, dilation, groups), grid)
    return torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)

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
- the quantized weight is kept as the convolution keeps it (weights are small);
- 2×2 max pooling (:class:`WindowMaxPool2d`, :func:`window_max_pool2d`) keeps each window's
  argmax as one byte, not its float input and int64 indices (PyTorch's ``max_pool2d`` keeps
  both), and a ReLU in front of it keeps nothing; real-valued networks use it too;
- a tensor that is cheap to recompute from a smaller one (CU-Net's nearest 2× upsampling) can be
  kept as nothing and rebuilt in backward (:func:`rebuilt_saves`).

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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "packed_saves", "set_packed_saves", "packed_saves_enabled", "pack_bits", "unpack_bits", "unpack_values",
    "masked_ste", "quant_conv2d", "Grid", "window_max_pool2d", "WindowMaxPool2d", "rebuilt_saves",
]  # fmt: skip

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
_TABLES: dict[tuple[float, torch.dtype, torch.device], Tensor] = {}


def pack_bits(mask: Tensor) -> Tensor:
    """A boolean tensor as uint8 bytes, 8 elements a byte (LSB first), flattened and zero-padded."""
    flat = mask.reshape(-1)
    pad = (-flat.numel()) % 8
    if pad or flat.storage_offset() % 8:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    words = flat.view(torch.uint8).view(torch.int64)  # 8 elements a word, one byte each
    return ((words * _SPREAD) >> 56).to(torch.uint8)


def unpack_values(packed: Tensor, shape: Sequence[int], dtype: torch.dtype, low: float) -> Tensor:
    """Bits as a tensor of ``shape`` and ``dtype``: 1 → 1, 0 → ``low`` (0 for a mask, −1 for
    signs); one gather from a 256 × 8 table of every byte's eight values."""
    key = (low, dtype, packed.device)
    table = _TABLES.get(key)
    if table is None:
        bits = (torch.arange(256, device=packed.device)[:, None] >> torch.arange(8, device=packed.device)) & 1
        table = _TABLES[key] = torch.where(bits.bool(), 1.0, low).to(dtype)
    return torch.index_select(table, 0, packed.long()).reshape(-1)[: _numel(shape)].reshape(tuple(shape))


def unpack_bits(packed: Tensor, shape: Sequence[int]) -> Tensor:
    """Inverse of :func:`pack_bits`: the boolean tensor of ``shape``."""
    return unpack_values(packed, shape, torch.bool, 0.0)


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


class _WindowMaxPool(torch.autograd.Function):
    """2×2 max pooling, stride 2 (of ReLU(x) with ``relu``), that keeps each window's argmax
    (0 … 3, row-major) as a byte.

    Forward is ``max_pool2d``'s (its values and its choice among ties). Backward rebuilds the int64
    indices from the bytes and runs ``max_pool2d_with_indices_backward``, the op autograd runs;
    that op reads only the input's shape, so it is given a zero-stride stand-in. A ReLU in front
    needs no mask of its own: at each argmax its output is the pooled value y, elsewhere its
    gradient is 0 either way, so ``threshold_backward(grad, y, 0)`` on the pooled grid, before the
    scatter, gives the same gradient bit for bit (y is kept anyway, as the next layer's input).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, relu: bool) -> Tensor:  # type: ignore[override]
        y, index = torch.ops.aten.max_pool2d_with_indices(torch.relu(x) if relu else x, [2, 2], [2, 2])
        width = x.shape[-1]
        offset = index - _window_starts(y.shape[-2], y.shape[-1], width, x.device)  # 0, 1, W or W + 1
        window = offset.sub_((offset >= width) * (width - 2)).to(torch.uint8)  # → 0, 1, 2, 3
        ctx.shape, ctx.width, ctx.relu = x.shape, width, relu
        ctx.save_for_backward(window, y if relu else None)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        window, y = ctx.saved_tensors
        if ctx.relu:
            grad = torch.ops.aten.threshold_backward(grad, y, 0)
        w = ctx.width
        offsets = torch.tensor([0, 1, w, w + 1], device=window.device)
        index = torch.take(offsets, window.long()).add_(_window_starts(grad.shape[-2], grad.shape[-1], w, window.device))
        stand_in = grad.new_empty(()).expand(ctx.shape)
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, stand_in, [2, 2], [2, 2], [0, 0], [1, 1], False, index), None


def _window_starts(ho: int, wo: int, width: int, device: torch.device) -> Tensor:
    """(ho, wo) int64: the flat index, in an input plane ``width`` wide, of each 2×2 window's
    top-left element."""
    rows = torch.arange(ho, device=device)[:, None] * (2 * width)
    return rows + torch.arange(wo, device=device)[None] * 2


def window_max_pool2d(x: Tensor, relu: bool = False) -> Tensor:
    """``F.max_pool2d(x, 2)`` (of ``torch.relu(x)`` with ``relu``) of an (N, C, H, W) tensor.

    With packed saves, while gradients are recorded, it keeps one byte per output element for
    backward (and no ReLU mask) instead of the input and int64 indices (:class:`_WindowMaxPool`);
    values and gradients are the same bit for bit.
    """
    if isinstance(x, Tensor) and x.dim() == 4 and x.requires_grad and torch.is_grad_enabled() and packed_saves_enabled():
        return _WindowMaxPool.apply(x, relu)
    return torch.nn.functional.max_pool2d(torch.relu(x) if relu else x, 2)


class WindowMaxPool2d(torch.nn.Module):
    """:func:`window_max_pool2d` as a module: 2×2, stride-2 max pooling (of ReLU(x) with
    ``relu``); in inference and export a plain ReLU and ``max_pool2d``."""

    def __init__(self, relu: bool = False) -> None:
        super().__init__()
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        return window_max_pool2d(x, self.relu)

    def extra_repr(self) -> str:
        return f"relu={self.relu}"


class _Rebuild:
    """What a rebuilt save keeps: the recipe, how many saves share it, and the value while the
    saves are being read (computed once for all of them, dropped after the last)."""

    def __init__(self, rebuild: Callable[[], Tensor]) -> None:
        self.rebuild, self.saves, self.reads, self.value = rebuild, 0, 0, None
        # the forward's autocast (mixed precision), restored for the rebuild as checkpointing does
        self.autocast = [(d, torch.get_autocast_dtype(d)) for d in ("cpu", "cuda") if torch.is_autocast_enabled(d)]

    def read(self) -> Tensor:
        if self.value is None:
            with torch.no_grad(), contextlib.ExitStack() as stack:
                for device, dtype in self.autocast:
                    stack.enter_context(torch.autocast(device, dtype=dtype))
                self.value = self.rebuild()
        value = self.value
        self.reads += 1
        self.value = None if self.reads % self.saves == 0 else value
        return value


@contextlib.contextmanager
def rebuilt_saves(rebuilds: Sequence[tuple[Tensor, Callable[[], Tensor]]]) -> Iterator[None]:
    """Inside the block, whatever autograd saves that is one of the given tensors is kept as
    nothing and rebuilt by its ``rebuild()`` when backward needs it (with packed saves on, for
    tensors that record gradients; otherwise a no-op). Saves of one tensor share one rebuild.

    ``rebuild()`` must return the tensor's values exactly (a deterministic recomputation, such as
    an upsampling, from tensors that are kept for backward anyway: what it refers to stays alive);
    it runs without recording gradients, under the forward's autocast. The graph and every gradient
    are unchanged. Built on ``torch.autograd.graph.saved_tensors_hooks``; inside the block, as
    inside ``torch.utils.checkpoint``, these hooks replace any outer ones (``save_on_cpu``).
    """
    active = packed_saves_enabled() and torch.is_grad_enabled()
    kept = {_identity(t): _Rebuild(fn) for t, fn in rebuilds if active and isinstance(t, Tensor) and t.requires_grad}
    if not kept:
        yield
        return

    def pack(t: Tensor) -> Any:
        found = kept.get(_identity(t))
        if found is None:
            return t
        found.saves += 1
        return found

    def unpack(saved: Any) -> Tensor:
        return saved.read() if isinstance(saved, _Rebuild) else saved

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield


def _identity(t: Tensor) -> tuple:
    return (t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, t.device)

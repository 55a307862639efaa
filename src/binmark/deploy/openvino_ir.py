"""OpenVINO IR export of a packed model, with real binary convolutions: runs without PyTorch.

:func:`to_openvino` writes an OpenVINO IR (``.xml`` + ``.bin``) built with OpenVINO's opset API:

- every ``PackedBinaryConv2d`` becomes a two-level ``FakeQuantize`` (the input's sign at the folded
  per-channel thresholds, output 0 for −1 and 1 for +1, the BatchNorm folded in) feeding a
  ``BinaryConvolution`` (``mode="xnor-popcount"``, ``u1`` weights), then a per-channel
  ``Multiply``/``Add`` (XNOR's α, the conv bias and a following BatchNorm). ``pad_value=0``
  reproduces binmark's zero padding exactly (OpenVINO leaves the padded taps out of the dot
  product; checked by ``tests/deploy/test_openvino.py``);
- real-valued layers are ordinary ops (``Convolution``, BatchNorm as ``Multiply``/``Add``,
  ``Relu``, ``PRelu``, pooling, nearest ``Interpolate``, ``Concat``, ``Add``), their weights float32
  or float16 (``real_dtype``; a ``Convert`` to float32 follows, as OpenVINO's own compression does);
- the :class:`~binmark.topdown.InferenceSpec` and the architecture travel in the model's
  ``rt_info`` under ``binmark`` (JSON), read back by :class:`OpenVINOModel`.

How the graph is made: the packed network runs once on a symbolic input (:class:`_Sym`, a
meta-device tensor whose operations ``__torch_function__`` records as OpenVINO nodes), so any
Python control flow of a model family (BiHRNet's branch lists) simply runs; an operation outside
the list above is an error naming it. k-bit layers (``PackedQuantConv2d``) have no OpenVINO
counterpart here and are refused.

Facts of OpenVINO's CPU plugin (2026.4) that the lowering works around, each covered by a test
(docs/deploy.md lists them with the measurements):

- ``u1`` weight bytes are read least-significant bit first (the order ``ConvToBinaryConv`` in
  OpenVINO's transformations writes);
- a ``BinaryConvolution`` whose input channel count is not a multiple of 8 computes wrong
  results; such inputs are padded to a multiple of 8 with channels fixed at +1 whose weights
  alternate +1/−1 (the pairs add 0; an odd leftover's +1 per valid tap is subtracted as a
  constant map);
- a residual sum feeding a binarization is fused wrongly (:func:`_guard_sums`);
- constant shifts and scales before a ``FakeQuantize`` are folded into its thresholds with
  rounding, which changes signs at exact ties: the export folds them itself (:func:`_thresholds`);
- the ``BinaryConvolution`` takes no dynamic shapes: the IR has a static input shape, and
  :class:`OpenVINOModel` reshapes it per batch size.

:func:`to_openvino` refuses to write a file unless OpenVINO's output equals the packed runtime's
on the exactly representable copy of the same architecture (:func:`binmark.deploy.exact.dyadic`),
within ``1e-3`` of the heatmap range, with OpenVINO in float32.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from binmark import __version__
from binmark.deploy.exact import dyadic, dyadic_input
from binmark.deploy.fileformat import PackedModel, pack
from binmark.deploy.layers import PackedBinaryConv2d, PackedQuantConv2d, unpack_words
from binmark.fileio import temp_path
from binmark.models import ARCH_ATTR, Architecture
from binmark.topdown import INFERENCE_ATTR, InferenceSpec

__all__ = ["to_openvino", "load_openvino", "OpenVINOModel", "REAL_DTYPES", "PRECISIONS", "TOLERANCE", "binary_layer_count"]

#: storage of the real-valued layers' weights in the IR
REAL_DTYPES = ("float16", "float32")
#: OpenVINO's inference precision: "exact" = float32; "bf16" = OpenVINO's CPU default (bfloat16
#: where the CPU has AMX or AVX-512 BF16, float32 elsewhere). bf16 moves the demo model's landmarks
#: by 0.75 px on average (the packed runtime's "fast": 0.0015 px), so "exact" is the default.
PRECISIONS = ("exact", "bf16")
#: the export check's bound: max |OpenVINO − packed| / heatmap range on the exact copy
TOLERANCE = 1e-3
_PAD_BLOCK = 8  # input channels of a BinaryConvolution: a multiple of this (see the module docstring)
#: the threshold of a channel whose sign is constant (a BatchNorm scale of 0): ±this. Finite and far
#: below the float32 maximum: with ±FLT_MAX the CPU plugin's results were wrong once it fused the
#: FakeQuantize into the previous layer (measured with OpenVINO 2026.4; 1e30 is exact)
_CONSTANT_SIGN = 1e30
_INPUT = "images"


def _ov() -> tuple[Any, Any]:
    try:
        import openvino as ov
        import openvino.opset13 as ops
    except ImportError as exc:
        raise ImportError("OpenVINO IR export and loading need openvino: pip install 'binmark[openvino]'") from exc
    return ov, ops


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    """The process's one OpenVINO Core (each Core loads the plugins and their thread pools anew)."""
    return _ov()[0].Core()


class _Sym(torch.Tensor):
    """A symbolic tensor: a meta-device tensor of the value's shape, carrying the OpenVINO output
    (``ov``) that computes it. Operations on it become OpenVINO nodes (``_Lowering.HANDLERS``)."""

    ov: Any

    @classmethod
    def __torch_function__(cls, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        handler = _Lowering.HANDLERS.get(func)
        if handler is not None:
            return handler(_Lowering.current, *args, **kwargs)
        unsupported = ValueError(f"OpenVINO export: the network uses {getattr(func, '__name__', func)}, which binmark does not lower to OpenVINO")
        try:  # shape queries (x.shape, x.dim()) answer from the meta tensor
            with torch._C.DisableTorchFunctionSubclass():
                result = func(*_unwrap(args), **_unwrap(kwargs))
        except RuntimeError:
            raise unsupported from None
        if isinstance(result, torch.Tensor) and any(isinstance(a, _Sym) for a in _flat(args, kwargs)):
            raise unsupported
        return result


def _flat(args: tuple, kwargs: dict) -> list[Any]:
    out: list[Any] = []
    for a in (*args, *kwargs.values()):
        out.extend(a if isinstance(a, (list, tuple)) else [a])
    return out


def _unwrap(x: Any) -> Any:
    """Symbolic tensors as plain meta tensors (for shape-only operations)."""
    if isinstance(x, _Sym):
        return x.as_subclass(torch.Tensor)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _const(values: Any) -> np.ndarray:
    """A float32 array of a parameter, buffer or number."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float32)


def _pair(v: Any) -> list[int]:
    return [int(v[0]), int(v[1])] if isinstance(v, (tuple, list)) else [int(v), int(v)]


class _Lowering:
    """One export: the OpenVINO nodes made so far and how real weights are stored."""

    current: _Lowering
    HANDLERS: dict[Callable, Callable[..., Any]] = {}

    def __init__(self, real_dtype: str) -> None:
        self.ov, self.ops = _ov()
        self.real_dtype = real_dtype

    def wrap(self, node: Any) -> _Sym:
        """A symbolic tensor for an OpenVINO node (its first output) or output."""
        out = node if hasattr(node, "get_node") else node.output(0)
        t = torch.empty([int(d) for d in out.get_partial_shape().to_shape()], device="meta").as_subclass(_Sym)
        t.ov = out
        return t

    def const(self, array: np.ndarray) -> Any:
        """A constant node holding a copy of ``array`` (never a view of memory that may be freed)."""
        return self.ov.op.Constant(np.require(array, requirements="C"), shared_memory=False)

    def channel(self, values: Any) -> Any:
        """A per-channel float32 constant shaped (1, C, 1, 1)."""
        return self.const(_const(values).reshape(1, -1, 1, 1))

    def weights(self, w: Tensor) -> Any:
        """A real layer's weight constant: float32, or float16 followed by a Convert."""
        if self.real_dtype == "float16":
            return self.ops.convert(self.const(w.detach().cpu().numpy().astype(np.float16)), "f32")
        return self.const(_const(w))

    # --------------------------------------------------------------------- real layers
    def conv2d(self, x: _Sym, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, groups: int = 1) -> _Sym:  # fmt: skip
        if isinstance(padding, str):
            raise ValueError("OpenVINO export: convolutions with string padding are not lowered")
        if groups != 1:
            raise ValueError("OpenVINO export: grouped real convolutions are not lowered")
        pad = _pair(padding)
        y = self.ops.convolution(x.ov, self.weights(weight), _pair(stride), pad, pad, _pair(dilation))
        if bias is not None:
            y = self.ops.add(y, self.channel(bias))
        return self.wrap(y)

    def batch_norm(self, x: _Sym, running_mean: Tensor, running_var: Tensor, weight: Tensor | None = None,
                   bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> _Sym:  # fmt: skip
        if training or running_mean is None:
            raise ValueError("OpenVINO export: BatchNorm in training mode (or without running statistics)")
        mean, var = running_mean.detach().double(), running_var.detach().double()
        gamma = weight.detach().double() if weight is not None else torch.ones_like(mean)
        beta = bias.detach().double() if bias is not None else torch.zeros_like(mean)
        s = gamma / torch.sqrt(var + eps)
        return self.wrap(self.ops.add(self.ops.multiply(x.ov, self.channel(s)), self.channel(beta - mean * s)))

    def relu(self, x: _Sym, inplace: bool = False) -> _Sym:
        return self.wrap(self.ops.relu(x.ov))

    def prelu(self, x: _Sym, weight: Tensor) -> _Sym:
        return self.wrap(self.ops.prelu(x.ov, self.const(_const(weight).reshape(-1))))

    def max_pool2d(self, x: _Sym, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                   ceil_mode: bool = False, return_indices: bool = False) -> _Sym:  # fmt: skip
        if _pair(dilation) != [1, 1] or return_indices:
            raise ValueError("OpenVINO export: dilated max pooling or pooling indices are not lowered")
        k, p = _pair(kernel_size), _pair(padding)
        y = self.ops.max_pool(x.ov, _pair(stride or kernel_size), [1, 1], p, p, k, "ceil" if ceil_mode else "floor")
        return self.wrap(y.output(0))

    def avg_pool2d(self, x: _Sym, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                   count_include_pad: bool = True, divisor_override: int | None = None) -> _Sym:  # fmt: skip
        if divisor_override is not None:
            raise ValueError("OpenVINO export: average pooling with divisor_override is not lowered")
        k, p = _pair(kernel_size), _pair(padding)
        y = self.ops.avg_pool(x.ov, _pair(stride or kernel_size), p, p, k, not count_include_pad, "ceil" if ceil_mode else "floor")
        return self.wrap(y)

    def interpolate(self, x: _Sym, size: Any = None, scale_factor: Any = None, mode: str = "nearest", **kw: Any) -> _Sym:
        if mode != "nearest" or scale_factor is None or kw.get("align_corners") or kw.get("recompute_scale_factor"):
            raise ValueError("OpenVINO export: only nearest interpolation by a scale factor is lowered")
        sh, sw = (float(v) for v in _pair(scale_factor)) if isinstance(scale_factor, (tuple, list)) else (float(scale_factor),) * 2
        h, w = x.shape[2], x.shape[3]
        if (h * sh) % 1 or (w * sw) % 1:
            raise ValueError("OpenVINO export: interpolation to a fractional size")
        sizes = self.const(np.array([int(h * sh), int(w * sw)], dtype=np.int64))
        y = self.ops.interpolate(x.ov, sizes, "nearest", "sizes", axes=self.const(np.array([2, 3], dtype=np.int64)),
                                 coordinate_transformation_mode="asymmetric", nearest_mode="floor")  # fmt: skip
        return self.wrap(y)

    def cat(self, tensors: Sequence[Any], dim: int = 0) -> _Sym:
        if dim not in (1, -3) or not all(isinstance(t, _Sym) for t in tensors):
            raise ValueError(f"OpenVINO export: concatenation along dim {dim} or of constants is not lowered")
        return self.wrap(self.ops.concat([t.ov for t in tensors], 1))

    def binary(self, name: str, a: Any, b: Any, alpha: Any = 1) -> _Sym:
        if alpha != 1:
            raise ValueError(f"OpenVINO export: {name} with alpha {alpha} is not lowered")
        ov_a = a.ov if isinstance(a, _Sym) else self.const(_const(a))
        ov_b = b.ov if isinstance(b, _Sym) else self.const(_const(b))
        return self.wrap(getattr(self.ops, name)(ov_a, ov_b))

    # --------------------------------------------------------------------- binary layers
    def constant_chain(self, out: Any, channels: int) -> tuple[Any, list[tuple[str, np.ndarray]]]:
        """The per-channel constant ``Add``/``Subtract``/``Multiply`` ops that produce ``out``
        from a non-constant value: ``(that value, [(op, (C,) constants)] in order)``, op one of
        "add", "sub" (value − c), "rsub" (c − value), "mul"."""
        chain = []
        while True:
            node = out.get_node()
            kind = node.get_type_name()
            if kind not in ("Add", "Subtract", "Multiply"):
                break
            a, b = node.input_value(0), node.input_value(1)
            const_a, const_b = (v.get_node().get_type_name() == "Constant" for v in (a, b))
            if const_a == const_b:
                break
            const, value = (a, b) if const_a else (b, a)
            c = np.asarray(const.get_node().get_data(), dtype=np.float32)
            if c.size not in (1, channels) or (c.size == channels and c.shape != (1, channels, 1, 1)):
                break
            op = {"Add": "add", "Multiply": "mul"}.get(kind) or ("sub" if const_b else "rsub")
            chain.append((op, np.broadcast_to(c.reshape(-1), (channels,)).astype(np.float32)))
            out = value
        return out, chain[::-1]

    def binary_conv(self, m: PackedBinaryConv2d, x: _Sym) -> _Sym:
        """FakeQuantize (the sign at the folded thresholds) → BinaryConvolution → scale, bias."""
        ops = self.ops
        cin, (kh, kw) = m.in_channels, m.kernel_size
        thr = m.threshold.detach().cpu().numpy().astype(np.float32)
        flip, always, never = (unpack_words(m.bit_masks[i], cin).numpy() for i in range(3))
        source, chain = self.constant_chain(x.ov, cin)
        t, low = _thresholds(chain, thr, flip, always, never)
        weights = m.pm1_weight().numpy() > 0  # u1: 1 = +1, 0 = −1
        extra = (-cin) % _PAD_BLOCK
        data = source
        if extra:
            zero = self.const(np.zeros(4, np.int64))
            data = ops.pad(data, zero, self.const(np.array([0, extra, 0, 0], np.int64)), "constant", self.const(np.float32(0.0)))
            t = np.concatenate([t, np.full(extra, -1.0, np.float32)])  # 0 > −1: the pad channels are +1
            low = np.concatenate([low, np.zeros(extra, np.float32)])
            pad_w = np.zeros((m.out_channels, extra, kh, kw), bool)
            pad_w[:, 0::2] = True  # +1, −1, +1, …: each pair adds 0 at every valid tap
            weights = np.concatenate([weights, pad_w], axis=1)
        fq = ops.fake_quantize(data, self.channel(t), self.channel(t), self.channel(low), self.channel(1.0 - low), 2)
        bits = np.packbits(weights.reshape(-1), bitorder="little")
        kernel = self.ov.op.Constant(self.ov.Tensor(bits, self.ov.Shape(list(weights.shape)), self.ov.Type.u1), shared_memory=False)
        pad = list(m.padding)
        y = ops.binary_convolution(fq, kernel, list(m.stride), pad, pad, list(m.dilation), "xnor-popcount", 0.0)
        if extra % 2:  # the unpaired +1 pad channel added +1 per valid tap
            y = ops.subtract(y, self.const(_valid_taps(m, x.shape[2], x.shape[3])))
        y = ops.add(ops.multiply(y, self.channel(m.scale)), self.channel(m.bias))
        return self.wrap(y)


def _key(x: np.ndarray) -> np.ndarray:
    """float32 → int64 keys in the order of the floats (−0 and +0 share 0)."""
    bits = np.asarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _unkey(k: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_key`."""
    bits = np.where(k < 0, (-k) | 0x80000000, k).astype(np.uint32)
    return bits.view(np.float32)


def _apply(chain: list[tuple[str, np.ndarray]], y: np.ndarray) -> np.ndarray:
    """The chain's float32 arithmetic on (C,) values, rounding after every op as OpenVINO does."""
    with np.errstate(over="ignore", invalid="ignore"):
        for op, c in chain:
            y = {"add": y + c, "sub": y - c, "rsub": c - y, "mul": y * c}[op].astype(np.float32)
    return y


def _thresholds(
    chain: list[tuple[str, np.ndarray]], thr: np.ndarray, flip: np.ndarray, always: np.ndarray, never: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """FakeQuantize thresholds ``t`` and ``output_low`` (output_high = 1 − low) on the chain's
    source value y, per channel, for binmark's sign of x = chain(y): −1 where x < θ (x > θ where
    ``flip``; ``always``/``never`` −1 or +1 whatever x is).

    FakeQuantize with levels 2 gives output_low where y ≤ t and output_high where y > t (0 means
    −1, 1 means +1). The chain is monotonic in y, so the −1 set is a half-line of float32 values;
    its end is found exactly by bisection over the ordered float32 values. Folding the chain here
    (rather than leaving ``Add``/``Multiply`` before the FakeQuantize, which OpenVINO folds into the
    thresholds itself, rounding them) keeps binmark's rule at exact ties.
    """
    sigma = np.where(flip, -1.0, 1.0).astype(np.float32)  # the sign is −1 where σ·x < σ·θ
    slope = sigma.copy()
    for op, c in chain:
        slope = slope * (-1.0 if op == "rsub" else 1.0) * (np.sign(c) if op == "mul" else 1.0)

    def neg(k: np.ndarray) -> np.ndarray:
        return sigma * _apply(chain, _unkey(k)) < sigma * thr

    n = len(thr)
    # the search spans ±_CONSTANT_SIGN: activations beyond it are not expected, and at ±FLT_MAX the
    # chain's arithmetic could overflow (inf · 0 = NaN)
    a, b = np.full(n, _key(np.float32(-_CONSTANT_SIGN))), np.full(n, _key(np.float32(_CONSTANT_SIGN)))
    neg_a, neg_b = neg(a), neg(b)
    rising = slope > 0  # σ·x grows with y: the −1 set is (−∞, Y]; else [Y, ∞)
    # bisection keeps neg(a) ≠ neg(b): rising: neg(a) and not neg(b); falling: the opposite
    split = neg_a != neg_b
    for _ in range(34):  # the keys in the range span < 2^33
        mid = (a + b) // 2
        inside = neg(mid)
        go_a = np.where(rising, inside, ~inside) & split
        a = np.where(go_a, mid, a)
        b = np.where(~go_a & split, mid, b)
    # rising: y ≤ Y = unkey(a) is −1 (output_low 0); falling: y ≤ unkey(a) is +1 (output_low 1)
    t = _unkey(a)
    low = np.where(rising, 0.0, 1.0).astype(np.float32)
    const_neg = (always | (~split & neg_a)) & ~never
    const_pos = never | (~split & ~neg_a & ~always)
    big = np.float32(_CONSTANT_SIGN)
    t = np.where(const_neg, big, np.where(const_pos, -big, t)).astype(np.float32)
    low = np.where(const_neg | const_pos, 0.0, low).astype(np.float32)
    return t, low


def _valid_taps(m: PackedBinaryConv2d, h: int, w: int) -> np.ndarray:
    """(1, 1, H_out, W_out) float32: how many of each output pixel's taps read inside the image."""
    ones = torch.ones(1, 1, h, w, dtype=torch.float64)
    kernel = torch.ones(1, 1, *m.kernel_size, dtype=torch.float64)
    return F.conv2d(ones, kernel, None, m.stride, m.padding, m.dilation).numpy().astype(np.float32)


_Lowering.HANDLERS = {
    F.conv2d: _Lowering.conv2d,
    F.batch_norm: _Lowering.batch_norm,
    F.relu: _Lowering.relu,
    torch.relu: _Lowering.relu,
    torch.Tensor.relu: _Lowering.relu,
    F.prelu: _Lowering.prelu,
    torch.prelu: _Lowering.prelu,
    F.max_pool2d: _Lowering.max_pool2d,
    torch.max_pool2d: _Lowering.max_pool2d,
    F.avg_pool2d: _Lowering.avg_pool2d,
    F.interpolate: _Lowering.interpolate,
    torch.cat: _Lowering.cat,
    torch.concat: _Lowering.cat,
    torch.add: lambda self, a, b, alpha=1: self.binary("add", a, b, alpha),
    torch.Tensor.add: lambda self, a, b, alpha=1: self.binary("add", a, b, alpha),
    torch.Tensor.__add__: lambda self, a, b: self.binary("add", a, b),
    torch.Tensor.__radd__: lambda self, a, b: self.binary("add", b, a),
    torch.sub: lambda self, a, b, alpha=1: self.binary("subtract", a, b, alpha),
    torch.Tensor.sub: lambda self, a, b, alpha=1: self.binary("subtract", a, b, alpha),
    torch.Tensor.__sub__: lambda self, a, b: self.binary("subtract", a, b),
    torch.Tensor.__rsub__: lambda self, a, b: self.binary("subtract", b, a),
    torch.mul: lambda self, a, b: self.binary("multiply", a, b),
    torch.Tensor.mul: lambda self, a, b: self.binary("multiply", a, b),
    torch.Tensor.__mul__: lambda self, a, b: self.binary("multiply", a, b),
    torch.Tensor.__rmul__: lambda self, a, b: self.binary("multiply", b, a),
    torch.Tensor.float: lambda self, x: x,
    torch.Tensor.contiguous: lambda self, x, memory_format=None: x,
}


def _lower(net: nn.Module, input_shape: tuple[int, ...], real_dtype: str) -> Any:
    """The OpenVINO model of a packed network (or packed layers) for inputs of ``input_shape``
    (N, C, H, W); outputs ``heatmaps_0``, … in the network's order."""
    low = _Lowering(real_dtype)
    param = low.ops.parameter(list(input_shape), np.float32, name=_INPUT)
    for name, m in net.named_modules():
        if isinstance(m, PackedQuantConv2d):
            raise ValueError(f"OpenVINO export: layer {name} is a k-bit convolution; only 1-bit × 1-bit and real layers are lowered")
    binary = [m for m in net.modules() if isinstance(m, PackedBinaryConv2d)]
    for m in binary:
        m.forward = lambda x, _m=m: low.binary_conv(_m, x)  # type: ignore[method-assign]
    _Lowering.current = low
    try:
        with torch.no_grad():
            outputs = net(low.wrap(param))
    finally:
        for m in binary:
            del m.forward
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    results = []
    for i, out in enumerate(outputs):
        if not isinstance(out, _Sym):
            raise ValueError(f"OpenVINO export: output {i} does not depend on the input")
        out.ov.get_tensor().set_names({f"heatmaps_{i}"})
        results.append(low.ops.result(out.ov))
    model = low.ov.Model(results, [param], "binmark")
    _guard_sums(low, model)
    return model


def _guard_sums(low: _Lowering, model: Any) -> None:
    """Put ``Minimum(·, _CONSTANT_SIGN)`` (the identity on every value the export expects) after a
    sum of two tensors whose only path leads, through single-reader elementwise ops (ReLU, PReLU,
    constant shifts and scales), into a binarizing FakeQuantize.

    OpenVINO's CPU plugin (2026.4) otherwise fuses BinaryConvolution → scale/shift → residual Add
    (→ activation) → FakeQuantize into one kernel and computes it wrong (most of the next layer's
    outputs off; ``tests/deploy/test_openvino.py`` has the pure-OpenVINO case); the Minimum keeps
    the sum a separate, exact op.
    """
    unary = {"Relu", "PRelu", "Add", "Subtract", "Multiply"}
    for node in model.get_ordered_ops():
        if node.get_type_name() != "FakeQuantize":
            continue
        source = node.input_value(0)
        while True:
            producer = source.get_node()
            kind = producer.get_type_name()
            tensors = [v for v in producer.input_values() if v.get_node().get_type_name() != "Constant"]
            if len(source.get_target_inputs()) != 1 or kind not in unary:
                break
            if kind == "Add" and len(tensors) == 2:
                reader = next(iter(source.get_target_inputs()))
                reader.replace_source_output(low.ops.minimum(source, low.const(np.float32(_CONSTANT_SIGN))).output(0))
                break
            if len(tensors) != 1:
                break
            source = tensors[0]


def binary_layer_count(compiled: Any) -> int:
    """How many ``BinaryConvolution`` layers an OpenVINO compiled model's runtime graph runs."""
    return sum(op.get_rt_info()["layerType"].astype(str) == "BinaryConvolution" for op in compiled.get_runtime_model().get_ops())


def _compile(model: Any, precision: str, threads: int | None = None) -> Any:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if precision == "exact":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return _core().compile_model(model, "CPU", config)


def _max_relative_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    span = float(b[-1].max() - b[-1].min()) or 1.0
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) / span


def _check(arch: Architecture, input_size: tuple[int, int], real_dtype: str) -> float:
    """The largest |OpenVINO − packed runtime| / heatmap range on the exact copy of ``arch``."""
    torch.manual_seed(0)
    probe = pack(dyadic(arch.build()), precision="exact")
    w, h = input_size
    x = dyadic_input((1, 3, h, w))
    with torch.no_grad():
        ref = [t.float().numpy() for t in probe(x)]
    compiled = _compile(_lower(probe.net, (1, 3, h, w), real_dtype), "exact")
    out = compiled(x.numpy())
    return _max_relative_difference([out[i] for i in range(len(ref))], ref)


def to_openvino(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_size: tuple[int, int] | None = None,
    real_dtype: str = "float32",
    check: bool = True,
) -> Path:
    """Write a binary model as an OpenVINO IR (``path`` ``.xml`` and its ``.bin``), atomically.

    Args:
        model: a :class:`~binmark.deploy.PackedModel` (``pack``/``load``), or a model built by
            ``binmark.models.build`` or loaded from a checkpoint (it is packed first).
        path: the ``.xml`` file; the weights go to the same name with ``.bin``.
        input_size: the IR's static input (w, h) in pixels; default the model's inference
            spec's, else 256 × 256 (:class:`OpenVINOModel` reshapes for other batch sizes).
        real_dtype: "float32" (the packed model's weights as they are) or "float16" (half the
            real layers' bytes, computed in float32; landmarks move by the weights' rounding, as
            with a float16 ``.bmk``).
        check: refuse to write unless OpenVINO equals the packed runtime on the exact copy.

    Returns:
        the ``.xml`` path.

    Raises:
        ImportError: openvino is not installed.
        ValueError: a layer OpenVINO export does not lower (k-bit convolutions, other ops).
        RuntimeError: the check failed (nothing is written).
    """
    ov, _ = _ov()
    if real_dtype not in REAL_DTYPES:
        raise ValueError(f"real_dtype must be one of {REAL_DTYPES}, got {real_dtype!r}")
    packed = model if isinstance(model, PackedModel) else pack(model, precision="exact")
    spec: InferenceSpec | None = packed.inference
    size = tuple(input_size) if input_size is not None else (spec.input_size if spec is not None else (256, 256))
    arch = getattr(packed, ARCH_ATTR)
    if check:
        diff = _check(arch, size, real_dtype)  # type: ignore[arg-type]
        if not diff <= TOLERANCE:
            raise RuntimeError(f"OpenVINO export of {arch.name}: OpenVINO differs from the packed runtime by {diff:.2e} of the "
                               f"heatmap range on the exact copy (> {TOLERANCE}); nothing written")  # fmt: skip
    ir = _lower(packed.net, (1, 3, size[1], size[0]), real_dtype)
    ir.set_rt_info(json.dumps(arch.to_dict()), ["binmark", "arch"])
    ir.set_rt_info(json.dumps(spec.to_dict()) if spec is not None else "null", ["binmark", "inference"])
    ir.set_rt_info(__version__, ["binmark", "version"])
    xml = Path(path)
    if xml.suffix != ".xml":
        raise ValueError(f"OpenVINO IR path {xml} must end in .xml (the weights go to {xml.with_suffix('.bin').name})")
    tmp = temp_path(xml, ".xml")
    try:
        ov.save_model(ir, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp, xml)
    finally:
        for leftover in (tmp, tmp.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)
    return xml


class OpenVINOModel:
    """An OpenVINO IR written by :func:`to_openvino`, run by OpenVINO's CPU plugin.

    ``model(x)`` takes (N, 3, H, W) images at the IR's size (a tensor or an array) and returns the
    list of heatmap tensors a binmark model returns; a model is compiled per batch size (the
    binary layers take static shapes) and kept. ``inference`` is the stored
    :class:`InferenceSpec` (or None), ``binmark_arch`` the :class:`Architecture`.

    Args:
        path: the ``.xml`` file.
        precision: "exact" (float32) or "bf16" (OpenVINO's CPU default: bfloat16 where the CPU
            has AMX or AVX-512 BF16; see :data:`PRECISIONS`).
        threads: OpenVINO's inference threads (default: its own choice).
    """

    def __init__(self, path: str | os.PathLike[str], precision: str = "exact", threads: int | None = None) -> None:
        _ov()  # a clear ImportError first when openvino is missing
        self.path = Path(path)
        if not self.path.is_file() or not self.path.with_suffix(".bin").is_file():
            raise FileNotFoundError(f"OpenVINO IR {self.path}: needs the .xml and its .bin next to it")
        try:
            self._model = _core().read_model(str(self.path))
        except RuntimeError as exc:
            raise ValueError(f"OpenVINO IR {self.path} cannot be read ({str(exc).splitlines()[0][:200]})") from None
        info = self._model.get_rt_info()
        if "binmark" not in info:
            raise ValueError(f"OpenVINO IR {self.path} was not written by binmark (no 'binmark' rt_info); export it with binmark export --openvino")
        setattr(self, ARCH_ATTR, Architecture.from_dict(json.loads(self._rt("arch")), f"{self.path}: rt_info 'binmark/arch'"))
        spec = json.loads(self._rt("inference"))
        self.inference = None if spec is None else InferenceSpec.from_dict(spec, f"{self.path}: rt_info 'binmark/inference'")
        setattr(self, INFERENCE_ATTR, self.inference)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision, self.threads = precision, threads
        self.input_shape = tuple(int(d) for d in self._model.input(0).get_partial_shape().to_shape())
        self._compiled: dict[int, Any] = {}

    def _rt(self, key: str) -> str:
        return self._model.get_rt_info(["binmark", key]).astype(str)

    def compiled(self, batch: int = 1) -> Any:
        """The compiled model for ``batch`` images."""
        if batch not in self._compiled:
            model = self._model.clone()
            if batch != self.input_shape[0]:
                model.reshape({_INPUT: [batch, *self.input_shape[1:]]})
            self._compiled[batch] = _compile(model, self.precision, self.threads)
        return self._compiled[batch]

    def __call__(self, x: Tensor | np.ndarray) -> list[Tensor]:
        images = x.detach().cpu().float().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.input_shape[1:]:
            raise ValueError(f"OpenVINO IR {self.path} takes {self.input_shape[1:]} images, got {tuple(images.shape[1:])}")
        out = self.compiled(images.shape[0])(np.ascontiguousarray(images))
        return [torch.from_numpy(np.asarray(out[i])) for i in range(len(out))]

    def eval(self) -> OpenVINOModel:
        """Inference only (for code that calls ``model.eval()``)."""
        return self

    def to(self, device: Any) -> OpenVINOModel:
        """CPU only."""
        if torch.device(device).type != "cpu":
            raise ValueError(f"OpenVINO IR {self.path} runs on the CPU; use device='cpu'")
        return self

    @property
    def training(self) -> bool:
        return False

    def train(self, mode: bool = True) -> OpenVINOModel:
        if mode:
            raise ValueError("an OpenVINO IR cannot be trained")
        return self


def load_openvino(path: str | os.PathLike[str], precision: str = "exact", threads: int | None = None) -> OpenVINOModel:
    """Read an IR written by :func:`to_openvino` (see :class:`OpenVINOModel`)."""
    return OpenVINOModel(path, precision, threads)

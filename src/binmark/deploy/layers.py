"""The packed layers the runtime swaps in for quantized convolutions.

``PackedBinaryConv2d`` replaces a ``QuantConv2d`` with 1-bit weights and 1-bit activations. Its
stored state is what the XNOR-popcount kernel reads:

- ``weight_bits``: int32 (C_out/32, taps, C_in/32, 32): bit j of word [b, t, k, o] is the sign of
  the weight of output channel 32b+o, input channel 32k+j, tap t (taps row-major over kh × kw);
  bit 1 means −1. Tail channels are 0 bits.
- ``scale``, ``bias``: float32 (C_out,): the output transform y = dot · scale + bias, where dot is
  the exact ±1 dot product. XNOR's α, the conv bias and a following BatchNorm fold in here.
- ``threshold`` (C_in,) and ``bit_masks`` (3, C_in/32) int32 (flip, set, clear): how float inputs
  become bits: bit = x < threshold, or x > threshold where the flip bit is set; set/clear force a
  channel to −1/+1. The input quantizer's threshold (RSign) and a preceding BatchNorm fold in here.

Padding: the models were trained with zero padding applied after the sign (see
``binmark.quant.conv``), a third value the bits cannot hold. The kernels read +1 in the padding and
subtract, per border class of output pixel and output channel, the mismatches the padded taps
added; the result equals zero padding exactly (integer arithmetic).

``PackedQuantConv2d`` replaces any other quantized convolution (k-bit weights, or 1-bit weights with
k-bit activations such as CU-Net's W1A8): its weights are stored as k-bit codes with a per-channel
affine map (lo + step · code), bit-packed, and it runs as a float convolution of the reconstructed
weights, with the layer's own input quantizer.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from binmark.deploy import native
from binmark.quant import QuantConv2d

__all__ = [
    "PackedBinaryConv2d",
    "PackedQuantConv2d",
    "backends",
    "bn_affine",
    "choices",
    "int8_gemm_available",
    "is_binary_conv",
    "unpack_words",
]

_WORD = 32


def _words(channels: int) -> int:
    return (channels + _WORD - 1) // _WORD


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def is_binary_conv(m: nn.Module) -> bool:
    """A ``QuantConv2d`` the popcount kernels can run: 1-bit weights and inputs, groups 1, zero
    padding given as numbers."""
    return (
        isinstance(m, QuantConv2d)
        and m.spec.is_binary
        and m.groups == 1
        and m.padding_mode == "zeros"
        and not isinstance(m.padding, str)
    )


def _pack_words(bits: np.ndarray) -> np.ndarray:
    """Pack a bool array's last axis (a multiple of 32) LSB-first into int32 words."""
    shape = bits.shape[:-1] + (bits.shape[-1] // _WORD, _WORD)
    weights = (np.uint64(1) << np.arange(_WORD, dtype=np.uint64)).astype(np.uint64)
    words = (bits.reshape(shape).astype(np.uint64) * weights).sum(axis=-1)
    return words.astype(np.uint32).view(np.int32)


def unpack_words(words: Tensor, count: int) -> Tensor:
    """Inverse of :func:`_pack_words`: int32 (..., W) → bool (..., count)."""
    shifts = torch.arange(_WORD, dtype=torch.int32)
    bits = (words.unsqueeze(-1) >> shifts) & 1
    return bits.flatten(-2)[..., :count].bool()


def int8_gemm_available() -> bool:
    """Whether ``torch._int_mm`` (int8 × int8 → int32, oneDNN/AMX on CPU) works here."""
    try:
        torch._int_mm(torch.ones(8, 32, dtype=torch.int8), torch.ones(32, 8, dtype=torch.int8))
        return True
    except (RuntimeError, AttributeError):
        return False


def backends() -> list[str]:
    """Binary-convolution backends available here, fastest first (as measured on a 3×3 conv with
    256 channels, docs/deploy.md): the popcount kernel tiers, ``int8_gemm`` and ``torch``."""
    tiers = native.tiers()
    order = [t for t in tiers if t == "avx512_vpopcnt"]
    order += ["int8_gemm"] if int8_gemm_available() else []
    order += [t for t in tiers if t != "avx512_vpopcnt"]
    return order + ["torch"]


#: Backend chosen per layer shape by measurement: key → name. See :func:`choices`.
_CHOICES: dict[tuple[int, ...], str] = {}


def choices() -> dict[tuple[int, ...], str]:
    """The per-shape backend choices made so far, keyed by
    (C_in, C_out, kh, kw, stride, padding, dilation, N, H, W, threads)."""
    return dict(_CHOICES)


class PackedBinaryConv2d(nn.Module):
    """A bit-packed ±1 convolution (see the module docstring for the stored state).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation: as ``nn.Conv2d``.
        backend: "auto" (measure the candidates per input shape once and keep the fastest), or one
            of :func:`backends`.

    Shape:
        x: (N, C_in, H, W) float → (N, C_out, H_out, W_out) float32 in channels_last memory.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self.backend = backend
        taps = self.kernel_size[0] * self.kernel_size[1]
        cw, cb = _words(in_channels), _words(out_channels)
        self.register_buffer("weight_bits", torch.zeros(cb, taps, cw, _WORD, dtype=torch.int32))
        self.register_buffer("scale", torch.ones(out_channels))
        self.register_buffer("bias", torch.zeros(out_channels))
        self.register_buffer("threshold", torch.zeros(in_channels))
        self.register_buffer("bit_masks", torch.zeros(3, cw, dtype=torch.int32))
        self._cache: dict[Any, Any] = {}

    # ------------------------------------------------------------------ packing
    @classmethod
    def from_conv(
        cls,
        conv: QuantConv2d,
        pre_bn: nn.BatchNorm2d | None = None,
        post_bn: nn.BatchNorm2d | None = None,
        values: bool = True,
    ) -> PackedBinaryConv2d:
        """Pack a binary ``QuantConv2d`` (eval semantics), folding a BatchNorm applied to its input
        (before the sign) into the thresholds and one applied to its output into scale and bias.

        Args:
            values: False builds the empty layer of the same shape (what a loader fills).
        """
        if not is_binary_conv(conv):
            raise ValueError(f"not a binary convolution the kernels can run: {conv}")
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation)  # type: ignore[arg-type]
        if values:
            with torch.no_grad():
                new._fill(conv, pre_bn, post_bn)
        return new

    def _fill(self, conv: QuantConv2d, pre_bn: nn.BatchNorm2d | None, post_bn: nn.BatchNorm2d | None) -> None:
        qw = conv.quantized_weight().detach().double().cpu()
        cout, cin = qw.shape[:2]
        alpha = qw.abs().flatten(1).amax(dim=1)
        if not torch.allclose(qw.abs().flatten(1), alpha[:, None].expand(cout, qw[0].numel()), rtol=1e-5, atol=1e-12):
            raise ValueError(f"{conv}: quantized weights are not ±α per output channel; cannot bit-pack")
        bits = np.zeros((_words(cout) * _WORD, self.weight_bits.shape[1], _words(cin) * _WORD), dtype=bool)
        bits[:cout, :, :cin] = (qw < 0).permute(0, 2, 3, 1).reshape(cout, -1, cin).numpy()
        cb, taps, cw = self.weight_bits.shape[:3]
        words = _pack_words(bits)  # (Cout_pad, taps, cw)
        self.weight_bits.copy_(torch.from_numpy(words.reshape(cb, _WORD, taps, cw).transpose(0, 2, 3, 1).copy()))
        scale, bias = alpha, torch.zeros(cout, dtype=torch.float64)
        if conv.bias is not None:
            bias = conv.bias.detach().double().cpu()
        if post_bn is not None:
            s, t = bn_affine(post_bn)
            scale, bias = scale * s, bias * s + t
        self.scale.copy_(scale.float())
        self.bias.copy_(bias.float())
        self._fill_input(conv, pre_bn)

    def _fill_input(self, conv: QuantConv2d, pre_bn: nn.BatchNorm2d | None) -> None:
        """bit(x) = [q(bn(x)) = −1] with q the layer's sign: bn(x) = s·x + t, q(z) = sign(z − θ)."""
        cin = conv.in_channels
        theta = getattr(conv.input_quantizer, "threshold", None)
        theta = torch.zeros(cin, dtype=torch.float64) if theta is None else theta.detach().double().cpu().reshape(-1)
        s, t = (torch.ones(cin, dtype=torch.float64), torch.zeros(cin, dtype=torch.float64))
        if pre_bn is not None:
            s, t = bn_affine(pre_bn)
        # s·x + t < θ  ⇔  x < (θ − t)/s for s > 0, x > (θ − t)/s for s < 0; constant for s = 0.
        safe = torch.where(s == 0, torch.ones_like(s), s)
        thr = torch.where(s == 0, torch.zeros_like(s), (theta - t) / safe)
        flip, always, never = (s < 0), (s == 0) & (t < theta), (s == 0) & (t >= theta)
        masks = np.zeros((3, _words(cin) * _WORD), dtype=bool)
        for row, m in enumerate((flip, always, never)):
            masks[row, :cin] = m.numpy()
        self.threshold.copy_(thr.float())
        self.bit_masks.copy_(torch.from_numpy(_pack_words(masks)))

    # ------------------------------------------------------------------ geometry
    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """(H_out, W_out) for an (h, w) input, as ``nn.Conv2d``."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1

    def _geometry(self, h: int, w: int) -> tuple[Tensor, ...]:
        """Indirection offsets (P, taps), border class per pixel (P,), per-class mismatch
        corrections (classes, C_out padded) and valid product counts (classes,)."""
        key = ("geometry", h, w)
        if key not in self._cache:
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
            ho, wo = self.output_size(h, w)
            oy = torch.arange(ho).view(-1, 1, 1, 1) * sh - ph + torch.arange(kh).view(1, 1, -1, 1) * dh
            ox = torch.arange(wo).view(1, -1, 1, 1) * sw - pw + torch.arange(kw).view(1, 1, 1, -1) * dw
            valid = (oy >= 0) & (oy < h) & (ox >= 0) & (ox < w)  # (ho, wo, kh, kw)
            offs = torch.where(valid, (oy * w + ox) * self.weight_bits.shape[2], -1).reshape(ho * wo, kh * kw)
            patterns, cls = torch.unique(valid.reshape(ho * wo, kh * kw), dim=0, return_inverse=True)
            corr = (~patterns).to(torch.int32) @ self.tap_popcounts()
            kvalid = patterns.sum(dim=1).to(torch.int32) * self.in_channels
            self._cache[key] = (offs.to(torch.int32).contiguous(), cls.to(torch.int16).contiguous(), corr.contiguous(), kvalid.contiguous())
        return self._cache[key]

    def tap_popcounts(self) -> Tensor:
        """(taps, C_out padded) int32: −1 weights of each output channel in each tap."""
        cb, taps, cw = self.weight_bits.shape[:3]
        bits = unpack_words(self.weight_bits.permute(0, 1, 3, 2).reshape(-1, cw), cw * _WORD)
        return bits.view(cb, taps, _WORD, -1).sum(dim=-1, dtype=torch.int32).permute(1, 0, 2).reshape(taps, cb * _WORD)

    def _padded(self, name: str, t: Tensor) -> Tensor:
        key = ("padded", name)
        if key not in self._cache:
            out = torch.zeros(self.weight_bits.shape[0] * _WORD)
            out[: t.numel()] = t
            self._cache[key] = out
        return self._cache[key]

    def _signs(self, x: Tensor) -> Tensor:
        """The ±1 input the layer convolves (float, NCHW), from thresholds and masks."""
        cin = self.in_channels
        flip, always, never = (unpack_words(self.bit_masks[i], cin).view(1, -1, 1, 1) for i in range(3))
        thr = self.threshold.view(1, -1, 1, 1)
        bit = torch.where(flip, x > thr, x < thr) | always
        bit = bit & ~never
        return 1.0 - 2.0 * bit.to(x.dtype)

    def pm1_weight(self) -> Tensor:
        """(C_out, C_in, kh, kw) float ±1 weights unpacked from ``weight_bits`` (cached)."""
        if "pm1" not in self._cache:
            cb, taps, cw = self.weight_bits.shape[:3]
            bits = unpack_words(self.weight_bits.permute(0, 3, 1, 2).reshape(cb * _WORD, taps, cw), cw * _WORD)
            w = 1.0 - 2.0 * bits[: self.out_channels, :, : self.in_channels].float()
            self._cache["pm1"] = w.permute(0, 2, 1).reshape(self.out_channels, self.in_channels, *self.kernel_size).contiguous()
        return self._cache["pm1"]

    def _affine(self, y: Tensor) -> Tensor:
        return y * self.scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    # ------------------------------------------------------------------ backends
    def forward_torch(self, x: Tensor) -> Tensor:
        """Pure PyTorch: float convolution of the ±1 input and weights (zero padding)."""
        y = F.conv2d(self._signs(x.float()), self.pm1_weight(), None, self.stride, self.padding, self.dilation)
        return self._affine(y).contiguous(memory_format=torch.channels_last)

    def forward_int8(self, x: Tensor) -> Tensor:
        """±1 as int8 through an int8 GEMM (``torch._int_mm``, oneDNN/AMX) on an im2col buffer."""
        n, _, h, w = x.shape
        ho, wo = self.output_size(h, w)
        cols = F.unfold(self._signs(x.float()), self.kernel_size, self.dilation, self.padding, self.stride)
        a = cols.transpose(1, 2).reshape(n * ho * wo, -1).to(torch.int8)
        if "int8" not in self._cache:
            self._cache["int8"] = self.pm1_weight().reshape(self.out_channels, -1).t().contiguous().to(torch.int8)
        acc = torch._int_mm(a, self._cache["int8"])
        y = acc.float().mul_(self.scale).add_(self.bias)
        return y.view(n, ho, wo, self.out_channels).permute(0, 3, 1, 2)

    def forward_native(self, x: Tensor, tier: str) -> Tensor:
        """The C XNOR-popcount kernel of ``tier`` (see ``csrc/bitconv.c``)."""
        n, c, h, w = x.shape
        ho, wo = self.output_size(h, w)
        cw = self.weight_bits.shape[2]
        xs = x.float().permute(0, 2, 3, 1).contiguous()  # NHWC; free when x is channels_last
        packed = torch.empty(n * h * w, cw, dtype=torch.int32)
        native.pack_bits(xs.view(-1, c), self.threshold, self.bit_masks, tier, packed)
        offs, cls, corr, kvalid = self._geometry(h, w)
        if "zero" not in self._cache:
            self._cache["zero"] = torch.zeros(cw, dtype=torch.int32)
        out = torch.empty(n, ho, wo, self.out_channels)
        m, b = self._padded("scale", self.scale), self._padded("bias", self.bias)
        args = native.ConvArgs(
            inp=packed.data_ptr(), zero=self._cache["zero"].data_ptr(), offs=offs.data_ptr(),
            w=self.weight_bits.data_ptr(), cls=cls.data_ptr(), corr=corr.data_ptr(), kvalid=kvalid.data_ptr(),
            m=m.data_ptr(), b=b.data_ptr(), out=out.data_ptr(), img_words=h * w * cw, n=n, p=ho * wo,
            t=offs.shape[1], cw=cw, cout=self.out_channels, nthreads=torch.get_num_threads(),
        )  # fmt: skip
        native.conv(args, tier)
        return out.permute(0, 3, 1, 2)

    def run(self, x: Tensor, backend: str) -> Tensor:
        """Run with a named backend (one of :func:`backends`)."""
        if backend == "torch":
            return self.forward_torch(x)
        if backend == "int8_gemm":
            return self.forward_int8(x)
        return self.forward_native(x, backend)

    def choose(self, x: Tensor) -> str:
        """The backend for inputs shaped like ``x``: forced, cached, or measured now."""
        if self.backend != "auto":
            return self.backend
        tier = native.default_tier()
        if tier is None or native.forced():
            return tier or "torch"
        key = (
            self.in_channels, self.out_channels, *self.kernel_size, *self.stride, *self.padding, *self.dilation,
            *x.shape[:1], *x.shape[2:], torch.get_num_threads(),
        )  # fmt: skip
        if key not in _CHOICES:
            candidates = [tier] + (["int8_gemm"] if int8_gemm_available() else [])
            _CHOICES[key] = min(candidates, key=lambda b: _time(lambda: self.run(x, b)))
        return _CHOICES[key]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}")
        with torch.no_grad():
            return self.run(x, self.choose(x))

    def _apply(self, fn: Any, recurse: bool = True) -> PackedBinaryConv2d:
        self._cache = {}
        super()._apply(fn, recurse)
        # The kernels read raw memory: keep buffers dense even after .to(memory_format=...).
        for name, buf in self.named_buffers(recurse=False):
            setattr(self, name, buf.contiguous())
        return self

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._cache = {}
        super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, backend={self.backend!r}"
        )


def _time(fn: Any, repeats: int = 3) -> float:
    """Best wall time of ``fn`` over ``repeats`` runs after one warm-up (seconds)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bn_affine(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """(s, t) with bn(x) = s·x + t per channel in eval mode, in float64."""
    var = bn.running_var.detach().double().cpu()
    mean = bn.running_mean.detach().double().cpu()
    s = 1.0 / torch.sqrt(var + bn.eps)
    if bn.weight is not None:
        s = s * bn.weight.detach().double().cpu()
    t = -mean * s
    if bn.bias is not None:
        t = t + bn.bias.detach().double().cpu()
    return s, t


class PackedQuantConv2d(nn.Module):
    """A quantized convolution stored with k-bit weight codes (see the module docstring).

    Args:
        conv: the ``QuantConv2d`` whose geometry (and, unless ``values`` is False, weights) to take.
        values: False builds the empty layer of the same shape (what a loader fills).
    """

    def __init__(self, conv: QuantConv2d, values: bool = True) -> None:
        super().__init__()
        self.bits = conv.spec.weight_bits
        self.weight_shape = tuple(conv.weight.shape)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.input_quantizer = conv.input_quantizer
        n = conv.weight.numel()
        self.register_buffer("weight_codes", torch.zeros((n * self.bits + 7) // 8, dtype=torch.uint8))
        self.register_buffer("weight_lo", torch.zeros(conv.out_channels))
        self.register_buffer("weight_step", torch.ones(conv.out_channels))
        self.bias: Tensor | None
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self._weight: Tensor | None = None
        if values:
            with torch.no_grad():
                self._fill(conv)

    def _fill(self, conv: QuantConv2d) -> None:
        qw = conv.quantized_weight().detach().double().cpu().flatten(1)
        lo = qw.min(dim=1).values
        step = torch.ones_like(lo)
        for c in range(qw.shape[0]):
            levels = torch.unique(qw[c])
            if levels.numel() > 1:
                step[c] = (levels[1:] - levels[:-1]).min()
        codes = torch.round((qw - lo[:, None]) / step[:, None])
        rebuilt = lo[:, None] + step[:, None] * codes
        top = 2**self.bits - 1
        if codes.max() > top or not torch.allclose(rebuilt, qw, rtol=1e-5, atol=1e-7 * float(qw.abs().max().clamp_min(1e-30))):
            raise ValueError(f"{conv}: quantized weights are not on a {self.bits}-bit grid per channel; cannot pack")
        bits = (codes.long().numpy()[..., None] >> np.arange(self.bits)) & 1
        self.weight_codes.copy_(torch.from_numpy(np.packbits(bits.astype(np.uint8).reshape(-1), bitorder="little")))
        self.weight_lo.copy_(lo.float())
        self.weight_step.copy_(step.float())
        if conv.bias is not None:
            self.bias.copy_(conv.bias.detach())

    def weight(self) -> Tensor:
        """The float weight (C_out, C_in/groups, kh, kw) reconstructed from the codes."""
        if self._weight is None:
            n = int(np.prod(self.weight_shape))
            bits = np.unpackbits(self.weight_codes.numpy(), bitorder="little")[: n * self.bits].reshape(n, self.bits)
            codes = torch.from_numpy((bits.astype(np.int64) << np.arange(self.bits)).sum(axis=1)).view(self.weight_shape[0], -1)
            w = self.weight_lo[:, None] + self.weight_step[:, None] * codes.float()
            self._weight = w.view(self.weight_shape).contiguous()
        return self._weight

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return F.conv2d(self.input_quantizer(x), self.weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)

    def _apply(self, fn: Any, recurse: bool = True) -> PackedQuantConv2d:
        self._weight = None
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._weight = None
        super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"weight={self.weight_shape}, bits={self.bits}, stride={self.stride}, padding={self.padding}"

"""The fused engine: a packed network run as one planned C computation (``csrc/engine.c``).

:class:`Engine` turns a :class:`~binmark.deploy.plan.Plan` into the C structures of
``csrc/engine.h`` for one :class:`Config` — the kernel tiers of the binary convolutions (popcount,
or AMX where :func:`binary_format` measured it faster) and the arithmetic of the real-valued ones
(:func:`config_for`) — packing the weights the way those kernels read them, and runs a batch in
one ctypes call (the GIL is released): no Python per op. The plan itself depends on the
configuration through :func:`binary_format` and :func:`real_parts` (which input formats the
producers emit).

Precision of the real-valued layers (the 7×7 stem, 1×1 projections, heads); the binary
convolutions are exact integer arithmetic in every setting:

- ``"exact"``: float32 everywhere; the engine equals the fake-quantized model up to float rounding;
- ``"fast"``: on CPUs with AMX, floats are split into bfloat16 parts and multiplied in AMX tiles
  with float32 accumulation: three parts and six products (float32's 24 significant bits) in the
  layers whose outputs reach a binary conv's sign (the stem, the projections), two parts and
  three products (about 16 bits) in the rest (the heads); elsewhere the same as ``"exact"``;
- ``"bf16"``: on CPUs with AMX, plain bfloat16 inputs and weights (8 significant bits, what
  oneDNN's AMX-bf16 path computes); elsewhere the same as ``"exact"``. A binary network amplifies
  that rounding (signs flip downstream): docs/deploy.md gives the measured landmark drift.

Buffers: each call takes an arena set from a pool (one arena, or one per thread when whole images
run one per core), so calls from several Python threads run concurrently on separate memory.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from binmark.deploy import native
from binmark.deploy.plan import Emit, Op, Plan, View

__all__ = [
    "PRECISIONS",
    "Config",
    "Engine",
    "amx_available",
    "available",
    "binary_choices",
    "binary_format",
    "clock_ghz",
    "real_parts",
    "config_for",
]

#: Settings of the real-valued layers' arithmetic (see the module docstring).
PRECISIONS = ("fast", "exact", "bf16")
_AMX_REAL = {"fast": "amx_split", "bf16": "amx_bf16"}
_ABI = 1
_PT = 32  # BM_PT: pixels per work item
_T_AMX = {"amx_bf16": 3, "amx_split": 4}  # amx_split: 4 (3 products), 5 (6) where it feeds a sign
_T_AMX_BINARY = 3
_FMT = {"bits": 0, "s8": 1, "bf16": 2}
_OPS = {"bconv": 1, "rconv": 2, "pool": 3, "eltwise": 4}

_i32, _i64, _p = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p


class _View(ctypes.Structure):
    _fields_ = [("off", _i64), ("h", _i32), ("w", _i32), ("pad", _i32), ("cs", _i32), ("co", _i32), ("blk", _i32)]


class _Emit(ctypes.Structure):
    _fields_ = [
        ("dst", _View), ("fmt", _i32), ("src", _i32), ("n", _i32), ("bit0", _i32), ("mul", _p), ("thr", _p),
        ("parts", _i32), ("pm", _p), ("pb", _p), ("prelu", _i32),
    ]  # fmt: skip


class _Op(ctypes.Structure):
    _fields_ = [
        ("kind", _i32), ("tier", _i32), ("oh", _i32), ("ow", _i32), ("cin", _i32), ("cout", _i32), ("ldv", _i32),
        ("kh", _i32), ("kw", _i32), ("sh", _i32), ("sw", _i32), ("ph", _i32), ("pw", _i32),
        ("inp", _View), ("in_image", _i32), ("in_shift", _i32), ("pool_avg", _i32), ("w", _p), ("kpad", _i32), ("tap_off", _p), ("in_parts", _i32),
        ("cls_y", _p), ("cls_x", _p), ("ncls_x", _i32), ("corr", _p), ("kvalid", _p), ("m", _p), ("b", _p),
        ("pm", _p), ("pb", _p), ("prelu", _i32), ("relu", _i32), ("has_res", _i32), ("res", _View),
        ("res_shift", _i32), ("has_res2", _i32), ("res2", _View), ("res2_shift", _i32), ("has_out", _i32), ("out", _View), ("out_index", _i32), ("ny", _i32), ("nr", _i32),
        ("ey", _p), ("er", _p),
    ]  # fmt: skip


class _Plan(ctypes.Structure):
    _fields_ = [
        ("nops", _i32), ("ops", _p), ("arena_bytes", _i64), ("scratch_bytes", _i64), ("in_c", _i32), ("in_h", _i32),
        ("in_w", _i32), ("nout", _i32), ("out_numel", _p), ("out_hw", _p),
    ]  # fmt: skip


def _lib() -> ctypes.CDLL | None:
    lib = native.library()
    if lib is None or not hasattr(lib, "bm_plan_run"):
        return None
    if not getattr(lib, "_bm_engine_ready", False):
        lib.bm_engine_abi.restype = ctypes.c_int
        if lib.bm_engine_abi() != _ABI:
            return None
        lib.bm_engine_features.restype = ctypes.c_int
        lib.bm_plan_run.argtypes = [ctypes.POINTER(_Plan), _p, _i32, _p, _p, _i32, _i32, _p]
        lib.bm_plan_run.restype = ctypes.c_int
        lib.bm_clock_ghz.restype = ctypes.c_double
        lib.bm_time_bconv.restype = ctypes.c_double
        lib.bm_time_bconv.argtypes = [ctypes.c_int] * 12
        lib._bm_engine_ready = True
    return lib


def available() -> bool:
    """Whether the compiled engine is here (the C library built and loaded)."""
    return _lib() is not None


def clock_ghz() -> float | None:
    """The calling core's clock in GHz, measured (a chain of dependent adds, about 0.1 s), or
    None without the C library or off x86."""
    lib = _lib()
    ghz = lib.bm_clock_ghz() if lib is not None else 0.0
    return ghz or None


def amx_available() -> bool:
    """Whether this CPU and OS let the engine use AMX tiles."""
    lib = _lib()
    return bool(lib is not None and lib.bm_engine_features() & 4)


@dataclass(frozen=True)
class Config:
    """Kernel tiers of a compiled plan: ``binary`` popcount tier name (``native.TIERS``),
    ``real`` = "fp32" (at the binary tier's ISA), "amx_split" or "amx_bf16", and ``amx_binary``:
    whether each binary conv may run as a ±1 int8 GEMM on AMX tiles where that measured faster
    (:func:`binary_choices`); exact integer arithmetic either way."""

    binary: str
    real: str
    amx_binary: bool = False


#: per binary-conv shape (C_in, C_out, kh, kw, sh, sw, ph, pw, H, W): {"popcount": s, "amx": s}
_TIMES: dict[tuple[int, ...], dict[str, float]] = {}
_TIME_LOCK = threading.Lock()


def binary_choices() -> dict[tuple[int, ...], dict[str, Any]]:
    """The per-shape measurements behind the AMX/popcount choice so far: key (C_in, C_out, kh, kw,
    sh, sw, ph, pw, H, W) → seconds per run of each kernel (one thread) and the winner."""
    with _TIME_LOCK:
        return {k: {**v, "chosen": min(v, key=v.__getitem__)} for k, v in _TIMES.items()}


def real_parts(config: Config | None) -> Callable[[Any, bool], int]:
    """For ``build_plan``: how many bfloat16 parts of its input a 1×1 real conv reads under
    ``config`` (emitted by the producers, so the conv packs nothing): the split's parts on AMX
    (3 where a binary conv is downstream, 2 elsewhere; 1 for plain bf16), 0 for float32."""
    if config is None or config.real not in _T_AMX:
        return lambda conv, feeds: 0
    if config.real == "amx_bf16":
        return lambda conv, feeds: 1
    return lambda conv, feeds: 3 if feeds else 2


def binary_format(config: Config | None) -> Callable[[Any, int, int], str]:
    """For ``build_plan``: each binary conv's input format under ``config`` — "s8" (AMX) where
    the AMX kernel measured faster than the popcount tier on that shape (timed once per process,
    one thread, best of 3 runs on random data), "bits" elsewhere."""
    if config is None or not config.amx_binary:
        return lambda conv, h, w: "bits"
    lib = _lib()
    tier = native.TIERS[config.binary]

    def choose(conv: Any, h: int, w: int) -> str:
        key = (conv.in_channels, conv.out_channels, *conv.kernel_size, *conv.stride, *conv.padding, h, w)
        with _TIME_LOCK:
            if key not in _TIMES:
                args = key[:8] + (h, w, 3)
                _TIMES[key] = {"popcount": lib.bm_time_bconv(tier, *args), "amx": lib.bm_time_bconv(_T_AMX_BINARY, *args)}
            t = _TIMES[key]
        return "s8" if 0 < t["amx"] < t["popcount"] else "bits"

    return choose


def config_for(precision: str) -> Config | None:
    """The configuration the engine uses here for ``precision``: the default popcount tier
    (``BINMARK_KERNEL`` respected) and AMX real layers for "fast" and "bf16" when AMX is usable
    with the AVX-512 tier. None when the engine is not available."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    tier = native.default_tier()
    if tier is None or not available():
        return None
    amx = tier == "avx512_vpopcnt" and amx_available()
    real = _AMX_REAL[precision] if amx and precision in _AMX_REAL else "fp32"
    return Config(tier, real, amx and not native.forced())


def _f32(a: np.ndarray | None, n: int | None = None) -> np.ndarray | None:
    if a is None:
        return None
    out = np.zeros(len(a) if n is None else n, dtype=np.float32)
    out[: len(a)] = a
    return out


def _round(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def _bf16_tiles(full: np.ndarray) -> np.ndarray:
    """(C_out/16·16, kpad) floats → [C_out/16][kpad/32][16 k-pairs][16 channels][2] bfloat16."""
    n16, kpad = full.shape[0] // 16, full.shape[1]
    t = np.ascontiguousarray(full.reshape(n16, 16, kpad // 32, 16, 2).transpose(0, 2, 3, 1, 4))
    return torch.from_numpy(t).to(torch.bfloat16).view(torch.int16).numpy()


def _rconv_weights(conv: nn.Conv2d, image_input: bool, real: str, parts: int = 1) -> tuple[np.ndarray, int]:
    """The weights as the GEMM kernels of ``real`` read them (``parts`` bfloat16 parts for the
    AMX split kernels), and the padded reduction length."""
    w = conv.weight.detach().float().numpy()
    cout = w.shape[0]
    wk = w.reshape(cout, -1) if image_input else w.transpose(0, 2, 3, 1).reshape(cout, -1)
    k = wk.shape[1]
    if real in _T_AMX:
        kpad, n16 = _round(k, 32), (cout + 15) // 16
        full = np.zeros((n16 * 16, kpad), dtype=np.float32)
        full[:cout, :k] = wk
        out, rest = [], full
        for p in range(parts):  # as split_bf16 in gemm.c: truncated top halves, the last part rounded
            part = rest if p == parts - 1 else (rest.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
            out.append(_bf16_tiles(part).reshape(-1))
            rest = rest - part
        return np.concatenate(out), kpad
    kpad, ldv = _round(k, 16), _round(cout, 32)  # [C_out/32][kpad][32] float32
    full = np.zeros((ldv, kpad), dtype=np.float32)
    full[:cout, :k] = wk
    return np.ascontiguousarray(full.reshape(ldv // 32, 32, kpad).transpose(0, 2, 1)), kpad


def _amx_binary_weights(conv: Any) -> np.ndarray:
    """±1 weights as int8 [C_out/16][tap][C_in/64][16 rows][16 channels][4] (VNNI: row r holds
    input channels 4r..4r+3), zero for padded channels."""
    w = conv.pm1_weight().numpy().astype(np.int8)  # (C_out, C_in, kh, kw)
    cout, cin, kh, kw = w.shape
    n16, cp = (cout + 15) // 16, _round(cin, 64)
    full = np.zeros((n16 * 16, kh * kw, cp), dtype=np.int8)
    full[:cout, :, :cin] = w.reshape(cout, cin, kh * kw).transpose(0, 2, 1)
    t = full.reshape(n16, 16, kh * kw, cp // 64, 16, 4).transpose(0, 2, 3, 4, 1, 5)
    return np.ascontiguousarray(t)


class _Compiler:
    """Builds the ctypes structures; keeps every array they point to alive."""

    def __init__(self, config: Config, image_shape: tuple[int, int, int]) -> None:
        self.config = config
        self.image_shape = image_shape
        self.keep: list[Any] = []
        self.tier = native.TIERS[config.binary]

    def ptr(self, a: np.ndarray | None) -> int | None:
        if a is None:
            return None
        a = np.ascontiguousarray(a)
        self.keep.append(a)
        return a.ctypes.data

    @staticmethod
    def view(v: View | None) -> _View:
        if v is None:
            return _View()
        b = v.buf
        return _View(b.offset, b.h, b.w, b.pad, b.stride, v.co, b.block)

    def emits(self, emits: list[Emit]) -> int | None:
        if not emits:
            return None
        arr = (_Emit * len(emits))()
        for i, e in enumerate(emits):
            arr[i] = _Emit(self.view(View(e.dst)), _FMT[e.dst.fmt], e.src, e.n, e.bit0, self.ptr(_f32(e.mul)), self.ptr(_f32(e.thr)),
                           e.dst.parts, self.ptr(_f32(e.pm)), self.ptr(_f32(e.pb)), int(e.prelu))  # fmt: skip
        self.keep.append(arr)
        return ctypes.addressof(arr)

    def op(self, op: Op) -> tuple[_Op, int]:
        """The C op and its scratch bytes per thread."""
        c, oh, ow = op.out_shape
        ldv = _round(c, 32)
        o = _Op(kind=_OPS[op.kind], tier=self.tier, oh=oh, ow=ow, cout=c, ldv=ldv, out_index=op.out_index)
        o.relu, o.prelu, o.pool_avg, o.in_shift = int(op.relu), int(op.prelu), int(op.avg), op.in_shift
        o.m, o.b = self.ptr(_f32(op.m, ldv)), self.ptr(_f32(op.b, ldv))
        o.pm, o.pb = self.ptr(_f32(op.pm)), self.ptr(_f32(op.pb))
        o.inp = self.view(op.inp)
        o.has_res, o.res, o.res_shift = int(op.res is not None), self.view(op.res), op.res_shift
        o.has_res2, o.res2, o.res2_shift = int(op.res2 is not None), self.view(op.res2), op.res2_shift
        o.has_out, o.out = int(op.out is not None), self.view(op.out)
        o.ny, o.nr, o.ey, o.er = len(op.ey), len(op.er), self.emits(op.ey), self.emits(op.er)
        scratch = _round(_PT * ldv * 4, 64)
        m = op.module
        if op.kind in ("bconv", "rconv"):
            assert isinstance(m, nn.Conv2d) or hasattr(m, "weight_bits")
            o.cin = m.in_channels
            (o.kh, o.kw), (o.sh, o.sw), (o.ph, o.pw) = m.kernel_size, m.stride, m.padding  # tuples (plan.py checks)
        if op.kind == "bconv" and op.inp.buf.fmt == "s8":  # type: ignore[union-attr]
            o.tier, o.w = _T_AMX_BINARY, self.ptr(_amx_binary_weights(m))
            scratch += 4096  # the accumulator tiles
        elif op.kind == "bconv":
            o.w = self.ptr(m.weight_bits.numpy())
            cls_y, cls_x, corr, kvalid = op.bconv
            o.cls_y, o.cls_x, o.ncls_x = self.ptr(cls_y), self.ptr(cls_x), int(cls_x.max()) + 1
            o.corr, o.kvalid = self.ptr(corr), self.ptr(kvalid)
        elif op.kind == "rconv":
            real = self.config.real
            o.tier = _T_AMX.get(real, o.tier) + (real == "amx_split" and op.feeds_binary)
            parts = {3: 1, 4: 2, 5: 3}.get(o.tier, 1)
            assert not op.in_parts or op.in_parts == parts, (op.name, op.in_parts, parts)
            w, o.kpad = _rconv_weights(m, op.inp is None, real, parts)
            o.w, o.in_image, o.in_parts = self.ptr(w), int(op.inp is None), op.in_parts
            if op.inp is None:  # image offset of tap (c, ky, kx): the direct path reads the image
                _, h, w_ = self.image_shape
                c_, ky, kx = np.meshgrid(np.arange(m.in_channels), np.arange(o.kh), np.arange(o.kw), indexing="ij")
                o.tap_off = self.ptr(((c_ * h + ky) * w_ + kx).reshape(-1).astype(np.int32))
            scratch += _PT * o.kpad * 10 + 4096  # A in float32, three bfloat16 parts, C tiles
        elif op.kind in ("pool", "eltwise"):
            o.cin = c
        return o, scratch


class Engine:
    """A plan compiled for one :class:`Config`; ``engine(x)`` runs a batch.

    Args:
        plan: the network's plan at one input size (``binmark.deploy.plan.build_plan``).
        config: kernel tiers (see :func:`config_for`).
    """

    def __init__(self, plan: Plan, config: Config) -> None:
        lib = _lib()
        if lib is None:
            raise RuntimeError("the fused engine is not available: binmark's C library was not built")
        self.plan, self.config, self._lib = plan, config, lib
        comp = _Compiler(config, plan.input_shape)
        ops = (_Op * len(plan.ops))()
        scratch = 64
        for i, op in enumerate(plan.ops):
            ops[i], s = comp.op(op)
            scratch = max(scratch, s)
        self.scratch_bytes = _round(scratch, 64)
        numel = np.array([c * h * w for c, h, w in plan.output_shapes], dtype=np.int64)
        hw = np.array([[h, w] for _, h, w in plan.output_shapes], dtype=np.int32)
        c, h, w = plan.input_shape
        self._struct = _Plan(len(plan.ops), ctypes.addressof(ops), plan.arena_bytes, self.scratch_bytes, c, h, w,
                             len(plan.output_shapes), comp.ptr(numel), comp.ptr(hw))  # fmt: skip
        self._keep = (comp.keep, ops)
        self._pool: dict[int, list[list[torch.Tensor]]] = {}
        self._lock = threading.Lock()

    def _arenas(self, count: int, threads: int) -> list[torch.Tensor]:
        with self._lock:
            free = self._pool.get(count * 1000 + threads)
            if free:
                return free.pop()
        # zeros: the bit tensors' borders (+1 words) are never written
        return [torch.zeros(self.plan.arena_bytes + threads * self.scratch_bytes, dtype=torch.uint8) for _ in range(count)]

    def _release(self, arenas: list[torch.Tensor], count: int, threads: int) -> None:
        with self._lock:
            self._pool.setdefault(count * 1000 + threads, []).append(arenas)

    def __call__(self, x: torch.Tensor, threads: int | None = None, times: np.ndarray | None = None) -> list[torch.Tensor]:
        """Heatmaps for a batch x (N, 3, H, W) float32 at the plan's input size.

        Args:
            threads: OpenMP threads (default ``torch.get_num_threads()``).
            times: None, or a float64 array of ``len(plan.ops)`` to which each op's wall time
                (seconds) is added; images then run one at a time with every op split over the
                threads (what batch 1 does).
        """
        threads = threads or torch.get_num_threads()
        x = x.float().contiguous()
        if tuple(x.shape[1:]) != self.plan.input_shape:
            raise ValueError(f"this plan takes (N, {', '.join(map(str, self.plan.input_shape))}) images, got {tuple(x.shape)}")
        n = x.shape[0]
        outs = [torch.empty(n, c, h, w) for c, h, w in self.plan.output_shapes]
        if n == 0:
            return outs
        count = threads if threads > 1 and n >= threads and times is None else 1
        if times is not None and (times.dtype != np.float64 or times.shape != (len(self.plan.ops),)):
            raise ValueError(f"times must be a float64 array of {len(self.plan.ops)} op times")
        arenas = self._arenas(count, threads)
        out_ptrs = (_p * len(outs))(*[o.data_ptr() for o in outs])
        arena_ptrs = (_p * count)(*[a.data_ptr() for a in arenas])
        try:
            rc = self._lib.bm_plan_run(ctypes.byref(self._struct), x.data_ptr(), n, out_ptrs, arena_ptrs, count, threads,
                                       None if times is None else times.ctypes.data)
        finally:
            self._release(arenas, count, threads)
        if rc != 0:
            raise RuntimeError("the fused engine could not use AMX tiles on this machine; use precision='exact'")
        return outs



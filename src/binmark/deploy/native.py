"""The compiled XNOR-popcount kernels (``csrc/bitconv.c``), loaded with ctypes.

The shared library is built by ``pip install`` (see ``setup.py``); it has a plain C ABI, needs no
torch or Python headers, and ctypes releases the GIL while a kernel runs. If it was not built (no
C compiler, an unsupported platform) binmark still works: the binary layers run in pure PyTorch,
and a warning says so once.

Kernel tiers, fastest first: ``avx512_vpopcnt`` (AVX-512 VPOPCNTDQ), ``avx2`` (nibble-lookup
popcount), ``portable`` (scalar C). ``BINMARK_KERNEL`` forces one, e.g. ``BINMARK_KERNEL=avx2``
to test the AVX2 path on an AVX-512 machine.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

__all__ = ["TIERS", "ConvArgs", "PackArgs", "library", "tiers", "forced", "default_tier", "conv", "pack_bits"]

#: Kernel tiers of the C library by name → the tier number its entry points take.
TIERS = {"avx512_vpopcnt": 2, "avx2": 1, "portable": 0}
_CPU_FLAGS = {"avx512_vpopcnt": 2, "avx2": 1, "portable": 0}  # bit masks of bm_cpu_features()
_ABI_VERSION = 1

_p = ctypes.c_void_p


class _Args(ctypes.Structure):
    """A C argument block filled by field name only: every field, no other name.

    (A plain ``ctypes.Structure`` takes positional values in ``_fields_`` order, so a reordered C
    struct would silently mis-assign them, and it accepts a misspelt keyword as a Python attribute,
    leaving the field 0.) ``tests/deploy/test_native_abi.py`` checks each subclass's ``_fields_``,
    order and types, against its C struct.
    """

    def __init__(self, **values: Any) -> None:
        names = [f[0] for f in self._fields_]
        missing, unknown = [n for n in names if n not in values], sorted(set(values) - set(names))
        if missing or unknown:
            raise TypeError(f"{type(self).__name__}: missing fields {missing}, unknown {unknown}; the fields are {names}")
        super().__init__(**values)


class ConvArgs(_Args):
    """Mirror of ``bm_conv_t`` (see csrc/bitconv.c for each field's meaning; C's ``in`` is ``inp``)."""

    _fields_ = [
        ("inp", _p), ("zero", _p), ("offs", _p), ("w", _p), ("cls", _p), ("corr", _p),
        ("kvalid", _p), ("m", _p), ("b", _p), ("out", _p), ("img_words", ctypes.c_int64),
        ("n", ctypes.c_int32), ("p", ctypes.c_int32), ("t", ctypes.c_int32), ("cw", ctypes.c_int32),
        ("cout", ctypes.c_int32), ("nthreads", ctypes.c_int32),
    ]  # fmt: skip


class PackArgs(_Args):
    """Mirror of ``bm_pack_t`` (see csrc/bitconv.c)."""

    _fields_ = [
        ("x", _p), ("out", _p), ("thr", _p), ("flip", _p), ("set", _p), ("clr", _p),
        ("npix", ctypes.c_int64), ("c", ctypes.c_int32), ("cw", ctypes.c_int32), ("nthreads", ctypes.c_int32),
    ]  # fmt: skip


def _library_path() -> Path | None:
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_bitconv{suffix}"
        if candidate.exists():
            return candidate
    return None


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The loaded kernel library, or None (with one warning) when it is missing or unusable."""
    path = _library_path()
    reason = "it was not built (no C compiler when binmark was installed?)"
    if path is not None:
        try:
            lib = ctypes.CDLL(str(path))
            lib.bm_abi_version.restype = ctypes.c_int
            if lib.bm_abi_version() != _ABI_VERSION:
                raise OSError(f"ABI version {lib.bm_abi_version()}, expected {_ABI_VERSION}; reinstall binmark")
            lib.bm_cpu_features.restype = ctypes.c_int
            lib.bm_conv.argtypes = [ctypes.POINTER(ConvArgs), ctypes.c_int]
            lib.bm_conv.restype = ctypes.c_int
            lib.bm_pack.argtypes = [ctypes.POINTER(PackArgs), ctypes.c_int]
            lib.bm_pack.restype = ctypes.c_int
            return lib
        except OSError as exc:
            reason = f"{path} could not be loaded ({exc})"
    warnings.warn(
        f"binmark's binary-convolution kernels are unavailable: {reason}. Packed models run in "
        "pure PyTorch (correct, but without the speed-up). Reinstall with a C compiler to fix.",
        RuntimeWarning,
        stacklevel=2,
    )
    return None


def tiers() -> list[str]:
    """Kernel tiers this build and CPU support, fastest first (empty without the library)."""
    lib = library()
    if lib is None:
        return []
    flags = lib.bm_cpu_features()
    return [name for name, bit in _CPU_FLAGS.items() if bit == 0 or flags & bit]


def forced() -> bool:
    """Whether ``BINMARK_KERNEL`` pins the tier (then layers do not measure alternatives)."""
    return bool(os.environ.get("BINMARK_KERNEL"))


def default_tier() -> str | None:
    """The tier binary layers use: ``BINMARK_KERNEL`` if set, else the fastest supported one."""
    available = tiers()
    forced = os.environ.get("BINMARK_KERNEL")
    if forced:
        if forced not in TIERS:
            raise ValueError(f"BINMARK_KERNEL={forced!r}: not a kernel tier; use one of {', '.join(TIERS)}")
        if forced not in available:
            raise RuntimeError(f"BINMARK_KERNEL={forced!r}: not supported here (available: {available})")
        return forced
    return available[0] if available else None


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def pack_bits(x: torch.Tensor, thr: torch.Tensor, masks: torch.Tensor, tier: str, out: torch.Tensor) -> None:
    """Threshold and pack float activations into ``out`` with the C kernel.

    Args:
        x: (P, C) float32, contiguous (NHWC pixels).
        thr: (C,) float32 thresholds; masks: (3, CW) int32 flip/set/clear bit masks.
        tier: a name from :func:`tiers`.
        out: (P, CW) int32, written.
    """
    lib = library()
    assert lib is not None
    args = PackArgs(
        x=_ptr(x), out=_ptr(out), thr=_ptr(thr), flip=_ptr(masks[0]), set=_ptr(masks[1]), clr=_ptr(masks[2]),
        npix=x.shape[0], c=x.shape[1], cw=out.shape[1], nthreads=torch.get_num_threads(),
    )  # fmt: skip
    # The AVX2 tier packs with the portable code (packing is a small share of a layer's time).
    if lib.bm_pack(ctypes.byref(args), 2 if tier == "avx512_vpopcnt" else 0) != 0:
        raise RuntimeError(f"bm_pack failed for tier {tier}")


def conv(args: ConvArgs, tier: str) -> None:
    """Run ``bm_conv`` with the given argument block and tier."""
    lib = library()
    assert lib is not None
    if lib.bm_conv(ctypes.byref(args), TIERS[tier]) != 0:
        raise RuntimeError(f"bm_conv: kernel tier {tier!r} is not supported by this CPU or build")

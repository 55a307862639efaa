"""Checkpoints: everything a run needs to continue exactly, written atomically, loaded safely.

A checkpoint is a dict saved with ``torch.save`` to a temporary file and ``os.replace``d. It holds
the unwrapped model's ``state_dict`` (never a DDP or compiled wrapper), the optimizer, the grad
scaler, the EMA weights, the position (stage, epoch, batch in epoch, global step), the RNG states,
the best validation result, the architecture and the resolved config. Loading uses
``torch.load(weights_only=True)``: no pickled code is ever executed.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from binmark import __version__
from binmark.fileio import atomic_write

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "describe_differences"]

FORMAT = 1


def rng_state() -> dict[str, Any]:
    """The torch, numpy and Python RNG states as plain data (safe for weights_only loading)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }  # fmt: skip


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format and version) atomically."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "binmark_version": __version__, **payload}, buf)
    atomic_write(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing pickled code.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a binmark checkpoint, truncated or unsafe, or a newer format.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, unsafe globals …
        raise ValueError(f"checkpoint {p} cannot be loaded safely ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "arch" not in ckpt:
        raise ValueError(f"checkpoint {p} is not a binmark training checkpoint (no model/arch entries)")
    if int(ckpt.get("format", 0)) > FORMAT:
        raise ValueError(f"checkpoint {p} has format {ckpt['format']}, newer than this binmark ({FORMAT}); upgrade binmark")
    return ckpt


def describe_differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Paths where two nested dicts/lists differ, as 'path: a != b' lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                out.append(f"{sub}: {a.get(key, '<missing>')!r} != {b.get(key, '<missing>')!r}")
            else:
                out += describe_differences(a[key], b[key], sub)
        return out
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]

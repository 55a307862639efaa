"""Plots as PNG files (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from binmark.fileio import atomic_write
from binmark.metrics import auc, ced

__all__ = ["plot_ced", "save_figure"]


def save_figure(fig: Any, path: str | Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def plot_ced(
    errors: Mapping[str, Any], path: str | Path, max_threshold: float = 0.1, title: str = "CED"
) -> None:
    """Cumulative error distribution curves, one per entry, with AUC in the legend.

    Args:
        errors: name → per-sample NME (fractions).
        path: PNG to write.
        max_threshold: the x-axis limit (NME fraction); AUC is computed at this threshold.
        title: plot title.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, e in errors.items():
        ts, frac = ced(np.asarray(e), max_threshold)
        ax.plot(ts * 100, frac * 100, label=f"{name} (AUC@{max_threshold:g} = {100 * auc(e, max_threshold):.1f})")
    ax.set_xlabel("NME (%)")
    ax.set_ylabel("images (%)")
    ax.set_xlim(0, max_threshold * 100)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    save_figure(fig, path)

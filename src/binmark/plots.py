"""Plots as PNG files (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from binmark.fileio import atomic_write
from binmark.metrics import auc, ced

__all__ = ["pyplot", "plot_ced", "plot_pck_curves", "plot_per_joint", "plot_training_curves", "read_log", "save_figure"]


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    plt = pyplot()

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
    fig, ax = pyplot().subplots(figsize=(5, 4))
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


def plot_pck_curves(
    curves: Mapping[str, tuple[Any, Any]], path: str | Path, metric: str = "PCKh", title: str = "PCKh vs threshold"
) -> None:
    """Accuracy-vs-threshold curves (PCKh@t over t), one per entry.

    Args:
        curves: name → (thresholds as fractions of the normalizer, accuracy in percent).
        path: PNG to write.
        metric: the y label's metric name.
        title: plot title.
    """
    fig, ax = pyplot().subplots(figsize=(5, 4))
    for name, (ts, values) in curves.items():
        ax.plot(np.asarray(ts), np.asarray(values), label=name)
    ax.set_xlabel("normalized distance threshold")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    save_figure(fig, path)


def plot_per_joint(names: Sequence[str], values: Any, path: str | Path, label: str, title: str = "per joint") -> None:
    """Horizontal bars of one value per joint (NaN bars are left empty).

    Args:
        names: K joint names.
        values: K values (e.g. PCKh@0.5 in percent, or NME in percent).
        path: PNG to write.
        label: the x-axis label (metric and unit).
        title: plot title.
    """
    v = np.asarray(values, dtype=np.float64)
    fig, ax = pyplot().subplots(figsize=(5, 0.5 + 0.22 * len(names)))
    ax.barh(list(names), np.nan_to_num(v), color="#1f77b4")
    ax.invert_yaxis()
    ax.set_xlabel(label)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(title)
    save_figure(fig, path)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a training log (``log.jsonl``) of its latest run (after the last "config"
    event: a log that several runs appended to shows the newest)."""
    import json

    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a line cut by a killed run
        if r.get("event") == "config":
            records = []
        records.append(r)
    return records


def plot_training_curves(records: Sequence[Mapping[str, Any]], path: str | Path, title: str = "training") -> list[str]:
    """Training loss over steps and the validation metrics logged during training.

    Args:
        records: ``read_log`` output: step records with ``loss`` (and ``stage``), and validation
            records with ``val/…`` keys.
        path: PNG to write.
        title: plot title.

    Returns:
        the validation metric names plotted.
    """
    plt = pyplot()
    steps = [r for r in records if "loss" in r and "step" in r]
    vals = [r for r in records if any(k.startswith("val/") for k in r) and "step" in r]
    headline = [k for k in ("val/NME", "val/Mean", "val/AP", "val/PCKh") if any(k in r for r in vals)][:1]
    fig, axes = plt.subplots(1, 2 if headline else 1, figsize=(10 if headline else 5, 3.6), squeeze=False)
    ax = axes[0][0]
    for stage in dict.fromkeys(r.get("stage", "") for r in steps):
        mine = [r for r in steps if r.get("stage", "") == stage]
        ax.plot([r["step"] for r in mine], [r["loss"] for r in mine], label=stage or None)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    if len({r.get("stage", "") for r in steps}) > 1:
        ax.legend(fontsize=8)
    for key in headline:
        ax2 = axes[0][1]
        mine = [r for r in vals if key in r]
        ax2.plot([r["step"] for r in mine], [r[key] for r in mine], "o-")
        ax2.set_xlabel("step")
        ax2.set_ylabel(key.removeprefix("val/") + " (%)")
        ax2.grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path)
    return headline

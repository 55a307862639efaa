"""``binmark report RUN_DIR``: one page (Markdown and HTML) about a training run.

It collects the run's config, its training curves (from ``log.jsonl``), the validation metrics
it logged, and — evaluating ``best.pt`` (else ``last.pt``) on the config's validation split — the
benchmark's curves: CED and per-landmark error for faces, PCKh-vs-threshold and per-joint PCKh for
MPII-style poses. A ``bench.json`` in the run folder (from ``binmark bench --out RUN_DIR``) adds
the latency chart. Everything goes to ``RUN_DIR/report/`` (PNG files, ``report.md``,
``report.html``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from binmark import metrics
from binmark.fileio import atomic_write
from binmark.plots import plot_ced, plot_pck_curves, plot_per_joint, plot_training_curves, read_log

__all__ = ["write_report"]

Section = tuple[str, str, Any]  # (title, kind: "text" | "table" | "image" | "code", content)


def _config(run: Path, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    for r in records:
        if r.get("event") == "config":
            return r["config"]
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            from binmark.train.checkpoint import load_checkpoint

            return load_checkpoint(run / name).get("config")
    return None


def _metric_table(values: dict[str, float]) -> list[list[str]]:
    return [["metric", "value"]] + [[k, "nan" if v != v else f"{v:.2f}"] for k, v in values.items()]


def _evaluate(run: Path, config: dict[str, Any], out: Path) -> list[Section]:
    """Evaluate the run's best checkpoint on its validation split; plots and the metric table."""
    from binmark.train.build import build_evaluator, build_split, model_from_checkpoint
    from binmark.train.config import Config, from_dict

    ckpt = next((run / n for n in ("best.pt", "last.pt") if (run / n).is_file()), None)
    if ckpt is None:
        return [("Evaluation", "text", f"No checkpoint (best.pt / last.pt) in {run}: nothing to evaluate.")]
    cfg = from_dict(Config, config)
    model, _ = model_from_checkpoint(ckpt)
    samples = build_split(cfg.data, "val")
    ev = build_evaluator(cfg, samples)
    pred = ev.predict(model)
    report = ev.report(pred)
    atomic_write(out / "eval.json", report.to_json())
    sections: list[Section] = [(f"Evaluation of {ckpt.name} on {report.dataset} ({len(samples)} samples)", "table", _metric_table(report.metrics))]
    if report.kind == "nme":
        plot_ced({cfg.model.name: report.details["errors"]}, out / "ced.png")
        plot_per_joint(report.details["landmarks"], report.details["per_landmark"], out / "per_joint.png", "NME (%)", "error per landmark")
        sections += [("Cumulative error distribution", "image", "ced.png"), ("Error per landmark", "image", "per_joint.png")]
    elif report.kind == "pckh":
        heads = np.asarray(pred.extra("head_size", "PCKh"), dtype=np.float64)
        ts = np.linspace(0.0, 0.5, 26)
        curve = [metrics.pckh(pred.coords, pred.gt, pred.visible, heads, t)["mean"] for t in ts]
        plot_pck_curves({cfg.model.name: (ts, curve)}, out / "pckh.png")
        plot_per_joint(report.details["joints"], report.details["per_joint@0.5"], out / "per_joint.png", "PCKh@0.5 (%)")
        sections += [("PCKh vs threshold", "image", "pckh.png"), ("PCKh@0.5 per joint", "image", "per_joint.png")]
    return sections


def _bench(run: Path, out: Path) -> list[Section]:
    path = run / "bench.json"
    if not path.is_file():
        return []
    from binmark.deploy.bench import plot, table

    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        text = table(result)
        plot(result, out / "bench.png")
    except (ValueError, KeyError, TypeError, StopIteration) as exc:
        return [("Runtime benchmark", "text", f"{path} is not a 'binmark bench' result ({type(exc).__name__}: {exc}); left out.")]
    return [("Runtime benchmark", "code", text), ("Latency", "image", "bench.png")]


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])] + ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines) + "\n"


def _html_table(rows: list[list[str]]) -> str:
    e = html.escape
    cells = ["<tr>" + "".join(f"<th>{e(c)}</th>" for c in rows[0]) + "</tr>"]
    cells += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows[1:]]
    return "<table>" + "".join(cells) + "</table>"


#: per output format: the page title, a section heading, and each section kind (content, heading)
_FORMATS: dict[str, dict[str, Any]] = {
    "md": {
        "title": lambda t: f"# {t}\n",
        "head": lambda h: f"## {h}\n",
        "text": lambda c, h: f"{c}\n",
        "code": lambda c, h: f"```\n{c}\n```\n",
        "image": lambda c, h: f"![{h}]({c})\n",
        "table": lambda c, h: _md_table(c),
    },
    "html": {
        "title": lambda t: f"<h1>{html.escape(t)}</h1>",
        "head": lambda h: f"<h2>{html.escape(h)}</h2>",
        "text": lambda c, h: f"<p>{html.escape(c)}</p>",
        "code": lambda c, h: f"<pre>{html.escape(c)}</pre>",
        "image": lambda c, h: f'<img src="{html.escape(c)}" alt="{html.escape(h)}">',
        "table": lambda c, h: _html_table(c),
    },
}
_STYLE = "body{font-family:sans-serif;max-width:60em;margin:auto}td,th{border:1px solid #ccc;padding:2px 8px}table{border-collapse:collapse}img{max-width:100%}"


def _render(title: str, sections: list[Section], fmt: str) -> str:
    f = _FORMATS[fmt]
    parts = [f["title"](title)]
    for head, kind, content in sections:
        parts += [f["head"](head), f[kind](content, head)]
    if fmt == "md":
        return "\n".join(parts)
    e = html.escape(title)
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e}</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n"


def write_report(run_dir: str | Path, evaluate: bool = True, out: str | Path | None = None) -> list[Path]:
    """Write the run's report (see the module docstring); returns report.md and report.html.

    Args:
        run_dir: a training run's ``output_dir``.
        evaluate: evaluate the checkpoint on the validation split (needs the dataset).
        out: output folder (default ``RUN_DIR/report``).

    Raises:
        FileNotFoundError: ``run_dir`` has no ``log.jsonl``.
    """
    run = Path(run_dir)
    log = run / "log.jsonl"
    if not log.is_file():
        raise FileNotFoundError(f"{log} does not exist: 'binmark report' needs a training run folder (output_dir of 'binmark train')")
    dest = Path(out) if out is not None else run / "report"
    dest.mkdir(parents=True, exist_ok=True)
    records = read_log(log)
    config = _config(run, records)
    sections: list[Section] = []
    if config is not None:
        sections.append(("Config", "code", yaml.safe_dump(config, sort_keys=False).rstrip()))
    if any("loss" in r for r in records):
        plot_training_curves(records, dest / "training.png", title=run.name)
        sections.append(("Training curves", "image", "training.png"))
    vals = [r for r in records if any(k.startswith("val/") for k in r)]
    if vals:
        last = {k.removeprefix("val/"): float(v) for k, v in vals[-1].items() if k.startswith("val/") and v is not None}
        sections.append((f"Last validation during training (step {vals[-1].get('step')})", "table", _metric_table(last)))
    if evaluate and config is not None:
        sections += _evaluate(run, config, dest)
    sections += _bench(run, dest)
    title = f"binmark run {run}"
    atomic_write(dest / "report.md", _render(title, sections, "md"))
    atomic_write(dest / "report.html", _render(title, sections, "html"))
    return [dest / "report.md", dest / "report.html"]

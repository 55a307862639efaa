"""The reproduction study: train every row of rows.yaml (× seeds), measure it, write the table.

    .venv/bin/python benchmarks/ablations/run.py                  # all rows, seed 0
    .venv/bin/python benchmarks/ablations/run.py --seeds 0 1 2    # three seeds per row
    .venv/bin/python benchmarks/ablations/run.py --rows hg_e_bin loss_ce_bin --seeds 1
    .venv/bin/python benchmarks/ablations/run.py --report         # only rebuild the table

Rows train in rows.yaml's order (all chosen rows for the first seed, then the next seed), whatever
the order given to ``--rows``. Resumable: a (row, seed) whose ``runs/ROW/seedS/result.json``
exists is skipped, so an interrupted study continues where it stopped. Each result holds the row's metric on the held-out synthetic
set (from the trainer's final validation), parameters, packed size and binary-MAC share
(``binmark.quant.summary``), the packed runtime's latency (batch 1, median of 20 runs) and the
training time. The table (mean ± half the min–max range over seeds) and the claim verdicts go to
``results.md`` / ``results.json`` here and into ``docs/results.md`` between its markers.
Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from binmark.deploy import pack
from binmark.fileio import atomic_write
from binmark.quant import summary
from binmark.train import Trainer, load_config
from binmark.train.build import model_from_checkpoint

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DOC = ROOT / "docs" / "results.md"
BEGIN, END = "<!-- ablations:begin -->", "<!-- ablations:end -->"


def _base(path: str) -> Path:
    return ROOT / path if path.startswith("configs/") else HERE / path


def _latency_ms(model: torch.nn.Module, size: int, runs: int = 20) -> float:
    packed = pack(model)
    x = torch.randn(1, 3, size, size)
    for _ in range(3):
        packed(x)
    times = []
    for _ in range(runs):
        tic = time.perf_counter()
        packed(x)
        times.append(1e3 * (time.perf_counter() - tic))
    return statistics.median(times)


def run_row(row: dict[str, Any], seed: int, spec: dict[str, Any], out: Path, threads: int) -> dict[str, Any]:
    """Train one (row, seed) and measure it; returns (and writes) its result."""
    run = out / row["id"] / f"seed{seed}"
    done = run / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    overrides = list(row.get("set", [])) + [f"output_dir={run}", f"train.seed={seed}", f"train.threads={threads}"]
    if "teacher" in row:
        teacher = next(r for r in spec["rows"] if r["id"] == row["teacher"])
        run_row(teacher, seed, spec, out, threads)
        overrides.append(f"loss.distill.teacher={out / teacher['id'] / f'seed{seed}' / 'last.pt'}")
    cfg = load_config(_base(row["base"]), overrides)
    bench = spec["benchmarks"][cfg.data.dataset]
    print(f"== {row['id']} seed {seed}: {row['label']}", flush=True)
    tic = time.perf_counter()
    report = Trainer(cfg).fit()
    seconds = time.perf_counter() - tic
    model, _ = model_from_checkpoint(run / "last.pt")
    size = cfg.data.input_size if isinstance(cfg.data.input_size, int) else cfg.data.input_size[0]
    s = summary(model, (1, 3, size, size))
    result = {
        "row": row["id"], "seed": seed, "metric": bench["metric"], "value": float(report.metrics[bench["metric"]]),
        "params": s.total_params, "packed_bytes": s.packed_bytes, "binary_mac_share": s.binary_mac_share,
        "latency_ms": _latency_ms(model, size), "train_seconds": seconds, "threads": threads,
    }  # fmt: skip
    atomic_write(done, json.dumps(result, indent=2))
    print(f"   {bench['metric']} = {result['value']:.2f}, {seconds:.0f} s", flush=True)
    return result


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (max(values) - min(values)) / 2


def _cell(values: list[float]) -> str:
    mean, spread = _stats(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {spread:.2f}"


def _keeps(claim: dict[str, Any], results: dict[str, list[dict[str, Any]]], rows: dict[str, Any]) -> str:
    """A "keeps accuracy at a fraction of the size" claim: metric within ``within`` % (relative)."""
    a, b = results.get(claim["keeps"]), results.get(claim["of"])
    if not a or not b:
        return f"{claim['paper']}. Not run yet."
    ma, mb = statistics.fmean(r["value"] for r in a), statistics.fmean(r["value"] for r in b)
    change = 100 * abs(ma - mb) / mb
    smaller = b[0]["packed_bytes"] / a[0]["packed_bytes"]
    seeds = min(len(a), len(b))
    if change > claim["within"]:
        word = "**does not reproduce**"
    else:
        word = "**reproduces**" if seeds > 1 else "within the tolerance (one seed: not conclusive)"
    return (f"{claim['paper']}. Here: {rows[claim['keeps']]['label']} {a[0]['metric']} {ma:.2f} vs {rows[claim['of']]['label']} "
            f"{mb:.2f} ({change:.1f} % apart; tolerance {claim['within']} %) at {smaller:.1f}× smaller — {word}.")  # fmt: skip


def _verdict(claim: dict[str, Any], results: dict[str, list[dict[str, Any]]], spec: dict[str, Any], rows: dict[str, Any]) -> str:
    if "keeps" in claim:
        return _keeps(claim, results, rows)
    a, b = results.get(claim["better"]), results.get(claim["worse"])
    if not a or not b:
        return f"{claim['paper']}. Not run yet."
    higher = next(v for v in spec["benchmarks"].values() if v["metric"] == a[0]["metric"])["higher_is_better"]
    (ma, sa), (mb, sb) = _stats([r["value"] for r in a]), _stats([r["value"] for r in b])
    gain = (ma - mb) if higher else (mb - ma)
    seeds = min(len(a), len(b))
    if gain > sa + sb and seeds > 1:
        word = "**reproduces**"
    elif gain > 0:
        word = "same direction" + (", within the seeds' spread" if seeds > 1 else " (one seed: not conclusive)")
    else:
        word = "**does not reproduce**" + (" (one seed)" if seeds == 1 else "")
    metric = a[0]["metric"]
    return (f"{claim['paper']}. Here: {rows[claim['better']]['label']} {metric} {ma:.2f} vs "
            f"{rows[claim['worse']]['label']} {mb:.2f} ({'+' if gain >= 0 else ''}{gain:.2f} in its favour, {seeds} seed(s)) — {word}.")  # fmt: skip


def report(spec: dict[str, Any], out: Path) -> str:
    """The results table and claim verdicts as Markdown (also written to results.md/.json and docs)."""
    rows = {r["id"]: r for r in spec["rows"]}
    results: dict[str, list[dict[str, Any]]] = {}
    for rid in rows:
        for f in sorted((out / rid).glob("seed*/result.json")):
            results.setdefault(rid, []).append(json.loads(f.read_text()))
    lines = ["| row | metric | seeds | params | packed | binary MACs | latency (ms) | train (s) |", "|---|---|---|---|---|---|---|---|"]
    for rid, row in rows.items():
        rs = results.get(rid)
        if not rs:
            lines.append(f"| {row['label']} | not run | 0 | | | | | |")
            continue
        r0 = rs[0]
        lines.append(
            f"| {row['label']} | {r0['metric']} {_cell([r['value'] for r in rs])} | {len(rs)} | {r0['params'] / 1e6:.3f} M | "
            f"{r0['packed_bytes'] / 1e6:.3f} MB | {100 * r0['binary_mac_share']:.1f} % | {_cell([r['latency_ms'] for r in rs])} | "
            f"{statistics.fmean(r['train_seconds'] for r in rs):.0f} |"
        )  # fmt: skip
    claims = [f"- {_verdict(c, results, spec, rows)}" for c in spec["claims"]]
    text = "\n".join(lines) + "\n\nClaims:\n\n" + "\n".join(claims) + "\n"
    atomic_write(HERE / "results.md", text)
    atomic_write(HERE / "results.json", json.dumps(results, indent=1))
    if DOC.is_file():
        doc = DOC.read_text()
        if BEGIN in doc and END in doc:
            head, rest = doc.split(BEGIN, 1)
            atomic_write(DOC, head + BEGIN + "\n" + text + END + rest.split(END, 1)[1])
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", nargs="+", help="row ids or groups (default: all)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "runs"), help="run folders (default: benchmarks/ablations/runs)")
    ap.add_argument("--report", action="store_true", help="only rebuild the table from finished runs")
    args = ap.parse_args()
    spec = yaml.safe_load((HERE / "rows.yaml").read_text())
    out = Path(args.out)
    chosen = [r for r in spec["rows"] if not args.rows or r["id"] in args.rows or r["group"] in args.rows]
    unknown = set(args.rows or []) - {r["id"] for r in spec["rows"]} - {r["group"] for r in spec["rows"]}
    if unknown:
        print(f"unknown rows/groups: {sorted(unknown)}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if not args.report:
        for seed in args.seeds:
            for row in chosen:
                run_row(row, seed, spec, out, args.threads)
                report(spec, out)
    print(report(spec, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

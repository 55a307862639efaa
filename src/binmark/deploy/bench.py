"""``binmark bench``: the packed binary runtime against the engines a user would pick instead.

Rows (each engine in its own process, ``python -m binmark.deploy.bench_worker``, which imports
this module's model helpers — never the other way; same weights everywhere, from
``torch.manual_seed(seed)``):

===================  =================================================================================
``pytorch_fp32``     the real-valued twin (same architecture, float32) in PyTorch eager
``pytorch_int8``     the twin quantized by PyTorch (FX graph mode, static, x86 backend, 8 calibration images)
``onnxruntime_fp32`` the twin exported to ONNX (opset 17) in ONNX Runtime
``openvino_fp32``    the ONNX twin in OpenVINO with ``INFERENCE_PRECISION_HINT=f32``
``openvino_default`` the ONNX twin in OpenVINO at its default precision (bf16 on AMX CPUs)
``openvino_int8``    the twin quantized by NNCF post-training quantization (8 calibration images) in OpenVINO
``openvino_binary``  the binary model itself as an OpenVINO IR with ``BinaryConvolution`` layers
                     (``binmark.deploy.openvino_ir``), float32, in OpenVINO
``fake_quant``       the binary model as trained: float fake quantization in PyTorch
``packed_modules``   the packed model module by module (C kernel per binary conv, glue in PyTorch)
``packed_exact``     the packed model in the fused engine, float32 real layers
``packed_fast``      the fused engine at ``precision="fast"``
===================  =================================================================================

Calibration and timing images are random normal tensors (latency does not depend on them).
Rows whose packages are missing (``onnxruntime``, ``openvino``, ``nncf``: ``pip install
'binmark[bench]'``) are skipped with a note. Latency: the median of ``runs`` calls after
``warmup``; each row also reports per-image time, the worker's peak resident set and the file
size of what it runs. The fused engine's per-op table (batch 1) and the reference binary conv
(3×3, 256→256 at 64×64) give binary GMAC/s and the share of the tier's peak at the measured clock.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from binmark.deploy import engine as fused
from binmark.deploy import native
from binmark.deploy.fileformat import pack
from binmark.deploy.plan import Plan, build_plan
from binmark.fileio import atomic_write
from binmark.models import build

__all__ = [
    "PEAK_MACS_PER_CYCLE", "VARIANTS", "bench", "op_rows", "plot", "pytorch_int8", "real_twin", "reference_layer_ms",
    "table", "write",
]  # fmt: skip

#: Binary MACs per cycle per core each popcount tier can reach at best: AVX-512 VPOPCNTDQ needs
#: XOR, VPOPCNTQ and an add, three 512-bit uops on the two ports that execute them, per 512 MACs
#: (512 / 1.5 ≈ 341); the AVX2 nibble lookup about 96; scalar POPCNT one 64-bit word per cycle.
PEAK_MACS_PER_CYCLE = {"avx512_vpopcnt": 341.0, "avx2": 96.0, "portable": 64.0}

#: variant → (label, packages it needs)
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pytorch_fp32": ("PyTorch fp32", ()),
    "pytorch_int8": ("PyTorch int8 (x86)", ()),
    "onnxruntime_fp32": ("ONNX Runtime fp32", ("onnxruntime", "onnx")),
    "openvino_fp32": ("OpenVINO fp32", ("openvino", "onnx")),
    "openvino_default": ("OpenVINO default", ("openvino", "onnx")),
    "openvino_int8": ("OpenVINO int8 (NNCF)", ("openvino", "nncf", "onnx")),
    "openvino_binary": ("OpenVINO binary IR", ("openvino",)),
    "fake_quant": ("binmark fake-quant", ()),
    "packed_modules": ("binmark modules", ()),
    "packed_exact": ("binmark fused exact", ()),
    "packed_fast": ("binmark fused fast", ()),
}
#: the rows a user would pick instead of a binary model: int8 and bf16 engines
INT8_BF16 = ("openvino_int8", "openvino_default", "pytorch_int8")


def real_twin(name: str, k: int, options: dict[str, Any]) -> nn.Module:
    """The real-valued network of the same architecture (BiHRNet's is HRNet of the same width)."""
    if name == "bihrnet":
        return build("hrnet", k, width=options.get("width", 32))
    return build(name, k, **{**options, "quant": "real"})


def pytorch_int8(model: nn.Module, size: Sequence[int], seed: int) -> nn.Module:
    """Static post-training int8 of ``model`` (FX graph mode, x86 backend), calibrated on 8 random
    (w, h) = ``size`` images: the ``pytorch_int8`` row (the worker times it; :func:`bench` reports
    its size)."""
    import copy

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    def image(s: int) -> torch.Tensor:  # what the worker's _images(1, size, s) is
        return torch.from_numpy(np.random.default_rng(s).standard_normal((1, 3, size[1], size[0]), dtype=np.float32))

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("x86"), example_inputs=(image(seed),))
        with torch.no_grad():
            for i in range(8):
                prepared(image(seed + 1 + i))
        return convert_fx(prepared)


def _state_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def _missing(packages: tuple[str, ...]) -> list[str]:
    return [p for p in packages if importlib.util.find_spec(p) is None]


def _prepare(tmp: Path, model: dict[str, Any], variants: list[str], seed: int) -> tuple[dict[str, str], dict[str, int]]:
    """Files the workers read (the .bmk, the ONNX twin, the int8 OpenVINO IR) and every variant's
    file size."""
    name, k, options, size = model["name"], model["num_keypoints"], model["options"], model["input_size"]
    torch.manual_seed(seed)
    fake = build(name, k, **options).eval()
    torch.manual_seed(seed)
    real = real_twin(name, k, options).eval()
    artifacts, sizes = {"bmk": str(tmp / "model.bmk")}, {}
    sizes["packed_modules"] = sizes["packed_exact"] = sizes["packed_fast"] = pack(fake).save(artifacts["bmk"]).stat().st_size
    sizes["pytorch_fp32"], sizes["fake_quant"] = _state_bytes(real), _state_bytes(fake)
    if any(v.startswith(("onnxruntime", "openvino")) and v != "openvino_binary" for v in variants):
        from binmark.deploy.onnx import _export

        artifacts["onnx"] = str(tmp / "twin.onnx")
        Path(artifacts["onnx"]).write_bytes(_export(real, tuple(size), 17))  # type: ignore[arg-type]
        for v in ("onnxruntime_fp32", "openvino_fp32", "openvino_default"):
            sizes[v] = Path(artifacts["onnx"]).stat().st_size
    if "openvino_int8" in variants:
        import nncf
        import openvino as ov

        rng = np.random.default_rng(seed)
        calibration = [rng.standard_normal((1, 3, size[1], size[0]), dtype=np.float32) for _ in range(8)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            int8 = nncf.quantize(ov.Core().read_model(artifacts["onnx"]), nncf.Dataset(calibration), subset_size=len(calibration))
        artifacts["openvino_int8"] = str(tmp / "int8.xml")
        ov.save_model(int8, artifacts["openvino_int8"])
        sizes["openvino_int8"] = sum(p.stat().st_size for p in (tmp / "int8.xml", tmp / "int8.bin"))
    if "openvino_binary" in variants:
        from binmark.deploy.openvino_ir import to_openvino

        xml = to_openvino(pack(fake), tmp / "binary.xml", tuple(size))  # type: ignore[arg-type]
        artifacts["openvino_binary"] = str(xml)
        sizes["openvino_binary"] = xml.stat().st_size + xml.with_suffix(".bin").stat().st_size
    if "pytorch_int8" in variants:
        sizes["pytorch_int8"] = _state_bytes(pytorch_int8(real, size, seed))
    return artifacts, sizes


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one variant in a fresh Python process; returns its result or {"skipped": reason}."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "binmark.deploy.bench_worker", json.dumps(spec)], capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
        if line.startswith("BENCH_SKIP "):
            return {"skipped": json.loads(line[11:])["reason"]}
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"skipped": f"the worker failed (exit {proc.returncode}): {tail[:300]}"}


def _machine(threads: int) -> dict[str, Any]:
    flags, name = set(), platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vpopcntdq", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16") if f in flags]
    versions = {"torch": torch.__version__}
    for pkg in ("openvino", "onnxruntime", "nncf"):
        if importlib.util.find_spec(pkg) is not None:
            from importlib.metadata import PackageNotFoundError, version

            try:
                versions[pkg] = version(pkg)
            except PackageNotFoundError:
                pass
    return {"cpu": name, "isa": isa, "threads": threads, "tiers": native.tiers(), "amx": fused.amx_available(),
            "ghz": fused.clock_ghz(), "versions": versions}  # fmt: skip


def bench(
    name: str = "hourglass",
    num_keypoints: int = 16,
    options: dict[str, Any] | None = None,
    input_size: tuple[int, int] = (256, 256),
    batches: tuple[int, ...] = (1, 8),
    threads: int = 2,
    runs: int = 20,
    warmup: int = 3,
    variants: tuple[str, ...] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Time every variant (see the module docstring) of a model, each in its own process.

    Args:
        name, num_keypoints, options: the model (``binmark.models.build``); default the 1-stack
            binary HPM hourglass (``quant="bulat17"``).
        input_size: (w, h) pixels (recorded as ``model.input_size`` in the result).
        batches, threads, runs, warmup: what is timed, and how.
        variants: the rows to run (default all of :data:`VARIANTS`).
        progress: show a progress bar on stderr.

    Returns:
        A JSON-able dict: ``machine``, ``model``, ``rows`` (variant, label, batch, median_ms,
        per_image_ms, peak_mb, file_bytes), ``skipped`` (variant → reason), ``kernels`` (the
        fused engine's per-op table and the reference layer) and ``engine`` (its kernel tiers).
    """
    from binmark.progress import bar as progress_bar

    options = {"quant": "bulat17"} if options is None else dict(options)
    chosen = list(variants or VARIANTS)
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown bench variants {unknown}; choose from {list(VARIANTS)}")
    model = {"name": name, "num_keypoints": num_keypoints, "options": options, "input_size": list(input_size)}
    skipped = {v: f"not installed: {', '.join(_missing(VARIANTS[v][1]))} (pip install 'binmark[bench]')" for v in chosen if _missing(VARIANTS[v][1])}
    chosen = [v for v in chosen if v not in skipped]
    result: dict[str, Any] = {"machine": _machine(threads), "model": model, "runs": runs, "rows": [], "skipped": skipped}
    with tempfile.TemporaryDirectory(prefix="binmark-bench-") as tmp:
        artifacts, sizes = _prepare(Path(tmp), model, chosen, seed)
        bar = progress_bar(len(chosen), "bench", "engine", enabled=progress, leave=True)
        for variant in chosen:
            bar.set_postfix_str(VARIANTS[variant][0])
            bar.update(0)
            spec = {"variant": variant, "model": model, "batches": list(batches), "threads": threads, "runs": runs,
                    "warmup": warmup, "seed": seed, "artifacts": artifacts, "kernels": variant == "packed_fast"}  # fmt: skip
            out = _run_worker(spec)
            bar.update(1)
            if "skipped" in out:
                skipped[variant] = out["skipped"]
                continue
            for row in out["rows"]:
                result["rows"].append({"variant": variant, "label": VARIANTS[variant][0], **row, "file_bytes": sizes.get(variant)})
            if "config" in out:
                result.setdefault("engine", {})[variant] = out["config"]
            if "kernels" in out:
                result["kernels"] = out["kernels"]
        bar.close()
    return result


# ------------------------------------------------------------------------------ per-op table


def _macs(op: Any) -> int:
    c, h, w = op.out_shape
    m = op.module
    if op.kind in ("bconv", "rconv"):
        return int(m.in_channels * c * m.kernel_size[0] * m.kernel_size[1] * h * w)
    return 0


def _describe(op: Any) -> str:
    c, h, w = op.out_shape
    if op.kind in ("bconv", "rconv"):
        m = op.module
        k, s = m.kernel_size, (m.stride if isinstance(m.stride, tuple) else (m.stride, m.stride))
        return f"{'binary' if op.kind == 'bconv' else 'real'} {m.in_channels}→{c} {k[0]}x{k[1]}{' s' + str(s[0]) if s[0] > 1 else ''} @ {h}x{w}"
    if op.kind == "pool":
        return f"{'avg' if op.avg else 'max'} pool {c} @ {h}x{w}"
    what = "upsample + add" if op.res is not None and op.res_shift else ("add" if op.res is not None else "elementwise")
    return f"{what} {c} @ {h}x{w}"


def op_rows(plan: Plan, times: np.ndarray) -> list[dict[str, Any]]:
    """The per-op times of a plan grouped by what the op is (kind, channels, kernel, size):
    count, total ms, MACs (binary or real) and GMAC/s; heaviest first."""
    groups: dict[str, dict[str, Any]] = {}
    for op, t in zip(plan.ops, times, strict=True):
        g = groups.setdefault(_describe(op), {"op": _describe(op), "kind": op.kind, "count": 0, "ms": 0.0, "macs": 0})
        g["count"] += 1
        g["ms"] += float(t) * 1e3
        g["macs"] += _macs(op)
    rows = sorted(groups.values(), key=lambda g: -g["ms"])
    for g in rows:
        g["gmacs"] = g["macs"] / g["ms"] / 1e6 if g["macs"] and g["ms"] > 0 else None
    return rows


def _reference_net() -> nn.Module:
    """1×1 real conv (makes the bits) → the reference binary 3×3 256→256 conv → max pool."""
    from binmark.deploy.pack import rewrite
    from binmark.quant import QuantConv2d

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 256, 1), QuantConv2d(256, 256, 3, 1, 1, spec="bulat17"), nn.MaxPool2d(2))
    return rewrite(net.eval())


def reference_layer_ms(threads: int, runs: int, warmup: int, config: fused.Config) -> dict[str, Any]:
    """Time of the engine's binary 3×3 conv 256→256 at 64×64 (batch 1), its binary GMAC/s and
    share of the popcount peak (:data:`PEAK_MACS_PER_CYCLE` × measured clock × threads)."""
    plan = build_plan(_reference_net(), 64, 64)
    engine = fused.Engine(plan, config)
    x = torch.randn(1, 3, 64, 64)
    for _ in range(warmup):
        engine(x, threads)
    times = np.zeros(len(plan.ops))
    for _ in range(runs):
        engine(x, threads, times=times)
    k = next(i for i, op in enumerate(plan.ops) if op.kind == "bconv")
    ms = float(times[k]) / runs * 1e3
    macs = _macs(plan.ops[k])
    ghz = fused.clock_ghz()
    peak = PEAK_MACS_PER_CYCLE[config.binary] * ghz * threads if ghz else None
    return {"op": "binary 256→256 3x3 @ 64x64 (reference)", "ms": ms, "macs": macs, "gmacs": macs / ms / 1e6,
            "peak_share": macs / ms / 1e6 / peak if peak else None, "ghz": ghz, "tier": config.binary}  # fmt: skip


# ------------------------------------------------------------------------------ reports


def targets(result: dict[str, Any]) -> list[str]:
    """The issue's comparisons, measured: the fused engine against PyTorch fp32 and the fastest
    int8/bf16 row, at each batch size."""
    lines = []
    by = {(r["variant"], r["batch"]): r["per_image_ms"] for r in result["rows"]}
    for batch in sorted({r["batch"] for r in result["rows"]}):
        ours = by.get(("packed_fast", batch))
        if ours is None:
            continue
        parts = [f"batch {batch}: fused fast {ours:.2f} ms/image"]
        if ("pytorch_fp32", batch) in by:
            parts.append(f"{by[('pytorch_fp32', batch)] / ours:.1f}x faster than PyTorch fp32")
        rivals = [(by[(v, batch)], v) for v in INT8_BF16 if (v, batch) in by]
        if rivals:
            ms, v = min(rivals)
            parts.append(f"{'faster' if ours < ms else 'slower'} than the fastest int8/bf16 row ({VARIANTS[v][0]} {ms:.2f} ms, x{ms / ours:.2f})")
        lines.append(", ".join(parts))
    return lines


def table(result: dict[str, Any]) -> str:
    """The benchmark result as plain text: latency table, per-op table, notes."""
    m = result["machine"]
    lines = [f"{m['cpu']} ({', '.join(m['isa'])}), {m['threads']} threads, {m['ghz'] or 0:.2f} GHz measured; "
             f"model {result['model']['name']} {result['model']['options']} {result['model']['input_size'][1]}x{result['model']['input_size'][0]} (HxW)"]  # fmt: skip
    lines.append(f"{'engine':<22}{'batch':>6}{'ms':>10}{'ms/image':>10}{'x fp32':>8}{'peak MB':>9}{'file MB':>9}")
    base = {r["batch"]: r["per_image_ms"] for r in result["rows"] if r["variant"] == "pytorch_fp32"}
    for r in sorted(result["rows"], key=lambda r: (r["batch"], list(VARIANTS).index(r["variant"]))):
        speed = f"{base[r['batch']] / r['per_image_ms']:.1f}" if r["batch"] in base else "-"
        peak = f"{r['peak_mb']:.0f}" if r.get("peak_mb") else "-"
        size = f"{r['file_bytes'] / 1e6:.2f}" if r.get("file_bytes") else "-"
        lines.append(f"{r['label']:<22}{r['batch']:>6}{r['median_ms']:>10.2f}{r['per_image_ms']:>10.2f}{speed:>8}{peak:>9}{size:>9}")
    for v, why in result.get("skipped", {}).items():
        lines.append(f"skipped {v}: {why}")
    lines += [""] + targets(result)
    kernels = result.get("kernels")
    if kernels:
        lines += ["", f"fused engine per op, batch 1 ({result.get('engine', {}).get('packed_fast')}):",
                  f"{'op':<40}{'n':>4}{'ms':>9}{'GMAC/s':>9}"]  # fmt: skip
        for g in kernels["ops"]:
            gm = f"{g['gmacs']:.0f}" if g["gmacs"] else "-"
            lines.append(f"{g['op']:<40}{g['count']:>4}{g['ms']:>9.3f}{gm:>9}")
        total = sum(g["ms"] for g in kernels["ops"])
        lines.append(f"{'total':<40}{'':>4}{total:>9.3f}")
        ref = kernels["reference"]
        share = f", {100 * ref['peak_share']:.0f} % of the {ref['tier']} peak at {ref['ghz']:.2f} GHz" if ref.get("peak_share") else ""
        lines.append(f"{ref['op']}: {ref['ms']:.3f} ms, {ref['gmacs']:.0f} binary GMAC/s{share}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> None:
    """Bar chart of per-image latency per engine and batch size (binmark's rows in red)."""
    from binmark.plots import pyplot, save_figure

    batches = sorted({r["batch"] for r in result["rows"]})
    fig, axes = pyplot().subplots(1, len(batches), figsize=(5.5 * len(batches), 3.8), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        rows = sorted((r for r in result["rows"] if r["batch"] == batch), key=lambda r: list(VARIANTS).index(r["variant"]))
        ax.barh([r["label"] for r in rows], [r["per_image_ms"] for r in rows],
                color=["#d62728" if r["variant"].startswith("packed") else "#888888" for r in rows])  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("ms per image (log scale)")
        ax.set_title(f"batch {batch}, {result['machine']['threads']} threads")
        ax.invert_yaxis()
    m = result["model"]
    fig.suptitle(f"{m['name']} {m['options']} {m['input_size'][1]}×{m['input_size'][0]} (H×W) — {result['machine']['cpu']}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def write(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write bench.json, bench.txt and bench.png into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "bench.json", json.dumps(result, indent=2))
    atomic_write(out / "bench.txt", table(result) + "\n")
    plot(result, out / "bench.png")
    return [out / "bench.json", out / "bench.txt", out / "bench.png"]

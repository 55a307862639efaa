"""``binmark bench``: the packed runtime against PyTorch fp32, ONNX Runtime, PyTorch int8 and the
fake-quantized model, plus the per-layer binary-kernel table.

Every latency is the median of ``runs`` timed calls after ``warmup`` calls, in milliseconds, with
``torch.set_num_threads(threads)`` (and as many ONNX Runtime intra-op threads). Peak memory is the
process's peak resident set (VmHWM) while the variant runs, reset before each variant through
``/proc/self/clear_refs`` (Linux; None elsewhere). File sizes: the fp32 state_dict as ``torch.save``
writes it, the ONNX file, the int8 model's state_dict, and the ``.bmk`` file.
"""

from __future__ import annotations

import copy
import io
import json
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from binmark.deploy import native
from binmark.deploy.fileformat import pack
from binmark.deploy.layers import PackedBinaryConv2d, backends, choices
from binmark.fileio import atomic_write
from binmark.models import build

__all__ = ["PEAK_MACS_PER_CYCLE", "bench", "kernel_table", "table", "plot"]

#: Binary MACs per cycle per core each kernel tier can reach at best (binary-kernels.md §2.2:
#: 341 for AVX-512 VPOPCNTDQ on zmm, ≈ 96 for the AVX2 nibble lookup, 64 for scalar POPCNT).
PEAK_MACS_PER_CYCLE = {"avx512_vpopcnt": 341.0, "avx2": 96.0, "portable": 64.0}


def _median_ms(fn: Callable[[], Any], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _state_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def cpu_ghz() -> float | None:
    """The CPU clock /proc/cpuinfo reports (GHz), or None. Under virtualisation this is often the
    nominal clock, not the boost clock the kernels run at."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000
    except (OSError, ValueError):
        pass
    return None


def _real_twin(name: str, k: int, options: dict[str, Any]) -> nn.Module:
    """The real-valued network of the same architecture (BiHRNet's is HRNet of the same width)."""
    if name == "bihrnet":
        return build("hrnet", k, width=options.get("width", 32))
    return build(name, k, **{**options, "quant": "real"})


def _variants(name: str, k: int, options: dict[str, Any], x: torch.Tensor, threads: int, onnx: bool, int8: bool) -> dict[str, tuple[Callable[[torch.Tensor], Any], int]]:
    """name → (callable on a batch, file size in bytes)."""
    fake = build(name, k, **options).eval()
    real = _real_twin(name, k, options).eval()
    out: dict[str, tuple[Callable[[torch.Tensor], Any], int]] = {"pytorch_fp32": (real, _state_bytes(real))}
    if onnx:
        from binmark.deploy.onnx import _export

        try:
            import onnxruntime as ort

            data = _export(real, tuple(x.shape[2:]), 17)  # type: ignore[arg-type]
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            out["onnxruntime_fp32"] = (lambda b: session.run(None, {"images": b.numpy()}), len(data))
        except ImportError:
            warnings.warn("onnxruntime is not installed: the ONNX Runtime row is skipped", RuntimeWarning, stacklevel=2)
    if int8:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = "x86"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = prepare_fx(copy.deepcopy(real), get_default_qconfig_mapping("x86"), example_inputs=(x,))
            with torch.no_grad():
                for _ in range(4):  # calibration on random images
                    prepared(torch.randn_like(x))
            q = convert_fx(prepared)
        out["pytorch_int8"] = (q, _state_bytes(q))
    out["fake_quant"] = (fake, _state_bytes(fake))
    packed = pack(fake)
    out["packed"] = (packed, len(packed.file_bytes()))
    return out


def bench(
    name: str = "hourglass",
    num_keypoints: int = 16,
    options: dict[str, Any] | None = None,
    input_size: tuple[int, int] = (256, 256),
    batches: tuple[int, ...] = (1, 8),
    threads: int = 2,
    runs: int = 20,
    warmup: int = 3,
    onnx: bool = True,
    int8: bool = True,
) -> dict[str, Any]:
    """Time every variant of a model (see the module docstring) and the packed model's binary
    convolutions. The default model is the 1-stack binary HPM hourglass at 256×256.

    Returns:
        A JSON-able dict: ``machine``, ``model``, ``rows`` (variant, batch, median_ms, peak_mb,
        file_bytes) and ``kernels`` (see :func:`kernel_table`).
    """
    options = {"quant": "bulat17"} if options is None else dict(options)
    torch.set_num_threads(threads)
    x1 = torch.randn(1, 3, *input_size)
    variants = _variants(name, num_keypoints, options, x1, threads, onnx, int8)
    rows = []
    for batch in batches:
        x = torch.randn(batch, 3, *input_size)
        for variant, (fn, size) in variants.items():
            _reset_peak()
            with torch.inference_mode():
                ms = _median_ms(lambda: fn(x), runs, warmup)
            rows.append({"variant": variant, "batch": batch, "median_ms": ms, "peak_mb": _peak_mb(), "file_bytes": size})
    packed = variants["packed"][0]
    return {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": threads, "tiers": native.tiers(),
                    "backends": backends(), "ghz": cpu_ghz(), "torch": torch.__version__},
        "model": {"name": name, "num_keypoints": num_keypoints, "options": options, "input_size": list(input_size)},
        "runs": runs,
        "rows": rows,
        "kernels": kernel_table(packed, x1, runs=runs, warmup=warmup),
        "choices": {str(k): v for k, v in choices().items()},
    }  # fmt: skip


def kernel_table(model: nn.Module, x: torch.Tensor, runs: int = 20, warmup: int = 3, extra: bool = True) -> list[dict[str, Any]]:
    """Time each distinct binary convolution shape of a packed model on its real input, with the
    fastest popcount tier, and (``extra``) the reference layer 3×3 256→256 at 64×64.

    Each row: shape, binary MACs, median ms, GMAC/s (binary), and the share of the tier's peak
    (``PEAK_MACS_PER_CYCLE`` × :func:`cpu_ghz` × threads).
    """
    inputs: dict[tuple[Any, ...], tuple[PackedBinaryConv2d, torch.Tensor]] = {}

    def grab(mod: nn.Module, args: tuple[torch.Tensor, ...], _: Any) -> None:
        assert isinstance(mod, PackedBinaryConv2d)
        key = (mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, tuple(args[0].shape[2:]))
        inputs.setdefault(key, (mod, args[0].clone()))

    hooks = [m.register_forward_hook(grab) for m in model.modules() if isinstance(m, PackedBinaryConv2d)]
    with torch.inference_mode():
        model(x)
    for h in hooks:
        h.remove()
    if extra:
        from binmark.quant import QuantConv2d

        ref = PackedBinaryConv2d.from_conv(QuantConv2d(256, 256, 3, 1, 1, spec="bulat17").eval())
        inputs[(256, 256, (3, 3), (1, 1), (64, 64), "reference")] = (ref, torch.randn(1, 256, 64, 64))
    tier = native.default_tier()
    ghz, threads = cpu_ghz(), torch.get_num_threads()
    rows = []
    for key, (layer, inp) in inputs.items():
        ho, wo = layer.output_size(*inp.shape[2:])
        macs = inp.shape[0] * layer.in_channels * layer.out_channels * layer.kernel_size[0] * layer.kernel_size[1] * ho * wo
        row: dict[str, Any] = {"cin": layer.in_channels, "cout": layer.out_channels, "kernel": list(layer.kernel_size),
                               "stride": list(layer.stride), "input": list(inp.shape[2:]), "binary_macs": macs, "tier": tier,
                               "reference": len(key) > 5}  # fmt: skip
        if tier is not None:
            with torch.inference_mode():
                ms = _median_ms(lambda: layer.run(inp, tier), runs, warmup)
            row["median_ms"] = ms
            row["gmacs"] = macs / ms / 1e6
            peak = PEAK_MACS_PER_CYCLE[tier] * ghz * threads if ghz else None
            row["peak_share"] = row["gmacs"] / peak if peak else None
        rows.append(row)
    return rows


def table(result: dict[str, Any]) -> str:
    """The benchmark result as a plain-text table (latency, speed-up over fp32, memory, size)."""
    lines = [f"{'variant':<18}{'batch':>6}{'median ms':>11}{'× fp32':>8}{'peak MB':>9}{'file MB':>9}{'× smaller':>10}"]
    base = {r["batch"]: r["median_ms"] for r in result["rows"] if r["variant"] == "pytorch_fp32"}
    size = next(r["file_bytes"] for r in result["rows"] if r["variant"] == "pytorch_fp32")
    for r in result["rows"]:
        peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] else "-"
        lines.append(f"{r['variant']:<18}{r['batch']:>6}{r['median_ms']:>11.2f}{base[r['batch']] / r['median_ms']:>8.2f}"
                     f"{peak:>9}{r['file_bytes'] / 1e6:>9.2f}{size / r['file_bytes']:>10.1f}")  # fmt: skip
    lines.append("")
    lines.append(f"{'binary conv (Cin→Cout k s @ HxW)':<36}{'MMAC':>9}{'ms':>9}{'GMAC/s':>9}{'% peak':>8}")
    for k in result["kernels"]:
        shape = f"{k['cin']}→{k['cout']} {k['kernel'][0]}x{k['kernel'][1]} s{k['stride'][0]} @ {k['input'][0]}x{k['input'][1]}"
        shape += " (ref)" if k["reference"] else ""
        share = f"{100 * k['peak_share']:.0f}" if k.get("peak_share") else "-"
        lines.append(f"{shape:<36}{k['binary_macs'] / 1e6:>9.1f}{k.get('median_ms', float('nan')):>9.3f}{k.get('gmacs', float('nan')):>9.1f}{share:>8}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> None:
    """A bar chart of median latency per variant and batch size, written to ``path`` (PNG)."""
    from binmark.plots import pyplot, save_figure

    batches = sorted({r["batch"] for r in result["rows"]})
    variants = list(dict.fromkeys(r["variant"] for r in result["rows"]))
    fig, axes = pyplot().subplots(1, len(batches), figsize=(5 * len(batches), 3.6), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        ms = [next(r["median_ms"] for r in result["rows"] if r["variant"] == v and r["batch"] == batch) for v in variants]
        ax.barh(variants, ms, color=["#888888"] * (len(variants) - 1) + ["#d62728"])
        ax.set_xlabel("median latency (ms)")
        ax.set_title(f"batch {batch}, {result['machine']['threads']} threads")
        ax.invert_yaxis()
    m = result["model"]
    fig.suptitle(f"{m['name']} {m['options']} {m['input_size'][0]}×{m['input_size'][1]}")
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

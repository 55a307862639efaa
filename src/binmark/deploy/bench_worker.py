"""One engine of ``binmark bench``, timed in a process of its own.

``python -m binmark.deploy.bench_worker SPEC_JSON`` builds one variant, times it at each batch
size and prints one line ``BENCH {json}``. Running every engine in its own process keeps their
thread pools apart: OpenVINO's TBB workers and PyTorch's OpenMP workers in one process slow each
other several-fold. The ONNX Runtime and OpenVINO workers do not import torch at all; the models
they read were written by the parent process (``binmark.deploy.bench``).

Imports point one way: the PyTorch workers take the models and the per-op table from
``binmark.deploy.bench`` (imported inside them, so the other workers stay free of torch); ``bench``
never imports this module, it only runs it as ``python -m``.

Timing: ``warmup`` untimed calls, then the median of ``runs`` timed calls of one batch, in ms,
with Python's garbage collector off (its full collections otherwise land in random calls), for
every engine alike; the parent sets ``OPENBLAS_NUM_THREADS=1`` so that numpy's BLAS threads do
not spin on the two cores.
Peak memory: the process's peak resident set (VmHWM), reset before each batch through
``/proc/self/clear_refs`` (Linux; None elsewhere).
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_variant"]


def _median_ms(fn: Callable[[], Any], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return 1e3 * statistics.median(times)


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _images(batch: int, size: list[int], seed: int) -> Any:
    """(batch, 3, h, w) float32 standard-normal images for a (w, h) ``size``."""
    import numpy as np

    return np.random.default_rng(seed).standard_normal((batch, 3, size[1], size[0]), dtype=np.float32)


def _torch_variant(spec: dict[str, Any]) -> tuple[Callable[[Any], Any], dict[str, Any]]:
    """A PyTorch or binmark variant: (callable on a numpy batch, extra result fields)."""
    import torch

    torch.set_num_threads(spec["threads"])
    variant, m = spec["variant"], spec["model"]
    if variant.startswith("packed_"):
        from binmark.deploy import load

        runtime, precision = ("modules", "exact") if variant == "packed_modules" else ("fused", variant.split("_")[1])
        packed = load(spec["artifacts"]["bmk"], precision=precision, runtime=runtime)
        extra: dict[str, Any] = {}
        if runtime == "fused":
            engine = packed.fused_engine(m["input_size"][1], m["input_size"][0])
            extra["config"] = {"binary": engine.config.binary, "real": engine.config.real}
        return lambda b: packed(torch.from_numpy(b)), extra
    from binmark.deploy.bench import pytorch_int8, real_twin

    torch.manual_seed(spec["seed"])
    if variant == "fake_quant":
        from binmark.models import build

        model = build(m["name"], m["num_keypoints"], **m["options"]).eval()
    else:
        model = real_twin(m["name"], m["num_keypoints"], m["options"]).eval()
    if variant == "pytorch_int8":
        model = pytorch_int8(model, m["input_size"], spec["seed"])
    return lambda b: model(torch.from_numpy(b)), {}


def _onnxruntime(spec: dict[str, Any]) -> Callable[[Any], Any]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = spec["threads"]
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(spec["artifacts"]["onnx"], opts, providers=["CPUExecutionProvider"])
    return lambda b: session.run(None, {"images": b})


def _openvino(spec: dict[str, Any], batch: int) -> Callable[[Any], Any]:
    """An OpenVINO model compiled for one batch size (static shapes), latency hint."""
    import openvino as ov

    core = ov.Core()
    variant = spec["variant"]
    path = spec["artifacts"][variant if variant in ("openvino_int8", "openvino_binary") else "onnx"]
    model = core.read_model(path)
    w, h = spec["model"]["input_size"]
    model.reshape([batch, 3, h, w])
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": spec["threads"], "PERFORMANCE_HINT": "LATENCY"}
    if variant in ("openvino_fp32", "openvino_binary"):  # the binary IR as binmark exports it: float32
        config["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    return lambda b: request.infer([b])


def _kernel_times(spec: dict[str, Any]) -> dict[str, Any]:
    """Per-op times of the fused engine at batch 1 and the reference binary conv."""
    import numpy as np
    import torch

    from binmark.deploy import load
    from binmark.deploy.bench import op_rows, reference_layer_ms

    m = spec["model"]
    packed = load(spec["artifacts"]["bmk"], precision=spec["variant"].split("_")[1], runtime="fused")
    engine = packed.fused_engine(m["input_size"][1], m["input_size"][0])
    x = torch.from_numpy(_images(1, m["input_size"], spec["seed"]))
    for _ in range(spec["warmup"]):
        engine(x, spec["threads"])
    times = np.zeros(len(engine.plan.ops))
    for _ in range(spec["runs"]):
        engine(x, spec["threads"], times=times)
    times /= spec["runs"]
    return {"ops": op_rows(engine.plan, times), "reference": reference_layer_ms(spec["threads"], spec["runs"], spec["warmup"], engine.config)}


def run_variant(spec: dict[str, Any]) -> dict[str, Any]:
    """Time one variant (see the module docstring); returns the rows and extra fields."""
    variant, rows = spec["variant"], []
    fn, extra = None, {}
    if variant == "onnxruntime_fp32":
        fn = _onnxruntime(spec)
    elif not variant.startswith("openvino_"):
        fn, extra = _torch_variant(spec)
    for batch in spec["batches"]:
        call = _openvino(spec, batch) if variant.startswith("openvino_") else fn
        x = _images(batch, spec["model"]["input_size"], spec["seed"])
        _reset_peak()
        if variant.startswith(("pytorch", "fake", "packed")):
            import torch

            with torch.inference_mode():
                ms = _median_ms(lambda: call(x), spec["runs"], spec["warmup"])  # type: ignore[misc]
        else:
            ms = _median_ms(lambda: call(x), spec["runs"], spec["warmup"])  # type: ignore[misc]
        rows.append({"batch": batch, "median_ms": ms, "per_image_ms": ms / batch, "peak_mb": _peak_mb()})
    if spec.get("kernels"):
        extra["kernels"] = _kernel_times(spec)
    return {"variant": variant, "rows": rows, **extra}


def main(argv: list[str] | None = None) -> int:
    spec = json.loads((argv or sys.argv[1:])[0])
    try:
        result = run_variant(spec)
    except ImportError as exc:
        print(f"BENCH_SKIP {json.dumps({'reason': f'not installed: {exc.name}'})}", flush=True)
        return 0
    print(f"BENCH {json.dumps(result)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

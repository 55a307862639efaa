"""ONNX export of the real-valued / fake-quantized graph, checked against ONNX Runtime.

The exported graph is what PyTorch computes in eval mode (signs as comparisons and selects, binary
weights as float ±α tensors): a portable reference for other runtimes, not a bit-packed model.
Needs the optional packages ``onnx`` and ``onnxruntime`` (``pip install binmark[onnx]``).
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from binmark.deploy.exact import dyadic, dyadic_input
from binmark.fileio import atomic_write

__all__ = ["export_onnx"]


def export_onnx(model: nn.Module, path: str | Path, input_size: tuple[int, int], opset: int = 17, atol: float = 1e-3) -> float:
    """Export ``model`` (eval mode, batch dimension dynamic) to ``path`` and check it.

    Args:
        model: any binmark model.
        path: the ``.onnx`` file to write (atomically).
        input_size: (w, h) of the example input, pixels.
        opset: the ONNX opset.
        atol: the largest accepted difference between ONNX Runtime and PyTorch, relative to the
            heatmaps' range.

    Returns:
        The largest |ONNX Runtime − PyTorch| over the outputs of the exactly representable copy,
        relative to the last heatmap's range.

    Raises:
        ImportError: onnx or onnxruntime is not installed.
        RuntimeError: ONNX Runtime's output differs from PyTorch's by more than ``atol``.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("ONNX export needs onnxruntime and onnx: pip install 'binmark[onnx]'") from exc
    data = _export(model.eval(), input_size, opset)
    # Check the graph on a copy with exactly representable parameters (binmark.deploy.exact):
    # with the model's own weights a binary network's rounding-driven sign flips would hide a
    # real difference or fake one.
    probe = dyadic(copy.deepcopy(model))
    x = dyadic_input((2, 3, input_size[1], input_size[0]))
    with torch.no_grad():
        ref = [t.numpy() for t in probe(x)]
    session = ort.InferenceSession(_export(probe, input_size, opset), providers=["CPUExecutionProvider"])
    out = session.run(None, {"images": x.numpy()})
    span = float(ref[-1].max() - ref[-1].min()) or 1.0
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, out, strict=True)) / span
    if diff > atol:
        raise RuntimeError(f"ONNX export of {type(model).__name__}: ONNX Runtime differs from PyTorch by {diff:.2e} of the heatmap range (> {atol})")
    atomic_write(path, data)
    return diff


def _export(model: nn.Module, input_size: tuple[int, int], opset: int) -> bytes:
    """The ONNX bytes of ``model`` (inputs "images", outputs "heatmaps_i", dynamic batch)."""
    x = torch.zeros(1, 3, input_size[1], input_size[0])
    with torch.no_grad():
        names = [f"heatmaps_{i}" for i in range(len(model(x)))]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["images"], output_names=names,
            dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}},
        )  # fmt: skip
        return path.read_bytes()

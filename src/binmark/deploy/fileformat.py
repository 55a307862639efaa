"""``PackedModel`` and the ``.bmk`` file: safetensors tensors + a JSON manifest, never pickle.

A ``.bmk`` file is a safetensors file. Its tensors are the packed model's state (bit-packed ±1
weights as int32 words, k-bit weight codes as bytes, float scales, thresholds and the real-valued
layers). Its metadata entry ``"binmark"`` is the manifest, a JSON object:

- ``format`` ("binmark-packed") and ``version`` (:data:`FORMAT_VERSION`); a file of a newer version
  is refused with a message saying to upgrade;
- ``arch``: the registry record (model name, K, options) the runtime graph is rebuilt from;
- ``inference`` (optional): the :class:`binmark.inference.InferenceSpec` (schema, input size,
  decoding, padding) that :class:`binmark.Localizer` needs; written when the packed model knows it
  (models loaded from a training checkpoint do);
- ``real_dtype`` (optional, default "float32"): "float16" when the real-valued layers' weights are
  stored in half precision (``save(path, real_dtype="float16")``); they are loaded as float32;
- ``layers``: the packed layers (the runtime graph's quantized nodes), compared on load with what
  this binmark rebuilds, so a file never loads into a different network;
- ``checksum``: SHA-256 over the manifest (without this field) and every tensor's name, dtype,
  shape and bytes. A truncated, corrupted or edited file is refused.

Files are written atomically (temporary file + rename).
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from binmark import __version__
from binmark.deploy import engine
from binmark.deploy.pack import layer_records, rewrite
from binmark.deploy.plan import Plan, Unsupported, build_plan
from binmark.fileio import atomic_write
from binmark.topdown import INFERENCE_ATTR, InferenceSpec
from binmark.models import ARCH_ATTR, Architecture

__all__ = ["FORMAT", "FORMAT_VERSION", "REAL_DTYPES", "RUNTIMES", "DEFAULT_PRECISION", "PackedFileError", "PackedModel", "pack", "load"]

FORMAT = "binmark-packed"
#: The ``.bmk`` format version this binmark writes and the newest it reads.
FORMAT_VERSION = 1
#: storage types of the real-valued layers' weights (manifest field ``real_dtype``, default float32)
REAL_DTYPES = ("float32", "float16")
#: how a packed model runs: the fused engine where it can (else module by module), only the fused
#: engine (an error where it cannot), or module by module
RUNTIMES = ("auto", "fused", "modules")
#: the real-valued layers' arithmetic by default (``binmark.deploy.engine``; the choice is measured
#: in docs/deploy.md and tests/deploy/test_precision.py)
DEFAULT_PRECISION = "exact"


class PackedFileError(ValueError):
    """A ``.bmk`` file that cannot be loaded: truncated, corrupted, tampered with, or too new."""


class PackedModel(nn.Module):
    """A packed model: ``packed(x)`` → the list of heatmaps ``model.eval()(x)`` returns.

    Outputs have the model's shapes (N, K, H/4, W/4). Build one with :func:`pack` or :func:`load`.

    Args:
        net: the rewritten network (``binmark.deploy.pack.rewrite``).
        arch: its architecture record.
        inference: the inference spec stored with it, or None.
        precision: the real-valued layers' arithmetic in the fused engine: "fast" (AMX bf16 where
            the CPU has it, float32 elsewhere) or "exact" (float32: equal to the fake-quantized
            model up to float rounding); see ``binmark.deploy.engine``.
        runtime: "auto" (the fused engine where the network allows, module by module otherwise),
            "fused" (the engine only; a network it cannot run is an error) or "modules" (module by
            module: each packed layer a C kernel call, the glue in PyTorch).

    The fused engine's plan is built once per input size (:meth:`plan`) and kept, with the
    compiled engine per kernel configuration; inputs of other sizes get their own plan.
    """

    def __init__(
        self,
        net: nn.Module,
        arch: Architecture,
        inference: InferenceSpec | None = None,
        precision: str = DEFAULT_PRECISION,
        runtime: str = "auto",
    ) -> None:
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last).eval()
        setattr(self, ARCH_ATTR, arch)  # where a built model carries its record (binmark.models)
        self.inference = inference
        self.precision = precision
        self.runtime = runtime
        self._reset_caches()
        super().train(False)  # inference-only: the wrapper, too, is in eval mode

    @property
    def arch(self) -> Architecture:
        """The architecture record (the ``binmark_arch`` every built model carries)."""
        return getattr(self, ARCH_ATTR)

    def _reset_caches(self) -> None:
        self._plans: dict[tuple[Any, ...], Plan | str] = {}
        self._engines: dict[tuple[Any, ...], engine.Engine] = {}
        self._lock = threading.Lock()

    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in engine.PRECISIONS:
            raise ValueError(f"precision must be one of {engine.PRECISIONS}, got {value!r}")
        self._precision = value

    @property
    def runtime(self) -> str:
        return self._runtime

    @runtime.setter
    def runtime(self, value: str) -> None:
        if value not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {value!r}")
        self._runtime = value

    def plan(self, height: int, width: int) -> Plan | None:
        """The fused engine's plan for (height, width) images, or None when the network has a part
        the engine cannot run (:meth:`why_modules` says which).

        Raises:
            ValueError: the model does not take images of this size.
        """
        config = engine.config_for(self.precision)
        key = (int(height), int(width), config)
        with self._lock:
            if key not in self._plans:
                try:
                    self._plans[key] = build_plan(self.net, int(height), int(width), engine.binary_format(config), engine.real_parts(config))
                except Unsupported as exc:
                    self._plans[key] = str(exc)
            found = self._plans[key]
        return found if isinstance(found, Plan) else None

    def why_modules(self, height: int, width: int) -> str | None:
        """Why (height, width) inputs would run module by module, or None if they run fused."""
        if self.runtime == "modules":
            return "runtime='modules'"
        if engine.config_for(self.precision) is None:
            return "binmark's C library is not built"
        if self.plan(height, width) is None:
            return self._plans[(int(height), int(width), engine.config_for(self.precision))]  # type: ignore[return-value]
        return None

    def fused_engine(self, height: int, width: int) -> engine.Engine | None:
        """The compiled engine for (height, width) inputs with this machine's kernels and
        :attr:`precision`, or None where the model runs module by module.

        Raises:
            RuntimeError: ``runtime="fused"`` and the engine cannot run this model here.
        """
        why = self.why_modules(height, width)
        if why is not None:
            if self.runtime == "fused":
                raise RuntimeError(f"the fused engine cannot run this model: {why}")
            return None
        config = engine.config_for(self.precision)
        plan = self.plan(height, width)
        assert config is not None and plan is not None
        key = (plan.input_shape, config)
        with self._lock:
            if key not in self._engines:
                self._engines[key] = engine.Engine(plan, config)
            return self._engines[key]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_plans", "_engines", "_lock"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_caches()

    @property
    def layers(self) -> list[dict[str, Any]]:
        """The packed layers, as recorded in the manifest."""
        return layer_records(self.net)

    def manifest(self) -> dict[str, Any]:
        """The file's manifest, without the checksum."""
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "binmark_version": __version__, "arch": self.arch.to_dict(), "layers": self.layers}
        if self.inference is not None:
            manifest["inference"] = self.inference.to_dict()
        return manifest

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.dim() == 4 and x.shape[1] == 3 and x.device.type == "cpu":
            fused = self.fused_engine(x.shape[2], x.shape[3])
            if fused is not None:
                return fused(x)
        with torch.inference_mode():
            out = self.net(x.float().contiguous(memory_format=torch.channels_last))
        return [t.contiguous() for t in out]

    def train(self, mode: bool = True) -> PackedModel:
        """Packed models are inference-only; ``train(True)`` is refused."""
        if mode:
            raise RuntimeError("a PackedModel is inference-only; train the original model instead")
        return super().train(False)

    def file_bytes(self, real_dtype: str = "float32") -> bytes:
        """The ``.bmk`` file's content.

        Args:
            real_dtype: storage of the real-valued layers' weights (the first conv, heads):
                "float32" (exact) or "float16" (half their bytes; loaded back as float32, so
                results move by their fp16 rounding). Thresholds and scales stay float32.
        """
        if real_dtype not in REAL_DTYPES:
            raise ValueError(f"real_dtype must be one of {REAL_DTYPES}, got {real_dtype!r}")
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        manifest = self.manifest()
        if real_dtype == "float16":
            for name in _real_weights(self.net):
                state[name] = state[name].half()
            manifest["real_dtype"] = real_dtype
        manifest["checksum"] = _checksum(manifest, state)
        return st_save(state, metadata={"binmark": json.dumps(manifest, sort_keys=True)})

    def save(self, path: str | Path, real_dtype: str = "float32") -> Path:
        """Write the model to ``path`` (conventionally ``.bmk``), atomically; returns the path.
        ``real_dtype`` as in :meth:`file_bytes`."""
        path = Path(path)
        atomic_write(path, self.file_bytes(real_dtype))
        return path


def _real_weights(net: nn.Module) -> set[str]:
    """State names of the real-valued convolutions' and linear layers' weights and biases (the
    tensors ``real_dtype="float16"`` stores in half precision)."""
    names = set()
    for prefix, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            names.update(f"{prefix}.{n}" for n, p in m.named_parameters(recurse=False) if p.dtype == torch.float32)
    return names


def _checksum(manifest: dict[str, Any], state: dict[str, Tensor]) -> str:
    h = hashlib.sha256(json.dumps({k: v for k, v in manifest.items() if k != "checksum"}, sort_keys=True).encode())
    for name in sorted(state):
        t = state[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def pack(model: nn.Module, inference: InferenceSpec | None = None, precision: str = DEFAULT_PRECISION, runtime: str = "auto") -> PackedModel:
    """Pack a model built by ``binmark.models.build`` (or loaded from a checkpoint) for inference.

    ``inference`` (default: the model's ``binmark_inference``, set when it was loaded from a
    checkpoint) is stored in the file for :class:`binmark.Localizer`. ``precision`` and
    ``runtime``: see :class:`PackedModel` (run-time settings, not stored in the file).

    BatchNorms are folded into binary convs' thresholds and output transforms, 1-bit weights are
    bit-packed, k-bit weights kept as k-bit codes (see ``binmark.deploy.pack``). The model itself
    is not modified.

    Raises:
        ValueError: the model has no architecture record (it was not built by the registry), or
            the inference spec disagrees with the network's output (K, heatmap size).
    """
    arch = getattr(model, ARCH_ATTR, None)
    if arch is None:
        raise ValueError(
            f"pack: {type(model).__name__} has no architecture record; build the model with "
            "binmark.models.build (or load it from a binmark checkpoint) so the file can rebuild it"
        )
    spec = inference or getattr(model, INFERENCE_ATTR, None)
    if spec is not None:
        spec.check_output(arch.dry_build(spec.input_size))  # type: ignore[arg-type]
    return PackedModel(rewrite(model, values=True), arch, spec, precision, runtime)


def _refuse(path: str | Path, what: str) -> PackedFileError:
    return PackedFileError(f"{path}: {what}")


def _read_manifest(path: str | Path, data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise _refuse(path, f"truncated ({len(data)} bytes): not a binmark packed model (.bmk)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise _refuse(path, "truncated or corrupted: the header is longer than the file; re-export it")
    try:
        header = json.loads(data[8 : 8 + n])
        manifest = json.loads(header["__metadata__"]["binmark"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise _refuse(path, "corrupted header, or not a binmark packed model (.bmk); re-export it with 'binmark export'") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(path, f"not a binmark packed model (format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    version = manifest.get("version")
    if not isinstance(version, int):
        raise _refuse(path, f"corrupted manifest: version {version!r}")
    if version > FORMAT_VERSION:
        raise _refuse(
            path,
            f"written by a newer binmark ({manifest.get('binmark_version')}, format version {version}); "
            f"this binmark {__version__} reads format versions up to {FORMAT_VERSION}: upgrade binmark",
        )
    return manifest


#: manifest fields and the JSON types they must have
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str, "version": int, "binmark_version": str, "arch": dict, "layers": list,
    "inference": dict, "real_dtype": str, "checksum": str,
}  # fmt: skip


def _check_fields(path: str | Path, manifest: dict[str, Any]) -> None:
    unknown = sorted(set(manifest) - set(_FIELDS))
    if unknown:
        raise _refuse(path, f"unknown manifest field(s) {unknown}")
    for name, kind in _FIELDS.items():
        if name in manifest and (not isinstance(manifest[name], kind) or isinstance(manifest[name], bool)):
            raise _refuse(path, f"manifest field {name!r} must be a JSON {getattr(kind, '__name__', kind)}, got {str(manifest[name])[:80]}")
    for name in ("arch", "layers", "checksum"):
        if name not in manifest:
            raise _refuse(path, f"the manifest has no {name!r} field; re-export it")
    if manifest.get("real_dtype", "float32") not in REAL_DTYPES:
        raise _refuse(path, f"manifest field 'real_dtype' = {manifest['real_dtype']!r} is not one of {REAL_DTYPES}")


def _check_dtypes(path: str | Path, state: dict[str, Tensor], net: nn.Module, real_dtype: str) -> None:
    """Every tensor has exactly the dtype the format stores it in (float16 only for the real
    layers' weights of a ``real_dtype: float16`` file): a lossy conversion is refused, not cast."""
    expected = net.state_dict()
    halves = _real_weights(net) if real_dtype == "float16" else set()
    for name, t in state.items():
        want = expected[name].dtype if name in expected else None
        if want is not None and t.dtype != want and not (name in halves and t.dtype == torch.float16):
            raise _refuse(path, f"tensor {name!r} is stored as {t.dtype}; the format stores it as {want}; re-export it")


def load(path: str | Path, precision: str = DEFAULT_PRECISION, runtime: str = "auto") -> PackedModel:
    """Load a ``.bmk`` file; no code in the file is executed. ``precision`` and ``runtime``: see
    :class:`PackedModel`.

    Before anything is built, every manifest field is checked for type and range, and the
    architecture is dry-built on PyTorch's meta device with its size bounded by the file's (at most
    8 × its tensors + 256 tensors and 64 × its values + 10⁶ values: a 1-bit weight is one bit of the
    file, a float32 value of the float network), so a small file cannot ask for a huge network. The
    inference spec is checked against the network's real output (K and heatmap size).

    Raises:
        PackedFileError: the file is not a regular file, truncated, corrupted, tampered with, of a
            newer format version, describes a network this binmark builds differently or larger
            than the file, or carries a field, tensor or spec that does not fit; each naming the
            file and the field.
        FileNotFoundError: no such file.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not p.is_file():
        raise _refuse(path, "not a regular file")
    data = p.read_bytes()
    manifest = _read_manifest(path, data)
    _check_fields(path, manifest)
    try:
        state = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise _refuse(path, f"corrupted tensor data ({exc}); re-export it") from None
    if manifest["checksum"] != _checksum(manifest, state):
        raise _refuse(path, "checksum mismatch: the file was corrupted or edited; re-export it")
    inference = None
    if "inference" in manifest:
        try:
            inference = InferenceSpec.from_dict(manifest["inference"], f"{path}: manifest field 'inference'")
        except ValueError as exc:
            raise _refuse(path, str(exc).removeprefix(f"{path}: ")) from None
    values = sum(t.numel() for t in state.values())
    try:
        arch = Architecture.from_dict(manifest["arch"], "architecture")
        shape = arch.dry_build(None if inference is None else inference.input_size, 8 * len(state) + 256, 64 * values + 1_000_000)
    except ValueError as exc:
        raise _refuse(path, f"manifest field 'arch': {exc}") from None
    if inference is not None and shape is not None:
        try:
            inference.check_output(shape)
        except ValueError as exc:
            raise _refuse(path, f"manifest field 'inference': {exc}") from None
    try:
        net = rewrite(arch.build(), values=False)
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(path, f"cannot rebuild the architecture {arch!r}: {exc}") from None
    if layer_records(net) != manifest["layers"]:
        raise _refuse(path, "its packed layers differ from what this binmark builds for the same architecture; re-export it with this version")
    real_dtype = manifest.get("real_dtype", "float32")
    _check_dtypes(path, state, net, real_dtype)
    state = {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise _refuse(path, f"tensors do not fit the architecture ({str(exc)[:300]})") from None
    return PackedModel(net, arch, inference, precision, runtime)

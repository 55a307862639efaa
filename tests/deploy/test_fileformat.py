"""The .bmk file: one safetensors file, loaded without executing code; damaged files are refused."""

from __future__ import annotations

import json
import random
import struct

import pytest
import torch

from binmark.deploy import FORMAT_VERSION, PackedFileError, load, pack
from binmark.deploy.layers import PackedBinaryConv2d
from binmark.models import build


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    packed = pack(build("hourglass", 16, quant="bulat17", depth=2, width=32).eval())
    for m in packed.modules():
        if isinstance(m, PackedBinaryConv2d):
            m.backend = "torch"
    path = packed.save(tmp_path_factory.mktemp("bmk") / "model.bmk")
    x = torch.randn(1, 3, 32, 32)
    return path, path.read_bytes(), x, packed(x)


def _header(data: bytes) -> dict:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n])


def test_file_is_safetensors_with_a_manifest(saved) -> None:
    path, data, _, _ = saved
    manifest = json.loads(_header(data)["__metadata__"]["binmark"])
    assert manifest["format"] == "binmark-packed" and manifest["version"] == FORMAT_VERSION
    assert manifest["arch"]["name"] == "hourglass" and len(manifest["checksum"]) == 64
    assert any(layer["kind"] == "binary_conv" for layer in manifest["layers"])
    assert b"pickle" not in data and not data.startswith(b"PK")  # not a torch.save zip


@pytest.mark.slow
def test_default_hourglass_file_vs_fp32_checkpoint() -> None:
    import io

    real = build("hourglass", 16)
    buf = io.BytesIO()
    torch.save(real.state_dict(), buf)
    packed = pack(build("hourglass", 16, quant="bulat17").eval())
    assert len(packed.file_bytes()) * 18 < buf.tell()  # float32 real layers: measured 18.5× (docs/deploy.md)
    assert len(packed.file_bytes("float16")) * 20 < buf.tell()  # float16 real layers: past the 20× target


def test_float16_real_layers_are_smaller_and_load_as_float32(tmp_path) -> None:
    from binmark.deploy.exact import dyadic, dyadic_input

    model = dyadic(build("hourglass", 16, quant="bulat17", depth=2, width=32))
    packed = pack(model)
    full, half = packed.save(tmp_path / "a.bmk"), packed.save(tmp_path / "b.bmk", real_dtype="float16")
    real_params = sum(p.numel() for n in packed._real_weights() for p in [packed.net.get_parameter(n)])
    assert full.stat().st_size - half.stat().st_size >= 2 * real_params - 4096  # 2 bytes saved per real weight
    manifest = json.loads(_header(half.read_bytes())["__metadata__"]["binmark"])
    assert manifest["real_dtype"] == "float16"
    loaded = load(half)
    assert all(t.dtype != torch.float16 for t in loaded.state_dict().values())
    x = dyadic_input((1, 3, 32, 32))
    for a, b in zip(loaded(x), load(full)(x), strict=True):
        assert torch.equal(a, b)  # the dyadic weights are exact in float16
    with pytest.raises(ValueError, match="real_dtype"):
        packed.file_bytes("bfloat16")


def _refused_or_identical(path, blob: bytes, x: torch.Tensor, expected: list[torch.Tensor]) -> None:
    path.write_bytes(blob)
    try:
        model = load(path)
    except PackedFileError:
        return
    for m in model.modules():
        if isinstance(m, PackedBinaryConv2d):
            m.backend = "torch"
    # a change that survives every check must be meaningless (e.g. JSON whitespace)
    for a, b in zip(model(x), expected, strict=True):
        assert torch.equal(a, b)


def test_fuzzed_files_are_refused(saved, tmp_path) -> None:
    _, data, x, expected = saved
    rng = random.Random(0)
    target = tmp_path / "fuzzed.bmk"
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    for trial in range(60):
        blob = bytearray(data)
        # half the flips in the header (where the structure is), half anywhere
        limit = header_end if trial % 2 else len(blob)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(limit)
            blob[i] ^= 1 << rng.randrange(8)
        _refused_or_identical(target, bytes(blob), x, expected)
    for cut in [0, 3, 8, 9, header_end - 1, header_end, header_end + 1, len(data) // 2, len(data) - 1]:
        target.write_bytes(data[:cut])
        with pytest.raises(PackedFileError):
            load(target)


def _with_manifest(data: bytes, edit) -> bytes:
    header = _header(data)
    manifest = json.loads(header["__metadata__"]["binmark"])
    edit(manifest)
    header["__metadata__"]["binmark"] = json.dumps(manifest)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + struct.unpack("<Q", data[:8])[0] :]


def test_tampered_manifest_and_newer_version_are_refused(saved, tmp_path) -> None:
    _, data, _, _ = saved
    target = tmp_path / "t.bmk"
    target.write_bytes(_with_manifest(data, lambda m: m["arch"]["options"].update(width=64)))
    with pytest.raises(PackedFileError, match="checksum"):
        load(target)
    target.write_bytes(_with_manifest(data, lambda m: m.update(version=FORMAT_VERSION + 1)))
    with pytest.raises(PackedFileError, match="newer binmark"):
        load(target)
    target.write_bytes(b"not a model at all, just text")
    with pytest.raises(PackedFileError):
        load(target)


def test_pack_needs_a_registry_model() -> None:
    with pytest.raises(ValueError, match="binmark.models.build"):
        pack(torch.nn.Conv2d(3, 3, 1))

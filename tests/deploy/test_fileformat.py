"""The .bmk file: one safetensors file, loaded without executing code; damaged files are refused."""

from __future__ import annotations

import json
import random
import struct

import pytest
import torch

from binmark.deploy import FORMAT_VERSION, PackedFileError, load, pack
from binmark.deploy.layers import PackedBinaryConv2d
from binmark.deploy.fileformat import _real_weights
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
    real_params = sum(p.numel() for n in _real_weights(packed.net) for p in [packed.net.get_parameter(n)])
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


def _resigned(packed, edit_manifest=None, edit_state=None) -> bytes:
    """A file whose manifest or tensors were edited *with a valid checksum*: what a careless
    tool or an attacker writes. Only the loader's own checks stand between it and the runtime."""
    from safetensors.torch import save as st_save

    from binmark.deploy.fileformat import _checksum

    state = {k: v.detach().cpu().contiguous() for k, v in packed.net.state_dict().items()}
    manifest = packed.manifest()
    if edit_manifest:
        edit_manifest(manifest)
    if edit_state:
        edit_state(state)
    manifest["checksum"] = _checksum(manifest, state)
    return st_save(state, metadata={"binmark": json.dumps(manifest, sort_keys=True)})


@pytest.fixture(scope="module")
def face_packed():
    from binmark.inference import InferenceSpec

    torch.manual_seed(0)
    model = build("hourglass", 68, quant="bulat17", depth=2, width=16).eval()
    return pack(model, InferenceSpec("300w", input_size=64, heatmap_size=16, sigma=1.0))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["inference"].update(heatmap_size=[32, 32]), r"field 'inference': field 'heatmap_size' is 32x32 but the network outputs 16x16"),
        (lambda m: m["inference"].update(input_size="64"), r"'inference'.*a size is an int or a \(w, h\) pair of ints, got '64'"),
        (lambda m: m["inference"].update(sigma="x"), r"'inference'.*sigma must be a number > 0, got 'x'"),
        (lambda m: m["inference"].update(flip_test="yes"), r"'inference'.*flip_test must be true or false"),
        (lambda m: m["arch"].update(num_keypoints="68"), r"field 'arch'.*'num_keypoints' = '68' must be an integer"),
        (lambda m: m["arch"]["options"].update(width="16"), r"field 'arch'.*option 'width' = '16' is not a valid int"),
        (lambda m: m["arch"]["options"].update(block="hmp"), r"field 'arch'.*option 'block' = 'hmp'"),
        (lambda m: m["arch"]["options"].update(colour=1), r"field 'arch'.*has no option 'colour'"),
        (lambda m: m.update(layers="all"), r"manifest field 'layers' must be a JSON list"),
        (lambda m: m.update(extra=1), r"unknown manifest field\(s\) \['extra'\]"),
        (lambda m: m.update(real_dtype="int4"), r"'real_dtype' = 'int4' is not one of"),
        (lambda m: m["inference"].update(input_size=[100000, 100000]), r"input_size \(100000, 100000\) is over 4096 px"),
    ],
)
def test_manifest_fields_are_checked_even_with_a_valid_checksum(face_packed, tmp_path, edit, message) -> None:
    target = tmp_path / "m.bmk"
    target.write_bytes(_resigned(face_packed, edit))
    with pytest.raises(PackedFileError, match=str(target).replace(".", r"\.") + ": .*" + message):
        load(target)


def test_files_of_earlier_versions_still_load(face_packed, tmp_path) -> None:
    """Earlier versions stored the quant option as the preset name it was built with; the
    architecture record now resolves it to the spec, and both read back as the same network."""
    from binmark.models import Architecture

    assert face_packed.manifest()["arch"]["options"]["quant"]["weight_bits"] == 1
    target = tmp_path / "old.bmk"
    target.write_bytes(_resigned(face_packed, lambda m: m["arch"]["options"].update(quant="bulat17")))
    old = load(target)
    assert old.arch == Architecture("hourglass", 68, {**face_packed.arch.options, "quant": "bulat17"})
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(old(x)[-1], face_packed(x)[-1], rtol=0, atol=0)


def test_a_small_file_cannot_ask_for_a_huge_network(face_packed, tmp_path) -> None:
    from tests.conftest import deadline

    target = tmp_path / "big.bmk"
    for option in ({"stacks": 1_000_000}, {"width": 1_000_000}, {"depth": 100_000}):
        target.write_bytes(_resigned(face_packed, lambda m: m["arch"]["options"].update(option)))
        with deadline(60), pytest.raises(PackedFileError, match=r"field 'arch': (the network needs more than|cannot build)"):
            load(target)


def test_lossy_tensor_dtypes_are_refused(face_packed, tmp_path) -> None:
    def halve_packed_weights(state):
        name = next(k for k, v in state.items() if v.dtype == torch.int32)
        state[name] = state[name].to(torch.float16)

    target = tmp_path / "d.bmk"
    target.write_bytes(_resigned(face_packed, edit_state=halve_packed_weights))
    with pytest.raises(PackedFileError, match=r"tensor '.*' is stored as torch.float16; the format stores it as torch.int32"):
        load(target)
    def halve_real(state):  # float16 real weights without real_dtype: float16 in the manifest
        name = next(k for k, v in state.items() if v.dtype == torch.float32 and k.endswith("weight"))
        state[name] = state[name].half()

    target.write_bytes(_resigned(face_packed, edit_state=halve_real))
    with pytest.raises(PackedFileError, match="stored as torch.float16; the format stores it as torch.float32"):
        load(target)


def test_only_regular_files_are_read(tmp_path) -> None:
    import os

    from tests.conftest import deadline

    os.mkfifo(tmp_path / "pipe.bmk")
    with deadline(10):
        for path in (tmp_path / "pipe.bmk", "/dev/zero", tmp_path):
            with pytest.raises(PackedFileError, match="not a regular file"):
                load(path)


def test_pack_checks_the_spec_against_the_network() -> None:
    from binmark.inference import InferenceSpec

    model = build("hourglass", 68, quant="bulat17", depth=2, width=16).eval()
    with pytest.raises(ValueError, match="field 'heatmap_size' is 32x32 but the network outputs 16x16 heatmaps for 64x64"):
        pack(model, InferenceSpec("300w", input_size=64, heatmap_size=32))
    with pytest.raises(ValueError, match="'skeleton' \\('wflw'\\) has 98 keypoints"):
        pack(model, InferenceSpec("wflw", input_size=64, heatmap_size=16))


def test_a_deeply_nested_manifest_is_refused_not_a_recursion_error(face_packed, tmp_path) -> None:
    from safetensors.torch import save as st_save

    state = {k: v.detach().cpu().contiguous() for k, v in face_packed.net.state_dict().items()}
    deep = "[" * 100_000 + "]" * 100_000
    target = tmp_path / "deep.bmk"
    target.write_bytes(st_save(state, metadata={"binmark": deep}))
    with pytest.raises(PackedFileError, match="corrupted header"):
        load(target)

"""The ctypes argument blocks of ``binmark.deploy.native`` mirror the C structs of csrc/bitconv.c."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import pytest

from binmark.deploy import native

BITCONV = Path(native.__file__).parent / "csrc" / "bitconv.c"
_C_TYPES = {"int64_t": ctypes.c_int64, "int32_t": ctypes.c_int32}
_RENAMED = {"in": "inp"}  # C names that are Python keywords


def _c_fields(struct: str) -> list[tuple[str, object]]:
    """(name, ctypes type) of each member of ``typedef struct {...} <struct>;``, pointers as c_void_p."""
    source = re.sub(r"/\*.*?\*/", "", BITCONV.read_text(), flags=re.S)
    body = re.search(r"typedef struct \{([^}]*)\}\s*" + struct + r"\s*;", source)
    assert body, f"{struct} not found in {BITCONV}"
    fields: list[tuple[str, object]] = []
    for decl in filter(None, (d.strip() for d in body.group(1).split(";"))):
        base = re.match(r"(?:const\s+)?(\w+)", decl)
        assert base
        for part in decl[base.end():].split(","):
            name = part.strip().lstrip("*").strip()
            kind = ctypes.c_void_p if "*" in part else _C_TYPES[base.group(1)]
            fields.append((_RENAMED.get(name, name), kind))
    return fields


@pytest.mark.skipif(not BITCONV.exists(), reason="the C sources are not installed")
@pytest.mark.parametrize(("cls", "struct"), [(native.ConvArgs, "bm_conv_t"), (native.PackArgs, "bm_pack_t")])
def test_argument_blocks_match_the_c_structs(cls: type[ctypes.Structure], struct: str) -> None:
    assert [(name, kind) for name, kind in cls._fields_] == _c_fields(struct)


def test_argument_blocks_are_filled_by_every_field_name() -> None:
    names = [f[0] for f in native.PackArgs._fields_]
    full = dict.fromkeys(names, 0)
    args = native.PackArgs(**{**full, "npix": 7, "nthreads": 3})
    assert (args.npix, args.nthreads, args.c) == (7, 3, 0)
    with pytest.raises(TypeError, match="missing fields \\['nthreads'\\]"):
        native.PackArgs(**{n: 0 for n in names[:-1]})
    with pytest.raises(TypeError, match="unknown \\['nthread'\\]"):
        native.PackArgs(**{**full, "nthread": 1})
    with pytest.raises(TypeError):
        native.ConvArgs(*range(17))  # positional values are not accepted

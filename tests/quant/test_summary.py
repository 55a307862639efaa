"""summary(): counting rules on a hand-computable model."""

from __future__ import annotations

import math

import pytest
from torch import nn

from binmark.quant import QuantConv2d, QuantSpec, compare, summary


def _tiny() -> nn.Sequential:
    # input (1, 3, 8, 8)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=True),  # 108 + 4 params; MACs 4·8·8·27 = 6912
        nn.BatchNorm2d(4),  # 8 params
        QuantConv2d(4, 8, 3, padding=1, spec="bulat17"),  # 288 1-bit; MACs 8·64·36 = 18432 binary
        QuantConv2d(8, 8, 1, groups=2, spec=QuantSpec(weight_bits=4, act_bits=8)),  # 32 4-bit; 8·64·4 = 2048 @8
        nn.Flatten(),
        nn.Linear(512, 2),  # 1024 + 2; MACs 1024
    )


def test_counts_by_hand() -> None:
    s = summary(_tiny(), input_size=(1, 3, 8, 8))
    assert s.params_by_bits == {32: 108 + 4 + 8 + 1024 + 2, 1: 288, 4: 32}
    assert s.macs_by_bits == {32: 6912 + 1024, 1: 18432, 8: 2048}
    assert s.packed_bytes == 4 * 108 + 4 * 4 + 4 * 8 + 4 * 1024 + 4 * 2 + 288 // 8 + 32 * 4 // 8
    assert s.float32_bytes == 4 * (1146 + 288 + 32)
    assert s.total_params == 1466
    assert s.binary_mac_share == pytest.approx(18432 / (6912 + 1024 + 18432 + 2048))
    assert s.compression_ratio == pytest.approx(s.float32_bytes / s.packed_bytes)


def test_batch_scales_macs_only() -> None:
    one = summary(_tiny(), (1, 3, 8, 8))
    four = summary(_tiny(), (4, 3, 8, 8))
    assert four.total_macs == 4 * one.total_macs and four.params_by_bits == one.params_by_bits


def test_an_image_size_is_width_first() -> None:
    from binmark.models import build

    model = build("hourglass", 4, stacks=1, depth=1, width=16)
    wide = summary(model, (96, 64))  # (w, h): one 64-tall, 96-wide RGB image
    assert wide.input_size == (1, 3, 64, 96) and wide.total_macs == summary(model, (1, 3, 64, 96)).total_macs
    with pytest.raises(ValueError, match=r"input_size is \(w, h\) or \(N, C, H, W\)"):
        summary(model, (3, 64, 96))


def test_packed_bits_round_up_per_tensor() -> None:
    s = summary(QuantConv2d(3, 1, 1, spec="xnor"), (1, 3, 1, 1))
    assert s.params_by_bits == {1: 3} and s.packed_bytes == math.ceil(3 / 8)


def test_layers_and_rendering() -> None:
    model = _tiny()
    s = summary(model, (1, 3, 8, 8))
    assert [lp.name for lp in s.layers] == ["0", "2", "3", "5"]
    assert [lp.mac_bits for lp in s.layers] == [32, 1, 8, 32]
    text = str(s)
    for label in ("parameters", "binary weights", "4-bit weights", "binary MACs", "packed size",
                  "float32 size", "compression", "binary-op share of MACs"):
        assert label in text
    assert "1,466" in text
    assert "QuantConv2d" in s.table(per_layer=True)
    side = compare({"a": s, "b": summary(nn.Conv2d(3, 1, 1), (1, 3, 1, 1))})
    assert side.splitlines()[0].split() == ["a", "b"]


def test_mode_is_restored() -> None:
    model = _tiny().train()
    summary(model, (1, 3, 8, 8))
    assert model.training
    summary(model.eval(), (1, 3, 8, 8))
    assert not model.training


def test_to_dict() -> None:
    d = summary(_tiny(), (1, 3, 8, 8)).to_dict()
    assert d["params"] == 1466 and d["params_by_bits"] == {"1": 288, "4": 32, "32": 1146}

"""QuantSpec validation and presets."""

from __future__ import annotations

import pytest

from binmark.quant import PRESETS, QuantSpec, as_spec

API_PRESETS = ["real", "xnor", "bulat17", "cunet_w1a8g8", "bihrnet", "dorefa_w2a2"]


def test_defaults_are_real() -> None:
    s = QuantSpec()
    assert s.is_real and not s.is_binary
    assert (s.weight_bits, s.act_bits, s.grad_bits) == (32, 32, 32)
    assert s.weight_scale == "none" and s.ste == "clipped" and s.act_bias is False


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        QuantSpec().weight_bits = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", API_PRESETS)
def test_api_presets_exist_and_are_documented(name: str) -> None:
    spec = QuantSpec.preset(name)
    assert isinstance(spec, QuantSpec)
    assert PRESETS.get(name).__doc__


def test_preset_contents() -> None:
    assert QuantSpec.preset("bulat17") == QuantSpec(
        weight_bits=1, act_bits=1, weight_scale="channel_mean"
    )
    c = QuantSpec.preset("cunet_w1a8g8")
    assert (c.weight_bits, c.act_bits, c.grad_bits, c.kbit) == (1, 8, 8, "wage")
    b = QuantSpec.preset("bihrnet")
    assert b.is_binary and b.act_bias and b.ste == "approx"
    d = QuantSpec.preset("dorefa_w2a2")
    assert (d.weight_bits, d.act_bits, d.kbit, d.ternary) == (2, 2, "dorefa", False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("weight_bits", 0, "weight_bits=0.*1..32"),
        ("act_bits", 33, "act_bits=33.*1..32"),
        ("grad_bits", 8.0, "grad_bits=8.0"),
        ("weight_bits", True, "weight_bits=True"),
        ("weight_scale", "mean", "weight_scale='mean'.*none, channel_mean, learned"),
        ("ste", "ste_sign", "ste='ste_sign'.*clipped, approx, swish"),
        ("kbit", "wag", "kbit='wag'.*dorefa, wage"),
        ("grad_scale", "max", "grad_scale='max'.*shift, absolute, official"),
        ("act_bias", "yes", "act_bias='yes'"),
    ],
)
def test_bad_field_names_field_and_choices(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QuantSpec(**{field: value})


def test_cross_field_rules() -> None:
    with pytest.raises(ValueError, match="ternary=True needs weight_bits=2"):
        QuantSpec(weight_bits=4, ternary=True)
    with pytest.raises(ValueError, match="act_bias=True .* needs act_bits=1"):
        QuantSpec(act_bits=8, act_bias=True)
    with pytest.raises(ValueError, match="weight_scale='channel_mean' applies to binary"):
        QuantSpec(weight_bits=4, weight_scale="channel_mean")
    assert QuantSpec(weight_bits=2, ternary=True, weight_scale="channel_mean").ternary


def test_unknown_preset_lists_names() -> None:
    with pytest.raises(ValueError, match="unknown quant preset 'xnr'.*bulat17"):
        QuantSpec.preset("xnr")


def test_dict_round_trip_and_unknown_keys() -> None:
    spec = QuantSpec.preset("cunet_w1a8g8")
    assert QuantSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match=r"unknown QuantSpec field\(s\) \['weight_bit'\]"):
        QuantSpec.from_dict({"weight_bit": 1})


def test_as_spec() -> None:
    assert as_spec(None) == QuantSpec()
    assert as_spec("xnor") == QuantSpec.preset("xnor")
    assert as_spec({"weight_bits": 1}).weight_bits == 1
    spec = QuantSpec(act_bits=4)
    assert as_spec(spec) is spec
    with pytest.raises(TypeError, match="preset name, a dict or a QuantSpec"):
        as_spec(3)  # type: ignore[arg-type]


def test_replace_revalidates() -> None:
    assert QuantSpec().replace(weight_bits=1).weight_bits == 1
    with pytest.raises(ValueError, match="weight_bits"):
        QuantSpec().replace(weight_bits=64)

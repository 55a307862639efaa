"""``QuantSpec``: what a quantized layer quantizes, and how; its named presets; and the factories
that turn a spec into the quantizer modules of :class:`binmark.quant.QuantConv2d`.

Bit widths select the quantizer:

=============  ===========================================================================
bits           weights / activations
=============  ===========================================================================
32             full precision (``FullPrecision``, an identity with ``bits = 32``)
1              sign: weights α ⊙ sign(W) (``BinaryWeight``); activations sign with the
               ``ste`` estimator, or RSign when ``act_bias`` (``RSign``)
2 (ternary)    weights only, with ``ternary=True``: TWN's {-α, 0, +α} (``TernaryWeight``)
2..31          ``kbit="dorefa"`` (DoReFa) or ``kbit="wage"`` (CU-Net's fixed point)
=============  ===========================================================================

Gradients: ``grad_bits < 32`` puts a ``GradQuant`` in front of the layer's weight and, unless
``grad_scale="official"`` (the CU-Net code's weight-only rule), its input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from binmark._registry import Registry
from binmark.quant.grad import GRAD_SCALES, GradQuant
from binmark.quant.kbit import DoReFaAct, DoReFaWeight, WageQuant, WageWeight
from binmark.quant.react import RSign
from binmark.quant.sign import STES, SignSTE, get_ste
from binmark.quant.weights import SCALES, BinaryWeight, TernaryWeight

__all__ = [
    "QuantSpec",
    "PRESETS",
    "as_spec",
    "FullPrecision",
    "make_input_quantizer",
    "make_weight_quantizer",
    "make_grad_quantizer",
]

KBITS = ("dorefa", "wage")


def _choice(field: str, value: Any, allowed: tuple[str, ...] | list[str]) -> None:
    if value not in allowed:
        raise ValueError(
            f"QuantSpec.{field}={value!r} is not valid; choose one of: {', '.join(allowed)}"
        )


def _bits(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
        raise ValueError(f"QuantSpec.{field}={value!r} is not valid; use an integer in 1..32")


@dataclass(frozen=True)
class QuantSpec:
    """How a layer's input, weight and gradients are quantized.

    Args:
        weight_bits: 1 (binary), 2..31 (k-bit or ternary) or 32 (full precision).
        act_bits: bits of the layer's input activations; 1 is sign, 32 full precision.
        grad_bits: bits of the gradients flowing back into the input and the weight.
        weight_scale: per-output-channel α for binary / ternary weights: "none",
            "channel_mean" (XNOR-Net) or "learned".
        ste: straight-through estimator of the activation sign: "clipped", "approx", "swish".
        act_bias: learnable per-channel threshold before the activation sign (ReActNet RSign).
        kbit: family of the 2..31-bit quantizers: "dorefa" or "wage".
        ternary: with ``weight_bits=2``, ternary {-α, 0, +α} weights instead of 4-level k-bit.
        center_weights: subtract the mean over input channels before binarizing weights.
        grad_scale: "shift" (per-tensor power-of-two scale, input and weight gradients),
            "absolute" (absolute grid, input and weight gradients) or "official" (the CU-Net
            code: weight gradients only, on the absolute grid, 1-bit weights with the XNOR
            gradient's n·(1 − 1/C_in) factor); see :mod:`binmark.quant.grad`.

    Raises:
        ValueError: a field is out of range or names an unknown option; the message names the
            field and the allowed values.
    """

    weight_bits: int = 32
    act_bits: int = 32
    grad_bits: int = 32
    weight_scale: str = "none"
    ste: str = "clipped"
    act_bias: bool = False
    kbit: str = "dorefa"
    ternary: bool = False
    center_weights: bool = False
    grad_scale: str = "shift"

    def __post_init__(self) -> None:
        for field in ("weight_bits", "act_bits", "grad_bits"):
            _bits(field, getattr(self, field))
        _choice("weight_scale", self.weight_scale, SCALES)
        _choice("ste", self.ste, STES.names())
        _choice("kbit", self.kbit, KBITS)
        _choice("grad_scale", self.grad_scale, GRAD_SCALES)
        for field in ("act_bias", "ternary", "center_weights"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"QuantSpec.{field}={getattr(self, field)!r} must be True or False")
        if self.ternary and self.weight_bits != 2:
            raise ValueError(
                f"QuantSpec.ternary=True needs weight_bits=2, got weight_bits={self.weight_bits}"
            )
        if self.act_bias and self.act_bits != 1:
            raise ValueError(
                f"QuantSpec.act_bias=True (RSign) needs act_bits=1, got act_bits={self.act_bits}"
            )
        if self.center_weights and self.weight_bits != 1:
            raise ValueError(
                f"QuantSpec.center_weights=True applies to binary weights; with "
                f"weight_bits={self.weight_bits} use center_weights=False"
            )
        if self.grad_scale == "official" and self.weight_bits == 1 and self.weight_scale != "channel_mean":
            raise ValueError(
                f"QuantSpec.grad_scale='official' with binary weights is the code's XNOR gradient, "
                f"which needs weight_scale='channel_mean', got {self.weight_scale!r}"
            )
        if self.weight_scale != "none" and not (self.weight_bits == 1 or self.ternary):
            raise ValueError(
                f"QuantSpec.weight_scale={self.weight_scale!r} applies to binary or ternary "
                f"weights; with weight_bits={self.weight_bits} use weight_scale='none'"
            )

    @property
    def is_real(self) -> bool:
        """True when nothing is quantized (all bit widths 32)."""
        return self.weight_bits == self.act_bits == self.grad_bits == 32

    @property
    def is_binary(self) -> bool:
        """True when weights and activations are both 1-bit (XNOR-popcount convolutions)."""
        return self.weight_bits == 1 and self.act_bits == 1

    def replace(self, **changes: Any) -> QuantSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for configs and model manifests)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantSpec:
        """Build from a dict; unknown keys are an error naming the key."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown QuantSpec field(s) {unknown}; valid fields: {', '.join(sorted(known))}"
            )
        return cls(**data)

    @classmethod
    def preset(cls, name: str) -> QuantSpec:
        """A named preset; see :data:`PRESETS` and ``QuantSpec.presets()``."""
        return PRESETS.get(name)()

    @staticmethod
    def presets() -> list[str]:
        """Names of the presets."""
        return PRESETS.names()


PRESETS: Registry[Any] = Registry("quant preset")


@PRESETS.register("real")
def _real() -> QuantSpec:
    """Full precision everywhere."""
    return QuantSpec()


@PRESETS.register("xnor")
def _xnor() -> QuantSpec:
    """XNOR-Net (Rastegari et al., ECCV 2016, arXiv 1603.05279) as the bnn library's
    ``xnor-net.yaml`` recipe: sign inputs, mean-centred weights scaled by α = mean|W| per output
    channel, clipped STE. The activation scale K of the paper is omitted (bnn and the seed's kernel
    omit it too)."""
    return QuantSpec(weight_bits=1, act_bits=1, weight_scale="channel_mean", center_weights=True)


@PRESETS.register("bulat17")
def _bulat17() -> QuantSpec:
    """Bulat & Tzimiropoulos, ICCV 2017 (arXiv 1703.00862), as their Torch library bnn.torch:
    sign inputs with the hardtanh STE, weights sign(W)·α with α = mean|W| per output channel, no
    centering, no activation scale."""
    return QuantSpec(weight_bits=1, act_bits=1, weight_scale="channel_mean")


@PRESETS.register("cunet_w1a8g8")
def _cunet_w1a8g8() -> QuantSpec:
    """CU-Net's default W/I/G quantization (Tang et al., ECCV 2018; zhiqiangdon/CU-Net
    ``options/train_options.py``: bits_w=1, bits_i=8, bits_g=8): mean-centred binary weights with
    α = mean|W|, WAGE-style 8-bit inputs and 8-bit gradients. The official code overwrites α by
    re-applying the sign (pure ±1 weights); binmark keeps α, the XNOR scaling the code intends.
    Gradients: the code's rule (``grad_scale="official"``)."""
    return _cunet_wig(1, 8)


def _cunet_wig(weight_bits: int, act_bits: int) -> QuantSpec:
    """CU-Net's W/I/G quantization with 8-bit gradients (zhiqiangdon/CU-Net -wig scripts): WAGE
    fixed-point inputs; 1-bit weights are mean-centred sign·α, 2-bit weights ternary with the
    0.7·mean|W| threshold and no scale, k-bit weights Q(C(W, k), k); the code's weight-gradient
    rule (``grad_scale="official"``)."""
    if weight_bits == 1:
        return QuantSpec(weight_bits=1, act_bits=act_bits, grad_bits=8, weight_scale="channel_mean",
                         center_weights=True, kbit="wage", grad_scale="official")  # fmt: skip
    return QuantSpec(weight_bits=weight_bits, act_bits=act_bits, grad_bits=8, kbit="wage",
                     ternary=weight_bits == 2, grad_scale="official")  # fmt: skip


for _w, _a in ((1, 1), (2, 2), (4, 4), (8, 8)):
    PRESETS.register(f"cunet_w{_w}a{_a}g8")(partial(_cunet_wig, _w, _a))
    PRESETS.get(f"cunet_w{_w}a{_a}g8").__doc__ = (
        f"CU-Net W{_w}A{_a}G8: {_w}-bit weights, {_a}-bit inputs, 8-bit gradients (the bit widths "
        "the CU-Net paper studies; quantizers as the official -wig code, see _cunet_wig)."
    )


@PRESETS.register("bihrnet")
def _bihrnet() -> QuantSpec:
    """BiHRNet (arXiv 2311.10296) building blocks taken from ReActNet (arXiv 2003.03488): RSign
    inputs (learnable threshold) with the ApproxSign gradient, weights sign(W)·α with α = mean|W|."""
    return QuantSpec(
        weight_bits=1, act_bits=1, weight_scale="channel_mean", ste="approx", act_bias=True
    )


@PRESETS.register("bihrnet_act")
def _bihrnet_act() -> QuantSpec:
    """The first step of ReActNet's two-step training (liuzechun/ReActNet ``1_step1``), used as
    BiHRNet's first stage: RSign binary activations with ApproxSign, real weights."""
    return QuantSpec(act_bits=1, ste="approx", act_bias=True)


@PRESETS.register("dorefa_w2a2")
def _dorefa_w2a2() -> QuantSpec:
    """DoReFa-Net (Zhou et al., arXiv 1606.06160) with 2-bit weights and 2-bit activations."""
    return QuantSpec(weight_bits=2, act_bits=2, kbit="dorefa")


def as_spec(quant: QuantSpec | str | dict[str, Any] | None) -> QuantSpec:
    """Resolve a preset name, a dict of fields, a ``QuantSpec`` or None (= "real")."""
    if quant is None:
        return QuantSpec()
    if isinstance(quant, QuantSpec):
        return quant
    if isinstance(quant, str):
        return QuantSpec.preset(quant)
    if isinstance(quant, dict):
        return QuantSpec.from_dict(quant)
    raise TypeError(
        f"quant must be a preset name, a dict or a QuantSpec, got {type(quant).__name__}"
    )


class FullPrecision(nn.Identity):
    """Identity that declares ``bits = 32``, so that every quantizer slot has a bit width."""

    bits = 32


def _sign_module(spec: QuantSpec) -> nn.Module:
    return SignSTE(1.0) if spec.ste == "clipped" else get_ste(spec.ste)


def make_input_quantizer(spec: QuantSpec, channels: int) -> nn.Module:
    """The module that quantizes a layer's input activations (C = ``channels``)."""
    if spec.act_bits == 32:
        return FullPrecision()
    if spec.act_bits == 1:
        return RSign(channels, _sign_module(spec)) if spec.act_bias else _sign_module(spec)
    return DoReFaAct(spec.act_bits) if spec.kbit == "dorefa" else WageQuant(spec.act_bits)


def make_weight_quantizer(spec: QuantSpec, out_channels: int) -> nn.Module:
    """The module that quantizes a layer's latent float weight (C_out = ``out_channels``)."""
    if spec.weight_bits == 32:
        return FullPrecision()
    if spec.weight_bits == 1:
        official = spec.grad_bits if spec.grad_scale == "official" else None
        return BinaryWeight(out_channels, spec.weight_scale, spec.center_weights, official)
    if spec.ternary:
        return TernaryWeight(out_channels, spec.weight_scale)
    return DoReFaWeight(spec.weight_bits) if spec.kbit == "dorefa" else WageWeight(spec.weight_bits)


def make_grad_quantizer(spec: QuantSpec) -> nn.Module:
    """Identity in forward that quantizes gradients in backward (identity when grad_bits = 32);
    ``QuantConv2d`` puts it in front of the weight, and of the input when its ``inputs`` is True."""
    if spec.grad_bits == 32:
        return FullPrecision()
    return GradQuant(spec.grad_bits, spec.grad_scale)

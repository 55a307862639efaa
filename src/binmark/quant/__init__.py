"""Quantization primitives: sign and its straight-through estimators, XNOR / learned scales,
ReActNet's RSign and RPReLU, DoReFa / WAGE k-bit and ternary quantizers, gradient quantization,
``QuantSpec`` and its presets, ``QuantConv2d``, ``quantize`` and ``summary``; packed saves for
backward (``packed_saves``, :mod:`binmark.quant.saving`: bits and codes instead of float32, the
same gradients).

This package knows no architecture and no data.

Example::

    import torch
    from binmark.quant import QuantConv2d, QuantSpec, quantize, summary

    conv = QuantConv2d(64, 64, 3, padding=1, spec="bulat17")   # BN → sign → binary conv
    y = conv(torch.randn(1, 64, 32, 32))

    model = quantize(my_model, QuantSpec.preset("xnor"))        # first and last convs stay real
    print(summary(model, input_size=(1, 3, 256, 256)))
"""

from binmark.quant.conv import QuantConv2d
from binmark.quant.convert import conv_names, quantize
from binmark.quant.grad import GradQuant, quantize_grad
from binmark.quant.kbit import (
    DoReFaAct,
    DoReFaWeight,
    WageQuant,
    WageWeight,
    dorefa_act,
    dorefa_weight,
    round_ste,
    ternarize,
    wage_clip,
    wage_quantize,
    wage_round,
    wage_weight,
)
from binmark.quant.react import RPReLU, RSign
from binmark.quant.saving import packed_saves, set_packed_saves
from binmark.quant.sign import (
    STES,
    ApproxSign,
    SignSTE,
    SwishSign,
    approx_sign,
    get_ste,
    sign,
    sign_ste,
    swish_sign,
)
from binmark.quant.spec import PRESETS, FullPrecision, QuantSpec, as_spec
from binmark.quant.summary import LayerProfile, ModelSummary, compare, summary
from binmark.quant.weights import BinaryWeight, TernaryWeight

__all__ = [
    "ApproxSign",
    "BinaryWeight",
    "DoReFaAct",
    "DoReFaWeight",
    "FullPrecision",
    "GradQuant",
    "LayerProfile",
    "ModelSummary",
    "PRESETS",
    "QuantConv2d",
    "QuantSpec",
    "RPReLU",
    "RSign",
    "STES",
    "SignSTE",
    "SwishSign",
    "TernaryWeight",
    "WageQuant",
    "WageWeight",
    "approx_sign",
    "as_spec",
    "compare",
    "conv_names",
    "dorefa_act",
    "dorefa_weight",
    "get_ste",
    "quantize",
    "quantize_grad",
    "packed_saves",
    "round_ste",
    "set_packed_saves",
    "sign",
    "sign_ste",
    "summary",
    "swish_sign",
    "ternarize",
    "wage_clip",
    "wage_quantize",
    "wage_round",
    "wage_weight",
]

"""The packed runtime computes what the fake-quantized model computes, for every family."""

from __future__ import annotations

import pytest
import torch

from binmark.deploy import PackedBinaryConv2d, backends, load, native, pack
from binmark.deploy.layers import PackedQuantConv2d
from binmark.models import build
from binmark.quant import QuantConv2d
from binmark.deploy.exact import dyadic, dyadic_input

# (name, K, options, input H×W) — every family and the binary/low-bit presets that apply to it.
CASES = [
    ("hourglass", 16, {"quant": "bulat17", "depth": 2, "width": 64}, (48, 80)),
    ("hourglass", 16, {"quant": "xnor", "depth": 2, "width": 64, "block": "bottleneck"}, (32, 48)),
    ("hourglass", 5, {"quant": "bulat17", "depth": 2, "width": 64, "block": "multiscale"}, (32, 32)),
    ("hourglass", 16, {"quant": "cunet_w2a2g8", "depth": 2, "width": 64}, (32, 32)),
    ("cunet", 16, {"quant": "cunet_w1a8g8", "num_unets": 2}, (64, 64)),
    ("cunet", 16, {"quant": "cunet_w1a1g8", "num_unets": 2}, (64, 64)),
    ("cunet", 16, {"quant": "cunet_w4a4g8", "num_unets": 2}, (64, 64)),
    ("bihrnet", 17, {"width": 8}, (64, 96)),
    ("bihrnet", 17, {"width": 8, "ms_block": False, "ir_bottleneck": False, "react": False}, (64, 64)),
    ("hrnet", 17, {"width": 8}, (64, 32)),
]


def _set_backend(model: torch.nn.Module, backend: str) -> None:
    for m in model.modules():
        if isinstance(m, PackedBinaryConv2d):
            m.backend = backend


def _max_rel_diff(ref: list[torch.Tensor], out: list[torch.Tensor]) -> float:
    span = float(ref[-1].max() - ref[-1].min())
    return max(float((a - b).abs().max()) for a, b in zip(ref, out, strict=True)) / span


def _check(name: str, k: int, opts: dict, size: tuple[int, int], batches: tuple[int, ...], backend_names: list[str]) -> None:
    model = dyadic(build(name, k, **opts))
    packed = pack(model)
    for batch in batches:
        x = dyadic_input((batch, 3, *size))
        with torch.no_grad():
            ref = model(x)
        for backend in backend_names:
            _set_backend(packed, backend)
            out = packed(x)
            assert [o.shape for o in out] == [r.shape for r in ref]
            assert _max_rel_diff(ref, out) <= 1e-5, (backend, batch)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "k", "opts", "size"), CASES, ids=[f"{c[0]}-{c[2].get('quant', 'w8')}-{i}" for i, c in enumerate(CASES)])
def test_packed_matches_fake_quant_model(name: str, k: int, opts: dict, size: tuple[int, int]) -> None:
    """Every family and preset, batch 1 and 3, with the backend the runtime uses here."""
    _check(name, k, opts, size, (1, 3), [native.default_tier() or "torch"])


@pytest.mark.slow
def test_every_backend_runs_a_whole_model() -> None:
    _check("bihrnet", 17, {"width": 8}, (64, 32), (2,), backends())


def test_pack_folds_batchnorm_and_replaces_every_quantized_conv() -> None:
    model = build("hourglass", 16, quant="bulat17", depth=2, width=64)
    net = pack(model).net
    assert not any(isinstance(m, QuantConv2d) and not m.spec.is_real for m in net.modules())
    binaries = [m for m in net.modules() if isinstance(m, PackedBinaryConv2d)]
    assert len(binaries) == sum(1 for m in model.modules() if isinstance(m, QuantConv2d) and m.spec.weight_bits == 1)
    # every pre-activation BN of a binary conv was folded into thresholds
    assert all(type(u.bn).__name__ == "Identity" for u in net.modules() if type(u).__name__ == "PreActConv")
    # the original is not modified: its BNs and quantized convs are still there
    assert all(isinstance(u.bn, torch.nn.BatchNorm2d) for u in model.modules() if type(u).__name__ == "PreActConv")
    assert not any(isinstance(m, PackedBinaryConv2d) for m in model.modules())


def test_kbit_weights_are_stored_at_k_bits() -> None:
    model = build("cunet", 16, quant="cunet_w4a4g8", num_unets=2)
    layers = [m for m in pack(model).net.modules() if isinstance(m, PackedQuantConv2d)]
    assert layers and all(m.bits == 4 for m in layers)
    for m in layers:
        n = 1
        for d in m.weight_shape:
            n *= d
        assert m.weight_codes.numel() == (4 * n + 7) // 8


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize(
    ("cin", "cout", "k", "stride", "pad", "dil", "hw"),
    [
        (32, 32, 3, 1, 1, 1, (7, 9)),  # every border class, odd sizes
        (64, 40, 3, 2, 1, 1, (9, 8)),  # stride 2, C_out tail
        (17, 33, 3, 1, 1, 1, (5, 5)),  # C_in and C_out tails
        (96, 64, 1, 1, 0, 1, (6, 7)),  # 1×1
        (32, 48, 3, 1, 2, 2, (8, 11)),  # dilation 2 (the MS-Block)
        (40, 32, 5, 1, 2, 1, (4, 3)),  # a kernel larger than the image
    ],
)
def test_single_binary_conv_all_borders(backend: str, cin: int, cout: int, k: int, stride: int, pad: int, dil: int, hw: tuple[int, int]) -> None:
    torch.manual_seed(cin + cout + k)
    conv = QuantConv2d(cin, cout, k, stride, pad, dil, spec="bihrnet").eval()
    with torch.no_grad():
        conv.input_quantizer.threshold.copy_((torch.randn(cin) * 8).round() / 8)
        conv.weight.copy_(torch.where(torch.randn_like(conv.weight) < 0, -0.25, 0.25))
        conv.reset_scales()
    bn = torch.nn.BatchNorm2d(cout).eval()
    bn.running_var.fill_(4.0)
    bn.eps = 0.0
    x = dyadic_input((2, cin, *hw))
    with torch.no_grad():
        ref = bn(conv(x))
    layer = PackedBinaryConv2d.from_conv(conv, post_bn=bn)
    out = layer.run(x, backend)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_auto_backend_measures_once_and_caches() -> None:
    from binmark.deploy import choices

    conv = QuantConv2d(64, 64, 3, 1, 1, spec="xnor").eval()
    layer = PackedBinaryConv2d.from_conv(conv)
    x = torch.randn(1, 64, 12, 13)
    layer(x)
    chosen = [v for k, v in choices().items() if k[:2] == (64, 64) and k[-3:-1] == (12, 13)]
    assert len(chosen) == 1 and chosen[0] in backends()


def test_saved_and_loaded_model_is_identical(tmp_path) -> None:
    torch.manual_seed(0)
    packed = pack(build("bihrnet", 17, width=8).eval())
    again = load(packed.save(tmp_path / "m.bmk"))
    x = torch.randn(2, 3, 64, 64)
    _set_backend(packed, "torch")
    _set_backend(again, "torch")
    for a, b in zip(packed(x), again(x), strict=True):
        assert torch.equal(a, b)


def test_without_the_c_library_packed_models_run_in_pytorch(monkeypatch) -> None:
    """No compiled kernels (no C compiler at install): the fused engine is off, binary layers run
    as PyTorch convolutions of the ±1 tensors, and results are unchanged."""
    monkeypatch.setattr(native, "library", lambda: None)
    model = dyadic(build("hourglass", 16, quant="bulat17", depth=2, width=64))
    packed = pack(model)
    assert packed.why_modules(32, 32) == "binmark's C library is not built"
    assert "torch" in backends() and not set(backends()) & set(native.TIERS)
    x = dyadic_input((2, 3, 32, 32))
    with torch.no_grad():
        assert _max_rel_diff(model(x), packed(x)) <= 1e-5

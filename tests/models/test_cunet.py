"""CU-Net: parameter counts of the official code's arithmetic, order-K wiring, memory-efficient
equality, quantized layers and their levels in forward and backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from binmark import models
from binmark.models.cunet import BOTTLENECK, GROWTH, STEM, supervision_anchors
from binmark.memory import peak_live_bytes
from binmark.quant import QuantConv2d, QuantSpec, packed_saves

SMALL = dict(num_unets=2, order=1)


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    # 16 joints, BN included; computed from the channel arithmetic of the official code
    # (github.com/zhiqiangdon/CU-Net, models/cu_net.py)
    [(2, 1, 1_923_200), (4, 1, 3_952_128), (4, 2, 4_168_448), (8, 1, 8_009_984), (8, 2, 8_658_944),
     (16, 1, 16_125_696), (16, 2, 17_639_936)],  # fmt: skip
)
def test_parameter_counts_match_the_official_code(n: int, k: int, expected: int) -> None:
    assert _params(models.build("cunet", 16, num_unets=n, order=k)) == expected


def test_face_model_count() -> None:
    assert _params(models.build("cunet", 68, num_unets=8, order=1)) == 8_063_232


def test_three_by_three_convs_are_a_third_of_the_parameters() -> None:
    m = models.build("cunet", 16, num_unets=8, order=1)
    dense3 = sum(mod.weight.numel() for mod in m.modules() if isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3))
    assert dense3 == 2_654_208  # 2.654 M of 8.010 M, from the same arithmetic (models/cu_net.py)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_order_k_wiring(order: int) -> None:
    m = models.build("cunet", 5, num_unets=4, order=order, memory_efficient=False)
    for i in range(4):
        fan = min(i, order)
        assert m.down[0].layers[i].bottleneck.norm.num_features == STEM + fan * GROWTH
        assert m.up[2].layers[i].bottleneck.norm.num_features == 2 * STEM + fan * GROWTH
        assert m.neck.ahead[i].norm.num_features == STEM + (fan + 1) * GROWTH
        assert m.down[1].skip[i].conv.out_channels == STEM and m.up[1].ahead[i].conv.out_channels == STEM
        if i:
            assert m.bridges[i - 1].norm.num_features == STEM * (1 + fan)
    assert m.neck.skip is None and m.down[3].skip is not None
    assert m.down[0].layers[0].bottleneck.conv.out_channels == BOTTLENECK


@pytest.mark.parametrize("order", [1, 2])
def test_each_dense_layer_reads_the_k_previous_unets_outputs(order: int) -> None:
    m = models.build("cunet", 3, num_unets=4, order=order, memory_efficient=False).eval()
    outs: dict[int, torch.Tensor] = {}
    ins: dict[int, list[torch.Tensor]] = {}
    for i, layer in enumerate(m.up[1].layers):
        layer.register_forward_pre_hook(lambda mod, inp, i=i: ins.__setitem__(i, list(inp[0])))
        layer.register_forward_hook(lambda mod, inp, out, i=i: outs.__setitem__(i, out))
    m(torch.randn(1, 3, 64, 64))
    for i in range(4):
        history = ins[i][2:]  # [upsampled, skip] + the previous U-Nets' outputs at this position
        expected = [outs[j] for j in range(max(0, i - order), i)]
        assert len(history) == len(expected) and all(a is b for a, b in zip(history, expected))


def test_supervision_anchors() -> None:
    assert supervision_anchors(8, 8) == list(range(8))
    assert supervision_anchors(8, 2) == [3, 7] and supervision_anchors(8, 1) == [7]
    assert supervision_anchors(2, 2) == [0, 1]
    with pytest.raises(ValueError, match="supervise must be in 1..num_unets=4"):
        supervision_anchors(4, 5)
    m = models.build("cunet", 5, num_unets=4, order=1, supervise=2)
    assert sorted(m.heads) == ["1", "3"]


@pytest.mark.parametrize(("supervise", "refine", "outputs"), [(None, 1, 2), (1, 1, 1), (None, 2, 4)])
def test_output_shapes(supervise: int | None, refine: int, outputs: int) -> None:
    m = models.build("cunet", 7, num_unets=2, order=1, supervise=supervise, refine_iters=refine)
    out = m(torch.randn(2, 3, 64, 128))
    assert len(out) == outputs and all(o.shape == (2, 7, 16, 32) for o in out)


def test_refinement_shares_weights() -> None:
    once = models.build("cunet", 5, num_unets=2, order=1, refine_iters=1)
    twice = models.build("cunet", 5, num_unets=2, order=1, refine_iters=2)
    assert _params(once) == _params(twice)


def test_bad_input_and_options() -> None:
    m = models.build("cunet", 5, **SMALL)
    with pytest.raises(ValueError, match="divisible by 64; got shape \\(1, 3, 96, 64\\)"):
        m(torch.randn(1, 3, 96, 64))
    with pytest.raises(ValueError, match="order must be smaller than num_unets \\(2\\), got 2"):
        models.build("cunet", 5, num_unets=2, order=2)
    with pytest.raises(ValueError, match="num_unets must be an integer >= 1"):
        models.build("cunet", 5, num_unets=0)


def test_memory_efficient_equals_plain() -> None:
    torch.manual_seed(0)
    plain = models.build("cunet", 5, num_unets=3, order=2, memory_efficient=False, quant="cunet_w1a8g8")
    efficient = models.build("cunet", 5, num_unets=3, order=2, memory_efficient=True, quant="cunet_w1a8g8")
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    target = torch.rand(2, 5, 16, 16)
    grads = []
    for m in (plain, efficient):
        m.train()
        m.zero_grad()
        loss = sum(((o - target) ** 2).mean() for o in m(x))
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-7, msg=name)
    for (name, a), b in zip(plain.state_dict().items(), efficient.state_dict().values()):
        torch.testing.assert_close(b, a, msg=name)  # BN running statistics updated once
    plain.eval(), efficient.eval()
    with torch.no_grad():
        torch.testing.assert_close(efficient(x)[-1], plain(x)[-1])


class TestQuantization:
    def test_which_layers_are_quantized(self) -> None:
        m = models.build("cunet", 5, num_unets=3, order=1, quant="cunet_w1a8g8")
        quantized = {n for n, mod in m.named_modules() if isinstance(mod, QuantConv2d)}
        dense3 = {n for n, mod in m.named_modules() if isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3)}
        assert dense3 <= quantized
        assert {"heads.0.conv", "heads.1.conv"} <= quantized and "heads.2.conv" not in quantized
        assert not any("bottleneck" in n or "ahead" in n or "bridges" in n or n.startswith("stem") for n in quantized)
        with_1x1 = models.build("cunet", 5, num_unets=3, order=1, quant="cunet_w1a8g8", quantize_1x1=True)
        q1 = {n for n, mod in with_1x1.named_modules() if isinstance(mod, QuantConv2d)}
        assert "down.0.layers.0.bottleneck.conv" in q1 and "bridges.0.conv" in q1 and "stem.0" not in q1

    def test_binary_activations_drop_the_relu_before_the_sign(self) -> None:
        m = models.build("cunet", 5, **SMALL, quant="cunet_w1a1g8")
        assert isinstance(m.down[0].layers[0].conv.relu, nn.Identity)
        assert isinstance(m.down[0].layers[0].bottleneck.relu, nn.ReLU)  # the real 1×1 keeps it
        assert isinstance(models.build("cunet", 5, **SMALL, quant="cunet_w1a8g8").down[0].layers[0].conv.relu, nn.ReLU)

    @pytest.mark.parametrize(("preset", "act_levels", "weight_levels"), [
        ("cunet_w1a8g8", 2**8 - 1, 2), ("cunet_w1a1g8", 2, 2), ("cunet_w2a2g8", 3, 3), ("cunet_w4a4g8", 2**4 - 1, 2**4 - 1),
    ])  # fmt: skip
    def test_levels_in_forward_and_backward(self, preset: str, act_levels: int, weight_levels: int) -> None:
        torch.manual_seed(0)
        m = models.build("cunet", 5, **SMALL, quant=preset, memory_efficient=False)
        conv = m.down[1].layers[1].conv.conv
        seen: dict[str, torch.Tensor] = {}

        def capture(mod: QuantConv2d, inputs: tuple[torch.Tensor]) -> None:
            x = inputs[0]
            seen["act"] = mod.input_quantizer(x).detach()
            x.register_hook(lambda g: seen.setdefault("grad_in", g.detach()))

        conv.register_forward_pre_hook(capture)
        out = m(torch.randn(4, 3, 64, 64))
        sum((o * torch.randn_like(o)).sum() for o in out).backward()
        assert 1 < seen["act"].unique().numel() <= act_levels
        w = conv.quantized_weight().detach()
        assert all(w[c].unique().numel() <= weight_levels for c in range(w.shape[0]))
        # the official rule: the weight gradient on the 8-bit grid (≤ 255 values), the input's not
        assert 1 < conv.weight.grad.unique().numel() <= 2**8 - 1
        assert seen["grad_in"].unique().numel() > 2**8

    def test_presets_exist(self) -> None:
        for name in ("real", "cunet_w1a8g8", "cunet_w1a1g8", "cunet_w2a2g8", "cunet_w4a4g8", "cunet_w8a8g8"):
            spec = QuantSpec.preset(name)
            assert name == "real" or spec.grad_bits == 8


@pytest.mark.parametrize("preset", ["real", "cunet_w1a8g8", "cunet_w1a1g8", "cunet_w2a2g8"])
def test_every_parameter_gets_a_gradient(preset: str) -> None:
    m = models.build("cunet", 3, num_unets=2, order=1, quant=preset, refine_iters=2)
    sum(o.square().mean() for o in m(torch.randn(2, 3, 64, 64))).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"


def _step(quant: str, efficient: bool, packed: bool, amp: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float]:
    """Gradients, buffers and the peak of live tensor MiB of one training step (``amp``: under
    CPU autocast, bfloat16, as ``train.amp`` runs it)."""
    torch.manual_seed(0)
    m = models.build("cunet", 5, num_unets=3, order=2, memory_efficient=efficient, quant=quant).train()
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    target = torch.rand(2, 5, 32, 32, generator=torch.Generator().manual_seed(2))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = sum(((o.float() - target) ** 2).mean() for o in m(x))
        loss.backward()

    with packed_saves(packed):
        live = peak_live_bytes(step) / 2**20
    return {n: p.grad for n, p in m.named_parameters()}, m.state_dict(), live


@pytest.mark.parametrize("efficient", [True, False])
@pytest.mark.parametrize("quant", ["cunet_w1a1g8", "cunet_w1a8g8", "real"])
def test_packed_saves_change_no_gradient_and_keep_less(quant: str, efficient: bool) -> None:
    """Pooling bytes, rebuilt upsampled/skip/stem inputs and (memory-efficient, binary 3×3
    inputs) the recomputation run on through the second BN: the same gradients and BN statistics,
    bit for bit, with less kept."""
    grads, buffers, live = _step(quant, efficient, True)
    grads_off, buffers_off, live_off = _step(quant, efficient, False)
    for name, g in grads_off.items():
        assert torch.equal(grads[name], g), name
    for name, b in buffers_off.items():
        assert torch.equal(buffers[name], b), name
    assert live < live_off
    if efficient and quant != "real":  # the binary 3×3 inputs: 1.8-2.2x at this size
        assert live * 1.5 < live_off, (live, live_off)


def test_packed_saves_under_mixed_precision() -> None:
    """Rebuilt saves run under the forward's autocast, as checkpointing does."""
    grads, _, _ = _step("cunet_w1a1g8", True, True, amp=True)
    grads_off, _, _ = _step("cunet_w1a1g8", True, False, amp=True)
    for name, g in grads_off.items():
        assert torch.equal(grads[name], g), name

"""The fused engine computes what the fake-quantized model computes, with every kernel tier."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from binmark.deploy import load, native, pack
from binmark.deploy.engine import Config, Engine, amx_available, available, real_parts
from binmark.deploy.exact import dyadic, dyadic_input
from binmark.deploy.plan import Unsupported, build_plan
from binmark.models import build

pytestmark = pytest.mark.skipif(not available(), reason="binmark's C library is not built")

TIERS = native.tiers()

# every hourglass block and option the fused plan covers: (K, options, input H×W)
HOURGLASSES = [
    (16, {"block": "hpm"}, (48, 80)),
    (16, {"block": "bottleneck", "quant": "xnor"}, (32, 48)),
    (5, {"block": "wide"}, (32, 32)),
    (5, {"block": "multiscale"}, (32, 48)),
    (7, {"block": "no1x1"}, (48, 32)),
    (16, {"block": "hpm", "post_relu": True, "pool": "avg"}, (32, 32)),
    (16, {"block": "hpm", "stacks": 2, "width": 32}, (32, 32)),
    (16, {"block": "hpm", "depth": 3, "width": 128}, (64, 32)),
]


def _model(k: int, opts: dict) -> nn.Module:
    full = {"quant": "bulat17", "depth": 2, "width": 64, **opts}
    return dyadic(build("hourglass", k, **full))


def _rel(ref: list[torch.Tensor], out: list[torch.Tensor]) -> float:
    span = float(ref[-1].max() - ref[-1].min()) or 1.0
    return max(float((a - b).abs().max()) for a, b in zip(ref, out, strict=True)) / span


@pytest.mark.slow
@pytest.mark.parametrize(("k", "opts", "size"), HOURGLASSES, ids=[f"{c[1]}" for c in HOURGLASSES])
def test_plan_equals_the_fake_quant_model_on_every_tier(k: int, opts: dict, size: tuple[int, int]) -> None:
    model = _model(k, opts)
    packed = pack(model, precision="exact", runtime="fused")
    plan = packed.plan(*size)
    assert plan is not None
    for batch in (1, 3):
        x = dyadic_input((batch, 3, *size))
        with torch.no_grad():
            ref = model(x)
        for tier in TIERS:
            engine = Engine(plan, Config(tier, "fp32"))
            for threads in (1, 2):
                out = engine(x, threads)
                assert [o.shape for o in out] == [r.shape for r in ref]
                assert _rel(ref, out) <= 1e-5, (tier, threads, batch)


def test_an_hpm_block_is_its_three_binary_convs() -> None:
    """No concatenation, addition, BatchNorm, packing or upsampling ops: they live in the convs'
    epilogues (skip + upsample(low) is the skip block's second residual)."""
    model = _model(16, {"block": "hpm", "depth": 1})
    plan = build_plan(pack(model).net, 32, 32)
    kinds = [op.kind for op in plan.ops]
    binary = sum(1 for m in model.modules() if type(m).__name__ == "QuantConv2d")
    assert kinds.count("bconv") == binary
    # real convs: stem, two projections (64→32, 32→64), the head's two 1×1 convs
    assert kinds.count("rconv") == 5
    # one pooling in the stem and one per hourglass level
    assert kinds.count("pool") == 2 and kinds.count("eltwise") == 0
    assert len(kinds) == binary + 5 + 2
    skip = [op for op in plan.ops if op.name.startswith("hourglasses_0_skip")]
    assert len(skip) == 3 and all(op.res2 is not None and op.res2_shift == 1 for op in skip)


def test_batches_run_one_image_per_thread_with_the_same_result() -> None:
    model = _model(16, {"block": "hpm"})
    packed = pack(model, precision="exact", runtime="fused")
    x = dyadic_input((5, 3, 32, 32))
    engine = packed.fused_engine(32, 32)
    together = engine(x, 2)  # 4 images one per thread, the fifth split over both threads
    alone = [engine(x[i : i + 1], 1) for i in range(5)]
    for j, out in enumerate(together):
        assert torch.equal(out, torch.cat([a[j] for a in alone]))


def test_concurrent_calls_from_threads_give_the_same_results() -> None:
    packed = pack(_model(16, {"block": "hpm"}), precision="exact", runtime="fused")
    xs = [dyadic_input((2, 3, 32, 32), seed=s) for s in range(6)]
    want = [packed(x)[-1] for x in xs]
    got: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        for _ in range(3):
            got[i] = packed(xs[i])[-1]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(got[i], want[i]) for i in range(6))


def test_per_op_times_are_reported() -> None:
    packed = pack(_model(16, {"block": "hpm"}), runtime="fused")
    engine = packed.fused_engine(32, 32)
    times = np.zeros(len(engine.plan.ops))
    engine(dyadic_input((1, 3, 32, 32)), 2, times=times)
    assert (times > 0).all()
    with pytest.raises(ValueError, match="float64 array"):
        engine(dyadic_input((1, 3, 32, 32)), 2, times=np.zeros(3))


def test_other_families_run_module_by_module_and_say_why() -> None:
    cases = (
        ("bihrnet", {"width": 8}, (64, 64)),
        ("cunet", {"quant": "cunet_w1a8g8", "num_unets": 2}, (64, 64)),
        ("hourglass", {"quant": "real", "depth": 2, "width": 32}, (32, 32)),
    )
    for name, opts, size in cases:
        model = dyadic(build(name, 17, **opts))
        packed = pack(model, precision="exact")
        assert packed.why_modules(*size)
        x = dyadic_input((1, 3, *size))
        with torch.no_grad():
            assert _rel(model(x), packed(x)) <= 1e-5
        packed.runtime = "fused"
        with pytest.raises(RuntimeError, match="cannot run this model"):
            packed(x)


def test_unsupported_layers_are_named() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Sigmoid()).eval()
    with pytest.raises(Unsupported, match="Sigmoid"):
        build_plan(net, 8, 8)


def test_wrong_sizes_and_bad_settings_are_errors() -> None:
    packed = pack(_model(16, {"block": "hpm"}))
    with pytest.raises(ValueError, match="divisible by 16"):
        packed(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="precision"):
        packed.precision = "fp8"
    with pytest.raises(ValueError, match="runtime"):
        packed.runtime = "onnx"
    engine = packed.fused_engine(32, 32)
    with pytest.raises(ValueError, match="takes"):
        engine(torch.zeros(1, 3, 32, 48))


def test_loaded_file_runs_fused_and_equals_the_packed_model(tmp_path) -> None:
    packed = pack(_model(16, {"block": "hpm"}), precision="exact")
    again = load(packed.save(tmp_path / "m.bmk"), precision="exact")
    for m in again.net.modules():  # eps is not part of a BatchNorm's state; dyadic() set it to 0
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 0.0
    assert again.why_modules(32, 32) is None
    x = dyadic_input((2, 3, 32, 32))
    for a, b in zip(packed(x), again(x), strict=True):
        assert torch.equal(a, b)


def _sparse_ints(shape: tuple[int, ...], per_row: int, signed: bool, g: torch.Generator) -> torch.Tensor:
    """Integer weights with ``per_row`` entries ±1 (or 1) per output channel, the rest 0."""
    w = torch.zeros(shape[0], int(np.prod(shape[1:])))
    for o in range(shape[0]):
        idx = torch.randperm(w.shape[1], generator=g)[:per_row]
        w[o, idx] = torch.randint(0, 2, (per_row,), generator=g).float() * 2 - 1 if signed else 1.0
    return w.view(shape)


@pytest.mark.skipif(not amx_available(), reason="this CPU has no AMX tiles")
@pytest.mark.parametrize("real", ["amx_bf16", "amx_split"])
@pytest.mark.parametrize("emitted", [False, True], ids=["packed", "emitted"])
def test_amx_real_convs_are_exact_on_bf16_values(real: str, emitted: bool) -> None:
    """The AMX kernels compute what float32 computes when every conv input and weight is a
    bfloat16 value (small integers) and the sums are exact: a 7×7 stride-2 conv from the image,
    1×1s reading a packed panel or the bf16 parts their producer emitted (with the BN prologue
    applied there), channel counts not multiples of 16 or 32, rows longer than a tile."""
    g = torch.Generator().manual_seed(0)
    c1, c2 = (64, 32) if emitted else (48, 40)  # emitted parts: inputs of a multiple of 32 channels
    bn = nn.BatchNorm2d(c2).eval()
    with torch.no_grad():  # an integer-valued BN: x - 1, then a ReLU
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(1.0)
        bn.eps = 0.0
    net = nn.Sequential(nn.Conv2d(3, c1, 7, 2, 3), nn.ReLU(), nn.Conv2d(c1, c2, 1), bn, nn.ReLU(), nn.Conv2d(c2, 20, 1)).eval()
    with torch.no_grad():
        for conv, per_row, signed in ((net[0], 12, True), (net[2], 4, False), (net[5], 4, True)):
            conv.weight.copy_(_sparse_ints(tuple(conv.weight.shape), per_row, signed, g))
            conv.bias.copy_(torch.randint(-2, 3, conv.bias.shape, generator=g).float())
    x = torch.randint(-3, 4, (2, 3, 70, 86), generator=g).float()
    exact = Engine(build_plan(net, 70, 86), Config("avx512_vpopcnt", "fp32"))(x, 2)
    config = Config("avx512_vpopcnt", real)
    plan = build_plan(net, 70, 86, real_parts=real_parts(config) if emitted else None)
    assert [op.in_parts > 0 for op in plan.ops if op.kind == "rconv"] == [False, emitted, emitted]
    amx = Engine(plan, config)(x, 2)
    assert float(exact[0].abs().max()) > 50  # the test's values are not trivially small
    torch.testing.assert_close(amx, exact, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(exact[0], net(x), rtol=0, atol=0)


def test_narrow_models_stay_finite_in_every_precision() -> None:
    """Channel counts below the kernels' blocks (width 16: quarters of 4 channels) in the
    AMX and fused layouts; the arena is reused between calls, so stale values must never leak in."""
    model = build("hourglass", 16, quant="bulat17", depth=2, width=16).eval()
    packed = pack(model, runtime="fused")
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    for precision in ("exact", "fast", "bf16"):
        packed.precision = precision
        for _ in range(3):
            out = packed(x)
            assert all(torch.isfinite(o).all() for o in out), precision
    packed.precision = "exact"
    assert _rel(ref, packed(x)) < 0.5  # arbitrary float weights: the two roundings may differ locally

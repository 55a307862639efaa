"""OpenVINO IR export: every binary conv is a BinaryConvolution, the IR equals the packed runtime
(on the exact copy, layer by layer and end to end), it runs in the Localizer and binmark predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

ov = pytest.importorskip("openvino", reason="OpenVINO IR export needs openvino (pip install 'binmark[openvino]')")

from binmark.cli import main  # noqa: E402
from binmark.deploy import PackedBinaryConv2d, load, load_openvino, pack, to_openvino  # noqa: E402
from binmark.deploy import openvino_ir  # noqa: E402
from binmark.deploy.exact import dyadic, dyadic_input  # noqa: E402
from binmark.deploy.pack import rewrite  # noqa: E402
from binmark.inference import InferenceSpec, Localizer  # noqa: E402
from binmark.models import build  # noqa: E402
from binmark.models.bihrnet import BinaryConvBN, BinaryUnit  # noqa: E402
from binmark.quant import QuantConv2d, QuantSpec  # noqa: E402
from binmark.quant.react import RPReLU  # noqa: E402


def _openvino_of(net: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """``net`` (packed modules, eval mode) lowered to OpenVINO, run on ``x`` in float32."""
    result = openvino_ir._compile(openvino_ir._lower(net, tuple(x.shape), "float32"), "exact")(x.numpy())
    return [np.asarray(result[i]) for i in range(len(result))]


def _same(net: nn.Module, x: torch.Tensor, rtol: float = 0.0) -> None:
    with torch.no_grad():
        ref = net(x)
    ref = [r.numpy() for r in (ref if isinstance(ref, (list, tuple)) else [ref])]
    for a, b in zip(_openvino_of(net, x), ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * float(np.ptp(b)) + 1e-6)


@pytest.mark.parametrize(("cin", "k", "stride", "pad", "dilation"), [
    (40, 3, 1, 1, 1), (64, 1, 1, 0, 1), (18, 3, 2, 1, 1), (5, 3, 1, 1, 1), (7, 3, 2, 1, 1), (36, 3, 1, 2, 2),
])  # fmt: skip
def test_a_binary_conv_is_exact(cin: int, k: int, stride: int, pad: int, dilation: int) -> None:
    """u1 weight bit order, zero padding (pad_value 0), channel counts that are not a multiple of
    8 (odd: the unpaired pad channel's correction), folded BatchNorm thresholds with negative and
    zero scales (flipped and constant signs), strides and dilations."""
    torch.manual_seed(cin)
    conv = QuantConv2d(cin, 24, k, stride, pad, dilation, spec="bulat17")
    pre = nn.BatchNorm2d(cin)
    dyadic(nn.Sequential(pre, conv))
    packed = PackedBinaryConv2d.from_conv(conv, pre_bn=pre)
    _same(packed, dyadic_input((1, cin, 13, 11)))


def test_fused_sums_before_a_binarization_are_exact() -> None:
    """binary conv → BN → + residual (→ activation) → binary conv: the pattern OpenVINO's CPU plugin
    fuses wrongly unless the sum is kept apart (random weights, no ties)."""
    spec = QuantSpec.preset("bihrnet")

    class Res(nn.Module):
        def __init__(self, act: nn.Module) -> None:
            super().__init__()
            self.conv, self.bn, self.act = QuantConv2d(16, 16, 3, 1, 1, spec=spec), nn.BatchNorm2d(16), act
            self.next = QuantConv2d(16, 16, 1, spec=spec)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.next(self.act(self.bn(self.conv(x)) + x))

    torch.manual_seed(1)
    for act in (nn.Identity(), nn.ReLU(), nn.PReLU(16), RPReLU(16)):
        net = Res(act).eval()
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.normal_(), m.running_var.uniform_(0.5, 2), m.weight.normal_(), m.bias.normal_()
        _same(rewrite(net), torch.randn(1, 16, 12, 12), rtol=1e-5)
    chain = nn.Sequential(BinaryUnit(16, 16, 3, 1, spec, True), BinaryConvBN(16, 16, 1, 1, spec))
    _same(rewrite(dyadic(chain)), dyadic_input((1, 16, 12, 12)))


def test_thresholds_keep_the_sign_rule_through_constant_shifts_and_scales() -> None:
    """The FakeQuantize thresholds on a chain's source give binmark's sign of chain(y) for every
    float32 y, ties included (brute force over random and grid values and the boundaries)."""
    rng = np.random.default_rng(0)
    c = 48
    for trial in range(24):
        chain = []
        for _ in range(rng.integers(0, 4)):
            values = (rng.standard_normal(c) * 3).astype(np.float32)
            if trial % 2:
                values = (np.round(values * 8) / 8).astype(np.float32)
            op = str(rng.choice(["add", "sub", "rsub", "mul"]))
            if op == "mul" and trial % 3 == 0:
                values[:3] = 0
            chain.append((op, values))
        thr = rng.standard_normal(c).astype(np.float32)
        if trial % 2:
            thr = (np.round(thr * 4) / 4).astype(np.float32)
        flip, always = rng.random(c) < 0.3, rng.random(c) < 0.05
        never = (rng.random(c) < 0.05) & ~always
        t, low = openvino_ir._thresholds(chain, thr, flip, always, never)
        grid = np.round(rng.standard_normal((200, c)) * 16) / 16
        edges = [t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))]
        y = np.concatenate([rng.standard_normal((200, c)) * 4, grid, *(e[None] for e in edges)]).astype(np.float32)
        x = openvino_ir._apply(chain, y)
        expected = (np.where(flip, x > thr, x < thr) | always) & ~never
        got = np.where(y <= t, low, 1.0 - low) == 0.0
        got[-3:] |= np.abs(t) >= 1e29  # the edges of a constant channel lie at ±1e30, out of range
        expected[-3:] |= np.abs(t) >= 1e29
        np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}")


HOURGLASSES = [{"stacks": 1, "depth": 2, "width": 32, "block": b, "quant": "bulat17"} for b in ("bottleneck", "wide", "multiscale", "no1x1", "hpm")]
HOURGLASSES.append({"stacks": 2, "depth": 2, "width": 32, "block": "bottleneck", "quant": "xnor"})
BIHRNETS = [{"width": 8}, {"width": 8, "ms_block": False, "ir_bottleneck": False, "react": False, "binary_fusion": False}, {}]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "opts"), [("hourglass", o) for o in HOURGLASSES] + [("bihrnet", o) for o in BIHRNETS],
                         ids=[f"hourglass-{o['block']}-{o['quant']}" for o in HOURGLASSES] + ["bihrnet-w8", "bihrnet-w8-plain", "bihrnet-default"])  # fmt: skip
def test_every_block_and_bihrnet_export_equal_to_the_packed_runtime(name: str, opts: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build(name, 17, **opts).eval()
    assert openvino_ir._check(model.binmark_arch, (64, 64), "float32") <= 1e-5  # the exact copy, end to end: float rounding only
    xml = to_openvino(model, tmp_path / "m.xml", (64, 64))
    ir = load_openvino(xml)
    binary = sum(isinstance(m, PackedBinaryConv2d) for m in pack(model).net.modules())
    assert openvino_ir.binary_layer_count(ir.compiled(1)) == binary > 0
    assert ir.binmark_arch == model.binmark_arch
    out = ir(torch.zeros(2, 3, 64, 64))  # another batch size: compiled again
    assert [o.shape for o in out] == [r.shape for r in model(torch.zeros(2, 3, 64, 64))]


def test_the_export_refuses_an_ir_that_differs(monkeypatch, tmp_path: Path) -> None:
    real = openvino_ir._thresholds
    monkeypatch.setattr(openvino_ir, "_thresholds", lambda *a: (real(*a)[0] + np.float32(0.5), real(*a)[1]))
    model = build("hourglass", 5, stacks=1, depth=1, width=16, quant="bulat17").eval()
    with pytest.raises(RuntimeError, match="OpenVINO differs from the packed runtime .* nothing written"):
        to_openvino(model, tmp_path / "m.xml", (32, 32))
    assert list(tmp_path.iterdir()) == []


def test_refusals_name_the_layer_or_path(tmp_path: Path) -> None:
    kbit = build("hourglass", 5, stacks=1, depth=1, width=16, quant="cunet_w2a2g8").eval()
    with pytest.raises(ValueError, match=r"k-bit convolution"):
        to_openvino(kbit, tmp_path / "m.xml", (32, 32))
    model = build("hourglass", 5, stacks=1, depth=1, width=16, quant="bulat17").eval()
    with pytest.raises(ValueError, match=r"must end in \.xml"):
        to_openvino(model, tmp_path / "m.onnx", (32, 32))
    with pytest.raises(FileNotFoundError, match="needs the .xml and its .bin"):
        load_openvino(tmp_path / "none.xml")


def test_the_ir_carries_the_inference_spec_and_the_localizer_runs_it(tmp_path: Path) -> None:
    """A .xml in the Localizer gives the .bmk's landmarks (photographs are not on the exact grid,
    so float rounding may move a rare landmark by a fraction of a pixel)."""
    spec = InferenceSpec("300w", input_size=64, heatmap_size=16, sigma=1.0, decode="dark")
    torch.manual_seed(0)
    model = dyadic(build("hourglass", 68, stacks=1, depth=2, width=16, quant="bulat17"))
    packed = pack(model, spec, precision="exact")
    packed.save(tmp_path / "m.bmk")
    xml = to_openvino(packed, tmp_path / "m.xml")
    assert load_openvino(xml).inference == spec
    images = [np.asarray(np.random.default_rng(i).integers(0, 256, (90, 120, 3)), np.uint8) for i in range(3)]
    boxes = [np.array([[10.0, 5.0, 80.0, 80.0], [30.0, 20.0, 50.0, 60.0]])] * 3
    from_bmk = Localizer(tmp_path / "m.bmk", precision="exact").predict_batch(images, boxes)
    from_xml = Localizer(xml).predict_batch(images, boxes)
    assert Localizer(xml).spec == spec
    drift = np.concatenate([np.linalg.norm(a.keypoints - b.keypoints, axis=-1).ravel() for a, b in zip(from_xml, from_bmk, strict=True)])
    assert drift.size == 3 * 2 * 68 and np.quantile(drift, 0.99) < 1e-3 and drift.mean() < 0.01


@pytest.mark.slow
def test_cli_exports_a_checkpoint_and_a_bmk_and_predict_runs_the_ir(tmp_path: Path, capsys) -> None:
    from binmark.train.build import architecture, dataset_skeleton
    from binmark.train.checkpoint import save_checkpoint
    from binmark.train.config import config_to_dict, load_config
    from tests.inference.conftest import TINY_FACE

    cfg = load_config(None, TINY_FACE + ["output_dir=unused"])
    arch = architecture(cfg, dataset_skeleton(cfg.data), cfg.model.quant)
    save_checkpoint(tmp_path / "last.pt", {"model": arch.build().state_dict(), "arch": arch.to_dict(), "config": config_to_dict(cfg)})
    assert main(["export", str(tmp_path / "last.pt"), str(tmp_path / "face.xml"), "--openvino", "--real-dtype", "float16"]) == 0
    assert "OpenVINO matches the packed runtime" in capsys.readouterr().out
    assert (tmp_path / "face.bin").is_file()
    assert main(["export", str(tmp_path / "last.pt"), str(tmp_path / "face.bmk")]) == 0
    assert main(["export", str(tmp_path / "face.bmk"), str(tmp_path / "again.xml"), "--openvino"]) == 0
    image = tmp_path / "face.png"
    from PIL import Image

    Image.fromarray(np.full((80, 80, 3), 128, np.uint8)).save(image)
    (tmp_path / "boxes.json").write_text(json.dumps({"face.png": [[8, 8, 64, 64]]}))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "again.xml"), str(image), "--boxes", str(tmp_path / "boxes.json"), "--out", str(tmp_path / "pred")]) == 0
    (result,) = json.loads((tmp_path / "pred" / "predictions.json").read_text())["images"].values()
    assert len(result["instances"][0]["keypoints"]) == 68


@pytest.mark.slow
def test_the_default_binary_hourglass_ir_is_small_and_all_binary(tmp_path: Path) -> None:
    """The issue's target: the default 1-stack binary HPM hourglass at 256 × 256; f16 real layers."""
    model = build("hourglass", 16, quant="bulat17").eval()
    xml = to_openvino(model, tmp_path / "hg.xml", (256, 256), real_dtype="float16")
    size = xml.stat().st_size + xml.with_suffix(".bin").stat().st_size
    assert size <= 1.5e6
    binary = sum(isinstance(m, PackedBinaryConv2d) for m in pack(model).net.modules())
    assert openvino_ir.binary_layer_count(load_openvino(xml).compiled(1)) == binary == 51


def test_zero_padding_needs_pad_value_zero() -> None:
    """OpenVINO's pad_value 0 leaves padded taps out; ±1 would count them (binmark pads with 0)."""
    rng = np.random.default_rng(0)
    x = np.where(rng.random((1, 8, 6, 6)) < 0.5, 1.0, 0.0).astype(np.float32)  # 0/1 = −1/+1
    w = rng.random((8, 8, 3, 3)) < 0.5
    ref = F.conv2d(torch.from_numpy(2 * x - 1), torch.from_numpy(np.where(w, 1.0, -1.0).astype(np.float32)), padding=1).numpy()
    ops = openvino_ir._ov()[1]
    diffs = {}
    for pad_value in (0.0, 1.0, -1.0):
        p = ops.parameter([1, 8, 6, 6], np.float32)
        kernel = ov.op.Constant(ov.Tensor(np.packbits(w.reshape(-1), bitorder="little"), ov.Shape([8, 8, 3, 3]), ov.Type.u1), shared_memory=False)
        y = ops.binary_convolution(p, kernel, [1, 1], [1, 1], [1, 1], [1, 1], "xnor-popcount", pad_value)
        diffs[pad_value] = float(np.abs(openvino_ir._compile(ov.Model([y], [p]), "exact")(x)[0] - ref).max())
    assert diffs[0.0] == 0.0 and diffs[1.0] > 0 and diffs[-1.0] > 0

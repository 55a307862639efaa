"""Lowering a packed network to the fused engine's static plan (run by ``binmark.deploy.engine``).

The packed network (``pack(model).net``) is traced with ``torch.fx`` at one input size and turned
into a short list of ops over per-image NHWC buffers:

1. **Classify** every node: real conv, binary conv (``PackedBinaryConv2d``), BatchNorm (a
   per-channel affine map), ReLU, 2×2 max/average pooling, nearest 2× upsampling, concatenation,
   addition; ``nn.Identity`` and the input check are aliases. Anything else raises
   :class:`Unsupported` and the network runs module by module instead.
2. **Fold** BatchNorm and ReLU into the conv before them (output transform y = relu(acc·m + b))
   and a BatchNorm/ReLU chain read only by real convs into those convs' input prologue (the
   projection shortcut's BN → ReLU → 1×1).
3. **Realise concatenation and addition without copies**: the convs whose outputs are
   concatenated write straight into their channel slice of the block's output buffer, and the
   residual of a following addition is added in their epilogue (in place when the residual is a
   projection read by nothing else); ``skip + upsample(low)``, where ``skip`` is such a block
   output, becomes a second residual of the skip block's convs, read at (y/2, x/2); any other
   sum is one elementwise op.
4. **Emit bits where values are made**: every binary conv reads a bit tensor (its input after its
   folded BatchNorm and sign), written by the ops that produce the value — by the epilogue of each
   conv that writes a slice of it, before the residual for a value inside a block, after it for a
   block's output. The bit tensors have a border of zero words (+1) as wide as the convs' padding;
   for the AMX kernel the tensor holds one ±1 byte per channel instead, with a zero border.
5. **Schedule** the ops in dependency order and **allocate** real buffers by lifetime (first fit);
   bit tensors get their own region, never reused, so their borders stay zero. A real buffer is
   channel-blocked ([C/b][H][W][b], b = 64, 32 or 16) when every view of it starts and ends on a
   multiple of b channels, so each op's channel slice is read and written as a few sequential
   streams.

The result (:class:`Plan`) holds numpy arrays and buffer offsets only; ``engine.py`` turns it into
the C structures of ``csrc/engine.h`` for a kernel tier.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from binmark.deploy.layers import PackedBinaryConv2d, PackedQuantConv2d, bn_affine, unpack_words
from binmark.models.inputs import check_images

__all__ = ["BINARY_FORMATS", "Unsupported", "Buffer", "Emit", "Op", "Plan", "build_plan"]

_ALIGN = 64  # bytes: buffer offsets in the arena


class Unsupported(ValueError):
    """The network has a part the fused engine cannot run; it runs module by module instead."""


#: formats of the tensors binary convs read: bit-packed words (popcount kernels), or one signed
#: byte per channel (AMX kernel; channels padded to 64 and 64 pixels of slack after the image,
#: which the kernel's last tiles read and drop)
BINARY_FORMATS = ("bits", "s8")
_S8_SLACK = 64
_BF16_SLACK = 32  # BM_BF16_SLACK in csrc/engine.h


@dataclass(eq=False)
class Buffer:
    """A per-image buffer: float32 NHWC (``fmt="real"``), a tensor a binary conv reads (``"bits"``:
    32-bit words; ``"s8"``: bytes) with a zero border of ``pad`` pixels, or the bfloat16 parts a
    1×1 real conv on AMX reads (``"bf16"``: ``parts`` copies of [H·W + slack][C padded to 32])."""

    c: int
    h: int
    w: int
    fmt: str = "real"
    pad: int = 0
    offset: int = -1
    block: int = 0  # real buffers: b = channel-blocked [C/b][H][W][b] (b 16, 32, 64), 0 = NHWC
    parts: int = 0  # bf16 buffers

    @property
    def bits(self) -> bool:
        """Whether this is a binary conv's input (bits or bytes): zero borders, never reused."""
        return self.fmt in BINARY_FORMATS

    @property
    def stride(self) -> int:
        """Channel stride: floats, words, bytes or bf16 elements per pixel."""
        return {"real": self.c, "bits": (self.c + 31) // 32, "s8": (self.c + 63) // 64 * 64, "bf16": (self.c + 31) // 32 * 32}[self.fmt]

    @property
    def nbytes(self) -> int:
        pixels = (self.h + 2 * self.pad) * (self.w + 2 * self.pad)
        if self.fmt == "s8":
            return (pixels + _S8_SLACK) * self.stride
        if self.fmt == "bf16":
            return self.parts * (pixels + _BF16_SLACK) * self.stride * 2
        return pixels * self.stride * 4


@dataclass(frozen=True)
class View:
    """Channels [co, co + c) of a buffer (c is the reader's/writer's channel count)."""

    buf: Buffer
    co: int = 0


@dataclass(eq=False)
class Emit:
    """Channels [src, src + n) of an op's output written to channels [bit0, bit0 + n) of ``dst``:
    as bits or bytes, bit = mul·v < thr; as bfloat16 parts, of relu?(v·pm + pb) (the reader's
    prologue, if any)."""

    dst: Buffer
    src: int
    n: int
    bit0: int
    mul: np.ndarray | None = None
    thr: np.ndarray | None = None
    pm: np.ndarray | None = None
    pb: np.ndarray | None = None
    prelu: bool = False


@dataclass(eq=False, kw_only=True)
class _Transform:
    """The per-channel arithmetic around a kernel: output transform y = relu?(acc·m + b), input
    prologue relu?(x·pm + pb), average (not max) pooling, input read at (y >> s, x >> s)."""

    m: np.ndarray | None = None
    b: np.ndarray | None = None
    relu: bool = False
    pm: np.ndarray | None = None
    pb: np.ndarray | None = None
    prelu: bool = False
    avg: bool = False
    in_shift: int = 0


@dataclass(eq=False)
class Op(_Transform):
    """One op of the plan; the fields mirror ``bm_op`` in csrc/engine.h."""

    kind: str  # "bconv", "rconv", "pool", "eltwise"
    name: str
    out_shape: tuple[int, int, int]  # (C, H, W)
    inp: View | None = None  # None: the network's input image (rconv)
    module: nn.Module | None = None
    res: View | None = None
    res_shift: int = 0
    res2: View | None = None
    res2_shift: int = 0
    out: View | None = None
    out_index: int = -1
    ey: list[Emit] = field(default_factory=list)
    er: list[Emit] = field(default_factory=list)
    bconv: Any = None  # (cls_y, cls_x, corr, kvalid) for binary convs
    feeds_binary: bool = False  # a binary conv reads (through any ops) what this op writes
    in_parts: int = 0  # real convs reading a bf16 parts tensor (their prologue done by its producers)


@dataclass
class Plan:
    """The static plan of a network at one input size (per image)."""

    ops: list[Op]
    arena_bytes: int
    input_shape: tuple[int, int, int]
    output_shapes: list[tuple[int, int, int]]
    buffers: list[Buffer]


# ------------------------------------------------------------------------------------- the graph


@dataclass(eq=False)
class _Node(_Transform):
    kind: str
    args: list[_Node]
    shape: tuple[int, int, int]
    name: str
    module: nn.Module | None = None
    users: list[_Node] = field(default_factory=list)
    outputs: int = 0  # how often the value is a network output
    in_parts: int = 0  # rconv: reads bf16 parts of its input (see _Builder.choose_real_inputs)
    parent: tuple[_Node, int] | None = None  # written as channels [off, ...) of another value
    res: tuple[_Node, int] | None = None  # add: the residual operand and its upsampling shift
    res2: tuple[_Node, int] | None = None  # add: a second residual (skip + up(low) merged into the skip block)
    inplace: _Node | None = None  # add/eltwise: reuse this value's buffer
    dead: bool = False


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (PackedBinaryConv2d, PackedQuantConv2d)) or super().is_leaf_module(m, qualname)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _classify_module(m: nn.Module, name: str) -> tuple[str, dict[str, Any]]:
    if isinstance(m, PackedBinaryConv2d):
        if m.dilation != (1, 1):
            raise Unsupported(f"{name}: dilated binary convolution")
        return "bconv", {"m": m.scale.double().numpy(), "b": m.bias.double().numpy()}
    if type(m) is nn.Conv2d:
        if m.groups != 1 or _pair(m.dilation) != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise Unsupported(f"{name}: grouped, dilated or non-zero-padded convolution")
        bias = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(m.out_channels)
        return "rconv", {"m": np.ones(m.out_channels), "b": bias}
    if type(m) is nn.BatchNorm2d and not m.training and m.track_running_stats:
        s, t = bn_affine(m)
        return "affine", {"pm": s.numpy(), "pb": t.numpy()}
    if type(m) is nn.ReLU:
        return "relu", {}
    if type(m) in (nn.MaxPool2d, nn.AvgPool2d):
        k, s, p = _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding)
        extra = getattr(m, "divisor_override", None) is None and not m.ceil_mode and _pair(getattr(m, "dilation", 1)) == (1, 1)
        if k != (2, 2) or s != (2, 2) or p != (0, 0) or not extra:
            raise Unsupported(f"{name}: pooling other than 2x2 with stride 2")
        return "pool", {"avg": type(m) is nn.AvgPool2d}
    raise Unsupported(f"{name}: {type(m).__name__}")


class _Shapes(fx.Interpreter):
    """Runs the graph once, recording each node's output shape (errors such as the model's own
    input check propagate unchanged)."""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            n.meta["binmark_shape"] = tuple(result.shape)
        return result


def _shape(n: fx.Node) -> tuple[int, int, int]:
    shape = n.meta.get("binmark_shape")
    if shape is None or len(shape) != 4:
        raise Unsupported(f"{n.name}: not a 4-d tensor")
    _, c, h, w = shape
    return int(c), int(h), int(w)


def _trace(net: nn.Module, h: int, w: int) -> tuple[list[_Node], list[_Node]]:
    """The network's nodes (aliases removed) and its outputs."""
    try:
        graph = _Tracer().trace(net)
    except Exception as exc:  # data-dependent control flow and the like: torch.fx cannot trace it
        raise Unsupported(f"torch.fx cannot trace the network ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    gm = fx.GraphModule(net, graph)
    with torch.no_grad():
        _Shapes(gm).run(torch.zeros(1, 3, h, w))
    env: dict[fx.Node, _Node] = {}
    nodes: list[_Node] = []
    outputs: list[_Node] = []

    def add(kind: str, args: list[_Node], n: fx.Node, module: nn.Module | None = None, **attrs: Any) -> None:
        node = _Node(kind, args, _shape(n), n.name, module, **attrs)
        env[n] = node
        nodes.append(node)

    for n in graph.nodes:
        args = [env[a] for a in n.all_input_nodes if a in env]
        if n.op == "placeholder":
            add("image", [], n)
        elif n.op == "output":
            flat: list[Any] = []
            fx.node.map_arg(n.args[0], flat.append)
            outputs = [env[a] for a in flat]
        elif n.op == "call_module":
            m = gm.get_submodule(str(n.target))
            if type(m) is nn.Identity:
                env[n] = args[0]
                continue
            kind, attrs = _classify_module(m, n.name)
            add(kind, args, n, m, **attrs)
        elif n.op == "call_function" and n.target is check_images:
            continue
        elif n.op == "call_function" and n.target in (torch.cat, torch.concat):
            dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
            if dim not in (1, -3):
                raise Unsupported(f"{n.name}: concatenation along dim {dim}")
            parts = [env[a] for a in n.args[0]]
            if len(set(map(id, parts))) != len(parts):
                raise Unsupported(f"{n.name}: a tensor concatenated twice")
            add("cat", parts, n)
        elif n.op == "call_function" and n.target in (operator.add, torch.add) and len(args) == 2 and not n.kwargs:
            add("add", args, n)
        elif n.op == "call_function" and n.target in (F.relu, torch.relu):
            add("relu", args, n)
        elif n.op == "call_function" and n.target is F.interpolate:
            mode = n.kwargs.get("mode", "nearest")
            (c, h2, w2), (_, h1, w1) = _shape(n), args[0].shape
            if mode != "nearest" or (h2, w2) != (2 * h1, 2 * w1):
                raise Unsupported(f"{n.name}: interpolation other than nearest 2x")
            add("up", args, n)
        else:
            raise Unsupported(f"{n.name}: {n.op} {getattr(n.target, '__name__', n.target)}")
    for node in nodes:
        for a in node.args:
            a.users.append(node)
    for o in outputs:
        o.outputs += 1
    return nodes, outputs


def _take_over(keep: _Node, gone: _Node, outputs: list[_Node]) -> None:
    """``keep`` now computes ``gone``'s value: ``gone``'s users and output slots move to it."""
    keep.users = [u for u in keep.users if u is not gone]
    for u in gone.users:
        u.args = [keep if a is gone else a for a in u.args]
        keep.users.append(u)
    for i, o in enumerate(outputs):
        if o is gone:
            outputs[i] = keep
    keep.outputs += gone.outputs
    gone.dead = True


def _fold_epilogues(nodes: list[_Node], outputs: list[_Node]) -> None:
    """conv → BN → ReLU into the conv's output transform."""
    for c in nodes:
        if c.dead or c.kind not in ("rconv", "bconv"):
            continue
        while len(c.users) == 1 and not c.outputs and not c.relu and c.users[0].kind == "affine":
            a = c.users[0]
            c.m, c.b = c.m * a.pm, c.b * a.pm + a.pb
            _take_over(c, a, outputs)
        if len(c.users) == 1 and not c.outputs and not c.relu and c.users[0].kind == "relu":
            c.relu = True
            _take_over(c, c.users[0], outputs)


def _fold_prologues(nodes: list[_Node]) -> None:
    """BN → ReLU (or either) read only by real convs into those convs' input prologue."""
    for kind in ("relu", "affine"):
        for p in nodes:
            if p.dead or p.kind != kind or p.outputs or not p.users:
                continue
            if any(u.kind != "rconv" or u.pm is not None for u in p.users):
                continue
            src = p.args[0]
            if kind == "relu" and src.kind == "affine" and src.users == [p] and not src.outputs:
                pm, pb, source = src.pm, src.pb, src.args[0]
                src.dead = True
                source.users.remove(src)
            elif kind == "relu":
                pm, pb, source = np.ones(p.shape[0]), np.zeros(p.shape[0]), src
                source.users.remove(p)
            else:
                pm, pb, source = p.pm, p.pb, src
                source.users.remove(p)
            for u in p.users:
                u.pm, u.pb, u.prelu = pm, pb, kind == "relu"
                u.args = [source]
                source.users.append(u)
            p.dead = True


def _writable(p: _Node, into: _Node) -> bool:
    """A conv whose output may be written straight into ``into``'s buffer."""
    return p.kind in ("rconv", "bconv") and p.parent is None and not p.outputs and all(u is into or u.kind == "bconv" for u in p.users)


def _merge_upsample_add(a: _Node) -> bool:
    """``a = s + up(low)`` where ``s`` is an addition its convs already make (a block's output, read
    by nothing else): those convs add ``low`` at half resolution too, in the same epilogue."""
    for s, q in (a.args, a.args[::-1]):
        if s.kind == "add" and s.res is not None and s.res2 is None and s.inplace is None and s.users == [a] and not s.outputs \
                and q.kind == "up" and q.users == [a] and not q.outputs:  # fmt: skip
            break
    else:
        return False
    low, x = q.args[0], s.res[0]
    for part in s.args:
        if part.parent is not None and part.parent[0] is s:
            part.parent = (a, part.parent[1])
            part.users = [a if y is s else y for y in part.users]
    a.args = list(s.args)
    a.res, a.res2 = s.res, (low, 1)
    x.users = [a if y is s else y for y in x.users]
    low.users = [a if y is q else y for y in low.users]
    s.dead = q.dead = True
    if s.res[1] == 0 and x.users == [a] and not x.outputs and x.kind != "image" and x.parent is None:
        a.inplace = x
    return True


def _realise_cat_add(nodes: list[_Node]) -> None:
    """Decide which values are written as slices of others, which additions are done in the
    epilogue of the convs that make one operand, and which happen in place."""
    index = {id(n): i for i, n in enumerate(nodes)}
    for c in nodes:
        if c.kind == "cat":
            if not all(_writable(p, c) for p in c.args):
                raise Unsupported(f"{c.name}: concatenation of tensors other than conv outputs")
            off = 0
            for p in c.args:
                p.parent = (c, off)
                off += p.shape[0]
    for a in nodes:
        if a.kind != "add":
            continue
        if _merge_upsample_add(a):
            continue
        u, v = a.args
        sides = [s for s in (u, v) if (s.kind == "cat" and s.parent is None and s.users == [a] and not s.outputs) or _writable(s, a)]
        if sides:  # the convs making one operand add the other in their epilogue
            cats = [s for s in sides if s.kind == "cat"]
            part = cats[0] if cats else max(sides, key=lambda s: index[id(s)])
            q = v if part is u else u
            part.parent = (a, 0)
            base = q
        else:  # an elementwise op: first operand + residual
            if u.kind == "up" and v.kind != "up":
                u, v = v, u
            q = v
            a.kind, a.args = "eltwise", [u]
            base = u
        if q.kind == "up" and q.users == [a] and not q.outputs:
            low = q.args[0]
            a.res = (low, 1)
            low.users = [a if x is q else x for x in low.users]
            q.dead = True
        else:
            a.res = (q, 0)
        if a.res[1] == 0 or base is not q:
            if base.users == [a] and not base.outputs and base.kind != "image" and base.parent is None:
                a.inplace = base
    for n in nodes:
        if n.dead:
            continue
        if n.kind == "up":
            n.kind, n.in_shift = "eltwise", 1
        elif n.kind == "affine":
            n.kind = "eltwise"
        elif n.kind == "relu":
            n.kind, n.relu = "eltwise", True


# ------------------------------------------------------------------------------------- ops


def _bits_of(conv: PackedBinaryConv2d) -> tuple[np.ndarray, np.ndarray]:
    """(mul, thr) with bit = mul·x < thr, from the conv's thresholds and flip/set/clear masks."""
    c = conv.in_channels
    thr = conv.threshold.double().numpy()
    flip, always, never = (unpack_words(conv.bit_masks[i], c).numpy() for i in range(3))
    mul = np.where(flip, -1.0, 1.0)
    t = np.where(flip, -thr, thr)
    mul = np.where(always | never, 0.0, mul)
    t = np.where(always, 1.0, np.where(never, -1.0, t))
    return mul, t


def _classes(n_out: int, n_in: int, k: int, s: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output position its class id, and per class the valid-tap mask (classes, k)."""
    pos = np.arange(n_out)[:, None] * s - p + np.arange(k)[None, :]
    valid = (pos >= 0) & (pos < n_in)
    patterns, cls = np.unique(valid, axis=0, return_inverse=True)
    return cls.reshape(-1).astype(np.int16), patterns


def _border_tables(conv: PackedBinaryConv2d, h: int, w: int, ldv: int) -> tuple[np.ndarray, ...]:
    """(cls_y, cls_x, corr [classes][ldv], kvalid [classes]) of a binary conv at input (h, w)."""
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    ho, wo = conv.output_size(h, w)
    cy, py = _classes(ho, h, kh, sh, ph)
    cx, px = _classes(wo, w, kw, sw, pw)
    taps = conv.tap_popcounts().numpy().astype(np.int64)  # (taps, C_out padded to 32)
    corr = np.zeros((len(py) * len(px), ldv), dtype=np.int32)
    kvalid = np.zeros(len(py) * len(px), dtype=np.int32)
    for i, vy in enumerate(py):
        for j, vx in enumerate(px):
            valid = (vy[:, None] & vx[None, :]).reshape(-1)
            corr[i * len(px) + j, : taps.shape[1]] = taps[~valid].sum(axis=0)
            kvalid[i * len(px) + j] = int(valid.sum()) * conv.in_channels
    return cy, cx, corr, kvalid


def _pad_needed(conv: nn.Module, h: int, w: int) -> int:
    """Border (pixels) a bit tensor needs so that every tap of ``conv`` reads inside it."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.padding)
    ho, wo = conv.output_size(h, w)
    return max(ph, pw, (ho - 1) * sh - ph + kh - h, (wo - 1) * sw - pw + kw - w, 0)


def build_plan(
    net: nn.Module,
    height: int,
    width: int,
    binary_format: Callable[[PackedBinaryConv2d, int, int], str] | None = None,
    real_parts: Callable[[nn.Conv2d, bool], int] | None = None,
) -> Plan:
    """Lower a packed network (``PackedModel.net``, eval mode) for (height, width) input images.

    Args:
        binary_format: for each binary conv and its input size (h, w), the input format its kernel
            reads (:data:`BINARY_FORMATS`); default "bits" for every one.
        real_parts: for each 1×1 stride-1 real conv (and whether a binary conv is downstream of
            it), the number of bfloat16 parts of its input its AMX kernel reads straight from a
            tensor its producers emit, or 0 to pack its input itself (default 0 for every one).

    Raises:
        Unsupported: the network contains a part the fused engine cannot run.
    """
    nodes, outputs = _trace(net, height, width)
    _fold_epilogues(nodes, outputs)
    _fold_prologues(nodes)
    nodes = [n for n in nodes if not n.dead]
    _realise_cat_add(nodes)
    nodes = [n for n in nodes if not n.dead]
    return _Builder(nodes, outputs, binary_format, real_parts).plan(height, width)


class _Builder:
    """Ops, bit tensors, schedule and buffer offsets from the realised graph."""

    def __init__(self, nodes: list[_Node], outputs: list[_Node], binary_format: Callable[..., str] | None,
                 real_parts: Callable[..., int] | None) -> None:  # fmt: skip
        self.nodes, self.outputs = nodes, outputs
        self.binary_format = binary_format or (lambda conv, h, w: "bits")
        self.real_parts = real_parts or (lambda conv, feeds: 0)
        self.op_of: dict[int, Op] = {}
        self.own: dict[int, Buffer] = {}
        self.bits: dict[tuple[Any, ...], Buffer] = {}
        self.emitters: dict[int, list[Op]] = {}
        self.reads: dict[int, list[_Node]] = {}  # id(op) → the values it reads
        self.ops: list[Op] = []

    # locations -------------------------------------------------------------
    @staticmethod
    def root(n: _Node) -> _Node:
        while n.parent is not None:
            n = n.parent[0]
        return n

    @staticmethod
    def offset(n: _Node) -> int:
        off = 0
        while n.parent is not None:
            n, o = n.parent
            off += o
        return off

    def loc(self, n: _Node) -> View:
        """Where a value's real content lives."""
        if n.kind == "image":
            raise Unsupported(f"{n.name}: the input image read by an op other than a real convolution")
        r = self.root(n)
        while r.inplace is not None:
            r = self.root(r.inplace)
        if id(r) not in self.own:
            self.own[id(r)] = Buffer(*r.shape)
        return View(self.own[id(r)], self.offset(n))

    def needs_real(self, n: _Node) -> bool:
        """Whether anything reads the float32 value ``n`` is part of (not only bits or bf16 parts)."""
        return any(u.kind != "bconv" and not u.in_parts for u in self.root(n).users)

    def choose_real_inputs(self) -> None:
        """Real 1×1 stride-1 convs whose kernel reads bf16 parts emitted by their input's producers.
        Only for inputs of a multiple of 32 channels: an AMX k-step reads 32 channels, and padding
        channels of an emitted tensor would hold stale bits (possibly NaN, and NaN × 0 is NaN)."""
        for n in self.nodes:
            m = n.module
            if n.kind != "rconv" or n.args[0].kind == "image" or _pair(m.kernel_size) != (1, 1) or _pair(m.stride) != (1, 1):
                continue
            if m.in_channels % 32 == 0:
                n.in_parts = int(self.real_parts(m, self.feeds_binary(n)))

    def residuals(self, n: _Node) -> list[tuple[_Node, View, int]]:
        """(value, view, shift) of the residuals added to a conv's slice by the addition it is
        written into (none, one, or two for a merged skip + upsample)."""
        off, p = 0, n
        while p.parent is not None:
            p, o = p.parent
            off += o
            if p.kind == "add" and p.res is not None:
                out = []
                for q, shift in (r for r in (p.res, p.res2) if r is not None):
                    v = self.loc(q)
                    out.append((q, View(v.buf, v.co + off), shift))
                return out
        return []

    @staticmethod
    def feeds_binary(n: _Node) -> bool:
        """Whether a binary conv is downstream of ``n`` (so rounding in ``n`` can flip signs)."""
        seen, stack = set(), list(n.users)
        while stack:
            u = stack.pop()
            if u.kind == "bconv":
                return True
            if id(u) not in seen:
                seen.add(id(u))
                stack.extend(u.users)
                if u.parent is not None:
                    stack.append(u.parent[0])
        return False

    def leaves(self, v: _Node) -> list[_Node]:
        """The conv nodes whose outputs make up value ``v`` (itself for a single op)."""
        if v.kind == "cat":
            return list(v.args)
        if v.kind == "add":
            parts = [p for p in self.nodes if p.parent is not None and p.parent[0] is v]
            return [leaf for p in parts for leaf in (p.args if p.kind == "cat" else [p])]
        return [v]

    # ops -------------------------------------------------------------------
    def make_ops(self) -> None:
        for n in self.nodes:
            if n.kind in ("cat", "add", "image"):
                continue
            op = Op(n.kind, n.name, n.shape, module=n.module, **{f.name: getattr(n, f.name) for f in fields(_Transform)})
            reads: list[_Node] = []
            if n.in_parts:  # the input (bf16 parts, prologue applied) is set by make_emitted
                op.pm = op.pb = None
                op.prelu, op.in_parts = False, n.in_parts
            elif n.kind in ("rconv", "pool", "eltwise") and n.args[0].kind != "image":
                op.inp = self.loc(n.args[0])
                reads.append(n.args[0])
            elif n.kind != "bconv" and n.kind != "rconv":
                raise Unsupported(f"{n.name}: reads the input image")
            if n.kind == "eltwise" and n.res is not None:
                op.res, op.res_shift = self.loc(n.res[0]), n.res[1]
                reads.append(n.res[0])
            elif n.kind in ("rconv", "bconv"):
                found = self.residuals(n)
                for (q, view, shift), (vname, sname) in zip(found, (("res", "res_shift"), ("res2", "res2_shift"))):
                    setattr(op, vname, view)
                    setattr(op, sname, shift)
                    reads.append(q)
            if self.needs_real(n):
                op.out = self.loc(n)
            op.feeds_binary = self.feeds_binary(n)
            self.op_of[id(n)] = op
            self.reads[id(op)] = reads
            self.ops.append(op)
        for i, o in enumerate(self.outputs):
            op = self.op_of.get(id(o))
            if op is not None and op.out_index < 0 and o.parent is None:
                op.out_index = i
            else:  # a value made by several ops (a concatenation, an addition), or output twice
                copy = Op("eltwise", f"{o.name}_out{i}", o.shape, inp=self.loc(o), out_index=i)
                self.reads[id(copy)] = [o]
                self.ops.append(copy)

    def emit_from(self, v: _Node, buf: Buffer, make: Callable[[int, int], Emit]) -> None:
        """Emits of ``buf`` from every writer of value ``v`` (``make(offset, channels)``): before
        the residual for a value inside a block (a conv output or a concatenation), after it
        otherwise."""
        if v.kind == "image":
            raise Unsupported(f"{v.name}: the input image read by a conv that needs its producer to emit its input")
        stage = "y" if v.kind == "cat" or (v.kind in ("rconv", "bconv") and v.parent is not None) else "r"
        base = self.offset(v)
        for leaf in self.leaves(v):
            op = self.op_of[id(leaf)]
            off = self.offset(leaf) - base if leaf is not v else 0
            (op.ey if stage == "y" else op.er).append(make(off, op.out_shape[0]))
            self.emitters.setdefault(id(buf), []).append(op)

    def make_parts(self) -> None:
        """A bf16 parts tensor per (value, parts, prologue) read by real convs, emitted likewise."""
        for n in self.nodes:
            if not n.in_parts:
                continue
            v = n.args[0]
            c, h, w = v.shape
            key = (id(v), "bf16", n.in_parts, None if n.pm is None else (n.pm.tobytes(), n.pb.tobytes(), n.prelu))
            if key not in self.bits:
                buf = self.bits[key] = Buffer(c, h, w, "bf16", parts=n.in_parts)
                pm, pb = (None, None) if n.pm is None else (n.pm, n.pb)
                self.emit_from(v, buf, lambda off, k, buf=buf, pm=pm, pb=pb: Emit(
                    buf, 0, k, off, pm=None if pm is None else pm[off : off + k], pb=None if pb is None else pb[off : off + k], prelu=n.prelu))  # fmt: skip
            self.op_of[id(n)].inp = View(self.bits[key])

    def make_bits(self) -> None:
        """A bit tensor per (value, thresholds) read by binary convs, emitted by the value's writers."""
        for n in self.nodes:
            if n.kind != "bconv":
                continue
            v, conv = n.args[0], n.module
            assert isinstance(conv, PackedBinaryConv2d)
            if v.kind == "image":
                raise Unsupported(f"{n.name}: binary convolution of the input image")
            c, h, w = v.shape
            mul, thr = _bits_of(conv)
            fmt = self.binary_format(conv, h, w)
            if fmt not in BINARY_FORMATS:
                raise ValueError(f"binary_format returned {fmt!r} for {n.name}; expected one of {BINARY_FORMATS}")
            key = (id(v), mul.tobytes(), thr.tobytes(), fmt)
            if key not in self.bits:
                buf = self.bits[key] = Buffer(c, h, w, fmt)
                self.emit_from(v, buf, lambda off, k, buf=buf, mul=mul, thr=thr: Emit(buf, 0, k, off, mul[off : off + k], thr[off : off + k]))
            buf = self.bits[key]
            buf.pad = max(buf.pad, _pad_needed(conv, h, w))
            op = self.op_of[id(n)]
            op.inp = View(buf)
            if fmt == "bits":  # bytes carry zero padding themselves
                op.bconv = _border_tables(conv, h, w, _ldv(op.out_shape[0]))

    # schedule and memory ---------------------------------------------------
    def schedule(self) -> None:
        """Every op after the writers of what it reads (values and bit tensors); otherwise in the
        traced order. This moves a projection shortcut ahead of the convs that add into it."""
        pos = {id(op): i for i, op in enumerate(self.ops)}
        deps: list[set[int]] = []
        for op in self.ops:
            d = {pos[id(self.op_of[id(leaf)])] for v in self.reads[id(op)] for leaf in self.leaves(v) if id(leaf) in self.op_of}
            if op.inp is not None and id(op.inp.buf) in self.emitters:  # bits, bytes or bf16 parts
                d |= {pos[id(e)] for e in self.emitters[id(op.inp.buf)]}
            d.discard(pos[id(op)])
            deps.append(d)
        order: list[int] = []
        done: set[int] = set()
        pending = list(range(len(self.ops)))
        while pending:
            k = next((k for k, i in enumerate(pending) if deps[i] <= done), None)
            if k is None:
                raise Unsupported("the network's ops depend on each other in a cycle")
            done.add(pending[k])
            order.append(pending.pop(k))
        self.ops = [self.ops[i] for i in order]

    @staticmethod
    def touched(op: Op) -> list[Buffer]:
        return [v.buf for v in (op.inp, op.res, op.res2, op.out) if v is not None] + [e.dst for e in op.ey + op.er]

    def allocate(self) -> int:
        """Offsets: real buffers first fit by lifetime, then the bit tensors; returns the arena size."""
        life: dict[int, list[int]] = {}
        bufs: dict[int, Buffer] = {}
        for i, op in enumerate(self.ops):
            for buf in self.touched(op):
                if not buf.bits:  # float32 and bf16 buffers; bit tensors keep their zero borders
                    bufs[id(buf)] = buf
                    span = life.setdefault(id(buf), [i, i])
                    span[1] = i
        placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
        top = 0
        for key in sorted(bufs, key=lambda k: life[k][0]):
            buf, (first, last) = bufs[key], life[key]
            size = _aligned(buf.nbytes)
            off = 0
            for o, e in sorted((o, e) for o, e, f, l in placed if not (l < first or f > last)):
                if off + size <= o:
                    break
                off = max(off, e)
            buf.offset = off
            placed.append((off, off + size, first, last))
            top = max(top, off + size)
        for buf in self.bits.values():
            if buf.bits:
                buf.offset = top
                top += _aligned(buf.nbytes)
        return top

    def layouts(self) -> None:
        """Channel-blocked layout for each real buffer all of whose views are 16-aligned, with
        the widest block (64, 32 or 16 channels) they all align to: fewer streams per slice."""
        views: dict[int, list[tuple[int, int]]] = {}
        bufs: dict[int, Buffer] = {}
        for op in self.ops:
            c = op.out_shape[0]
            width = {"inp": op.module.in_channels if op.kind == "rconv" else c, "res": c, "res2": c, "out": c}
            for name in ("inp", "res", "res2", "out"):
                v = getattr(op, name)
                if v is not None and v.buf.fmt == "real":
                    bufs[id(v.buf)] = v.buf
                    views.setdefault(id(v.buf), []).append((v.co, width[name]))
        for key, buf in bufs.items():
            for block in (64, 32, 16):
                if buf.c % block == 0 and all(co % block == 0 and n % block == 0 for co, n in views[key]):
                    buf.block = block
                    break

    def plan(self, height: int, width: int) -> Plan:
        self.choose_real_inputs()
        self.make_ops()
        self.make_parts()
        self.make_bits()
        self.layouts()
        self.schedule()
        arena = self.allocate()
        buffers = list({id(b): b for op in self.ops for b in self.touched(op)}.values())
        return Plan(self.ops, arena, (3, height, width), [o.shape for o in self.outputs], buffers)


def _ldv(c: int) -> int:
    return (c + 31) // 32 * 32


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN

"""The ``binmark`` command line.

Exit status: 0 on success; 2 for a wrong argument, with a one-line reason; 1 for any other
failure, with a message naming the file or value at fault (``--debug`` shows the traceback);
3 (:data:`NOTHING_PROCESSED`) when ``predict`` could process none of its inputs.
Model options are generated from the model entrypoints' signatures, so ``binmark summary MODEL``
offers exactly what ``binmark.models.build`` accepts.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from binmark import __version__
from binmark.sizes import parse_size

__all__ = ["main", "build_parser", "NOTHING_PROCESSED"]

#: exit status of ``binmark predict`` when every input was skipped
NOTHING_PROCESSED = 3


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _input_size(text: str) -> tuple[int, int]:
    """An "H" or "HxW" argument as (w, h) (:func:`binmark.sizes.parse_size`)."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    """An integer ≥ 1 (underscores allowed, as in 89_478_485)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _add_model_options(parser: argparse.ArgumentParser, model: str) -> None:
    """One ``--option`` per keyword of the model's entrypoint, typed from its default."""
    from binmark.models import MODELS, options
    from binmark.quant import QuantSpec

    hints = typing.get_type_hints(MODELS.get(model))
    group = parser.add_argument_group(f"{model} options (as models.build)")
    for name, param in options(model).items():
        flag = "--" + name.replace("_", "-")
        default = param.default
        kwargs: dict[str, Any] = {"dest": f"opt_{name}", "default": default}
        hint = hints.get(name)
        choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
        if name == "quant":
            choices = tuple(QuantSpec.presets())
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, int):
            kwargs["type"] = int
        if choices:
            kwargs["choices"] = choices
        elif not isinstance(default, bool):
            kwargs["metavar"] = name.upper()
        kwargs["help"] = f"default: {default}"
        group.add_argument(flag, **kwargs)


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_")}


def _cmd_summary(args: argparse.Namespace) -> int:
    from binmark.models import build
    from binmark.quant import summary

    width, height = args.input_size
    try:  # in this command every value comes from the arguments: a bad one is a usage error
        model = build(args.model, args.keypoints, **_model_options(args))
        result = summary(model, input_size=(args.batch, 3, height, width))
    except ValueError as exc:
        args.parser.error(str(exc))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.table(per_layer=args.layers))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from binmark.demo import run_demo

    return run_demo(args.out)


def _config(args: argparse.Namespace):
    from binmark.train import load_config

    overrides = list(args.set or [])
    if getattr(args, "output_dir", None):
        overrides.append(f"output_dir={args.output_dir}")
    return load_config(args.config, overrides)


def _cmd_train(args: argparse.Namespace) -> int:
    from binmark.train import Trainer

    report = Trainer(_config(args), resume=args.resume if args.resume is not None else False).fit()
    if report is not None:
        print(report.table())
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from binmark.fileio import atomic_write
    from binmark.train.build import build_evaluator, build_split, model_from_checkpoint
    from binmark.train.trainer import _device

    cfg = _config(args)
    device = _device(cfg.train.device)
    model, ckpt = model_from_checkpoint(args.checkpoint, device)
    samples = build_split(cfg.data, args.split)
    k, want = ckpt["arch"]["num_keypoints"], samples.skeleton.num_keypoints
    if k != want:
        raise ValueError(f"checkpoint {args.checkpoint} predicts {k} keypoints but dataset {cfg.data.dataset!r} "
                         f"({samples.skeleton.name}) has {want}; evaluate it with the config it was trained with")  # fmt: skip
    report = build_evaluator(cfg, samples, device)(model)
    print(report.table())
    out = Path(args.out) if args.out else Path(str(args.checkpoint) + ".eval.json")
    atomic_write(out, report.to_json())
    print(f"wrote {out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from binmark.deploy import load, pack

    source = Path(args.checkpoint)
    if source.suffix == ".bmk":
        if args.onnx:
            raise ValueError(f"{source}: --onnx exports the fake-quant graph, which needs the training checkpoint, not a .bmk")
        model = packed = load(source, precision="exact")
    else:
        from binmark.train.build import model_from_checkpoint

        model, _ = model_from_checkpoint(source)
        packed = pack(model)
    if args.openvino:
        from binmark.deploy.openvino_ir import to_openvino

        xml = to_openvino(packed, args.out, args.input_size, args.real_dtype)
        mb = (xml.stat().st_size + xml.with_suffix(".bin").stat().st_size) / 1e6
        print(f"wrote {xml} and {xml.with_suffix('.bin').name} ({mb:.3f} MB; OpenVINO matches the packed runtime on the exact copy)")
    else:
        path = packed.save(args.out, args.real_dtype)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.3f} MB, {len(packed.layers)} packed layers)")
    if args.onnx:
        from binmark.deploy.onnx import export_onnx

        diff = export_onnx(model, args.onnx, args.input_size or (256, 256))
        print(f"wrote {args.onnx} (ONNX Runtime matches PyTorch within {diff:.1e} of the heatmap range)")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from binmark.deploy import bench

    variants = [v for v in (args.variants or bench.VARIANTS) if not (args.no_onnx and v == "onnxruntime_fp32") and not (args.no_int8 and v == "pytorch_int8")]
    result = bench.bench(args.model, args.keypoints, _model_options(args), args.input_size, tuple(args.batch), args.threads,
                         args.runs, args.warmup, tuple(variants))  # fmt: skip
    print(bench.table(result))
    for path in bench.write(result, args.out):
        print(f"wrote {path}")
    return 0


def _add_deploy(sub: Any) -> None:
    from binmark.models import names

    p = sub.add_parser("export", help="pack a checkpoint into a .bmk file, or an OpenVINO IR with binary convolutions (and ONNX)",
                       description="Pack a training checkpoint into one .bmk file (safetensors + JSON manifest); with --openvino, "
                       "write a checkpoint or a .bmk as an OpenVINO IR (.xml + .bin) whose 1-bit convolutions are OpenVINO "
                       "BinaryConvolution layers, checked against the packed runtime before it is written.")  # fmt: skip
    p.add_argument("checkpoint", help="training checkpoint (.pt), or a .bmk file (with --openvino)")
    p.add_argument("out", help="output .bmk file (.xml with --openvino)")
    p.add_argument("--openvino", action="store_true", help="write an OpenVINO IR (needs openvino: pip install 'binmark[openvino]')")
    p.add_argument("--onnx", metavar="OUT.onnx", help="also export the fake-quant graph to ONNX, checked with onnxruntime")
    p.add_argument("--input-size", type=_input_size, default=None,
                   help="H or HxW (height first) of the ONNX example input (default 256) or of the IR's static input "
                   "(default: the model's inference spec, else 256)")  # fmt: skip
    p.add_argument("--real-dtype", choices=("float32", "float16"), default="float32",
                   help="storage of the real-valued layers (first conv, heads): float32 (exact, default) or float16 (smaller)")  # fmt: skip
    p.set_defaults(func=_cmd_export, parser=p)

    from binmark.deploy.bench import VARIANTS

    p = sub.add_parser("bench", help="time the packed runtime against PyTorch, ONNX Runtime and OpenVINO (fp32/bf16/int8)",
                       description="Benchmark a model, each engine in its own process: the real twin in PyTorch fp32 and "
                       "int8, ONNX Runtime, OpenVINO fp32 / default (bf16 on AMX) / int8 (NNCF); the binary model as "
                       "fake-quant, packed module by module, and in the fused engine (exact and fast); plus the fused "
                       "engine's per-op table. Rows whose packages are missing are skipped with a note.")  # fmt: skip
    models = p.add_subparsers(dest="model", metavar="MODEL", parser_class=_Parser)
    p.set_defaults(model="hourglass")
    parsers = [p] + [models.add_parser(name, help=f"benchmark the {name} model") for name in names()]
    for mp in parsers:
        mp.add_argument("--keypoints", type=int, default=16, help="K (default: 16)")
        mp.add_argument("--input-size", type=_input_size, default=(256, 256), help="H or HxW, height first (default: 256)")
        mp.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
        mp.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
        mp.add_argument("--runs", type=int, default=20, help="timed runs per row; the median is reported (default: 20)")
        mp.add_argument("--warmup", type=int, default=3, help="untimed runs first (default: 3)")
        mp.add_argument("--variants", nargs="+", choices=list(VARIANTS), metavar="ENGINE",
                        help=f"rows to run (default: all): {', '.join(VARIANTS)}")  # fmt: skip
        mp.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime row")
        mp.add_argument("--no-int8", action="store_true", help="skip the PyTorch int8 row")
        mp.add_argument("--out", default="bench_out", help="folder for bench.json/.txt/.png (default: bench_out)")
        mp.set_defaults(func=_cmd_bench, parser=mp)
    for name, mp in zip(names(), parsers[1:]):
        _add_model_options(mp, name)
    # The default model is the 1-stack binary HPM hourglass (the and the seed's model).
    p.set_defaults(opt_quant="bulat17")
    parsers[1 + names().index("hourglass")].set_defaults(opt_quant="bulat17")


def _add_summary(sub: Any) -> None:
    from binmark.models import names

    p = sub.add_parser(
        "summary",
        help="parameters, MACs per bit width, packed size of a model",
        description="Build a registered model and print its summary (larq style).",
    )
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True, parser_class=_Parser)
    for name in names():
        mp = models.add_parser(name, help=f"summary of the {name} model")
        mp.add_argument("--keypoints", type=int, default=16, help="K (default: 16)")
        mp.add_argument(
            "--input-size", type=_input_size, default=(256, 256), help="H or HxW, height first (default: 256)"
        )
        mp.add_argument("--batch", type=int, default=1, help="batch N for MAC counts (default: 1)")
        mp.add_argument("--layers", action="store_true", help="also print the per-layer table")
        mp.add_argument("--json", action="store_true", help="print the totals as JSON")
        _add_model_options(mp, name)
        mp.set_defaults(func=_cmd_summary, parser=mp)


def _add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="train a binary hourglass on synthetic faces and compare with the mean shape",
        description="End-to-end demo: train, evaluate on held-out synthetic faces against the "
        "mean-shape baseline, write a report. Exits 1 if the model does not beat the baseline.",
    )
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.set_defaults(func=_cmd_demo, parser=p)


def _add_train(sub: Any) -> None:
    for name, helptext in (("train", "train a model from a YAML config"), ("eval", "evaluate a checkpoint")):
        p = sub.add_parser(name, help=helptext, description=helptext + ".")
        p.add_argument("config", help="YAML config (see configs/)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
        if name == "train":
            p.add_argument("--resume", nargs="?", const=True, metavar="CHECKPOINT",
                           help="continue from OUTPUT_DIR/last.pt, or from CHECKPOINT")  # fmt: skip
            p.add_argument("--output-dir", help="override output_dir")
            p.set_defaults(func=_cmd_train, parser=p)
        else:
            p.add_argument("--checkpoint", required=True, help="checkpoint to evaluate")
            p.add_argument("--split", choices=("val", "train"), default="val", help="which split (default: val)")
            p.add_argument("--out", help="JSON report path (default: CHECKPOINT.eval.json)")
            p.set_defaults(func=_cmd_eval, parser=p)


def _cmd_data_preview(args: argparse.Namespace) -> int:
    from binmark.data import RENDERERS, load, synthetic
    from binmark.draw import preview_grid, write_png

    if args.source in RENDERERS:
        samples = synthetic(args.source, args.count, seed=args.seed, image_size=args.size)
        crop = None
    else:
        samples = load(args.source, args.root, args.split, args.ann_file, args.image_dir, "skip")
        crop = args.size
    if len(samples) == 0:
        raise ValueError(f"{args.source}: no samples to preview")
    write_png(args.out, preview_grid(samples, samples.skeleton, args.count, args.columns, crop))
    print(f"wrote {args.out} ({min(args.count, len(samples))} samples of {args.source})")
    return 0


def _add_data(sub: Any) -> None:
    from binmark.data import RENDERERS, datasets

    p = sub.add_parser("data", help="look at datasets", description="Dataset tools.")
    tools = p.add_subparsers(dest="tool", metavar="TOOL", required=True, parser_class=_Parser)
    pv = tools.add_parser(
        "preview",
        help="write a PNG grid of samples with their landmarks",
        description="Synthetic kinds show whole images; datasets show the training crop.",
    )
    pv.add_argument("source", choices=RENDERERS.names() + datasets(), help="synthetic kind or dataset")
    pv.add_argument("--out", default="preview.png", help="PNG to write (default: preview.png)")
    pv.add_argument("-n", "--count", type=int, default=16, help="samples (default: 16)")
    pv.add_argument("--columns", type=int, default=4, help="grid columns (default: 4)")
    pv.add_argument("--seed", type=int, default=0, help="synthetic seed (default: 0)")
    pv.add_argument("--size", type=int, default=256, help="tile size in px (default: 256)")
    pv.add_argument("--root", help="dataset folder (datasets)")
    pv.add_argument("--split", default="val", help="dataset split (default: val)")
    pv.add_argument("--ann-file", help="annotation file instead of the standard layout")
    pv.add_argument("--image-dir", help="image folder instead of the standard layout")
    pv.set_defaults(func=_cmd_data_preview, parser=pv)


def _read_boxes(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from pathlib import Path

    try:
        boxes = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--boxes {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(boxes, dict):
        raise ValueError(f"--boxes {path}: expected an object {{image path or name: [[x, y, w, h], ...]}}")
    return boxes


def _cmd_predict(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from binmark.inference import HaarFaceDetector, Localizer, WholeImage
    from binmark.data.io import MAX_PIXELS
    from binmark.inference.run import predict_paths

    if args.threads:
        torch.set_num_threads(args.threads)
    boxes = _read_boxes(args.boxes)
    detector = {"auto": None, "haar": HaarFaceDetector, "whole": WholeImage}[args.detector]
    loc = Localizer(args.model, args.skeleton, args.device, detector=detector() if detector else None,
                    max_batch_size=args.batch_size, smoothing=not args.no_smooth, precision=args.precision)  # fmt: skip
    if args.flip_test:
        loc.spec = replace(loc.spec, flip_test=True)
    report = predict_paths(loc, args.inputs, args.out, boxes, args.fps, args.min_score, not args.no_draw,
                           args.max_pixels or MAX_PIXELS, args.format == "coco")  # fmt: skip
    found = sum(len(r["instances"]) for r in report["images"].values())
    print(f"{len(report['images'])} image(s) ({found} instance(s)), {len(report['videos'])} video(s), "
          f"{len(report['skipped'])} skipped; wrote {args.out}/predictions.json")  # fmt: skip
    if not report["images"] and not report["videos"]:
        print(f"binmark predict: no input could be processed (see 'skipped' in {args.out}/predictions.json)", file=sys.stderr)
        return NOTHING_PROCESSED
    return 0


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="landmarks for images, folders and videos (JSON + annotated pictures)",
                       description="Run a model (.bmk, OpenVINO IR .xml, checkpoint) on images, folders and videos. Writes OUT/predictions.json, "
                       "annotated images (OUT/NAME.png) and videos (OUT/NAME.mp4 + NAME.json); never replaces an input or "
                       "another file already in OUT. Inputs and boxes that fail are skipped and listed; exit status 3 "
                       "when no input could be processed.")  # fmt: skip
    p.add_argument("model", help="packed .bmk file, OpenVINO IR (.xml, from export --openvino) or training checkpoint (.pt)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders of them")
    p.add_argument("--out", default="predict_out", help="output folder (default: predict_out)")
    p.add_argument("--boxes", metavar="JSON", help="boxes per image: {path or file name: [[x, y, w, h], ...]} (pixels)")
    p.add_argument("--detector", choices=("auto", "haar", "whole"), default="auto",
                   help="box source without --boxes: auto = Haar faces for face models, the whole image otherwise")  # fmt: skip
    p.add_argument("--skeleton", help="keypoint schema name, for models that do not record theirs")
    p.add_argument("--device", default="cpu", help="cpu, cuda, … (packed models: cpu)")
    p.add_argument("--batch-size", type=int, default=32, help="crops per network call (default: 32)")
    p.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's)")
    p.add_argument("--fps", type=float, help="video frame rate for smoothing (default: the file's)")
    p.add_argument("--no-smooth", action="store_true", help="no One-Euro smoothing on videos")
    p.add_argument("--flip-test", action="store_true", help="average with the mirrored crop (2× compute)")
    p.add_argument("--precision", choices=("fast", "exact", "bf16"), default="fast",
                   help="packed models' real-valued layers: fast (AMX, within 0.05 px of exact; default), exact (float32), "
                   "bf16 (fastest, drifts); an OpenVINO IR runs in float32, or in OpenVINO's bf16 with bf16; see docs/deploy.md")  # fmt: skip
    p.add_argument("--min-score", type=float, default=0.0, help="draw points below this score hollow (default: 0)")
    p.add_argument("--no-draw", action="store_true", help="JSON only, no annotated images/videos")
    p.add_argument("--max-pixels", type=_positive_int,
                   help="skip images and videos with more pixels per frame, before decoding (default: Pillow's limit, "
                   "binmark.data.io.MAX_PIXELS)")
    p.add_argument("--format", choices=("binmark", "coco"), default="binmark",
                   help="coco: also write OUT/predictions_coco.json, a COCO keypoint results list")
    p.set_defaults(func=_cmd_predict, parser=p)


def _cmd_report(args: argparse.Namespace) -> int:
    from binmark.report import write_report

    for path in write_report(args.run_dir, evaluate=not args.no_eval, out=args.out):
        print(f"wrote {path}")
    return 0


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="one Markdown/HTML page of a training run: config, numbers, plots",
                       description="Collect a run folder's config, log and evaluation into RUN_DIR/report.md and "
                       "report.html with training curves and the benchmark's curves (CED for faces, PCKh for poses).")  # fmt: skip
    p.add_argument("run_dir", help="a training run's output_dir (with log.jsonl and last.pt)")
    p.add_argument("--no-eval", action="store_true", help="do not evaluate the checkpoint (curves from the log only)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/report)")
    p.set_defaults(func=_cmd_report, parser=p)


COMMANDS: Sequence[Callable[[Any], None]] = (_add_train, _add_summary, _add_data, _add_demo, _add_deploy, _add_predict, _add_report)


def build_parser() -> argparse.ArgumentParser:
    """The ``binmark`` argument parser with all subcommands."""
    parser = _Parser(
        prog="binmark",
        description="Landmark localization with binarized and low-bit neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"binmark {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("binmark: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure becomes one clear line unless --debug
        if args.debug:
            raise
        print(f"binmark: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

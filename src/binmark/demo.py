"""The end-to-end demo: train a binary HPM hourglass on synthetic faces, evaluate it on held-out
faces against the mean-shape baseline, and write a short report.

``binmark demo`` (and ``make demo``) runs it into ``demo_out/``: ``report.md``, ``ced.png`` (model
vs baseline), ``predictions.png`` (held-out faces with the predicted landmarks), ``report.json``,
``config.yaml`` (the recipe, re-runnable with ``binmark train``) and the run's checkpoints and log.
It then packs the model into ``model.bmk`` and runs ``binmark predict`` with it on held-out
synthetic faces (their boxes given) and on a real photograph shipped with matplotlib (Grace
Hopper; the Haar detector finds the face), writing ``predict/`` (annotated PNGs and
``predictions.json``). The model learned cartoon faces only: on the photograph it shows the
pipeline, not accuracy.
It exits non-zero when the model's NME is not below ``MARGIN`` × the baseline's: then the pipeline
is broken.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import yaml

from binmark.data.transforms import PIXEL_STD
from binmark.draw import draw_keypoints, grid, write_png
from binmark.evaluate import Predictions, Report, mean_shape_baseline
from binmark.fileio import atomic_write
from binmark.plots import plot_ced
from binmark.train.build import build_evaluator, build_split, model_from_checkpoint
from binmark.train.config import Config, config_to_dict, from_dict
from binmark.train.trainer import Trainer

__all__ = ["DEMO_RECIPE", "MARGIN", "run_demo"]

MARGIN = 0.6  # the trained model must reach an NME below 60 % of the mean-shape baseline's

#: the demo's recipe: configs/synthetic/face_hpm_binary.yaml (a test keeps the two equal)
DEMO_RECIPE: dict[str, Any] = {
    "model": {"name": "hourglass", "options": {"stacks": 1, "depth": 2, "width": 64, "block": "hpm"}},
    "data": {
        "dataset": "synthetic_face", "train": {"size": 6000, "seed": 0}, "val": {"size": 200, "seed": 1},
        "input_size": 64, "heatmap_size": 16, "sigma": 1.0, "augment": {}, "num_workers": 1,
    },
    "loss": {"name": "awing"},
    "optim": {"name": "adam", "lr": 2.0e-3},
    "schedule": {"name": "cosine", "warmup_epochs": 0.1},
    "train": {"epochs": None, "batch_size": 16, "eval_every": 0, "log_every": 25},
    "eval": {"decode": "dark"},
    "stages": [{"name": "real", "epochs": 1, "quant": "real"}, {"name": "binary", "epochs": 1, "quant": "bulat17"}],
}  # fmt: skip


def demo_config(out: Path, overrides: dict[str, Any] | None = None) -> Config:
    """The demo recipe writing into ``out/run`` (``overrides`` merged per section)."""
    recipe = {k: dict(v) if isinstance(v, dict) else v for k, v in DEMO_RECIPE.items()}
    for section, values in (overrides or {}).items():
        recipe[section] = {**recipe.get(section, {}), **values} if isinstance(values, dict) else values
    recipe["output_dir"] = str(out / "run")
    return from_dict(Config, recipe)


def _predictions_picture(samples: Any, pred: Predictions, path: Path, count: int = 8, tile: int = 256) -> None:
    """Held-out images (enlarged to ``tile`` px) with the predicted landmarks."""
    tiles = []
    for i in range(min(count, len(samples))):
        image = samples[i]["image"]
        zoom = tile / max(image.shape[:2])
        big = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
        # pixel centres scale about the image's outer edge: x' = (x + ½)·zoom − ½
        tiles.append(draw_keypoints(big, (pred.coords[i] + 0.5) * zoom - 0.5, samples.skeleton))
    write_png(str(path), grid(tiles, columns=4))


def _predict_demo(cfg: Config, val: Any, out: Path, count: int = 8) -> dict[str, Any]:
    """Pack the trained model and run ``predict`` on held-out faces and a real photograph."""
    import matplotlib.cbook

    from binmark.deploy import pack
    from binmark.inference import Localizer
    from binmark.inference.run import predict_paths

    model, _ = model_from_checkpoint(Path(cfg.output_dir) / "last.pt")
    bmk = pack(model).save(out / "model.bmk")
    inputs, boxes = out / "predict_inputs", {}
    for i in range(min(count, len(val))):
        s = val[i]
        name = f"heldout_{i}.png"
        write_png(str(inputs / name), s["image"])
        side = s["scale"] * PIXEL_STD  # the face box (landmark box, longer side) as x, y, w, h
        boxes[name] = [[s["center"][0] + 0.5 - side / 2, s["center"][1] + 0.5 - side / 2, side, side]]
    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return predict_paths(Localizer(bmk), [inputs, photo], out / "predict", boxes)


def _stages(cfg: Config) -> str:
    stages = cfg.stages or []
    return ", then ".join(f"{s.epochs} epoch(s) {s.name} (quant `{s.quant}`)" for s in stages) or f"{cfg.train.epochs} epochs"


def _markdown(cfg: Config, model: Report, baseline: Report, seconds: float, rate: float, ok: bool) -> str:
    rows = "\n".join(f"| {k} | {model.metrics[k]:.2f} | {baseline.metrics[k]:.2f} |" for k in model.metrics)
    verdict = "the model beats the mean-shape baseline" if ok else "**the model does not beat the mean-shape baseline: the pipeline is broken**"
    return f"""# binmark demo: binary HPM hourglass on synthetic faces

Model: `{cfg.model.name}` {cfg.model.options}; {cfg.data.train.size} training faces at
{cfg.data.input_size}×{cfg.data.input_size}, {_stages(cfg)}; trained in {seconds:.0f} s
({rate:.1f} images/s). Held-out faces: {cfg.data.val.size} (seed {cfg.data.val.seed}).

| metric (%) | binary HPM hourglass | mean-shape baseline |
|---|---|---|
{rows}

NME is normalized by the inter-ocular distance. Verdict: {verdict} (threshold: NME below
{MARGIN:.0%} of the baseline's).

![CED](ced.png)

![predictions on held-out faces](predictions.png)

`binmark predict model.bmk …` with the packed model: held-out faces and a real photograph (the
model knows cartoon faces only) in [predict/](predict/).

![predict on a photograph](predict/grace_hopper.png)
"""


def run_demo(out: str | Path = "demo_out", overrides: dict[str, Any] | None = None) -> int:
    """Run the demo into ``out``; returns the exit status (0, or 1 when the model fails)."""
    out = Path(out)
    cfg = demo_config(out, overrides)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    print(f"binmark demo: training an HPM hourglass on {cfg.data.train.size} synthetic faces: {_stages(cfg)}")
    tic = time.perf_counter()
    Trainer(cfg).fit()
    seconds = time.perf_counter() - tic
    epochs = sum(s.epochs for s in cfg.stages) if cfg.stages else (cfg.train.epochs or 0)
    rate = epochs * (cfg.data.train.size // cfg.train.batch_size) * cfg.train.batch_size / seconds
    model, _ = model_from_checkpoint(Path(cfg.output_dir) / "last.pt")
    val, train = build_split(cfg.data, "val"), build_split(cfg.data, "train")
    evaluator = build_evaluator(cfg, val)
    pred = evaluator.predict(model)
    report = evaluator.report(pred)
    baseline = evaluator.report(mean_shape_baseline(train, val, evaluator.spec))
    ok = report.metrics["NME"] < MARGIN * baseline.metrics["NME"]
    plot_ced({"binary HPM hourglass": report.details["errors"], "mean shape": baseline.details["errors"]}, out / "ced.png")
    _predictions_picture(val, pred, out / "predictions.png")
    predicted = _predict_demo(cfg, val, out)
    atomic_write(out / "report.md", _markdown(cfg, report, baseline, seconds, rate, ok))
    summary = {"model": report.to_dict()["metrics"], "mean_shape": baseline.to_dict()["metrics"], "train_seconds": seconds}
    atomic_write(out / "report.json", json.dumps(summary, indent=2))
    print(f"\nheld-out NME: model {report.metrics['NME']:.2f} %, mean shape {baseline.metrics['NME']:.2f} % "
          f"(AUC@0.08 {report.metrics['AUC@0.08']:.1f} vs {baseline.metrics['AUC@0.08']:.1f}); "
          f"trained in {seconds:.0f} s; report in {out / 'report.md'}")  # fmt: skip
    print(f"predict: {len(predicted['images'])} images ({sum(len(r['instances']) for r in predicted['images'].values())} faces) "
          f"with {out / 'model.bmk'} → {out / 'predict'}")  # fmt: skip
    if not ok:
        print(f"binmark demo: FAILED — the model's NME is not below {MARGIN:.0%} of the mean-shape baseline's")
        return 1
    return 0

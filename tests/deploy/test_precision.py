"""``precision="fast"`` is the default for landmarks only because it stays within 0.05 px of
``precision="exact"`` on a trained model (the issue's criterion); this trains one here.

On a CPU without AMX the fast setting is the exact one (the same kernels), which the test checks
instead of the drift.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from binmark.demo import demo_config
from binmark.deploy import pack
from binmark.deploy.engine import amx_available, available, config_for
from binmark.evaluate import Evaluator
from binmark.inference.localizer import PRECISION
from binmark.topdown import InferenceSpec
from binmark.train.build import build_split, model_from_checkpoint
from binmark.train.trainer import Trainer

pytestmark = pytest.mark.skipif(not available(), reason="binmark's C library is not built")

MAX_MEAN_DRIFT_PX = 0.05


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """The demo's binary HPM hourglass recipe on 1,600 faces (a real then a binary epoch)."""
    out = tmp_path_factory.mktemp("precision")
    cfg = demo_config(out, {"data": {"train": {"size": 1600, "seed": 0}, "val": {"size": 120, "seed": 1}}, "train": {"log_every": 10_000}})
    Trainer(cfg).fit()
    model, _ = model_from_checkpoint(Path(cfg.output_dir) / "last.pt")
    return cfg, model


@pytest.mark.slow
def test_fast_landmarks_stay_within_005_px_of_exact(trained) -> None:
    cfg, model = trained
    packed = pack(model, precision="exact", runtime="fused")
    val = build_split(cfg.data, "val")
    evaluator = Evaluator(val, InferenceSpec.from_config(cfg, val.skeleton), batch_size=32)
    exact = evaluator.predict(packed).coords
    packed.precision = "fast"
    fast = evaluator.predict(packed).coords
    drift = np.linalg.norm(fast - exact, axis=-1)  # pixels of the input images
    size = cfg.data.input_size
    fast_engine = packed.fused_engine(size, size)
    if amx_available() and fast_engine.config.binary == "avx512_vpopcnt":
        assert fast_engine.config.real == "amx_split"  # the AMX arithmetic is what is measured
    else:
        assert config_for("fast") == config_for("exact")
        assert drift.max() == 0.0
    assert drift.mean() <= MAX_MEAN_DRIFT_PX, f"mean landmark drift {drift.mean():.4f} px"
    assert PRECISION == "fast"

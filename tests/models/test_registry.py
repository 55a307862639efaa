"""models.build / names / options."""

from __future__ import annotations

import pytest

from binmark import models
from binmark._registry import Registry


def test_names_include_hourglass() -> None:
    assert "hourglass" in models.names()


def test_unknown_model_lists_names() -> None:
    with pytest.raises(ValueError, match="unknown model 'hourglas'.*hourglass"):
        models.build("hourglas", 16)


@pytest.mark.parametrize("k", [0, -1, 2.0, True])
def test_bad_num_keypoints(k) -> None:
    with pytest.raises(ValueError, match="num_keypoints must be a positive integer"):
        models.build("hourglass", k)


def test_options_are_the_entrypoint_keywords() -> None:
    assert list(models.options("hourglass")) == [
        "stacks", "depth", "width", "block", "quant", "pool", "post_relu"
    ]


def test_registry_rejects_duplicates() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        reg.register("a")(2)
    assert "a" in reg and len(reg) == 1 and list(reg) == ["a"]


def test_architecture_record_round_trips_and_rebuilds() -> None:
    import torch

    from binmark.models import ARCH_ATTR, Architecture
    from binmark.quant import QuantSpec

    model = models.build("hourglass", 5, stacks=1, depth=2, width=16, quant="bulat17")
    arch = getattr(model, ARCH_ATTR)
    assert isinstance(arch, Architecture) and arch.options["quant"] == QuantSpec.preset("bulat17").to_dict()
    assert Architecture.from_dict(arch.to_dict()) == arch
    again = arch.build()
    again.load_state_dict(model.state_dict())  # the same structure, parameter for parameter
    assert arch.dry_build((48, 64)) == tuple(again.eval()(torch.zeros(1, 3, 64, 48))[-1].shape) == (1, 5, 16, 12)
    edited = arch.to_dict()
    edited["options"]["width"] = 32
    assert arch.options["width"] == 16  # to_dict is a copy


def test_older_checkpoints_quant_beside_the_options_still_read() -> None:
    from binmark.models import Architecture
    from binmark.quant import QuantSpec

    quant = QuantSpec.preset("bulat17").to_dict()
    old = {"name": "hourglass", "num_keypoints": 5, "options": {"stacks": 1}, "quant": quant}
    arch = Architecture.from_dict(old)
    assert arch == Architecture("hourglass", 5, {"stacks": 1, "quant": quant})
    with pytest.raises(ValueError, match="'quant' is given both beside and inside 'options'"):
        Architecture.from_dict({**old, "options": {"quant": "real"}})


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"name": "hourglas", "num_keypoints": 5}, r"ckpt: field 'name' = 'hourglas' is not a registered model"),
        ({"name": "hourglass", "num_keypoints": True}, r"'num_keypoints' = True must be an integer"),
        ({"name": "hourglass", "num_keypoints": 5, "options": {"widht": 16}}, r"has no option 'widht'"),
        ({"name": "hourglass", "num_keypoints": 5, "options": {"width": 1.5}}, r"option 'width' = 1.5 is not a valid int"),
        ({"name": "hourglass", "num_keypoints": 5, "extra": 1}, r"expected an object with 'name'"),
    ],
)
def test_architecture_records_are_checked_before_building(record: dict, message: str) -> None:
    from binmark.models import Architecture

    with pytest.raises(ValueError, match=message):
        Architecture.from_dict(record, "ckpt")

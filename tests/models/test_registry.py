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

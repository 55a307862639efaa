"""Procedural synthetic datasets: faces (300-W 68-point layout) and bodies (MPII 16 joints).

``synthetic(kind, n, seed=0, image_size=256)`` returns a sequence of ``n`` samples, each a pure
function of (seed, index): the same seed and index always render the same pixels and labels, in
any process and any DataLoader worker. Samples have the fields the real loaders give (see
:mod:`binmark.data.records`), so everything that trains on a real dataset trains on these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from binmark._registry import Registry
from binmark.data.skeletons import Skeleton, skeleton

__all__ = ["synthetic", "SyntheticDataset", "RENDERERS"]

Renderer = Callable[[np.random.Generator, int], dict[str, Any]]

#: kind → (renderer, skeleton name)
RENDERERS: Registry[tuple[Renderer, str]] = Registry("synthetic kind")


class SyntheticDataset(Sequence[dict[str, Any]]):
    """``n`` procedurally rendered samples of one kind (see the module docstring)."""

    def __init__(self, kind: str, n: int, seed: int = 0, image_size: int = 256) -> None:
        render, schema = RENDERERS.get(kind)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"synthetic: n must be a non-negative integer, got {n!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
            raise ValueError(f"synthetic: image_size must be an integer >= 32, got {image_size!r}")
        self.name = f"synthetic_{kind}"
        self.kind = kind
        self.n = n
        self.seed = int(seed)
        self.image_size = image_size
        self.skeleton: Skeleton = skeleton(schema)
        self._render = render
        self.skipped: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices are integers, got {type(index).__name__}")
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} is out of range for {self.n} samples")
        index = int(index) % self.n
        rng = np.random.default_rng([self.seed, index])
        sample = self._render(rng, self.image_size)
        sample.update(index=index, image_id=index, image_path="")
        return sample

    def __repr__(self) -> str:
        return f"SyntheticDataset({self.kind!r}, n={self.n}, seed={self.seed}, image_size={self.image_size})"


def synthetic(kind: str, n: int, seed: int = 0, image_size: int = 256) -> SyntheticDataset:
    """Deterministic synthetic samples: kind "face" (300-W schema) or "pose" (MPII schema).

    Args:
        kind: "face" or "pose".
        n: number of samples.
        seed: dataset seed; sample i is rendered from the generator seeded with (seed, i).
        image_size: side of the square images, px.
    """
    return SyntheticDataset(kind, n, seed, image_size)


# The renderers register themselves under their kind.
from binmark.data.synthetic import face as _face  # noqa: E402, F401
from binmark.data.synthetic import pose as _pose  # noqa: E402, F401

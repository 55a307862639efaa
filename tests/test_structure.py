"""The dependency direction of the package: every import (module level or inside a function)
points to a lower layer, or stays inside its own unit.

Layers, lowest first: the primitives; ``quant``, ``heatmaps``, ``losses``; ``data``, ``models``;
``metrics``, the shared ``topdown`` step, ``draw``; ``plots``, ``evaluate``; ``deploy`` (the
runtime: no trainer, no inference front end); ``train``; ``inference`` (the Localizer); the
applications ``report`` and ``demo``; ``cli``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "binmark"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("binmark", "binmark._registry", "binmark.sizes", "binmark.fileio", "binmark.progress", "binmark.memory", "binmark.allocator"),
    ("binmark.quant", "binmark.heatmaps", "binmark.losses"),
    ("binmark.data", "binmark.models"),
    ("binmark.metrics", "binmark.topdown", "binmark.draw"),
    ("binmark.plots", "binmark.evaluate"),
    ("binmark.deploy",),
    ("binmark.train",),
    ("binmark.inference",),
    ("binmark.report", "binmark.demo"),
    ("binmark.cli",),
)
#: the model modules deploy may use: the registry, the input checks and the fold declarations'
#: names, never a model family (a new family needs no edit in deploy/)
DEPLOY_MAY_USE = {"binmark.models", "binmark.models.registry", "binmark.models.inputs", "binmark.models.folding"}


def _unit(module: str) -> str:
    """The longest layered name that ``module`` is or lies inside."""
    units = sorted((u for layer in LAYERS for u in layer), key=len, reverse=True)
    return next(u for u in units if module == u or module.startswith(u + "."))


def _layer(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every binmark import in a file, ``from binmark import x``
    counted as ``binmark.x`` when x is a submodule."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "binmark"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "binmark":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                is_module = (SRC.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (SRC.parent / Path(*sub.split("."))).is_dir()
                found.append((node.lineno, sub if is_module else node.module))
    return found


FILES = sorted(SRC.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    assert len(FILES) > 50
    for path in FILES:
        _unit(_module_name(path))  # raises StopIteration for an unplaced module


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    here = _unit(_module_name(path))
    wrong = []
    for line, target in _imports(path):
        there = _unit(target)
        if there != here and _layer(there) >= _layer(here) and target != "binmark":
            wrong.append(f"{path.relative_to(SRC)}:{line} imports {target} ({there} is not below {here})")
        if here == "binmark.deploy" and target.startswith("binmark.models") and target not in DEPLOY_MAY_USE:
            wrong.append(f"{path.relative_to(SRC)}:{line} imports the model family {target}")
    assert not wrong, "\n".join(wrong)


def test_bench_and_its_worker_import_one_way() -> None:
    """The worker uses bench's helpers; bench only starts the worker as a process."""
    deploy = SRC / "deploy"
    assert any(t == "binmark.deploy.bench" for _, t in _imports(deploy / "bench_worker.py"))
    assert not [t for _, t in _imports(deploy / "bench.py") if "bench_worker" in t]


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from binmark.train.build import model_from_checkpoint\n")
    assert (2, "binmark.train.build") in _imports(bad)
    assert _layer(_unit("binmark.train.build")) > _layer(_unit("binmark.deploy.fileformat"))

"""The layer rule of docs/architecture.md, checked from the source's imports.

Every module of the four product packages is parsed with ``ast`` (no import runs), and every
``import`` / ``from ... import`` statement counts wherever it stands: at the top, inside a
function (the lazy imports of ``pipeline/`` and ``components/``) or under ``TYPE_CHECKING``.
``importlib.import_module("...")`` with a literal name counts too.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# Package -> top-level packages it must never import. benchmarks/ and tests/ sit above every
# product package: they may import anything, and nothing shipped may depend on them.
FORBIDDEN = {
    "trainer": frozenset({"pipeline", "components", "serving", "benchmarks", "tests"}),
    # serving/ is what a TF Serving client needs; components/ build on it, never the reverse.
    "serving": frozenset({"pipeline", "components", "benchmarks", "tests"}),
    "components": frozenset({"pipeline", "benchmarks", "tests"}),
    "pipeline": frozenset({"benchmarks", "tests"}),
}


@dataclasses.dataclass(frozen=True)
class Violation:
    """One forbidden import: where it stands and what it names."""

    path: pathlib.Path
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported}"


def _absolute(node: ast.ImportFrom, module_parts: list[str]) -> str:
    """The absolute module a ``from`` import names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    base = module_parts[: len(module_parts) - node.level]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(path: pathlib.Path, root: pathlib.Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in the file at ``path``.

    Args:
        path: a ``.py`` file under ``root``.
        root: the repository root (module names are paths relative to it).

    Returns:
        One entry per imported module, in source order, relative imports made absolute.

    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module_parts = list(path.relative_to(root).with_suffix("").parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, _absolute(node, module_parts)))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def layer_violations(root: pathlib.Path) -> list[Violation]:
    """Every import under ``root`` that breaks ``FORBIDDEN``, sorted by file and line."""
    violations = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            violations += [Violation(path.relative_to(root), line, name)
                           for line, name in imported_modules(path, root)
                           if name.split(".")[0] in forbidden]
    return violations


def test_the_repository_keeps_the_layer_rule():
    assert [str(v) for v in layer_violations(REPO)] == []


def test_every_product_package_is_checked():
    checked = {package for package in FORBIDDEN if list((REPO / package).rglob("*.py"))}
    assert checked == {"trainer", "serving", "components", "pipeline"}


def _plant(root: pathlib.Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


@pytest.mark.parametrize(("relative", "source", "imported"), [
    ("trainer/losses.py", "import numpy\nimport serving.client\n", "serving.client"),
    ("trainer/model/towers.py", "def build():\n    from pipeline import config\n", "pipeline"),
    ("serving/wire.py", "from pipeline.config import PipelineConfig\n", "pipeline.config"),
    ("serving/validation.py", "from components.caption_example_gen.validation import x\n",
     "components.caption_example_gen.validation"),
    ("serving/collection/job.py", "def run():\n    from ...components import evaluator\n",
     "components"),
    ("components/relevance/store.py", "from ...pipeline import run\n", "pipeline"),
    ("components/evaluator.py",
     "import importlib\nimportlib.import_module('pipeline.cli')\n", "pipeline.cli"),
    ("pipeline/run.py", "from benchmarks import harness\n", "benchmarks"),
])
def test_a_planted_forbidden_import_is_reported(tmp_path, relative, source, imported):
    _plant(tmp_path, relative, source)
    assert [(v.path.as_posix(), v.imported) for v in layer_violations(tmp_path)] == [
        (relative, imported)]


def test_allowed_imports_pass(tmp_path):
    _plant(tmp_path, "trainer/losses.py", "from trainer import mining\nfrom . import towers\n")
    _plant(tmp_path, "components/relevance/executor.py",
           "from serving import gallery\nfrom trainer import features\nfrom .store import x\n")
    _plant(tmp_path, "pipeline/pipeline.py",
           "def nodes():\n    from components.evaluator import Evaluator\n")
    assert layer_violations(tmp_path) == []


def test_relative_imports_resolve_against_the_module_path(tmp_path):
    _plant(tmp_path, "components/relevance/store.py", "from ..evaluator import Evaluator\n")
    assert imported_modules(tmp_path / "components/relevance/store.py", tmp_path) == [
        (1, "components.evaluator")]


def test_a_planted_serving_to_components_import_is_reported_with_file_and_line(tmp_path):
    _plant(tmp_path, "serving/client.py", "import json\n\nfrom components.relevance import store\n")
    assert [str(v) for v in layer_violations(tmp_path)] == [
        "serving/client.py:3: imports components.relevance"]

"""trainer/'s layout: a few top-level modules, and sub-packages that say what they hold."""

from __future__ import annotations

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
TRAINER = REPO / "trainer"
# The external contracts keep their module paths (docs/architecture.md): these stay on top.
CONTRACT_MODULES = {"losses", "mining", "metrics", "task", "preprocessing", "distribute_run"}
MAX_TOP_LEVEL_MODULES = 10


def test_trainer_has_at_most_ten_top_level_modules_and_keeps_the_contract_paths():
    modules = {p.stem for p in TRAINER.glob("*.py")}
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, sorted(modules)
    assert modules >= CONTRACT_MODULES


def test_every_trainer_sub_package_has_a_docstring():
    packages = [p for p in TRAINER.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert len(packages) >= 4
    for package in packages:
        tree = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree)
        assert doc and len(doc.split()) >= 10, f"{package.name}/__init__.py says what it holds"
    stray = [p.name for p in TRAINER.iterdir()
             if p.is_dir() and p.name != "__pycache__" and not (p / "__init__.py").exists()]
    assert not stray, f"folders under trainer/ that are not packages: {stray}"

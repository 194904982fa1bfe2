"""The TF Serving client depends on what any client of TF Serving could have, not on trainer/.

From trainer/ it may use the feature contract (``trainer.features``: signature and tensor names,
the photo formats ``embed_image_bytes`` takes) and ``trainer.tokens.text`` (the caption rule the
served graph applies, in plain Python). Towers, the image backbone or the training code would
make a deployed client carry the model's code: their constants and error words live in the
contract or in serving/ instead.
"""

from __future__ import annotations

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
PROJECT = ("pipeline", "components", "trainer", "serving")
ALLOWED_FROM_TRAINER = {"trainer", "trainer.features", "trainer.tokens", "trainer.tokens.text"}


def _file(module: str) -> pathlib.Path | None:
    path = REPO / (module.replace(".", "/") + ".py")
    package = REPO / module.replace(".", "/") / "__init__.py"
    return path if path.exists() else package if package.exists() else None


def _project_imports(module: str) -> set[str]:
    """Project modules ``module`` imports (``from a import b``: a, and a.b if it is a module)."""
    path = _file(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = node.module or "" if not node.level else ".".join(
                parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PROJECT and _file(name)}


def imports_of(module: str) -> set[str]:
    """Every project module ``module`` imports, directly or through other project modules."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += _project_imports(name)
    return seen


def test_the_client_uses_only_the_feature_contract_and_the_caption_rule_from_trainer():
    modules = imports_of("serving.client")
    assert "serving.validation" in modules  # the walk follows the client's own modules
    from_trainer = {m for m in modules if m.split(".")[0] == "trainer"}
    assert from_trainer <= ALLOWED_FROM_TRAINER, sorted(from_trainer - ALLOWED_FROM_TRAINER)
    assert not {m for m in modules if m.split(".")[0] in ("components", "pipeline")}


def test_the_walk_finds_a_trainer_internal_import():
    assert "trainer.model.image_backbone" in imports_of("serving.toy_model")

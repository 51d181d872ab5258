"""The layering the README's "Architecture" section states, checked on every import statement
(module level and inside functions): rag.core <- rag.* <- finetune <- evaluate, costing imports
nothing of ours, and no two modules import each other through any chain."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("rag", "finetune", "evaluate", "costing")
RANK = {"rag.core": 1, "rag": 2, "finetune": 3, "evaluate": 4}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (``from a import b`` is ``a.b`` when ``b`` is a
    module, else ``a``)."""

    def owner(name: str) -> str | None:
        while name not in modules:
            if "." not in name:
                return None
            name = name.rsplit(".", 1)[0]
        return name

    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            targets |= {t for n in names if n.split(".")[0] in PACKAGES and (t := owner(n))}
        edges[name] = targets - {name}
    return edges


def _layer(module: str) -> str:
    parts = module.split(".")
    return "rag.core" if parts[:2] == ["rag", "core"] else parts[0]


@pytest.fixture(scope="module")
def imports():
    return _imports(_modules())


def test_lower_layers_never_import_upper_ones(imports):
    upward = [
        (a, b)
        for a, targets in imports.items()
        for b in targets
        if _layer(b) != "costing"  # any layer may use the costing package
        and (_layer(a) == "costing" or RANK[_layer(b)] > RANK[_layer(a)])
    ]
    assert upward == []
    assert any(_layer(b) == "rag.core" for b in imports["finetune.training"])  # sees real edges


def test_no_import_circle(imports):
    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(imports[start])
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(imports.get(m, ()))
        return False

    circles = sorted(m for m in imports if reaches(m, m))
    assert circles == []

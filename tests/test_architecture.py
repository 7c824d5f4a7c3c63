"""The package's shape, as ARCHITECTURE.md draws it: the stages in floors, a module importing only
from its own floor or lower ones, no import circle (imports inside functions included), the
product never importing the demo, and a Decision made in decide.py only."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "mailbot"

# Lowest first; a module may import from its own floor or a lower one (ARCHITECTURE.md).
FLOORS = [
    ("mailbot.model", "mailbot.text", "mailbot.files", "mailbot.logs", "mailbot.auth", "mailbot.config"),
    ("mailbot.rules",),
    ("mailbot.message", "mailbot.mailbox", "mailbot.forms"),
    ("mailbot.classify",),
    ("mailbot.reference", "mailbot.record"),
    ("mailbot.extract",),
    ("mailbot.checks",),
    ("mailbot.decide",),
    ("mailbot.reply",),
    ("mailbot.pipeline",),
    ("mailbot.reports",),
    ("mailbot.service",),
    ("mailbot.cli", "mailbot.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module of ours that `name` imports, at any depth of its code."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in found if m in MODULES or m.split(".")[0] == "demo"} - {name}


GRAPH = {name: imports(name) for name in MODULES}


def floor(name: str) -> int:
    if name == "mailbot":
        return 0
    for i, names in enumerate(FLOORS):
        if any(name == n or name.startswith(n + ".") for n in names):
            return i
    raise AssertionError(f"{name} is on no floor: add it to FLOORS and ARCHITECTURE.md")


def test_every_module_is_on_a_floor():
    for name in MODULES:
        floor(name)


def test_no_module_imports_from_a_higher_floor():
    upward = [f"{a} ({floor(a)}) imports {b} ({floor(b)})" for a, targets in GRAPH.items()
              for b in targets if b in MODULES and floor(b) > floor(a)]
    assert upward == []


def test_no_import_circle():
    # Tarjan's strongly connected components: any component of two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v] & MODULES.keys():
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in MODULES:
        if v not in index:
            visit(v)
    # A package's __init__ that re-exports its modules is not a circle when they do not import it.
    assert circles == []


def test_the_product_never_imports_the_demo():
    # Only the embedded default's first poll seeds its local mailbox with the sample mails.
    users = sorted(a for a, targets in GRAPH.items() if any(t.split(".")[0] == "demo" for t in targets))
    assert users == ["mailbot.cli"]


def test_a_decision_is_made_in_decide_only():
    makers = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Decision":
                makers.append(name)
    assert set(makers) == {"mailbot.decide"}


def test_only_the_rules_loader_reads_toml():
    # config.py reads the configuration file; rules/base.py every file of rules/.
    readers = sorted(name for name, path in MODULES.items() if "tomllib" in path.read_text("utf-8"))
    assert readers == ["mailbot.config", "mailbot.rules.base"]

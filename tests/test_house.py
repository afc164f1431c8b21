"""The house rules, checked from the source: they hold because a test breaks when they don't.

- pipeline/ (the library) never imports flows/ or callreview/ (the Prefect layer, the CLI);
- no import cycle between modules;
- no function under pipeline/ reads the environment: settings come in as arguments;
- every SQL statement lives in pipeline/store/;
- no module grows past about 400 lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("pipeline", "flows", "callreview")
MAX_LINES = 400
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|"
    r"CREATE\s+(TABLE|VIEW|OR))\b",
    re.IGNORECASE | re.DOTALL,
)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            name = ".".join(rel.parts).removesuffix(".__init__")
            out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Module-level imports (imports inside functions are deliberate lazy loads).

    `from package import submodule` depends on the submodule, not on the package's __init__.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
            names |= subs if len(subs) == len(node.names) else {node.module, *subs}
    return names


MODULES = _modules()


def _graph() -> dict[str, set[str]]:
    return {
        m: {i for i in _imports(p, MODULES) if i in MODULES and i != m} for m, p in MODULES.items()
    }


def test_the_library_never_imports_the_prefect_layer_or_the_cli():
    for name, path in MODULES.items():
        if not name.startswith("pipeline"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # anywhere, lazy imports included
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for mod in mods:
                assert not mod.startswith(("flows", "callreview")), f"{name} imports {mod}"


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("pipeline")))
def test_library_code_reads_no_environment(name):
    source = MODULES[name].read_text(encoding="utf-8")
    assert not re.search(r"os\.environ|os\.getenv|getenv\(", source), name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_sql_lives_only_in_the_store(name):
    if name.startswith("pipeline.store"):
        return
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    strings = [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    offenders = [s for s in strings if SQL.search(s)]
    assert not offenders, f"{name} holds SQL: {offenders[0][:80]!r}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    n = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{name}: {n} lines"

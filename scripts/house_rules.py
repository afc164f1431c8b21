"""The house rules, checked from the source (a lint step: `.ci/run` runs it before the tests, so
the test count reports behaviour tests only).

- pipeline/ (the library) never imports flows/ or callreview/ (the Prefect layer, the CLI);
- no import cycle between modules;
- no function under pipeline/ reads the environment: settings come in as arguments;
- every SQL statement lives in pipeline/store/;
- no module grows past about 400 lines.

    .venv/bin/python scripts/house_rules.py     # prints each broken rule; exit 1 if any
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "flows", "callreview")
MAX_LINES = 400
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|"
    r"CREATE\s+(TABLE|VIEW|OR))\b",
    re.IGNORECASE | re.DOTALL,
)
ENVIRONMENT = re.compile(r"os\.environ|os\.getenv|getenv\(")


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            out[".".join(rel.parts).removesuffix(".__init__")] = path
    return out


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Module-level imports (imports inside functions are deliberate lazy loads).

    `from package import submodule` depends on the submodule, not on the package's __init__.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(known)
            names |= subs if len(subs) == len(node.names) else {node.module, *subs}
    return names


def library_imports_no_prefect_layer(known: dict[str, Path]) -> list[str]:
    problems = []
    for name, path in known.items():
        if not name.startswith("pipeline"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # lazy ones too
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            problems += [
                f"{name} imports {m} (the library never imports the Prefect layer or the CLI)"
                for m in mods
                if m.startswith(("flows", "callreview"))
            ]
    return problems


def import_cycles(known: dict[str, Path]) -> list[str]:
    graph = {m: {i for i in _imports(p, known) if i in known and i != m} for m, p in known.items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    problems: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt]
                problems.append("import cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return problems


def library_reads_no_environment(known: dict[str, Path]) -> list[str]:
    return [
        f"{name} reads the environment (settings come in as arguments)"
        for name, path in known.items()
        if name.startswith("pipeline") and ENVIRONMENT.search(path.read_text(encoding="utf-8"))
    ]


def sql_only_in_the_store(known: dict[str, Path]) -> list[str]:
    problems = []
    for name, path in known.items():
        if name.startswith("pipeline.store"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        strings = [
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        problems += [f"{name} holds SQL: {s[:80]!r}" for s in strings if SQL.search(s)][:1]
    return problems


def modules_stay_small(known: dict[str, Path]) -> list[str]:
    problems = []
    for name, path in known.items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            problems.append(f"{name}: {n} lines (at most {MAX_LINES}: split it)")
    return problems


RULES = (
    library_imports_no_prefect_layer,
    import_cycles,
    library_reads_no_environment,
    sql_only_in_the_store,
    modules_stay_small,
)


def check(root: Path = ROOT) -> list[str]:
    known = modules(root)
    return [problem for rule in RULES for problem in rule(known)]


def main() -> int:
    problems = check()
    for p in problems:
        print(f"house rule broken: {p}", file=sys.stderr)
    n = len(modules())
    print(f"house rules: {len(RULES)} rules over {n} modules, {len(problems)} broken")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

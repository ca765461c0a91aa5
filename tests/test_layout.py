"""The layout is the pipeline: each stage imports only from the stages before it, and stays small.

Read from the source with `ast`, so a new module is checked without being listed here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "derive"

# spec → graph and layers → derivation → proof → claims | kernels → train → report → cli
RANK = {"shared": 0, "graph": 1, "layers": 1, "derivation": 2, "proof": 3, "claims": 4, "kernels": 4,
        "train": 5, "report": 6, "grade": 7, "serve": 8, "cli": 9, "top": 10}
SHARED = {"errors", "files", "limits", "jsontext", "shipped", "texsafe"}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__init__", "__main__"):
        return "top"
    return "shared" if parts[1] in SHARED else parts[1]


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """The derive modules a file imports (`from derive import __version__` is the version, not a stage)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "derive":
            if node.module == "derive":
                found |= {f"derive.{a.name}" for a in node.names if a.name != "__version__"}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "derive"}
    return found


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_belongs_to_a_known_stage():
    unknown = {m for m in modules() if stage(m) not in RANK}
    assert not unknown, f"modules outside the pipeline's folders: {sorted(unknown)}"


def test_stages_import_only_from_earlier_stages():
    upward = []
    for module, path in modules().items():
        for target in imports(path):
            if RANK[stage(target)] > RANK[stage(module)]:
                upward.append(f"{module} imports {target}")
    assert not upward, upward


def test_no_import_cycle_at_module_level():
    known = modules()
    graph = {m: {t for t in imports(p, top_level_only=True) if t in known and t != m} for m, p in known.items()}
    # a package's __init__ importing its own submodules is how a stage shows its public face
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> list[str] | None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return trail + [m, t]
            if t not in state and (cycle := visit(t, trail + [m])):
                return cycle
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m, [])
            assert cycle is None, " → ".join(cycle)


def test_modules_and_functions_stay_small():
    large = []
    for module, path in modules().items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            large.append(f"{module}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    large.append(f"{module}.{node.name}: {length} lines")
    assert not large, large


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    """The rules above can fail: a graph module that imports the report stage is caught."""
    planted = tmp_path / "derive" / "graph" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from derive.report.render import render\n", encoding="utf-8")
    found = imports(planted)
    assert found == {"derive.report.render"}
    assert RANK[stage("derive.report.render")] > RANK[stage("derive.graph.planted")]

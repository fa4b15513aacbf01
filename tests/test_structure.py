"""The package's shape, checked from its source (house.md): no import circles, the core never imports the
training wing, no module over 350 lines, no function over 6 parameters."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cllm"
MAX_LINES = 350
MAX_PARAMETERS = 6
# The entry points compose every command (decoding and training alike), so they may import the wing
COMPOSERS = {"cllm.cli", "cllm.__main__"}
# Gradio event handlers: Gradio passes one argument per input component (and the API's parameters are
# those components), so their width is the form's, not a choice of ours
GRADIO_HANDLERS = {"cllm.ui.explore_tab.run_race", "cllm.ui.stats_tab.run_dataset", "cllm.ui.stats_sweep.run_sweep",
                   "cllm.ui.train_tab.collect_data", "cllm.ui.train_tab.train_model"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports (at any depth of the file, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            found |= {n for n in names if n in known} or ({node.module} & known)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names} & known
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, set(mods)) - {name} for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_finds_a_planted_cycle():  # the checker itself can fail
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circles():
    graph = import_graph()
    # a package's __init__ is imported by its submodules implicitly; its own imports count as edges
    assert find_cycle(graph) is None


def test_the_core_never_imports_the_training_wing():
    wrong = {name: sorted(d for d in deps if d.startswith("cllm.training"))
             for name, deps in import_graph().items()
             if not name.startswith(("cllm.training", "cllm.ui")) and name not in COMPOSERS}
    assert {k: v for k, v in wrong.items() if v} == {}


def third_party_roots(path: Path) -> set[str]:
    """Top-level names of the packages a module imports (at any depth)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
    return roots


def test_the_core_and_the_wing_never_import_the_ui_libraries(tmp_path):
    planted = tmp_path / "m.py"
    planted.write_text("def f():\n    import plotly.graph_objects as go\n")
    assert "plotly" in third_party_roots(planted)  # the checker itself can fail
    wrong = {name: sorted(third_party_roots(path) & {"gradio", "plotly"}) for name, path in modules().items()
             if not name.startswith("cllm.ui")}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_no_module_over_350_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    assert {k: v for k, v in sizes.items() if v > MAX_LINES} == {}


def parameter_counts(path: Path) -> dict[str, int]:
    counts = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
            counts[node.name] = max(counts.get(node.name, 0), len(names) + (a.vararg is not None) + (a.kwarg is not None))
    return counts


def test_counts_a_planted_wide_function(tmp_path):
    planted = tmp_path / "m.py"
    planted.write_text("class A:\n    def f(self, a, b, *c, d=1, **e):\n        pass\ndef g(a, /, b):\n    pass\n")
    assert parameter_counts(planted) == {"f": 5, "g": 2}


def test_no_function_over_6_parameters():
    wide = {f"{name}.{fn}": n for name, path in modules().items() for fn, n in parameter_counts(path).items()
            if n > MAX_PARAMETERS and f"{name}.{fn}" not in GRADIO_HANDLERS}
    assert wide == {}

"""Layering: the simulator and the planner never import each other; verification sits above both.

So does validation (a real run compared with its simulation): neither may import it.

The planner's models must stand on their own (a plan is built from the scenario alone), and the
simulator must not depend on the planner it is used to check: otherwise a verification could be
checking the planner against itself. Every module under lepton_sim/ is parsed with `ast`; every
import counts, at module level, inside functions and under `if TYPE_CHECKING:`, and so does the
`__init__` of each package an import passes through (importing `lepton_sim.sim.engine` runs
`lepton_sim/sim/__init__.py`). The root package `lepton_sim/__init__.py` is the exception: every
import of any module runs it, and it is the public API (it exposes `sweep`, which reaches
everything), so it is followed only when a module imports it by name.
"""
from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lepton_sim"

RULES = [  # (the modules under, may not reach any of)
    ("lepton_sim.planner", ("lepton_sim.sim", "lepton_sim.metrics", "lepton_sim.verification", "lepton_sim.validation")),
    ("lepton_sim.sim", ("lepton_sim.planner", "lepton_sim.verification", "lepton_sim.validation")),
]


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of `package` under `root` (packages by their __init__)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package modules its imports run (anywhere in the file), parents' __init__ included."""
    modules = module_names(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, one level up per extra dot
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[:len(here) - (node.level - 1)]
                    base = ".".join(here + ([base] if base else []))
                subs = {f"{base}.{a.name}" for a in node.names} & modules.keys()
                if base != package or len(subs) < len(node.names):  # `from lepton_sim import theory`: the module
                    targets.add(base)
                targets.update(subs)
        edges: set[str] = set()
        for t in targets:
            if not _within(t, package):
                continue
            while t not in modules and "." in t:  # `import a.b.c` of a name in a.b: the module a.b
                t = t.rsplit(".", 1)[0]
            parts = t.split(".")
            edges.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))  # the packages passed through
            if t == package:
                edges.add(package)  # imported by name: its imports count
        edges.discard(name)
        graph[name] = {e for e in edges if e in modules}
    return graph


def forbidden_chains(graph: dict[str, set[str]], rules: list[tuple[str, tuple[str, ...]]]) -> list[list[str]]:
    """For each module under a rule's prefix that reaches a forbidden module: the shortest chain of imports."""
    chains = []
    for prefix, banned in rules:
        for start in sorted(m for m in graph if _within(m, prefix)):
            parent: dict[str, str | None] = {start: None}
            queue = deque([start])
            while queue:
                m = queue.popleft()
                if any(_within(m, b) for b in banned):
                    chain = [m]
                    while parent[chain[-1]] is not None:
                        chain.append(parent[chain[-1]])  # type: ignore[arg-type]
                    chains.append(chain[::-1])
                    break
                for nxt in sorted(graph.get(m, ())):
                    if nxt not in parent:
                        parent[nxt] = m
                        queue.append(nxt)
    return chains


def test_the_planner_and_the_simulator_do_not_import_each_other() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert {"lepton_sim.planner.plan", "lepton_sim.sim.engine", "lepton_sim.verification.checks"} <= graph.keys()
    assert "lepton_sim.sim" in graph["lepton_sim.verification.checks"]  # the graph does see imports
    chains = forbidden_chains(graph, RULES)
    assert not chains, "layering broken (the simulator and the planner may not import each other; " \
        "verification sits above both):\n" + "\n".join(" -> ".join(c) for c in chains)


@pytest.mark.parametrize("where", ["top", "function", "type_checking", "relative"])
def test_a_forbidden_import_is_caught_and_its_chain_named(tmp_path: Path, where: str) -> None:
    """The check itself: a planner module importing, however it does, a module that imports the simulator."""
    pkg = tmp_path / "pkg"
    for sub in ("planner", "sim", "util"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from pkg.util.helper import x\n")  # the root is not followed implicitly
    (pkg / "sim" / "engine.py").write_text("x = 1\n")
    (pkg / "util" / "helper.py").write_text("def f():\n    from pkg.sim import engine\nx = 1\n")
    line = {"top": "import pkg.util.helper\n",
            "function": "def g():\n    from pkg.util import helper\n",
            "type_checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.util.helper import f\n",
            "relative": "from ..util import helper\n"}[where]
    (pkg / "planner" / "plan.py").write_text(line)
    (pkg / "planner" / "clean.py").write_text("import pkg.util\n")  # the package alone does not reach pkg.sim
    chains = forbidden_chains(import_graph(tmp_path, "pkg"), [("pkg.planner", ("pkg.sim",))])
    assert chains == [["pkg.planner.plan", "pkg.util.helper", "pkg.sim"]]

"""The dependency direction of docs/ARCHITECTURE.md, enforced by the import-linter contracts in setup.cfg."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


CONTRACTS = ("core-stands-alone", "acyclic", "pipeline-no-display", "runtime-no-pipeline", "calibration-no-display",
             "qt-only-in-ui", "product-no-diagnostics")


@pytest.mark.unit
def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), str(ROOT / "setup.cfg"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every contract must have been checked (a typo in a contract would otherwise pass silently).
    assert f"{len(CONTRACTS)} kept, 0 broken" in proc.stdout, proc.stdout


@pytest.mark.unit
def test_every_contract_is_named_here():
    assert set(_cfg().sections()) >= {f"importlinter:contract:{name}" for name in CONTRACTS}
    assert len([s for s in _cfg().sections() if s.startswith("importlinter:contract:")]) == len(CONTRACTS)


@pytest.mark.unit
def test_no_qt_import_outside_ui_rooms():
    """A plain text check too, for imports import-linter cannot see (inside functions, strings)."""
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in ("app", "models", "calibration") or rel.parts[:2] in (("app", "ui"),) \
                or rel.parts[:3] == ("app", "diagnostics", "ui"):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith(("import PyQt6", "from PyQt6")):
                offenders.append(f"{rel}: {stripped}")
    assert not offenders, offenders


def pipeline_modules() -> list[str]:
    """Every top-level module and package of models/ except the runtime core and the scene engine
    (which the synthetic source uses), plus the scene engine's dataset writer."""
    names = ["models.synth.generate"]
    for path in sorted((ROOT / "models").iterdir()):
        if path.name in ("__init__.py", "core", "synth") or path.name.startswith(("_", ".")):
            continue
        if path.suffix == ".py" or (path / "__init__.py").exists():
            names.append("models." + path.stem)
    return names


@pytest.mark.unit
@pytest.mark.parametrize("contract", ["core-stands-alone", "runtime-no-pipeline"])
def test_every_pipeline_module_is_in_the_contracts(contract):
    listed = set(_cfg()[f"importlinter:contract:{contract}"]["forbidden_modules"].split())
    missing = [m for m in pipeline_modules() if m not in listed]
    assert not missing, f"add {missing} to the {contract} contract in setup.cfg"
    assert len(pipeline_modules()) > 10  # the walk found the pipeline


def _cfg():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


@pytest.mark.unit
def test_no_import_cycles():
    """No module of app, models or calibration imports itself round a loop of other modules.
    Every import statement counts: inside functions, under TYPE_CHECKING, and a package's
    __init__ importing a submodule that imports the package back."""
    import grimp

    graph = grimp.build_graph("app", "models", "calibration", include_external_packages=False, cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycles = []
    for component in _strongly_connected(imports):
        first = min(component)
        if len(component) > 1 or first in imports[first]:
            loop = _shortest_loop(first, component, imports)
            steps = []
            for a, b in zip(loop, loop[1:]):
                where = graph.get_import_details(importer=a, imported=b)
                line = f" (line {where[0]['line_number']}: {where[0]['line_contents']})" if where else ""
                steps.append(f"  {a} -> {b}{line}")
            cycles.append(f"{len(component)} modules import each other: {', '.join(sorted(component))}; "
                          "for example\n" + "\n".join(steps))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, without recursion (the graph is deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c not in index or c in on_stack), None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child in index:
                low[node] = min(low[node], index[child])
            else:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
    return components


def _shortest_loop(start: str, within: set[str], edges: dict[str, set[str]]) -> list[str]:
    """start -> ... -> start through modules of `within` (breadth first: the shortest)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges[node] & within):
                if nxt == start:
                    loop = [start, node]
                    while loop[-1] != start:
                        loop.append(came_from[loop[-1]])
                    return loop[::-1]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start, start]

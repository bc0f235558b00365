"""Spec of the package's layering: imports run one way, with no cycle between its modules, not even
through an import inside a function (read from the source, so nothing needs importing)."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "agwm_betty"


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the package `root` (a package is its __init__)."""
    files = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules one import statement names (relative imports resolved).

    `import a.b` names a.b; `from a import b` names the submodule a.b when there is one, else a
    (b is then a name a's __init__ defines, so a must have run). Python also runs the parents'
    __init__ first, but an edge goes only to the explicitly named module: a package's __init__ that
    imports its submodules is no cycle unless one of them imports that __init__ back."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if not isinstance(node, ast.ImportFrom):
        return set()
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    named = set()
    for alias in node.names:
        submodule = f"{target}.{alias.name}"
        if submodule in known:
            named.add(submodule)
        elif target in known:
            named.add(target)
    return named


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source (top level or in a function)."""
    files = module_files(root)
    known = set(files)
    graph = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = {target for node in ast.walk(tree) for target in _imported(node, module, is_package, known)}
        graph[module].discard(module)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None when the imports run one way."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        cycle = list(reversed(err.args[1][1:]))  # graphlib lists it against the arrows, closed
    else:
        return None
    start = cycle.index(min(cycle))  # the same cycle reads the same on every run
    cycle = cycle[start:] + cycle[:start]
    return cycle + cycle[:1]


def write_package(root: Path, sources: dict[str, str]) -> Path:
    for name, source in sources.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root / "pkg"


def test_the_package_imports_run_one_way():
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_an_import_inside_a_function_that_closes_a_circle_is_a_cycle(tmp_path):
    pkg = write_package(tmp_path, {
        "pkg/__init__.py": "from pkg.search import run\n",
        "pkg/search.py": "from pkg import probe\n\ndef run():\n    return probe.measure\n",
        "pkg/probe.py": "def measure():\n    from pkg.search import run\n    return run\n",
    })
    assert find_cycle(import_graph(pkg)) == ["pkg.probe", "pkg.search", "pkg.probe"]


def test_a_name_from_the_package_init_is_an_edge_to_the_init(tmp_path):
    pkg = write_package(tmp_path, {
        "pkg/__init__.py": "__version__ = '1'\nfrom pkg.experiment import versions\n",
        "pkg/experiment.py": "def versions():\n    from pkg import __version__\n    return __version__\n",
    })
    assert find_cycle(import_graph(pkg)) is not None
    (pkg / "_version.py").write_text("__version__ = '1'\n")
    (pkg / "experiment.py").write_text("def versions():\n    from pkg._version import __version__\n"
                                       "    return __version__\n")
    assert find_cycle(import_graph(pkg)) is None


@pytest.mark.parametrize("submodule_import", [
    "from pkg.report import stats", "from pkg.report.stats import mean", "from . import stats",
    "from .stats import mean", "import pkg.report.stats",
])
def test_a_subpackage_init_importing_its_submodules_is_no_cycle(tmp_path, submodule_import):
    pkg = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/report/__init__.py": "from pkg.report.tables import table\n",
        "pkg/report/stats.py": "def mean(xs):\n    return sum(xs) / len(xs)\n",
        "pkg/report/tables.py": f"{submodule_import}\n\ndef table():\n    pass\n",
    })
    graph = import_graph(pkg)
    assert graph["pkg.report.tables"] == {"pkg.report.stats"}
    assert find_cycle(graph) is None


@pytest.mark.parametrize("init_import", ["from pkg.report import table", "from . import table", "import pkg.report"])
def test_a_submodule_importing_its_package_init_back_is_a_cycle(tmp_path, init_import):
    pkg = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/report/__init__.py": "from pkg.report.tables import table\nfrom pkg.report.plots import plot\n",
        "pkg/report/tables.py": "def table():\n    pass\n",
        "pkg/report/plots.py": f"def plot():\n    {init_import}\n",
    })
    assert find_cycle(import_graph(pkg)) == ["pkg.report", "pkg.report.plots", "pkg.report"]


def test_a_moved_name_still_imports_from_its_old_path_with_a_warning_naming_the_new_one():
    import agwm_betty.core.hypergradients as old_home
    from agwm_betty.core.diagnostics import alpha_hypergradient

    with pytest.warns(DeprecationWarning, match=r"agwm_betty\.core\.diagnostics\.alpha_hypergradient"):
        from agwm_betty.core.hypergradients import alpha_hypergradient as moved
    assert moved is alpha_hypergradient
    with pytest.raises(AttributeError, match="no_such_name"):
        old_home.no_such_name  # noqa: B018 (the attribute access is the test)

"""The package's imports flow one way: measure -> account -> decide -> report (docs/architecture.md).

Every module of ``pytest_energy`` is parsed with ``ast`` (nothing is imported), each
``import`` and ``from ... import`` inside the package becomes an arrow, wherever it sits
(module level or inside a function: a lazy import is still a dependency), and no arrow may
go from a lower layer to a higher one. Imports under ``if TYPE_CHECKING:`` are arrows too.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Mapping, Set, Tuple

import pytest

PACKAGE = "pytest_energy"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

# The layers, lowest first; a module may import its own layer and the ones below it.
# A module's layer is that of the longest name listed here that is it or a package holding it
# (``pytest_energy`` itself is only the package's ``__init__``).
LAYERS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("shared", ("pytest_energy", "pytest_energy.units")),  # the version, quantities and their formatting
    ("store", ("pytest_energy.store",)),  # atomic JSON files and stored runs: used by account and report
    ("measure", ("pytest_energy.measure",)),  # meters, machine facts, live watchdog, overlap detection, ranks
    ("account", ("pytest_energy.account",)),  # the Record, normalise, presets, EW, complexity, baseline cache
    ("decide", ("pytest_energy.decide",)),  # caps and the regression gate, as pure functions
    ("report", ("pytest_energy.report",)),  # terminal, JSON, JUnit, HTML, GitHub, escaping
    ("organise", ("pytest_energy.organise",)),  # the offline CLI: trend, plot, submission, merge
    ("wiring", (  # pytest-side: settings, markers, the fixture, the hooks
        "pytest_energy.config",
        "pytest_energy.fixture",
        "pytest_energy.baseline_plan",
        "pytest_energy.comparison",
        "pytest_energy.peers",
        "pytest_energy.reports",
        "pytest_energy.session",
        "pytest_energy.session_plugin",
        "pytest_energy.plugin",
    )),
)
RANK = {prefix: rank for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes}
LAYER_NAMES = [name for name, _ in LAYERS]


def package_sources(directory: Path = PACKAGE_DIR) -> Dict[str, str]:
    """Module name -> source, for every ``.py`` file of the package (a package is named by its ``__init__``)."""
    sources = {}
    for path in sorted(directory.rglob("*.py")):
        parts = list(path.relative_to(directory.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return sources


def _is_package(module: str, sources: Mapping[str, str]) -> bool:
    return any(other.startswith(module + ".") for other in sources)


def import_graph(sources: Mapping[str, str]) -> Dict[str, Set[str]]:
    """Module -> the modules of the package it imports (``from a import b`` is an arrow to ``a.b`` if that is a module)."""
    graph: Dict[str, Set[str]] = {}
    for module, source in sources.items():
        package = module if _is_package(module, sources) or module == PACKAGE else module.rsplit(".", 1)[0]
        targets: Set[str] = set()
        for node in ast.walk(ast.parse(source, filename=module)):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in sources else base)
        graph[module] = {target for target in targets if target == PACKAGE or target.startswith(PACKAGE + ".")}
    return graph


def rank_of(module: str) -> int:
    prefixes = [prefix for prefix in RANK if module == prefix or (prefix != PACKAGE and module.startswith(prefix + "."))]
    if not prefixes:
        raise LookupError(f"{module} is in no layer: add it to LAYERS in tests/test_layout.py and docs/architecture.md")
    return RANK[max(prefixes, key=len)]


def upward_imports(graph: Mapping[str, Set[str]]) -> List[str]:
    """Every arrow from a lower layer to a higher one, as ``a (layer) -> b (layer)``."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if rank_of(target) > rank_of(module):
                found.append(f"{module} ({LAYER_NAMES[rank_of(module)]}) -> {target} ({LAYER_NAMES[rank_of(target)]})")
    return found


def test_every_module_has_a_layer():
    unranked = []
    for module in package_sources():
        try:
            rank_of(module)
        except LookupError as exc:
            unranked.append(str(exc))
    assert unranked == []


def test_no_import_goes_up_a_layer():
    assert upward_imports(import_graph(package_sources())) == []


def test_the_package_has_the_layers_it_claims():
    """The check sees the real imports: each layer above measure imports from the one it builds on."""
    graph = import_graph(package_sources())
    assert "pytest_energy.measure.base" in graph["pytest_energy.account.record"]
    assert "pytest_energy.account.normalize" in graph["pytest_energy.decide.limits"]
    assert "pytest_energy.store.files" in graph["pytest_energy.account.baseline_cache"]
    assert "pytest_energy.organise.trend_render" in graph["pytest_energy.organise.cli"]  # also lazy, in-function imports


def test_the_trend_flows_from_readers_through_statistics_to_renderers():
    """Inside ``organise``: readers and statistics share only the systems' types; renderers read no file."""
    graph = import_graph(package_sources())
    organise = "pytest_energy.organise."
    reading = {organise + name for name in ("readers", "input_rows", "json_reports", "csv_rows", "dcase_yaml")}
    for reader in sorted(reading):
        assert graph[reader] & {organise + "trend_statistics", organise + "trend_render"} == set(), reader
    assert graph[organise + "trend_statistics"] & (reading | {organise + "trend_render"}) == set()
    assert graph[organise + "trend_render"] & reading == set()
    assert organise + "systems" in graph[organise + "trend_statistics"]


def test_the_limits_registry_sits_on_its_inputs_and_the_regression():
    """Inside ``decide``: the inputs import no limit, the regression does not import the registry that runs it."""
    graph = import_graph(package_sources())
    decide = "pytest_energy.decide."
    assert graph[decide + "figures"] & {decide + "limits", decide + "regression"} == set()
    assert decide + "limits" not in graph[decide + "regression"]
    assert {decide + "figures", decide + "regression"} <= graph[decide + "limits"]


def test_counting_complexity_composes_the_copy_and_the_counters():
    """Inside ``account``: where a model is copied and how its MACs are counted know nothing of each other."""
    graph = import_graph(package_sources())
    account = "pytest_energy.account."
    assert account + "mac_counters" not in graph[account + "model_copy"]
    assert account + "model_copy" not in graph[account + "mac_counters"]
    assert {account + "mac_counters", account + "model_copy"} <= graph[account + "complexity"]


def third_party_imports(source: str) -> Set[str]:
    """The top-level names of the modules ``source`` imports from outside the package."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add((node.module or "").split(".")[0])
    return names - {PACKAGE}


def test_only_the_hooks_import_pytest():
    """The session core, the accounting, the limits and the reports run without pytest: only the hook
    modules use it, besides the watchdog (its stop is ``pytest.fail``) and the environment (pytest's version)."""
    sources = package_sources()
    assert third_party_imports("import pytest\nfrom _pytest import nodes\nfrom .x import y\n") == {"pytest", "_pytest"}
    importing = sorted(module for module, source in sources.items() if {"pytest", "_pytest"} & third_party_imports(source))
    assert importing == ["pytest_energy.measure.machine", "pytest_energy.measure.watchdog", "pytest_energy.plugin",
                         "pytest_energy.report.html", "pytest_energy.session_plugin"]


@pytest.mark.parametrize(
    "source",
    [
        "from ..report.terminal import format_table\n",
        "from pytest_energy.report import terminal\n",
        "import pytest_energy.report.terminal\n",
        "def later():\n    from ..report import terminal\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..report.terminal import format_table\n",
    ],
    ids=["relative", "from-package", "absolute", "lazy", "type-checking"],
)
def test_a_planted_upward_import_is_caught(source):
    sources = {
        "pytest_energy": "",
        "pytest_energy.measure": "",
        "pytest_energy.measure.meter": source,
        "pytest_energy.report": "",
        "pytest_energy.report.terminal": "def format_table(): pass\n",
    }
    assert upward_imports(import_graph(sources)) == [
        "pytest_energy.measure.meter (measure) -> pytest_energy.report.terminal (report)"
    ]


def test_downward_and_same_layer_imports_pass():
    sources = {
        "pytest_energy": "",
        "pytest_energy.units": "",
        "pytest_energy.report": "",
        "pytest_energy.report.github": "from .escape import md_text\nfrom ..units import format_energy\n",
        "pytest_energy.report.escape": "from .. import units\n",
    }
    graph = import_graph(sources)
    assert graph["pytest_energy.report.github"] == {"pytest_energy.report.escape", "pytest_energy.units"}
    assert upward_imports(graph) == []


def test_a_module_outside_every_layer_is_named():
    with pytest.raises(LookupError, match="pytest_energy.core.session is in no layer"):
        rank_of("pytest_energy.core.session")


CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")


def conflict_lines(text: str) -> List[str]:
    """Lines a merge left behind: ``<<<<<<< ours`` / ``>>>>>>> theirs`` (``=======`` alone is valid Markdown)."""
    return [line for line in text.splitlines() if line.startswith(CONFLICT_MARKERS)]


def test_no_file_of_the_project_holds_a_merge_conflict():
    assert conflict_lines("# t\n<<<<<<< HEAD\na\n=======\nb\n>>>>>>> branch\n") == ["<<<<<<< HEAD", ">>>>>>> branch"]
    root = PACKAGE_DIR.parent
    left = []
    for folder in ("pytest_energy", "tests", "benchmarks", "docs", "examples", ".github", ".ci"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and path.suffix in {".py", ".md", ".toml", ".yml", ".yaml", ".json", ""}:
                left += [f"{path.relative_to(root)}: {line}" for line in conflict_lines(path.read_text(errors="replace"))]
    for name in ("README.md", "pyproject.toml"):
        left += [f"{name}: {line}" for line in conflict_lines((root / name).read_text())]
    assert left == []

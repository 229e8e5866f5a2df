"""The layering of ``tadcli``, pinned: which package may import which (ARCHITECTURE.md).

Every ``import`` and ``from ... import`` in ``tadcli/`` is read with ``ast`` (module level and inside functions,
``TYPE_CHECKING`` blocks included), resolved to the package it names (relative imports too), and checked against
:data:`ALLOWED`. A new edge fails this test until ARCHITECTURE.md and the table below say why it is there.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "tadcli"

# The packages of tadcli: a sub-package, or a top-level module standing for itself ("__init__" is the package
# root: its version string and lazy public names).
# package -> the tadcli packages it may import (besides itself). Layers: cli -> services -> core; in the core,
# training and profiling sit above inference, which sits above model, evaluation and data; io, config, errors,
# progress and devices are the base.
ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "__main__": {"cli"},
    "cli": {"__init__", "services", "config", "data", "evaluation", "io", "training", "errors", "progress"},
    "services": {"__init__", "config", "data", "evaluation", "inference", "io", "model", "profiling", "review",
                 "training", "devices", "errors", "progress"},
    "review": {"data", "evaluation", "io", "errors"},
    "training": {"config", "data", "inference", "io", "model", "errors"},
    "profiling": {"config", "data", "model", "training", "errors"},
    "inference": {"__init__", "config", "data", "evaluation", "io", "model", "devices", "errors", "progress"},
    "model": {"config", "data", "io", "errors"},
    "evaluation": {"config", "data", "errors"},
    "data": {"config", "io", "errors", "progress"},
    "io": {"config", "errors"},
    "config": {"io", "errors"},
    "devices": {"errors"},
    "errors": set(),
    "progress": set(),
}
# what no core package may import, whatever the table says: the command line and its libraries
CLI_ONLY = {"typer", "rich", "click"}
CORE = set(ALLOWED) - {"__init__", "__main__", "cli", "services"}


def package_of(module: str) -> str:
    """``tadcli.data.annotations.types`` -> ``data``; ``tadcli.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            if target == "tadcli":  # from tadcli import cli
                found += [(node.lineno, f"tadcli.{alias.name}") for alias in node.names]
    return found


LIBRARY = "library:"  # marks an imported library, so that the standard library's io is not tadcli.io


def edges() -> list[tuple[str, str, str]]:
    """(importing package, imported package or ``library:NAME``, 'file:line') over the whole tree."""
    result = []
    for path in sorted(ROOT.rglob("*.py")):
        source = package_of(module_name(path)) if path.parent != ROOT else path.stem
        for line, target in imported_modules(path):
            where = f"{path.relative_to(ROOT.parent)}:{line}"
            if target.startswith("tadcli.") or target == "tadcli":
                result.append((source, package_of(target), where))
            else:
                result.append((source, LIBRARY + target.split(".")[0], where))
    return result


def test_the_import_graph_keeps_the_allowed_package_edges():
    internal = set(ALLOWED)
    offenders = [
        f"{where}: {source} -> {target}"
        for source, target, where in edges()
        if target in internal and target != source and target not in ALLOWED[source]
    ]
    assert offenders == []


def test_no_core_package_imports_the_command_line_or_its_libraries():
    offenders = [
        f"{where}: {source} -> {target}"
        for source, target, where in edges()
        if source in CORE and (target.removeprefix(LIBRARY) in CLI_ONLY or target in {"cli", "services"})
    ]
    assert offenders == []


def test_every_package_of_the_tree_is_in_the_table():
    packages = {package_of(module_name(path)) if path.parent != ROOT else path.stem for path in ROOT.rglob("*.py")}
    assert packages == set(ALLOWED)


def test_the_contract_reader_sees_relative_and_lazy_imports(tmp_path):
    """The reader itself: a lazy relative import inside a function is an edge too."""
    source = tmp_path / "tadcli" / "data" / "probe_example.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from ..cli import app\n    import tadcli.services.train\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path / "tadcli"
    try:
        assert [target for _, target in imported_modules(source)] == ["tadcli.cli", "tadcli.services.train"]
    finally:
        ROOT = saved

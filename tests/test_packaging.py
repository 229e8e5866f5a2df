"""The installable package: every subpackage and the presets ship."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from tadcli.config.loader import shipped_preset_names

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "tadcli").rglob("__init__.py")
    } | {"tadcli.presets"}
    assert on_disk == listed


def test_presets_are_found_where_tad_is_installed():
    # The installed package (not the checkout) must carry the YAML files.
    names = shipped_preset_names()
    assert {"tiny", "giant-1536", "small-768"} <= set(names)
    on_disk = sorted(p.stem for p in (REPO / "presets").glob("*.yaml"))
    assert names == on_disk


def test_public_api_names_resolve_and_import_tadcli_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, tadcli\n"
        "assert 'torch' not in sys.modules, 'import tadcli must not load torch'\n"
        "for name in tadcli.__all__: getattr(tadcli, name)\n"
        "assert callable(tadcli.load_backbone) and callable(tadcli.evaluate_predictions)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_python_versions_claimed_are_the_ones_tested():
    # requires-python's lower bound is the one version the classifiers claim (the version CI runs);
    # this interpreter must satisfy it.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    prefix = "Programming Language :: Python :: 3."
    claimed = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if c.startswith(prefix)]
    assert project["requires-python"] == f">={claimed[0]}" and len(claimed) == 1
    assert sys.version_info[:2] >= tuple(int(part) for part in claimed[0].split("."))

"""RecBole is installed without its dependencies, and the project declares what its model classes import.

recbole 1.2.1's metadata pins ``ray<=2.6.3``, which imports the removed ``pkg_resources`` and has no
wheels past CPython 3.11, and which would hold the ``ray`` extra to it. So on every Python the README
installs RecBole with ``pip install --no-deps recbole==1.2.1`` and the project requires instead the
packages that importing RecBole's model classes needs. CI also resolves the whole requirement set,
extras included, for Python 3.12 with ``uv pip compile`` (`.ci/run`).
"""

from __future__ import annotations

import builtins
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# What `import recbole.model.sequential_recommender` needs beyond our other dependencies.
RECBOLE_IMPORTS = {"colorlog", "colorama", "texttable", "tensorboard"}


def requirements_for(python: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = {"python_version": python, "python_full_version": f"{python}.0", "extra": ""}
    reqs = [Requirement(r) for r in project["dependencies"]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed_closure(names: set[str]) -> set[str]:
    """``names`` and every distribution they require (extras left out), as installed here."""
    found, todo = set(), [canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in map(Requirement, requires):
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonical(req.name))
    return found


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
def test_no_python_requires_recbole_but_every_one_gets_its_import_dependencies(python):
    names = {r.name for r in requirements_for(python)}
    assert "recbole" not in names
    assert names >= RECBOLE_IMPORTS and "torch" in names


# Imports RecBole's model classes with the top-level modules named in argv[1] hidden, as if not installed.
IMPORT_WITHOUT = """
import importlib.abc, sys
hidden = set(sys.argv[1].split(","))
class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hidden())
import recbole.model.sequential_recommender
"""


def import_recbole_models_without(modules: set[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT, ",".join(sorted(modules))], capture_output=True, text=True
    )


def test_the_declared_list_is_exactly_what_recbole_models_import():
    pytest.importorskip("recbole")
    owners = {module: {canonical(d) for d in dists} for module, dists in metadata.packages_distributions().items()}
    others = {r.name for r in requirements_for(f"{sys.version_info.major}.{sys.version_info.minor}")} - RECBOLE_IMPORTS
    required = installed_closure(others | RECBOLE_IMPORTS)
    outside = {module for module, dists in owners.items() if not dists & required and module != "recbole"}
    # Enough: the model classes import with every installed module the requirements do not bring hidden.
    enough = import_recbole_models_without(outside)
    assert enough.returncode == 0, enough.stderr
    # Needed: none of the four comes with the other requirements, and hiding any one breaks the import.
    assert not RECBOLE_IMPORTS & installed_closure(others)
    for name in sorted(RECBOLE_IMPORTS):
        missing = import_recbole_models_without(outside | {m for m, dists in owners.items() if dists == {name}})
        assert missing.returncode != 0 and "ModuleNotFoundError" in missing.stderr, name


def test_a_recbole_row_without_recbole_says_how_to_install_it(monkeypatch):
    from baselines.recbole_models import SASRec

    real_import = builtins.__import__

    def no_recbole(name, *args, **kwargs):
        if name.startswith("recbole"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_recbole)
    with pytest.raises(ImportError, match="--no-deps recbole==1.2.1"):
        SASRec(n_tokens=10, n_behaviors=2, n_users=3, max_len=5, hidden_size=8)

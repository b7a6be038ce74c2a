"""The install works on Python 3.12+, where recbole's ray pin has no wheels (issue: prove it).

recbole 1.2.1 requires ``ray<=2.6.3``, built for CPython <= 3.11 only, so the project requires
recbole only below 3.12 and there declares instead the packages that importing RecBole's model
classes needs; README tells 3.12 users to add ``pip install --no-deps recbole==1.2.1``. CI also
resolves the whole requirement set for Python 3.12 with ``uv pip compile`` (`.ci/run`).
"""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# What `from recbole.model.sequential_recommender import SASRec` imports beyond our own dependencies.
RECBOLE_IMPORTS = {"colorlog", "colorama", "texttable", "tensorboard"}


def requirements_for(python: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = {"python_version": python, "python_full_version": f"{python}.0"}
    reqs = [Requirement(r) for r in project["dependencies"]]
    return {r.name for r in reqs if r.marker is None or r.marker.evaluate(env)}


@pytest.mark.parametrize("python", ["3.12", "3.13"])
def test_python_312_and_newer_need_no_recbole_wheel_but_get_its_import_dependencies(python):
    names = requirements_for(python)
    assert "recbole" not in names
    assert RECBOLE_IMPORTS <= names and "torch" in names


def test_python_311_and_older_install_recbole_itself():
    for python in ("3.10", "3.11"):
        names = requirements_for(python)
        assert "recbole" in names and not RECBOLE_IMPORTS & names


def test_the_import_dependencies_are_what_recbole_models_really_import():
    pytest.importorskip("recbole")
    import subprocess

    code = (
        "import sys; before = {m.split('.')[0] for m in sys.modules}; "
        "from recbole.model.sequential_recommender import SASRec; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    imported = set(out.split())
    assert RECBOLE_IMPORTS <= imported


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

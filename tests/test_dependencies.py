"""torch inside QGIS's own Python (/usr/bin/python3), set up as the plugin does it: whatever Debian packages
are installed (python3-sympy 1.11 comes with QGIS's recommended packages), torch's own dependencies come from
the folder that holds torch, Debian's numpy stays in charge, and a broken dependency is named with its fix."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sysconfig
from importlib.metadata import distribution
from pathlib import Path

import pytest

from hfd_qgis.dependencies import TORCH_DEPENDENCIES

REPO = Path(__file__).resolve().parents[1]
QGIS_PYTHON = "/usr/bin/python3"
VENV_SITE_PACKAGES = sysconfig.get_paths()["purelib"]


def _qgis_python(script: str, hfd_pythonpath: str, *first: str) -> subprocess.CompletedProcess:
    """Run ``script`` in QGIS's interpreter (isolated: no PYTHONPATH, no user site) after the plugin's
    path set-up, with ``first`` folders put before everything (as system folders are in QGIS)."""
    setup = (
        "import sys\n"
        f"sys.path[:0] = {[*first, str(REPO)]!r}\n"
        "from hfd_qgis.dependencies import add_dependency_paths, missing_dependency_message\n"
        "add_dependency_paths()\n"
    )
    env = {**os.environ, "HFD_PYTHONPATH": hfd_pythonpath}
    return subprocess.run(
        [QGIS_PYTHON, "-I", "-c", setup + script], env=env, capture_output=True, text=True, timeout=120
    )


def test_listed_dependencies_cover_torchs_requirements():
    """A torch upgrade that adds a pure-Python requirement must add it to TORCH_DEPENDENCIES."""
    names = {
        re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0].lower().replace("-", "_")
        for r in distribution("torch").requires
        if "extra ==" not in r
    }
    assert names - {"setuptools"} <= TORCH_DEPENDENCIES


def test_torch_trains_in_qgis_python_with_its_own_dependencies():
    script = (
        "import importlib, json, torch\n"
        "message = missing_dependency_message()\n"
        "model = torch.nn.Conv2d(2, 2, 3)\n"
        "optimizer = torch.optim.AdamW(model.parameters())\n"
        "model(torch.randn(1, 2, 8, 8)).sum().backward()\n"
        "optimizer.step()\n"
        f"names = {sorted(TORCH_DEPENDENCIES)!r}\n"
        "files = {n: importlib.import_module(n).__file__ for n in names if importlib.util.find_spec(n)}\n"
        "import numpy\n"
        "print(json.dumps({'message': message, 'files': files, 'numpy': numpy.__file__}))\n"
    )
    run = _qgis_python(script, VENV_SITE_PACKAGES)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["message"] is None
    for name, file in result["files"].items():
        if (Path(VENV_SITE_PACKAGES) / name).exists() or (Path(VENV_SITE_PACKAGES) / f"{name}.py").exists():
            assert file.startswith(VENV_SITE_PACKAGES), (name, file)
    plain = subprocess.run(
        [QGIS_PYTHON, "-I", "-c", "import numpy; print(numpy.__file__)"], capture_output=True, text=True
    )
    assert result["numpy"] == plain.stdout.strip()  # Debian's numpy, not one from the torch folder


@pytest.fixture
def broken_torch(tmp_path) -> tuple[Path, Path]:
    """A torch folder whose torch needs ``fakedep>=2`` (absent there) and a system folder with fakedep 1.0."""
    torch_folder, system = tmp_path / "site-packages", tmp_path / "dist-packages"
    (torch_folder / "torch").mkdir(parents=True)
    (torch_folder / "torch" / "__init__.py").write_text("from fakedep.core import new_function\n")
    info = torch_folder / "torch-9.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Name: torch\nVersion: 9.0\nRequires-Dist: fakedep>=2\n")
    (system / "fakedep").mkdir(parents=True)
    (system / "fakedep" / "__init__.py").write_text("__version__ = '1.0'\n")
    (system / "fakedep" / "core.py").write_text("")
    return torch_folder, system


def test_a_too_old_dependency_is_named_with_its_fix(broken_torch):
    torch_folder, system = broken_torch
    run = _qgis_python("print(missing_dependency_message())", str(torch_folder), str(system))
    assert run.returncode == 0, run.stderr
    message = run.stdout.strip()
    assert "PyTorch cannot be loaded inside QGIS: it needs fakedep>=2" in message
    assert f"fakedep 1.0 from {system}" in message
    assert "pip install 'fakedep>=2'" in message
    assert "Traceback" not in message


def test_missing_torch_says_how_to_install_it(tmp_path):
    run = _qgis_python("print(missing_dependency_message())", str(tmp_path))
    assert "PyTorch cannot be imported inside QGIS" in run.stdout
    assert "HFD_PYTHONPATH" in run.stdout

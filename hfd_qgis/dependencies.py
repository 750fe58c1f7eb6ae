"""Make `hfd_core` and torch importable inside QGIS's embedded Python.

QGIS runs /usr/bin/python3 and does not see the project's virtual environment. Three mechanisms, all
documented in README ("How QGIS finds torch"):

* an installed plugin carries `hfd_core` in its `lib/` folder, put first on `sys.path`;
* folders holding torch are appended to `sys.path` (after QGIS's own, so Debian's numpy and GDAL win):
  those listed one per line in `python_path.txt` beside this file (written by `make install`) and those in
  the environment variable `HFD_PYTHONPATH` (os.pathsep-separated);
* torch's own pure-Python dependencies (``TORCH_DEPENDENCIES``) are imported from those folders when they
  hold them, before any older copy on QGIS's path. Debian's python3-sympy 1.11 (pulled in by QGIS's
  recommended packages) sits in /usr/lib/python3/dist-packages, ahead of the appended folders, and torch
  2.13 needs sympy >= 1.13.3: its optimisers fail with "cannot import name 'equal_valued'". Redirecting only
  these packages, rather than putting the folders first, keeps Debian's numpy/GDAL stack in charge.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
PATH_FILE = PLUGIN_DIR / "python_path.txt"
#: torch 2.13's pure-Python requirements (Requires-Dist without extras, less setuptools, which it needs only
#: to build C++ extensions) and theirs (sympy -> mpmath, jinja2 -> markupsafe), by import name.
TORCH_DEPENDENCIES = frozenset(
    {"sympy", "mpmath", "networkx", "jinja2", "markupsafe", "filelock", "fsspec", "typing_extensions"}
)


class DependencyFinder(importlib.abc.MetaPathFinder):
    """Finds the top-level packages of ``TORCH_DEPENDENCIES`` in ``folders`` first; their submodules follow
    the package's own ``__path__``. Packages the folders do not hold are left to the normal path."""

    def __init__(self, folders: list[str]) -> None:
        self.folders = list(folders)

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in TORCH_DEPENDENCIES:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, self.folders)


def dependency_paths() -> list[str]:
    """Extra folders that hold torch, from `HFD_PYTHONPATH` then `python_path.txt`."""
    paths = [p for p in os.environ.get("HFD_PYTHONPATH", "").split(os.pathsep) if p]
    if PATH_FILE.is_file():
        paths += [line.strip() for line in PATH_FILE.read_text().splitlines() if line.strip()]
    return [p for p in paths if Path(p).is_dir()]


def add_dependency_paths() -> None:
    """Vendored `lib/` first, torch folders last on `sys.path`; torch's dependencies from those folders."""
    vendored = PLUGIN_DIR / "lib"
    if vendored.is_dir() and str(vendored) not in sys.path:
        sys.path.insert(0, str(vendored))
    folders = dependency_paths()
    for path in folders:
        if path not in sys.path:
            sys.path.append(path)
    if folders and not any(isinstance(finder, DependencyFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, DependencyFinder(folders))


def missing_dependency_message() -> str | None:
    """None when torch and the parts of it training uses import, else what is wrong and how to fix it."""
    try:
        import torch  # noqa: F401
        import torch._dynamo  # noqa: F401  (optimisers import it on first use; it pulls in sympy)
    except Exception as error:  # noqa: BLE001  (a broken dependency may raise anything while importing)
        return dependency_error_message(error)
    return None


def torch_requirement(package: str) -> str:
    """torch's requirement on ``package`` (e.g. "sympy>=1.13.3"), or the bare name when it states none."""
    from importlib.metadata import PackageNotFoundError, distribution

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    try:
        requires = distribution("torch").requires or []
    except PackageNotFoundError:
        requires = []
    for requirement in requires:
        if normal(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]) == normal(package):
            return requirement.split(";")[0].replace(" ", "")
    return package


def dependency_error_message(error: Exception) -> str:
    """A message for the user: torch itself missing, or a dependency of torch missing or too old (which one,
    where QGIS's Python found it, what torch needs and how to install it)."""
    package = (getattr(error, "name", None) or "").split(".")[0]
    if package in ("", "torch"):
        return (
            f"PyTorch cannot be imported inside QGIS ({error}). Run `make install` from the plugin's "
            "source folder, or set HFD_PYTHONPATH to a site-packages folder holding torch 2.13 (CPU build) "
            "for Python 3.11, then restart QGIS."
        )
    module = sys.modules.get(package)
    found = (
        f"{package} {getattr(module, '__version__', '(unknown version)')} from "
        f"{Path(module.__file__).parent.parent}"
        if module is not None and getattr(module, "__file__", None)
        else f"no usable {package}"
    )
    needed = torch_requirement(package)
    return (
        f"PyTorch cannot be loaded inside QGIS: it needs {needed}, but QGIS's Python finds {found} "
        f"({type(error).__name__}: {error}). Install it where torch is, e.g. "
        f"`.venv/bin/python -m pip install '{needed}'` in the plugin's source folder (the plugin imports "
        f"torch's own dependencies from there before older system copies), then restart QGIS. If it is "
        f"already there, another plugin loaded the old {package} first: disable that plugin."
    )

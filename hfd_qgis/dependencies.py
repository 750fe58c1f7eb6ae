"""Make `hfd_core` and torch importable inside QGIS's embedded Python.

QGIS runs /usr/bin/python3 and does not see the project's virtual environment. Two mechanisms, both
documented in README ("How QGIS finds torch"):

* an installed plugin carries `hfd_core` in its `lib/` folder, put first on `sys.path`;
* folders holding torch are appended to `sys.path` (after QGIS's own, so Debian's numpy and GDAL win):
  those listed one per line in `python_path.txt` beside this file (written by `make install`) and those in
  the environment variable `HFD_PYTHONPATH` (os.pathsep-separated).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
PATH_FILE = PLUGIN_DIR / "python_path.txt"


def dependency_paths() -> list[str]:
    """Extra folders that hold torch, from `HFD_PYTHONPATH` then `python_path.txt`."""
    paths = [p for p in os.environ.get("HFD_PYTHONPATH", "").split(os.pathsep) if p]
    if PATH_FILE.is_file():
        paths += [line.strip() for line in PATH_FILE.read_text().splitlines() if line.strip()]
    return [p for p in paths if Path(p).is_dir()]


def add_dependency_paths() -> None:
    vendored = PLUGIN_DIR / "lib"
    if vendored.is_dir() and str(vendored) not in sys.path:
        sys.path.insert(0, str(vendored))
    for path in dependency_paths():
        if path not in sys.path:
            sys.path.append(path)


def missing_dependency_message() -> str | None:
    """None when torch imports, else a message telling the user how to fix it."""
    try:
        import torch  # noqa: F401
    except ImportError as error:
        return (
            f"PyTorch cannot be imported inside QGIS ({error}). Run `make install` from the plugin's "
            "source folder, or set HFD_PYTHONPATH to a site-packages folder holding torch 2.13 (CPU build) "
            "for Python 3.11, then restart QGIS."
        )
    return None

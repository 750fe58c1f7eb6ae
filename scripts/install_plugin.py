"""Assemble the QGIS plugin folder, install it into a QGIS profile (enabled), or zip it.

The assembled plugin `hfd_qgis/` holds the plugin modules, `lib/hfd_core` (the core library), `resources/`,
`metadata.txt` and `README.md`: the layout QGIS's "Install from ZIP" expects.

    python scripts/install_plugin.py --profile-dir ~/.local/share/QGIS/QGIS3/profiles/default \
        --site-packages .venv/lib/python3.11/site-packages
    python scripts/install_plugin.py --zip dist/hfd_qgis.zip
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "hfd_qgis"
# python_path.txt is per machine; *.aux.xml are GDAL statistics QGIS may leave beside the sample.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "python_path.txt", "*.aux.xml")


def assemble(target: Path) -> Path:
    """Write the plugin folder to `target` (replacing it) and return it."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(REPO / PLUGIN_NAME, target, ignore=IGNORED)
    shutil.copytree(REPO / "hfd_core", target / "lib" / "hfd_core", ignore=IGNORED)
    shutil.copytree(REPO / "resources", target / "resources", ignore=IGNORED)
    for name in ("README.md", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, target / name)
    (target / "metadata.txt").write_text(absolute_links((REPO / "metadata.txt").read_text(), REPO))
    return target


def absolute_links(metadata: str, root: Path) -> str:
    """``metadata.txt`` with its homepage, tracker and repository links made absolute ``file://`` URLs.

    The project has no public site: the links point to its own documentation (the README in the repository,
    a relative path plus an optional ``#anchor`` in the source file), which QGIS's plugin manager shows."""

    def absolute(match: re.Match) -> str:
        path, _, anchor = match.group(2).partition("#")
        url = (root / path).resolve().as_uri()
        return f"{match.group(1)}={url}" + (f"#{anchor}" if anchor else "")

    return re.sub(r"^(homepage|tracker|repository)=(?!\w+://)(.*)$", absolute, metadata, flags=re.MULTILINE)


def enable_in_profile(profile_dir: Path) -> None:
    """Set `[PythonPlugins] hfd_qgis=true` in the profile's QGIS3.ini, keeping every other line."""
    ini = profile_dir / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    text = ini.read_text() if ini.is_file() else ""
    key_line = f"{PLUGIN_NAME}=true"
    section = re.search(r"^\[PythonPlugins\]\n(?:(?!\[).*\n?)*", text, flags=re.MULTILINE)
    if section is None:
        text = text + ("" if text.endswith("\n") or not text else "\n") + f"\n[PythonPlugins]\n{key_line}\n"
    else:
        body = re.sub(rf"^{PLUGIN_NAME}=.*\n?", "", section.group(0), flags=re.MULTILINE)
        body = body.rstrip("\n") + f"\n{key_line}\n"
        text = text[: section.start()] + body + text[section.end() :]
    ini.write_text(text)


def install(profile_dir: Path, site_packages: list[str]) -> Path:
    target = assemble(profile_dir / "python" / "plugins" / PLUGIN_NAME)
    (target / "python_path.txt").write_text("".join(f"{path}\n" for path in site_packages))
    enable_in_profile(profile_dir)
    return target


def make_zip(zip_path: Path) -> Path:
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = assemble(Path(tmp) / PLUGIN_NAME)
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                archive.write(path, path.relative_to(folder.parent))
    return zip_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile-dir", type=Path, help="QGIS profile folder to install into (enabled)")
    parser.add_argument("--site-packages", action="append", default=[], help="folder holding torch")
    parser.add_argument("--zip", type=Path, help="write the installable plugin zip here")
    args = parser.parse_args()
    if args.zip:
        print(f"plugin zip: {make_zip(args.zip)}")
    if args.profile_dir:
        print(f"plugin installed and enabled: {install(args.profile_dir, args.site_packages)}")
    if not (args.zip or args.profile_dir):
        parser.error("give --profile-dir and/or --zip")


if __name__ == "__main__":
    main()

"""scripts/install_plugin.py: the installed plugin folder, the profile setting that enables it, and the zip
from `make package` installed into a clean QGIS profile the way "Install from ZIP" does."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("install_plugin", REPO / "scripts" / "install_plugin.py")
install_plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_plugin)


def test_enable_in_profile_keeps_other_settings(tmp_path):
    ini = tmp_path / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir()
    ini.write_text("[PythonPlugins]\nother=true\nhfd_qgis=false\n\n[qgis]\nlocale=fr\n")
    install_plugin.enable_in_profile(tmp_path)
    install_plugin.enable_in_profile(tmp_path)  # idempotent
    text = ini.read_text()
    assert text.count("hfd_qgis=") == 1 and "hfd_qgis=true" in text
    assert "other=true" in text and "[qgis]\nlocale=fr" in text


def test_install_writes_a_complete_plugin_with_torch_path(installed_profile):
    plugin = installed_profile / "profiles" / "default" / "python" / "plugins" / "hfd_qgis"
    for name in (
        "__init__.py",
        "provider.py",
        "metadata.txt",
        "lib/hfd_core/__init__.py",
        "resources/icons/hfd.svg",
    ):
        assert (plugin / name).is_file(), name
    metadata = (plugin / "metadata.txt").read_text()
    assert "hasProcessingProvider=yes" in metadata and "example.org" not in metadata
    links = dict(
        line.split("=", 1) for line in metadata.splitlines() if line.startswith(("homepage", "tracker"))
    )
    assert links == {
        "homepage": (REPO / "README.md").as_uri(),
        "tracker": (REPO / "README.md").as_uri() + "#troubleshooting",
    }
    assert f"repository={REPO.as_uri()}\n" in metadata
    paths = (plugin / "python_path.txt").read_text().split()
    assert paths == [sysconfig.get_paths()["purelib"]]
    assert (Path(paths[0]) / "torch").is_dir()
    assert not list(plugin.rglob("__pycache__"))


def test_installed_core_finds_the_bundled_models_without_qgis(installed_profile):
    """hfd_core in the plugin's lib/ (the CLI run from an installed plugin) finds resources/ beside it."""
    plugin = installed_profile / "profiles" / "default" / "python" / "plugins" / "hfd_qgis"
    script = (
        f"import sys; sys.path.insert(0, {str(plugin / 'lib')!r})\n"
        "from hfd_core.modelfile import bundled_model_path\n"
        "print(bundled_model_path('student'), bundled_model_path('teacher'))\n"
    )
    run = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True)
    expected = [str(plugin / "resources" / "models" / f"{role}.pt") for role in ("student", "teacher")]
    assert run.stdout.split() == expected


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    return install_plugin.make_zip(tmp_path_factory.mktemp("dist") / "hfd_qgis.zip")


def test_zip_has_the_layout_install_from_zip_expects(plugin_zip):
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert {name.split("/")[0] for name in names} == {"hfd_qgis"}
    expected = ["__init__.py", "metadata.txt", "resources/icons/hfd.svg", "lib/hfd_core/infer/tiled.py"]
    for name in expected + ["resources/samples/s1_demo_vv_vh_db.tif"]:
        assert f"hfd_qgis/{name}" in names
    unwanted = ("__pycache__", "python_path.txt", ".aux.xml")
    assert not [name for name in names if any(part in name for part in unwanted)]


@pytest.fixture(scope="module")
def zip_profile(qgis_process, plugin_zip, tmp_path_factory) -> Path:
    """A clean QGIS settings root, the zip extracted into its plugins folder, enabled by qgis_process."""
    root = tmp_path_factory.mktemp("clean_qgis_settings")
    plugins = root / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    zipfile.ZipFile(plugin_zip).extractall(plugins)
    enabled = qgis_process(root, "plugins", "enable", "hfd_qgis")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return root


def test_zip_installed_in_a_clean_profile_loads_the_provider(qgis_process, zip_profile):
    listing = qgis_process(zip_profile, "list")
    assert listing.returncode == 0, listing.stderr
    assert "hfd:segment\tSegment SAR layer" in listing.stdout
    assert "Traceback" not in listing.stderr


def test_zip_install_finds_torch_through_hfd_pythonpath(
    qgis_process, zip_profile, demo_sample, tiny_sar_model, tmp_path
):
    parameters = ["run", "hfd:segment", "--", f"INPUT={demo_sample}", f"MODEL={tiny_sar_model}"]
    without = qgis_process(zip_profile, *parameters, f"OUTPUT={tmp_path / 'without.tif'}")
    assert without.returncode != 0
    assert "HFD_PYTHONPATH" in without.stdout + without.stderr  # tells the user how to make torch importable
    with_torch = qgis_process(
        zip_profile,
        *parameters,
        f"OUTPUT={tmp_path / 'with.tif'}",
        HFD_PYTHONPATH=sysconfig.get_paths()["purelib"],
    )
    assert with_torch.returncode == 0, with_torch.stdout + with_torch.stderr
    assert (tmp_path / "with.tif").is_file() and (tmp_path / "with.qml").is_file()

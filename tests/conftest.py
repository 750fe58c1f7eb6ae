"""Shared fixtures: paths to the real sample data, and Processing initialised with the `hfd` provider."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HFD_SHARED_DATA", REPO.parent / "shared" / "data"))
# QGIS computes histograms of the layers it loads and GDAL saves them as .aux.xml beside the raster: a full
# suite left three (1 MB) in the shared samples folder. The tests leave their inputs as they found them
# (inherited by the QGIS processes they start; `make demo` does the same).
os.environ["GDAL_PAM_ENABLED"] = "NO"


def _files(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()} if folder.is_dir() else set()


@pytest.fixture(scope="session", autouse=True)
def shared_data_untouched():
    """After the suite, no new file in the shared samples folder (QGIS statistics files landed there once)."""
    before = _files(SHARED_DATA)
    yield
    added = sorted(str(path) for path in _files(SHARED_DATA) - before)
    assert not added, f"the tests wrote {len(added)} file(s) into {SHARED_DATA}: {added[:5]}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (real Sentinel-1/2 samples); tests using it skip in a clone that lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real sample data not found at {SHARED_DATA} (only the development checkout has ../shared/data)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def processing_provider(qgis_app):
    """Processing initialised (native + GDAL algorithms) with the plugin's `hfd` provider registered."""
    from qgis.core import QgsApplication

    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    from hfd_qgis.provider import HFDProvider

    provider = HFDProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    yield provider
    QgsApplication.processingRegistry().removeProvider(provider)


@pytest.fixture(scope="session")
def demo_sample(tmp_path_factory) -> Path:
    """A copy of the repository's real Sentinel-1 sample (SEN12MS VV/VH dB, 256x256, EPSG:32737).

    A copy, so statistics files GDAL or QGIS may write beside it never land in the repository.
    """
    import shutil

    target = tmp_path_factory.mktemp("demo_sample") / "s1_demo_vv_vh_db.tif"
    shutil.copy2(REPO / "resources" / "samples" / "s1_demo_vv_vh_db.tif", target)
    return target


@pytest.fixture(scope="session")
def tiny_sar_model(tmp_path_factory) -> Path:
    """An untrained, tiny HFD-Net student for Sentinel-1 VV/VH dB with three classes (fast inference)."""
    import torch

    from hfd_core.modelfile import ClassInfo, ModelMetadata, save_model
    from hfd_core.models import HFDNet, HFDNetConfig

    torch.manual_seed(0)
    config = HFDNetConfig(2, 3, widths=(4, 8, 8, 8), align_dim=8)
    classes = [
        ClassInfo(0, "water", "#2b7bb9"),
        ClassInfo(1, "vegetation", "#33a02c"),
        ClassInfo(2, "built-up", "#e31a1c"),
    ]
    metadata = ModelMetadata(
        role="student", config=config, bands=["VV", "VH"], input_kind="sar_db", mean=[-12.0, -19.0],
        std=[4.0, 5.0], classes=classes, tile_size=64,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("tiny_model") / "tiny_student.pt"
    save_model(path, HFDNet(config), metadata)
    return path


@pytest.fixture(scope="session")
def installed_profile(tmp_path_factory) -> Path:
    """A temporary QGIS settings root (for QGIS_CUSTOM_CONFIG_PATH) whose default profile has the plugin
    installed and enabled by scripts/install_plugin.py, torch found through its python_path.txt."""
    import subprocess
    import sysconfig

    root = tmp_path_factory.mktemp("qgis_settings")
    profile = root / "profiles" / "default"
    installer = REPO / "scripts" / "install_plugin.py"
    site_packages = sysconfig.get_paths()["purelib"]
    command = [
        sys.executable,
        str(installer),
        "--profile-dir",
        str(profile),
        "--site-packages",
        site_packages,
    ]
    subprocess.run(command, check=True, capture_output=True)
    return root


@pytest.fixture(scope="session")
def qgis_process():
    """Runs the project's launcher bin/qgis_process with a given settings root (QGIS_CUSTOM_CONFIG_PATH),
    headless and without the test run's PYTHONPATH/HFD_PYTHONPATH (torch must come from the plugin's set-up):
    ``qgis_process(settings_root, *args, timeout=300, **extra_env) -> CompletedProcess``."""
    import subprocess

    launcher = REPO / "bin" / "qgis_process"

    def run(settings_root: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HFD_PYTHONPATH", "DISPLAY")}
        clean.update(QGIS_CUSTOM_CONFIG_PATH=str(settings_root), QT_QPA_PLATFORM="offscreen", **env)
        command = [str(launcher), *args]
        return subprocess.run(
            command, env=clean, capture_output=True, text=True, timeout=timeout, check=False
        )

    return run

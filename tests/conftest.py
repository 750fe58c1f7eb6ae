"""Shared fixtures: paths to the real sample data, and Processing initialised with the `hfd` provider."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HFD_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (real Sentinel-1/2 samples); tests using it skip in a clone that lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (only the development checkout has ../shared/data)")
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

"""The water model cards' scene-extent section (scripts/water_scene_extent.py): windows of a chip as scenes of
their own, binned by water share, written between markers that the card script keeps."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import rasterio

from hfd_core.data.raster import read_float

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
extent = importlib.import_module("water_scene_extent")
card = importlib.import_module("water_model_card")


def _chip(demo_sample: Path) -> card.Chip:
    """The real demo scene (256 x 256) with its darkest left columns labelled water."""
    vv, vh = read_float(demo_sample)
    label = np.zeros(vv.shape, np.uint8)
    label[:, :40] = 1
    return card.Chip("demo", "demo", demo_sample, vv, vh, label)


def test_windows_are_georeferenced_crops_of_the_chip(demo_sample, tmp_path):
    chip = _chip(demo_sample)
    windows = extent.window_chips(chip, tmp_path)
    # the whole chip, and 3 x 3 windows of 128 px at 64 px steps (256 px windows need a 384 px chip)
    assert len(windows) == 1 + 9
    with rasterio.open(demo_sample) as src, rasterio.open(windows[-1].path) as window:
        assert window.shape == (128, 128) and window.crs == src.crs
        assert window.transform.c == src.transform.c + 128 * src.transform.a
        assert np.array_equal(window.read(2), src.read(2)[128:, 128:], equal_nan=True)
    assert np.array_equal(windows[-1].label, chip.label[128:, 128:])


def test_section_bins_windows_by_water_share_and_replaces_itself(demo_sample, tmp_path):
    windows = extent.window_chips(_chip(demo_sample), tmp_path)
    results = card.score_chips(windows, {}, {}, tmp_path)
    results["model"] = results["filtered bounded Otsu (VH)"]
    text = extent.section(windows, results, "test")
    # left column windows hold 40 of 128 columns of water (31 %), middle ones 0, whole chip 16 %
    assert "| water 10-40 % | 4 |" in text and "| without water: water called | 6 |" in text
    assert text.startswith(extent.START) and text.endswith(extent.END)
    page = tmp_path / "card.md"
    page.write_text("# Card\n\nbody\n")
    card.write_generated_section(page, text)
    card.write_generated_section(page, text.replace("| 4 |", "| four |"))
    written = page.read_text()
    assert written.count(extent.START) == 1 and "| four |" in written
    assert card.foreign_sections(written) == [text.replace("| 4 |", "| four |")]

"""The water model cards' pasted-water check (scripts/water_pasted_water.py): open water with fixed levels
pasted into the dry chips at several shares, scored per model, written between markers the card keeps."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from hfd_core import IGNORE_INDEX
from hfd_core.data.raster import read_float

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
pasted = importlib.import_module("water_pasted_water")
card = importlib.import_module("water_model_card")


def _chip(demo_sample: Path, water_columns: int) -> card.Chip:
    """The real demo scene (256 x 256, dry land) with its first ``water_columns`` columns labelled water."""
    vv, vh = read_float(demo_sample)
    label = np.zeros(vv.shape, np.uint8)
    label[:, :water_columns] = 1
    return card.Chip(f"demo{water_columns}", "demo", demo_sample, vv, vh, label)


def test_fixed_levels_replace_the_drawn_ones(demo_sample):
    from hfd_core.data.synthetic_water import paste_open_water

    sar = read_float(demo_sample)
    sar[:, :8, :8] = np.nan
    label = np.zeros(sar.shape[1:], np.uint8)
    label[:8, :8] = IGNORE_INDEX
    fixed = {"share": 0.6, "vh_db": -26.0, "vv_above_vh_db": 11.0, "wind_db": 0.0, "outline_scale_px": 8.0}
    water_db, labels = paste_open_water(sar, label, 1, np.random.default_rng(0), **fixed)
    water = labels == 1
    assert water.mean() == pytest.approx(0.6, abs=0.01)
    assert (labels[:8, :8] == IGNORE_INDEX).all() and np.isnan(water_db[:, :8, :8]).all()
    # in linear power the speckle has mean 1, so the mean of the water's intensity is the fixed level
    vv, vh = (10 * np.log10(np.mean(10 ** (band / 10))) for band in water_db[:, water])
    assert vh == pytest.approx(-26.0, abs=0.1) and vv - vh == pytest.approx(11.0, abs=0.15)


def test_only_dry_chips_host_pasted_water_at_every_share(demo_sample, tmp_path):
    chips = [_chip(demo_sample, 0), _chip(demo_sample, 1), _chip(demo_sample, 40)]
    hosts = pasted.dry_hosts(chips)
    assert [h.name for h in hosts] == ["demo0", "demo1"]  # 1 column of 256 is 0.4 %, under the 1 % limit
    made = pasted.pasted_chips(hosts[:1], tmp_path)
    assert [c.name for c in made] == [f"demo0_{s}" for s in pasted.SHARES]
    for chip, share in zip(made, pasted.SHARES, strict=True):
        assert (chip.label == card.WATER).mean() == pytest.approx(share, abs=0.01)
        with rasterio.open(chip.path) as written, rasterio.open(demo_sample) as src:
            assert written.transform == src.transform and written.crs == src.crs
            assert np.array_equal(written.read(2), chip.vh, equal_nan=True)
        land = chip.label != card.WATER
        assert np.array_equal(chip.vh[land], hosts[0].vh[land], equal_nan=True)


def test_section_gives_mean_and_worst_per_share_between_its_markers(demo_sample, tmp_path):
    hosts = [_chip(demo_sample, 0)]
    chips = pasted.pasted_chips(hosts, tmp_path)
    results = card.score_chips(chips, {}, {}, tmp_path)
    rows = {"perfect": {"final": Path("a.pt"), "fold": Path("b.pt")}}
    results["perfect: final"] = results["perfect: fold"] = {
        c.name: card.water_counts(c.label == card.WATER, c) for c in chips
    }
    scores = pasted.mean_and_worst(chips, results, rows)
    assert scores["perfect"] == {share: (1.0, 1.0) for share in pasted.SHARES}
    text = pasted.section(hosts, scores, rows)
    assert "| perfect | 2 | 1.000 (1.000) | 1.000 (1.000) | 1.000 (1.000) |" in text
    assert f"| {pasted.RECIPE} | - |" in text
    assert text.startswith(pasted.START) and text.endswith(pasted.END)

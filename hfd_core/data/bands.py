"""Which bands of a raster feed a model: one rule for segmentation and fine-tuning.

In this order: the bands the caller chose; the raster's band descriptions when they name every band of the
model (a description names a band when it holds the name as a word: "VV", "Sigma0_VV_db", "B2" for "B02");
the band order of a whole Sentinel-2 product (12 or 13 bands); a raster with exactly the model's number of
bands, taken in order; for SAR models the first bands (documented default of hfd:segment). Chosen bands that
the descriptions contradict ("VH" given to the model as VV) are refused: a silently swapped map is worse than
an error. Wherever the model reads VV and VH, the bands found are checked against the data too
(``data.sar.check_polarisation_order``): chosen numbers or descriptions can be wrong as well as file order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import rasterio

from hfd_core.errors import InputError
from hfd_core.infer import STACK_HINT

#: Band names of whole Sentinel-2 products in file order, by band count (L1C has B10, L2A does not).
SENTINEL2_LAYOUTS = {
    13: ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"],
    12: ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"],
}


@dataclass
class BandChoice:
    """1-based band numbers in the model's order and how they were found (for the log)."""

    indices: list[int]
    how: str
    #: what the choice rests on: "chosen" (numbers), "descriptions", "sentinel2" (product layout) or "order"
    basis: str

    def describe(self, wanted: list[str]) -> str:
        pairs = ", ".join(f"{name}=band {index}" for name, index in zip(wanted, self.indices, strict=True))
        return f"bands {pairs} ({self.how})"


def _canonical(name: str) -> str:
    """Upper case, leading zero of Sentinel-2 band numbers dropped: "B02" and "b2" are "B2"."""
    return re.sub(r"^B0(\d)$", r"B\1", name.strip().upper())


def _named(description: str | None, wanted: list[str]) -> str | None:
    """The one model band ``description`` names as a word, else None."""
    words = {_canonical(word) for word in re.split(r"[^A-Za-z0-9]+", description or "") if word}
    named = [name for name in wanted if _canonical(name) in words]
    return named[0] if len(named) == 1 else None


def _check_explicit(path: Path, explicit: list[int], wanted: list[str], count: int, descriptions) -> None:
    missing = [band for band in explicit if not 1 <= band <= count]
    if len(explicit) != len(wanted) or missing:
        raise InputError(
            f"{path.name} has {count} band(s); the model expects {len(wanted)} bands ({', '.join(wanted)}) "
            f"and bands {explicit} were chosen"
            + (f": it has no band {', '.join(map(str, missing))}" if missing else "")
        )
    for band, name in zip(explicit, wanted, strict=True):
        described = _named(descriptions[band - 1], wanted)
        if described is not None and described != name:
            raise InputError(
                f"{path.name}: band {band} is described as {descriptions[band - 1]!r} but was chosen as the "
                f"model's {name}: the chosen bands contradict the raster's band descriptions; leave the band "
                "selection empty to use the descriptions, or choose the bands in the model's order "
                f"({', '.join(wanted)})"
            )


def find_bands(
    path: str | Path, wanted: list[str], explicit: list[int] | None = None, *, first_ones: bool = False
) -> BandChoice:
    """The bands of ``path`` for a model expecting ``wanted`` (module doc); ``first_ones`` allows the last
    rule. InputError when no rule applies or the chosen bands contradict the descriptions."""
    path = Path(path)
    try:
        with rasterio.open(path) as src:
            count, descriptions = src.count, list(src.descriptions)
    except rasterio.errors.RasterioIOError as error:
        raise InputError(f"{path} is not a raster GDAL can read ({error})") from None
    if explicit:
        _check_explicit(path, list(explicit), wanted, count, descriptions)
        return BandChoice(list(explicit), "as chosen", "chosen")
    named = [_named(d, wanted) for d in descriptions]
    if all(named.count(name) == 1 for name in wanted):
        return BandChoice(
            [named.index(name) + 1 for name in wanted], "from the band descriptions", "descriptions"
        )
    layout = SENTINEL2_LAYOUTS.get(count)
    if layout is not None and all(name in layout for name in wanted):
        return BandChoice(
            [layout.index(name) + 1 for name in wanted], f"{count}-band Sentinel-2 order", "sentinel2"
        )
    if count == len(wanted) or (first_ones and count > len(wanted)):
        first = list(range(1, len(wanted) + 1))
        return BandChoice(first, f"the first {len(wanted)} of {count}", "order")
    sentinel2 = any(name in SENTINEL2_LAYOUTS[13] for name in wanted)
    needs = f"{path.name} has {count} band(s); the model needs {len(wanted)} ({', '.join(wanted)})"
    if count < len(wanted):
        raise InputError(f"{needs}: give a raster with those bands; {STACK_HINT}")
    if count in SENTINEL2_LAYOUTS and not sentinel2:
        raise InputError(f"{needs}: it has the band count of a Sentinel-2 product; is it the optical input?")
    raise InputError(
        f"{needs}. Name the bands in the file, "
        + ("give a whole Sentinel-2 product (12 or 13 bands), " if sentinel2 else "")
        + "or choose the band numbers"
    )


def band_indices(path: str | Path, wanted: list[str], explicit: list[int] | None = None) -> list[int]:
    """1-based band numbers of ``wanted`` in the raster ``path`` (``find_bands`` without the first-bands
    rule)."""
    return find_bands(path, wanted, explicit).indices

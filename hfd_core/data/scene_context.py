"""Scene context for SAR water mapping: what a per-scene threshold knows, given to the network per pixel.

A threshold such as Otsu's wins on some scenes because it is chosen per scene. A network that sees one tile
does not know the scene's distribution. ``SceneContext`` holds one histogram per band of the whole scene
(gathered in a streaming pass by ``segment_raster``, or from the chip in memory when training), and
``water_features`` turns each pixel into channels that are defined the same way on calibrated dB scenes and on
8-bit images stretched per chip (OMBRIA):

* ``VV_rank``, ``VH_rank``: the pixel's rank in the scene (empirical CDF, 0 darkest .. 1 brightest). A rank is
  unchanged by any monotonic stretch of the scene, so OMBRIA's stretched VV and calibrated dB VV share it.
* ``VV_margin``, ``VH_margin``: rank minus the rank of the scene's Otsu threshold (negative: darker than the
  split Otsu would make), i.e. the per-scene threshold as an input the network can use or overrule.
* ``VV_db``, ``VH_db``: absolute sigma0, scaled to about unit range (``(dB - DB_CENTRE) / DB_SCALE``): only
  calibrated data have it; it is what keeps dry scenes dry (a rank alone calls the darkest tenth of any scene
  dark).
* ``VH_filtered_bound``: the classical recipe's decision margin, exactly: the 7 x 7 mean-filtered VH
  (``speckle.mean_filter``) minus the scene's Otsu threshold of the filtered VH bounded at
  ``WATER_VH_LIMIT_DB``, scaled like the dB channels (negative: the recipe calls the pixel water). The
  physical prior is given, not learnt. A first version took Otsu's threshold and the margin on the
  unfiltered VH: on the all-water Sri Lanka chip that threshold fell inside the water (-27.5 dB against
  -22.4 dB filtered), so the channel said "land" for most of the water (water IoU 0.31 against the recipe's
  0.996) and taught the network to distrust it. Features of a window need ``speckle.SPECKLE_HALO`` pixels
  around it to equal the whole scene's.
* ``has_db``, ``has_vh``: 1 where the channels above exist, else 0 (and those channels are 0). This is how
  the network trains on sources that lack a channel (OMBRIA: VV only, no dB) and is told so.

Histograms use fixed bins (``DB_BIN`` dB over ``DB_RANGE``; one bin per value for 8-bit data), so a scene's
context costs a few kilobytes however large the scene, and every tile of a scene gets the same context: tiled
maps stay consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hfd_core.data.speckle import mean_filter

#: ``ModelMetadata.input_kind`` of a model that reads ``FEATURES`` computed from a raster's ``RASTER_BANDS``.
SCENE_KIND = "sar_db_scene"
RASTER_BANDS = ("VV", "VH")
#: Input kinds: calibrated sigma0 in dB, or 8-bit images stretched per chip (OMBRIA PNGs).
KINDS = ("db", "stretched")
DB_RANGE = (-60.0, 30.0)
DB_BIN = 0.05
DB_CENTRE = {"VV": -12.0, "VH": -19.0}
DB_SCALE = 5.0
FEATURES = (
    "VV_rank",
    "VH_rank",
    "VV_margin",
    "VH_margin",
    "VV_db",
    "VH_db",
    "has_db",
    "has_vh",
    "VH_filtered_bound",
)
#: Physical limit for open water in VH (dB): the scene's Otsu threshold is never taken above it.
WATER_VH_LIMIT_DB = -18.0


@dataclass
class BandHistogram:
    """Counts of one band's values in fixed bins starting at ``low`` with ``width``."""

    low: float
    width: float
    counts: np.ndarray

    @classmethod
    def empty(cls, kind: str) -> BandHistogram:
        if kind == "db":
            bins = round((DB_RANGE[1] - DB_RANGE[0]) / DB_BIN)
            return cls(DB_RANGE[0], DB_BIN, np.zeros(bins, np.int64))
        return cls(-0.5, 1.0, np.zeros(256, np.int64))

    def _index(self, values: np.ndarray) -> np.ndarray:
        index = np.floor((values - self.low) / self.width)
        return np.clip(index, 0, len(self.counts) - 1).astype(np.int64)

    def add(self, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        if values.size:
            self.counts += np.bincount(self._index(values), minlength=len(self.counts))

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def rank(self, values: np.ndarray) -> np.ndarray:
        """Empirical CDF at ``values`` (mid-rank within a bin, linear between bin edges); NaN stays NaN."""
        cumulative = np.concatenate([[0], np.cumsum(self.counts)]) / max(self.total, 1)
        edges = self.low + self.width * np.arange(len(cumulative))
        return np.interp(values, edges, cumulative).astype(np.float32)

    def otsu(self) -> float:
        """Otsu's threshold (value at the upper edge of the best lower class), over the histogram's bins."""
        counts = self.counts.astype(np.float64)
        centres = self.low + self.width * (np.arange(len(counts)) + 0.5)
        weight_low = np.cumsum(counts)
        weight_high = weight_low[-1] - weight_low
        sum_low = np.cumsum(counts * centres)
        mean_low = sum_low / np.maximum(weight_low, 1)
        mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
        between = weight_low * weight_high * (mean_low - mean_high) ** 2
        return float(self.low + self.width * (int(np.argmax(between)) + 1))


@dataclass
class SceneContext:
    """Histograms of a scene's VV, (optional) VH and filtered VH, in dB or in stretched 8-bit values."""

    kind: str
    vv: BandHistogram
    vh: BandHistogram | None
    vh_filtered: BandHistogram | None

    @classmethod
    def empty(cls, kind: str, has_vh: bool) -> SceneContext:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        vh = [BandHistogram.empty(kind), BandHistogram.empty(kind)] if has_vh else [None, None]
        return cls(kind, BandHistogram.empty(kind), *vh)

    @classmethod
    def of(cls, array: np.ndarray, kind: str) -> SceneContext:
        """Context of a whole (1 or 2, H, W) array: VV, then VH if present; NaN is nodata."""
        context = cls.empty(kind, has_vh=array.shape[0] > 1)
        context.add(array)
        return context

    def recipe_bound(self) -> float:
        """The classical recipe's threshold of the speckle-filtered VH: its Otsu threshold, at most
        ``WATER_VH_LIMIT_DB``."""
        return min(self.vh_filtered.otsu(), WATER_VH_LIMIT_DB)

    def recipe_water_share(self) -> float | None:
        """Share of the scene's valid pixels that the classical recipe calls water, read off the histogram of
        the filtered VH (to a bin, ``DB_BIN``); None without VH or outside dB."""
        if self.kind != "db" or self.vh_filtered is None or not self.vh_filtered.total:
            return None
        return float(self.vh_filtered.rank(np.float32(self.recipe_bound())))

    def add(self, array: np.ndarray, rows: slice = slice(None)) -> None:
        """Count the ``rows`` of a window of the scene (streaming); pixels where any band is NaN are left out.

        Rows outside ``rows`` (``speckle.SPECKLE_HALO`` above and below, where the scene has them) only feed
        the speckle filter, so strips streamed that way count exactly what the whole scene would."""
        valid = np.isfinite(array).all(axis=0)
        inside = valid[rows]
        self.vv.add(array[0][rows][inside])
        if self.vh is not None:
            self.vh.add(array[1][rows][inside])
            self.vh_filtered.add(filtered_vh(array)[rows][inside])


def filtered_vh(array: np.ndarray) -> np.ndarray:
    """Speckle-filtered VH of a (2, H, W) window, over the pixels where both bands are valid."""
    valid = np.isfinite(array).all(axis=0)
    return mean_filter(np.where(valid, array[1], np.nan))


def water_features(array: np.ndarray, context: SceneContext) -> np.ndarray:
    """(len(FEATURES), H, W) float32 from a (1 or 2, H, W) window of the scene ``context`` describes.

    Pixels where the window is NaN are NaN in every channel (nodata). ``VH_filtered_bound`` equals the whole
    scene's only ``speckle.SPECKLE_HALO`` pixels inside the window's edges (read a halo and crop)."""
    height, width = array.shape[1:]
    out = np.zeros((len(FEATURES), height, width), np.float32)
    bands = [("VV", context.vv, 0, 2)]
    if context.vh is not None:
        bands.append(("VH", context.vh, 1, 3))
    for name, histogram, rank_channel, margin_channel in bands:
        values = array[rank_channel]
        rank = histogram.rank(values)
        out[rank_channel] = rank
        out[margin_channel] = rank - histogram.rank(np.float32(histogram.otsu()))
        if context.kind == "db":
            out[4 + rank_channel] = (values - DB_CENTRE[name]) / DB_SCALE
    if context.kind == "db" and context.vh is not None:
        out[8] = (filtered_vh(array) - context.recipe_bound()) / DB_SCALE
    out[6] = 1.0 if context.kind == "db" else 0.0
    out[7] = 1.0 if context.vh is not None else 0.0
    out[:, ~np.isfinite(array).all(axis=0)] = np.nan
    return out

"""Streaming tiled inference: ``segment_raster`` segments a raster of any size in bounded memory.

Tiles lie on one global grid (stride = tile - overlap) and each tile is computed once. The raster is processed
in vertical stripes of ``tiles_per_stripe`` tile columns, swept top to bottom one tile row at a time:

* per tile row, the stripe's input window (tile rows x stripe width) is read with rasterio and normalised;
* softmax probabilities of each tile are multiplied by a blending window (a ramp over the overlap, steep so
  that a pixel's class comes mostly from the tile where it lies deepest, never zero) and accumulated with the
  weights; the class is the arg-max of the weighted mean, so seams are blended, not cut;
* rows that no later tile touches are final: they are written (block-aligned rows) and dropped; the overlap
  strip a stripe's last tile column spills into the next stripe is carried in a (classes + 1) x rows x overlap
  buffer.
Memory is therefore O(tile x stripe width + rows x overlap), independent of the raster's area; GDAL's block
cache is capped (``GDAL_CACHEMAX``) for the same reason.

Input: the model's bands (1-based ``bands``), dB detected or converted for SAR models; for a model of scene
features (``data.scene_context``: the water model) a first streaming pass gathers the raster's histograms,
then each window's features are computed from them (with a speckle-filter halo), so every tile sees the same
scene context. NaN, the raster's nodata value, SAR pixels 0 in every band (``data.sar.mask_zero_fill``) and
SAR values below -100, which no backscatter takes (``data.sar.mask_impossible_values``: -9999 and the like)
are nodata and zero after normalisation (the band mean), so they do not pull neighbours toward any class;
beyond the raster edge the tile is mirrored (reflection padding: zeros there changed the context of edge tiles
enough to flip classes of a trained CNN) and those pixels are never written.
Output: tiled DEFLATE GeoTIFF, uint8 class ids, nodata 255, colour table, class names (``CLASS_NAMES`` tag),
a ``.qml`` style beside it; optional confidence GeoTIFF (max probability in percent, uint8 0..100, nodata
255) with its own ``.qml`` (a sequential colour ramp). Files are written under temporary names in the output
folder and moved into place only when complete.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from hfd_core import IGNORE_INDEX
from hfd_core.data.bands import find_bands
from hfd_core.data.sar import (
    check_polarisation_order,
    fill_notes,
    mask_impossible_values,
    mask_zero_fill,
    sar_scale,
    to_db,
)
from hfd_core.data.scene_context import SCENE_KIND, WATER_VH_LIMIT_DB, SceneContext, water_features
from hfd_core.data.speckle import SPECKLE_HALO
from hfd_core.errors import Canceled, InputError
from hfd_core.files import check_outputs, partial_path, remove_stale
from hfd_core.infer import (
    BATCH_SIZE_RANGE,
    DEFAULT_OVERLAP,
    INPUT_SCALES,
    OUTPUT_EXTENSIONS,
    OVERLAP_RANGE,
    STACK_HINT,
    TILE_SIZE_RANGE,
)
from hfd_core.infer.style import colormap, write_confidence_qml, write_qml
from hfd_core.infer.timing import format_duration
from hfd_core.modelfile import ModelMetadata, load_model
from hfd_core.models import HFDNet
from hfd_core.models.ensemble import HFDEnsemble
from hfd_core.models.hfdnet import SIZE_MULTIPLE
from hfd_core.models.inference import inference_memory_format, prepare_for_inference

OUTPUT_BLOCK = 256
STRIPE_TARGET_WIDTH = 2048
#: GDAL's block cache while segmenting (``block_cache_bytes``), in bytes: rasterio.Env hands an integer
#: GDAL_CACHEMAX to GDALSetCacheMax64 as bytes, not megabytes (rasterio#2336); given 64, the cache held 64
#: bytes, and the decimated first read of a DEFLATE-tiled 3072 x 3072 raster took 7.9 s instead of 0.2 s.
GDAL_CACHE_MIN_BYTES = 64 * 2**20
GDAL_CACHE_MAX_BYTES = 2**30
SAMPLE_SIDE = 512
#: Pixels per strip of the scene-context pass (4 MP: ~100 MB of filter temporaries however wide the scene).
CONTEXT_STRIP_PIXELS = 4_000_000


@dataclass
class SegmentResult:
    """What a run produced."""

    output_path: Path
    confidence_path: Path | None
    class_pixels: dict[str, int]
    valid_pixels: int
    pixels: int
    tiles: int
    seconds: float
    device: str
    input_scale: str
    bands: str = ""
    warnings: list[str] = field(default_factory=list)
    #: Water model: the share of valid pixels the classical recipe calls water, from the first pass.
    recipe_water_share: float | None = None

    def summary(self) -> str:
        share = ", ".join(
            f"{name} {100 * count / max(self.valid_pixels, 1):.1f}%"
            for name, count in self.class_pixels.items()
        )
        recipe = (
            ""
            if self.recipe_water_share is None
            else f" (the classical recipe, 7 x 7 mean and Otsu on VH at most {WATER_VH_LIMIT_DB:g} dB, "
            f"would call {100 * self.recipe_water_share:.1f}% water)"
        )
        return (
            f"{self.output_path}: {self.pixels / 1e6:.2f} MP ({self.valid_pixels / 1e6:.2f} MP valid) in "
            f"{format_duration(self.seconds)} ({self.megapixels_per_s:.2f} MP/s) on {self.device}, "
            f"{self.tiles} tile{'s' * (self.tiles != 1)}, input {self.input_scale}, {self.bands}; "
            f"{share}{recipe}"
        )

    @property
    def megapixels_per_s(self) -> float:
        """End-to-end throughput: the raster's pixels (valid or not) over the whole run's time."""
        return self.pixels / 1e6 / max(self.seconds, 1e-9)


#: Power of the blending ramp. A tile's prediction is least reliable near its edges (less context, zero-padded
#: features), so with a steeper ramp each pixel takes its class mostly from the tile where it lies deepest,
#: while weights still change continuously across the overlap. Bundled student, Sen1Floods11 chips, tiles of
#: 256 overlapping by 128 against one 512-px tile: agreement 0.980-1.000 with a linear ramp, 0.996-1.000 with
#: power 4.
RAMP_POWER = 4
#: Smallest weight per axis: a pixel that only a tile edge covers keeps a well-defined weight.
RAMP_FLOOR = 1e-3


def ramp_window(size: int, overlap: int) -> np.ndarray:
    """(size, size) blending weights: 1 inside, over the ``overlap`` edge pixels a ramp ((i+1)/(overlap+1))
    ** RAMP_POWER per axis, never below RAMP_FLOOR."""
    ramp = np.ones(size, np.float32)
    if overlap > 0:
        linear = (np.arange(overlap, dtype=np.float32) + 1) / (overlap + 1)
        edge = np.maximum(linear**RAMP_POWER, RAMP_FLOOR)
        ramp[:overlap] = edge
        ramp[size - overlap :] = np.minimum(ramp[size - overlap :], edge[::-1])
    return np.outer(ramp, ramp)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    return torch.device(device)


#: What ``Canceled`` says, wherever the run is stopped (context pass, before a batch, after the last one).
CANCELED = "segmentation cancelled; no output was written"
#: Why the water model refuses a one-band raster. Measured on the dB chips with VH left out, each by the
#: shipped variant's fold that did not train on it (docs/experiments/water_model_findings.md).
VV_ALONE_REFUSED = (
    "{name} has one band; the water model reads VV and VH: give both (the bands named, or in that order; "
    "{stack}), or threshold VV. With VV alone it called far more false water than a threshold (75 and 99 % "
    "of two dry chips, VV < -15 dB about 1 %)"
)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class _Input:
    """Opened input: band selection, nodata, scale conversion and normalisation of windows."""

    def __init__(self, path: Path, metadata: ModelMetadata, bands: list[int] | None, input_scale: str):
        try:
            self.src = rasterio.open(path)
        except rasterio.errors.RasterioIOError as error:
            raise InputError(f"{path} is not a raster GDAL can read ({error})") from None
        self.path = path
        names = metadata.raster_bands
        self.is_sar = metadata.input_kind in ("sar_db", SCENE_KIND)
        if metadata.input_kind == SCENE_KIND and self.src.count == 1:
            raise InputError(VV_ALONE_REFUSED.format(name=path.name, stack=STACK_HINT))
        choice = find_bands(path, names, bands, first_ones=self.is_sar)
        self.bands = choice.indices
        #: how the bands were found, for the log
        self.band_note = choice.describe(names)
        self.nodata = self.src.nodata
        self.mean = np.asarray(metadata.mean, np.float32)[:, None, None]
        self.std = np.asarray(metadata.std, np.float32)[:, None, None]
        self._cached_sample: np.ndarray | None = None
        #: share of the raster read as nodata because a band holds a value no backscatter takes
        #: (``data.sar.mask_impossible_values``; measured on the sample, masked in every read)
        self.impossible_fill = 0.0
        #: share of the raster read as nodata because it is 0 in every band (``_zero_fill``; 0 while the
        #: sample that decides it is read)
        self.zero_fill = 0.0
        self.zero_fill = self._zero_fill()
        if self.is_sar:  # before the scale: swapped bands mislead its detection
            check_polarisation_order(self._sample(), names, choice, path.name)
        self.scale = self._scale(input_scale, metadata)
        self.reads_scene_features = metadata.input_kind == SCENE_KIND
        #: histograms of the whole raster for a model of scene features (``gather_context``), else None
        self.context: SceneContext | None = None

    def _sample(self) -> np.ndarray:
        """Decimated read of the whole raster (at most SAMPLE_SIDE a side), done once."""
        if self._cached_sample is None:
            self._cached_sample = self._read_sample()
        return self._cached_sample

    def _read_sample(self) -> np.ndarray:
        src = self.src
        factor = max(1, math.ceil(max(src.height, src.width) / SAMPLE_SIDE))
        shape = (len(self.bands), max(1, src.height // factor), max(1, src.width // factor))
        sample = self._without_declared_nodata(self._read(out_shape=shape))
        if self.is_sar:  # after the declared nodata: a fill the file declares is not reported
            self.impossible_fill = mask_impossible_values(sample)
        return self._mask(sample)

    def _read(self, **options) -> np.ndarray:
        """float32 read of the chosen bands; a damaged or truncated file is an InputError."""
        try:
            return self.src.read(self.bands, **options).astype(np.float32)
        except (rasterio.errors.RasterioError, rasterio.errors.RasterioIOError) as error:
            raise InputError(
                f"{self.path} cannot be read: the file is damaged or truncated ({error})"
            ) from None

    def _without_declared_nodata(self, array: np.ndarray) -> np.ndarray:
        if self.nodata is not None and not np.isnan(self.nodata):
            array[array == self.nodata] = np.nan
        return array

    def _mask(self, array: np.ndarray) -> np.ndarray:
        self._without_declared_nodata(array)
        if self.is_sar:
            mask_impossible_values(array)
        if self.zero_fill:
            array[:, (array == 0).all(axis=0)] = np.nan
        array[:, ~np.isfinite(array).all(axis=0)] = np.nan
        return array

    def _zero_fill(self) -> float:
        """Share of the sample that is 0 in every band of a SAR raster (``data.sar.mask_zero_fill``), read as
        nodata from then on."""
        return mask_zero_fill(self._sample()) if self.is_sar else 0.0

    def _has_valid_pixel(self) -> bool:
        if np.isfinite(self._sample()).any():
            return True
        for _, window in self.src.block_windows(1):  # decimated sample may miss small valid areas
            if np.isfinite(self._mask(self._read(window=window))).any():
                return True
        return False

    def _scale(self, input_scale: str, metadata: ModelMetadata) -> str:
        if input_scale not in INPUT_SCALES:
            raise InputError(f"input scale must be one of {INPUT_SCALES}, not {input_scale!r}")
        if not self._has_valid_pixel():
            raise InputError(
                f"{Path(self.src.name).name} has no valid pixel in the chosen bands (all nodata/NaN)"
            )
        if not self.is_sar:
            return "as is"
        # the dB statistics of a model of dB bands (sar_scale uses them for bands other than VV and VH)
        stats = (metadata.mean, metadata.std) if metadata.input_kind == "sar_db" else (None, None)
        return sar_scale(self._sample(), input_scale, metadata.raster_bands, *stats)

    def _db(self, window: Window) -> np.ndarray:
        data = self._mask(self._read(window=window))
        return to_db(data, self.scale) if self.is_sar else data

    def gather_context(self, is_canceled: Callable[[], bool] | None = None) -> None:
        """First streaming pass of a model of scene features: histograms of the whole raster in strips of
        whole rows (bounded memory), each read with ``SPECKLE_HALO`` rows above and below for the speckle
        filter; ``is_canceled`` is asked between strips. Measured 6.7 s per 100 MP on 2 cores (about 30 s
        for a full Sentinel-1 scene)."""
        if not self.reads_scene_features:
            return
        src = self.src
        context = SceneContext.empty("db", has_vh=True)  # a one-band raster is refused (VV_ALONE_REFUSED)
        strip = max(SPECKLE_HALO, CONTEXT_STRIP_PIXELS // src.width)
        for top in range(0, src.height, strip):
            if is_canceled and is_canceled():
                raise Canceled(CANCELED)
            bottom = min(top + strip, src.height)
            start, stop = max(0, top - SPECKLE_HALO), min(src.height, bottom + SPECKLE_HALO)
            window = Window(0, start, src.width, stop - start)
            context.add(self._db(window), rows=slice(top - start, bottom - start))
        self.context = context

    def read(self, row: int, col: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (C, height, width) float32 window (mirrored beyond the raster) and its valid mask.

        Scene features are computed on the window plus a ``SPECKLE_HALO`` margin (where the raster has one),
        so every tile's speckle-filtered channel equals the whole raster's."""
        src = self.src
        rows, cols = min(height, src.height - row), min(width, src.width - col)
        if self.context is None:
            data = self._db(Window(col, row, cols, rows))
        else:
            top, left = max(0, row - SPECKLE_HALO), max(0, col - SPECKLE_HALO)
            bottom = min(src.height, row + rows + SPECKLE_HALO)
            right = min(src.width, col + cols + SPECKLE_HALO)
            window = Window(left, top, right - left, bottom - top)
            features = water_features(self._db(window), self.context)
            data = features[:, row - top : row - top + rows, col - left : col - left + cols]
        valid = np.zeros((height, width), bool)
        valid[:rows, :cols] = np.isfinite(data).all(axis=0)
        normalised = np.where(valid[:rows, :cols], (data - self.mean) / self.std, 0.0).astype(np.float32)
        padding = ((0, 0), (0, height - rows), (0, width - cols))
        return np.pad(normalised, padding, mode="reflect"), valid


class _Writer:
    """Class (and confidence) GeoTIFFs under temporary names; ``commit`` moves them into place."""

    def __init__(self, src: rasterio.io.DatasetReader, output: Path, confidence: Path | None, metadata):
        self.final = [output] + ([confidence] if confidence else [])
        self.temporary = [partial_path(p) for p in self.final]
        profile = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "count": 1,
            "dtype": "uint8",
            "crs": src.crs,
            "transform": src.transform,
            "nodata": IGNORE_INDEX,
            "tiled": True,
            "blockxsize": OUTPUT_BLOCK,
            "blockysize": OUTPUT_BLOCK,
            "compress": "deflate",
            "BIGTIFF": "IF_SAFER",
        }
        self.datasets = []
        try:
            for path in self.temporary:
                self.datasets.append(rasterio.open(path, "w", **profile))
        except (rasterio.errors.RasterioIOError, OSError) as error:
            self.abort()
            raise InputError(f"cannot write the output {self.final[0]}: {error}") from None
        names = [c.name for c in metadata.classes]
        classes = self.datasets[0]
        classes.write_colormap(1, colormap(metadata.classes))
        classes.set_band_description(1, "class")
        classes.update_tags(  # the raster's bands the model read (the water model's features are its own)
            CLASS_NAMES=json.dumps(names),
            MODEL_ROLE=metadata.role,
            MODEL_BANDS=",".join(metadata.raster_bands),
        )
        if confidence:
            self.datasets[1].set_band_description(1, "confidence (max class probability, percent)")

    def write(self, row: int, col: int, classes: np.ndarray, confidence: np.ndarray) -> None:
        window = Window(col, row, classes.shape[1], classes.shape[0])
        self.datasets[0].write(classes, 1, window=window)
        if len(self.datasets) > 1:
            self.datasets[1].write(confidence, 1, window=window)

    def commit(self) -> None:
        """Move the finished files into place. The ``.aux.xml`` beside an output that is replaced described
        the old file (statistics, histogram): it goes too, or GDAL and QGIS read the old statistics for the
        new map (native algorithms remove it likewise); one GDAL wrote for the new file moves with it."""
        for dataset in self.datasets:
            dataset.close()
        for temporary, final in zip(self.temporary, self.final, strict=True):
            os.replace(temporary, final)
            sidecar, stale = Path(f"{temporary}.aux.xml"), Path(f"{final}.aux.xml")
            if sidecar.exists():
                os.replace(sidecar, stale)
            else:
                stale.unlink(missing_ok=True)

    def abort(self) -> None:
        """Close and remove the temporary files; a failing clean-up (read-only or vanished folder) must not
        hide the error that caused it."""
        for dataset in self.datasets:
            with contextlib.suppress(Exception):
                dataset.close()
        for path in self.temporary:
            for leftover in (path, Path(f"{path}.aux.xml")):
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)


def _load(
    model: str | Path | tuple[HFDNet | HFDEnsemble, ModelMetadata], device: torch.device
) -> tuple[HFDNet | HFDEnsemble, ModelMetadata]:
    """The network prepared for inference (``models.inference``); a network passed in is copied first, so
    the caller's (which may go on training) is left as it was."""
    network, metadata = load_model(model) if isinstance(model, str | Path) else model
    network = network if isinstance(model, str | Path) else copy.deepcopy(network)
    return prepare_for_inference(network, device), metadata


def segment_raster(
    input_path: str | Path,
    output_path: str | Path,
    model: str | Path | tuple[HFDNet | HFDEnsemble, ModelMetadata],
    *,
    bands: list[int] | None = None,
    tile_size: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int | None = None,
    device: str = "auto",
    input_scale: str = "auto",
    confidence_path: str | Path | None = None,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> SegmentResult:
    """Segment ``input_path`` into ``output_path`` (see the module docstring). InputError on bad input,
    Canceled when ``is_canceled`` says so; neither leaves a file behind."""
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    confidence_path = Path(confidence_path) if confidence_path else None
    _check_numbers(tile_size=tile_size, overlap=overlap, batch_size=batch_size)
    if not input_path.is_file():
        raise InputError(f"input raster not found: {input_path}")
    for name, path in (("the output", output_path), ("the confidence output", confidence_path)):
        if path is not None and path.suffix.lower().removeprefix(".") not in OUTPUT_EXTENSIONS:
            raise InputError(f"{name} {path} is written as a GeoTIFF: give it the extension .tif")
    check_outputs(
        {
            "the output": output_path,
            "the output's style (.qml)": output_path.with_suffix(".qml"),
            "the confidence output": confidence_path,
            "the confidence style (.qml)": confidence_path.with_suffix(".qml") if confidence_path else None,
        },
        {"the input raster": input_path, "the model file": model if isinstance(model, str | Path) else None},
    )
    for folder in {output_path.parent, (confidence_path or output_path).parent}:
        remove_stale(folder, ".*.partial-*")
    torch_device = _resolve_device(device)
    network, metadata = _load(model, torch_device)
    warnings: list[str] = []
    with rasterio.Env(GDAL_CACHEMAX=block_cache_bytes(input_path)):
        source = _Input(input_path, metadata, bands, input_scale)
        warnings += fill_notes(source.impossible_fill, source.zero_fill)
        pixels = source.src.width * source.src.height
        try:
            source.gather_context(is_canceled)
            side = max(source.src.height, source.src.width)
            default_tile, _ = tiling_defaults(metadata, torch_device)
            tile = _round_up(max(SIZE_MULTIPLE, tile_size or default_tile), SIZE_MULTIPLE)
            if tile_size and tile != tile_size:
                warnings.append(
                    f"tile size {tile_size} changed to {tile}: tiles are multiples of {SIZE_MULTIPLE} "
                    f"pixels, at least {SIZE_MULTIPLE}"
                )
            tile = min(tile, _round_up(side, SIZE_MULTIPLE))
            # the default is cut without a word (on a GPU the water model's tiles are 128 px); one tile over
            # the raster: the overlap plays no part
            if overlap > tile // 2 and side > tile and overlap != DEFAULT_OVERLAP:
                warnings.append(f"overlap {overlap} cut to {tile // 2}: at most half the tile ({tile} px)")
            overlap = max(0, min(overlap, tile // 2))
            batch = batch_size or _batch_for(tile, torch_device)
            writer = _Writer(source.src, output_path, confidence_path, metadata)
            try:
                sweep = _Sweep(source, writer, network, metadata, tile, overlap, batch, torch_device)
                sweep.run(progress, is_canceled)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        finally:
            source.src.close()
    write_qml(output_path.with_suffix(".qml"), metadata.classes)
    if confidence_path:
        write_confidence_qml(confidence_path.with_suffix(".qml"), len(metadata.classes))
    counts = sweep.class_counts
    return SegmentResult(
        output_path=output_path,
        confidence_path=confidence_path,
        class_pixels={c.name: int(counts[c.id]) for c in metadata.classes},
        valid_pixels=int(counts[: len(metadata.classes)].sum()),
        pixels=pixels,
        tiles=sweep.tiles_done,
        seconds=time.perf_counter() - started,
        device=str(torch_device),
        input_scale=source.scale,
        bands=source.band_note,
        warnings=warnings,
        recipe_water_share=source.context.recipe_water_share() if source.context else None,
    )


def block_cache_bytes(path: Path) -> int:
    """GDAL's block cache for segmenting ``path``: two whole-width rows of its blocks (all bands), at least
    ``GDAL_CACHE_MIN_BYTES`` and at most ``GDAL_CACHE_MAX_BYTES``. The decimated sample and the scene-context
    pass read whole rows; with less cache than a row of blocks, each compressed block was decompressed again
    for every row read (a 24,576-pixel-wide DEFLATE raster in 512-pixel blocks, 96 MiB a row: its sample read
    10.7 s with 64 MiB, 1.1 s with 192 MiB; bench/README.md). Uncompressed rasters are read as fast either
    way."""
    try:
        with rasterio.open(path) as src:
            row = sum(
                src.width * height * np.dtype(dtype).itemsize
                for (height, _), dtype in zip(src.block_shapes, src.dtypes, strict=True)
            )
    except rasterio.errors.RasterioIOError:  # not a raster: _Input says so
        return GDAL_CACHE_MIN_BYTES
    return int(min(GDAL_CACHE_MAX_BYTES, max(GDAL_CACHE_MIN_BYTES, 2 * row)))


#: Tile size on CPU when none is given (at least the model's). Tiles of 256 overlapping by 64 compute each
#: pixel (256 / 192)^2 = 1.78 times, tiles of 512 (512 / 448)^2 = 1.31 times (by the default 96: 2.56 and
#: 1.51 times), and the bundled student's forward is as fast per pixel on either (bench/README.md). On a
#: mosaic of real chips, with the default overlap, its classes agree with one tile over the mosaic on 99.3 %
#: of the pixels (tests/test_fast_inference.py).
CPU_TILE_SIZE = 512
#: Tile pixels per batch by device: 8 tiles of 256 on CPU (2 of 512: memory per batch as before), 32 on CUDA.
BATCH_PIXELS = {"cpu": 8 * 256 * 256, "cuda": 32 * 256 * 256}


def _batch_for(tile: int, device: torch.device) -> int:
    return max(1, BATCH_PIXELS.get(device.type, BATCH_PIXELS["cpu"]) // tile**2)


def tiling_defaults(metadata: ModelMetadata, device: torch.device) -> tuple[int, int]:
    """(tile size, batch size) used when none is given: on CPU tiles of at least ``CPU_TILE_SIZE``, on other
    devices the model's tile size (larger tiles there are unmeasured); the batch holds ``BATCH_PIXELS``."""
    tile = max(metadata.tile_size, CPU_TILE_SIZE) if device.type == "cpu" else metadata.tile_size
    return tile, _batch_for(tile, device)


def _check_numbers(**values: int | None) -> None:
    """InputError for a tiling number outside its range (the same ranges as the CLI and hfd:segment)."""
    ranges = {"tile_size": TILE_SIZE_RANGE, "overlap": OVERLAP_RANGE, "batch_size": BATCH_SIZE_RANGE}
    for name, value in values.items():
        low, high = ranges[name]
        if value is not None and not low <= value <= high:
            raise InputError(f"{name.replace('_', ' ')} {value} is outside {low}..{high}")


def _read_ahead(read: Callable, windows: list[tuple]) -> Iterator:
    """``read(*window)`` for each window in order, the next one read in a thread while the caller works on the
    current one (GDAL releases the GIL): at most two windows in memory."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hfd-read") as pool:
        ahead = pool.submit(read, *windows[0]) if windows else None
        for following in windows[1:]:
            current, ahead = ahead, pool.submit(read, *following)
            yield current.result()
        if ahead is not None:
            yield ahead.result()


class _Sweep:
    """Stripe-by-stripe, row-by-row accumulation of blended probabilities (see the module docstring)."""

    def __init__(self, source: _Input, writer: _Writer, network, metadata, tile, overlap, batch, device):
        self.source, self.writer, self.network = source, writer, network
        self.tile, self.overlap, self.stride, self.batch, self.device = (
            tile,
            overlap,
            tile - overlap,
            batch,
            device,
        )
        self.num_classes = metadata.config.num_classes
        self.height, self.width = source.src.height, source.src.width
        self.memory_format = inference_memory_format(device)
        self.window = ramp_window(tile, overlap)
        self.weights = torch.from_numpy(self.window).to(device)
        self.tile_rows = self._count(self.height)
        self.tile_cols = self._count(self.width)
        self.tiles_per_stripe = self._tiles_per_stripe()
        self.total_tiles = self.tile_rows * self.tile_cols
        self.tiles_done = 0
        self.class_counts = np.zeros(256, np.int64)
        # overlap strip carried from one stripe to the next: (classes + 1, rows, overlap)
        self.carry = np.zeros((self.num_classes + 1, self.height, overlap), np.float32)

    def _count(self, size: int) -> int:
        return 1 if size <= self.tile else math.ceil((size - self.tile) / self.stride) + 1

    def _tiles_per_stripe(self) -> int:
        aligned = math.lcm(self.stride, OUTPUT_BLOCK) // self.stride  # stripe edges on output block edges
        if aligned * self.stride <= 2 * STRIPE_TARGET_WIDTH:
            return aligned * max(1, STRIPE_TARGET_WIDTH // (aligned * self.stride))
        return max(1, STRIPE_TARGET_WIDTH // self.stride)

    @torch.no_grad()
    def _predict(self, tiles: list[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(np.stack(tiles)).to(self.device, memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
            logits = self.network(x)
        return torch.softmax(logits.float(), dim=1) * self.weights

    def _span(self, first_col: int, last_col: int) -> int:
        """Columns covered by the tiles of a stripe."""
        return (last_col - 1 - first_col) * self.stride + self.tile

    def run(self, progress, is_canceled) -> None:
        stripes = [
            (first, min(first + self.tiles_per_stripe, self.tile_cols))
            for first in range(0, self.tile_cols, self.tiles_per_stripe)
        ]
        windows = [
            (row * self.stride, first * self.stride, self.tile, self._span(first, last))
            for first, last in stripes
            for row in range(self.tile_rows)
        ]
        reads = _read_ahead(self.source.read, windows)
        try:
            for first_col, last_col in stripes:
                self._stripe(first_col, last_col, reads, progress, is_canceled)
        finally:
            reads.close()
        if is_canceled and is_canceled():  # asked before each batch: this hears a cancel during the last one
            raise Canceled(CANCELED)
        if progress:
            progress(100.0)

    def _stripe(self, first_col: int, last_col: int, reads, progress, is_canceled) -> None:
        t, s, ov = self.tile, self.stride, self.overlap
        x0 = first_col * s
        is_last_stripe = last_col == self.tile_cols
        # columns this stripe finalises: up to where the next stripe's first tile starts (or the raster edge)
        x_final = self.width if is_last_stripe else last_col * s
        span = self._span(first_col, last_col)
        accumulator = np.zeros((self.num_classes + 1, t, span), np.float32)
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        pending_rows, written_to = 0, 0
        for tile_row in range(self.tile_rows):
            y0 = tile_row * s
            inputs, valid = next(reads)
            origins = [(c - first_col) * s for c in range(first_col, last_col)]
            work = [o for o in origins if valid[:, o : o + t].any()]
            for start in range(0, len(work), self.batch):
                if is_canceled and is_canceled():
                    raise Canceled(CANCELED)
                chunk = work[start : start + self.batch]
                weighted = self._predict([inputs[:, :, o : o + t] for o in chunk]).cpu().numpy()
                for o, probabilities in zip(chunk, weighted, strict=True):
                    accumulator[: self.num_classes, :, o : o + t] += probabilities
                    accumulator[self.num_classes, :, o : o + t] += self.window
                # per batch: the first figure after seconds, not after a whole tile row of a wide stripe
                self._report(progress, self.tiles_done + start + len(chunk))
            self.tiles_done += len(origins)
            self._report(progress, self.tiles_done)
            is_last_row = tile_row == self.tile_rows - 1
            rows = (self.height - y0) if is_last_row else s
            rows = max(0, min(rows, t, self.height - y0))
            final = accumulator[:, :rows].copy()
            if x0 > 0:  # blend in the overlap strip carried from the previous stripe
                final[:, :, :ov] += self.carry[:, y0 : y0 + rows]
            if not is_last_stripe:
                self.carry[:, y0 : y0 + rows] = final[:, :, x_final - x0 : x_final - x0 + ov]
            classes, confidence = self._classes(final[:, :, : x_final - x0], valid[:rows, : x_final - x0])
            pending.append((classes, confidence))
            pending_rows += rows
            if pending_rows >= OUTPUT_BLOCK or is_last_row:
                keep = pending_rows if is_last_row else pending_rows // OUTPUT_BLOCK * OUTPUT_BLOCK
                block_classes = np.concatenate([p[0] for p in pending])
                block_confidence = np.concatenate([p[1] for p in pending])
                self.writer.write(written_to, x0, block_classes[:keep], block_confidence[:keep])
                written_to += keep
                pending = [(block_classes[keep:], block_confidence[keep:])]
                pending_rows -= keep
            accumulator = np.roll(accumulator, -s, axis=1)
            accumulator[:, t - s :] = 0.0

    def _report(self, progress: Callable[[float], None] | None, tiles: int) -> None:
        if progress:
            progress(min(99.9, 100.0 * tiles / self.total_tiles))

    def _classes(self, accumulated: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = accumulated[: self.num_classes] / np.maximum(accumulated[self.num_classes], 1e-12)
        classes = probabilities.argmax(axis=0).astype(np.uint8)
        confidence = np.round(probabilities.max(axis=0) * 100).astype(np.uint8)
        classes[~valid] = IGNORE_INDEX
        confidence[~valid] = IGNORE_INDEX
        self.class_counts += np.bincount(classes.ravel(), minlength=256)
        return classes, confidence

"""segment_raster (hfd_core.infer.tiled) on small rasters written here, shared samples and the bundled model.

Two hand-made models make the checks meaningful (a random network's classes are near-ties everywhere, so any
change of tiling flips them and an agreement figure would measure noise):
* ``follow_input_model``: a real HFDNet, saved with save_model, whose weights make its logits follow the VV
  band (three classes by VV level), smoothed by a 3x3 box filter so that zero padding at tile edges does
  change the logits there, as in any CNN: blending must hide those edges;
* ``PointwiseNet``: logits are an elementwise function of each pixel, so every tiling must give exactly the
  same result up to float rounding; it checks the stripe/row/carry bookkeeping bit for bit.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from scipy.ndimage import binary_dilation
from skimage.transform import resize
from torch import nn

from hfd_core import IGNORE_INDEX
from hfd_core.errors import Canceled, InputError, ModelFileError
from hfd_core.infer import tiled
from hfd_core.infer.tiled import ramp_window, segment_raster
from hfd_core.modelfile import ClassInfo, ModelMetadata, load_model, save_model
from hfd_core.models import HFDNet, HFDNetConfig

REPO = Path(__file__).resolve().parents[1]
CLASSES = [ClassInfo(0, "low", "#0000ff"), ClassInfo(1, "middle", "#00ff00"), ClassInfo(2, "high", "#ff0000")]
MEAN_DB, STD_DB = -15.0, 5.0
CRS, TRANSFORM = "EPSG:32633", from_origin(600000.0, 5100000.0, 10.0, 10.0)


def metadata(config: HFDNetConfig) -> ModelMetadata:
    return ModelMetadata(
        "student",
        config,
        ["VV", "VH"],
        "sar_db",
        [MEAN_DB, MEAN_DB - 7],
        [STD_DB, STD_DB],
        CLASSES,
        tile_size=64,
    )


def expected_classes(vv_db: np.ndarray) -> np.ndarray:
    """Classes both hand-made models give far from ties: VV below the mean, up to 1.5 std above, higher."""
    return np.digitize(vv_db, [MEAN_DB, MEAN_DB + 1.5 * STD_DB]).astype(np.uint8)


def follow_input_model() -> HFDNet:
    """HFDNet(2, 3, widths=(4, 8, 8, 8), align_dim=8) with logits 4*(relu(-v), relu(v), 3*relu(v-1)) of the
    box-filtered normalised VV ``v``: the stem keeps VV through channels 0-2 (the third shifted by -1 in its
    batch norm), the second stem convolution is a 3x3 box filter, the finest lateral, smoothing and fusion
    pass those channels through and every coarser level is zero."""
    torch.manual_seed(0)
    network = HFDNet(HFDNetConfig(2, 3, widths=(4, 8, 8, 8), align_dim=8)).eval()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.zero_()
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
        stem, box = network.encoder.stages[0]
        stem[0].weight[:3, 0, 1, 1] = torch.tensor([-1.0, 1.0, 1.0])
        stem[1].bias[2] = -1.0
        alignment = network.alignment
        for channel in range(3):
            box[0].weight[channel, channel] = 1.0 / 9
            alignment.lateral[0][0].weight[channel, channel] = 1.0
            alignment.smooth[0][1][0].weight[channel, channel] = 1.0
            alignment.fuse[0].weight[channel, channel] = 1.0
        alignment.smooth[0][0].weight[:, 0, 1, 1] = 1.0
        network.classifier.weight[:, :3, 0, 0] = 4.0 * torch.diag(torch.tensor([1.0, 1.0, 3.0]))
    return network


class PointwiseNet(nn.Module):
    """Logits 4*(-v, 0, v-1.5) of each pixel's normalised VV ``v`` alone (no spatial context at all)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, :1]
        return 4.0 * torch.cat([-v, torch.zeros_like(v), v - 1.5], dim=1)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    network = follow_input_model()
    path = tmp_path_factory.mktemp("model") / "follow_input.pt"
    save_model(path, network, metadata(network.config))
    return path


@pytest.fixture
def pointwise():
    return PointwiseNet(), metadata(HFDNetConfig(2, 3, widths=(4, 8, 8, 8), align_dim=8))


def write(path: Path, array: np.ndarray, nodata: float | None = None, **profile) -> Path:
    array = np.asarray(array, np.float32)
    with rasterio.open(
        path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1], count=array.shape[0],
        dtype="float32", crs=CRS, transform=TRANSFORM, nodata=nodata, **profile,
    ) as dst:  # fmt: skip
        dst.write(array)
    return path


def smooth_sar(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """(2, rows, cols) dB values varying over ~8 pixels, spanning the three classes; VH 7 dB below VV, as on
    real ground (a VH brighter than VV reads as swapped bands)."""
    coarse = np.random.default_rng(seed).normal(MEAN_DB, 6.0, (2, rows // 8 + 2, cols // 8 + 2))
    coarse[1] -= 7.0
    return resize(coarse, (2, rows, cols), order=1).astype(np.float32)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_grid_classes_style_and_confidence(tmp_path, model_file):
    sar = smooth_sar(70, 90)
    sar[:, 5:9, 5:9] = np.nan
    write(tmp_path / "in.tif", sar)
    result = segment_raster(
        tmp_path / "in.tif",
        tmp_path / "out.tif",
        model_file,
        tile_size=32,
        confidence_path=tmp_path / "c.tif",
    )
    with rasterio.open(tmp_path / "in.tif") as src, rasterio.open(tmp_path / "out.tif") as out:
        assert out.crs == src.crs and out.transform == src.transform
        assert (out.width, out.height, out.count) == (src.width, src.height, 1)
        assert out.dtypes[0] == "uint8" and out.nodata == IGNORE_INDEX
        assert out.profile["tiled"] and out.compression.value.lower() == "deflate"
        assert json.loads(out.tags()["CLASS_NAMES"]) == ["low", "middle", "high"]
        assert {k: out.colormap(1)[k] for k in range(3)} == {
            0: (0, 0, 255, 255),
            1: (0, 255, 0, 255),
            2: (255, 0, 0, 255),
        }
        classes = out.read(1)
    valid = np.isfinite(sar).all(axis=0)
    assert set(np.unique(classes[valid])) == {0, 1, 2} and (classes[~valid] == IGNORE_INDEX).all()
    assert result.valid_pixels == valid.sum() and sum(result.class_pixels.values()) == valid.sum()
    qml = (tmp_path / "out.qml").read_text()
    assert 'type="paletted"' in qml and all(f'label="{c.name}"' in qml for c in CLASSES)
    with rasterio.open(tmp_path / "c.tif") as conf:
        assert conf.dtypes[0] == "uint8" and conf.nodata == IGNORE_INDEX and conf.transform == TRANSFORM
        confidence = conf.read(1)
    assert (confidence[~valid] == IGNORE_INDEX).all()
    assert confidence[valid].min() >= 100 // len(CLASSES) and confidence[valid].max() <= 100


def test_nan_and_nodata_pixels_become_nodata_and_leave_neighbours_alone(tmp_path, model_file, pointwise):
    sar = smooth_sar(64, 80)
    holes = sar.copy()
    holes[:, 10:20, 30:42] = np.nan
    holes[1, 50, 60] = np.nan  # one band missing is enough
    holes[:, 40:43, :] = -9999.0
    invalid = ~np.isfinite(holes).all(axis=0) | (holes[0] == -9999.0)
    write(tmp_path / "clean.tif", sar)
    write(tmp_path / "holes.tif", holes, nodata=-9999.0)
    for name, model in (("pointwise", pointwise), ("hfdnet", model_file)):
        clean = segment_raster(
            tmp_path / "clean.tif", tmp_path / f"{name}_c.tif", model, tile_size=32, overlap=8
        )
        segment_raster(tmp_path / "holes.tif", tmp_path / f"{name}_h.tif", model, tile_size=32, overlap=8)
        a, b = read(tmp_path / f"{name}_c.tif"), read(tmp_path / f"{name}_h.tif")
        assert clean.valid_pixels == a.size and (b[invalid] == IGNORE_INDEX).all()
        if name == "pointwise":
            assert (a[~invalid] == b[~invalid]).all()
        else:  # a 3x3 box filter at stride 2, upsampled: a hole reaches a few pixels around it
            near = binary_dilation(invalid, np.ones((3, 3), bool), iterations=4)
            assert (a[~near] == b[~near]).all()


@pytest.mark.parametrize("shape", [(1, 1), (10, 13), (37, 70)])
def test_tiny_rasters_and_partial_edge_tiles(tmp_path, model_file, shape):
    write(tmp_path / "in.tif", np.full((2, *shape), -5.0))
    result = segment_raster(tmp_path / "in.tif", tmp_path / "out.tif", model_file, tile_size=32, overlap=8)
    classes = read(tmp_path / "out.tif")
    assert classes.shape == shape and (classes == 2).all() and result.valid_pixels == classes.size


def test_stripes_and_rows_agree_with_one_tile(tmp_path, model_file, monkeypatch):
    """Tile 32 / overlap 8 in stripes of two tile columns (4 stripes x 4 tile rows) against one 176-pixel
    tile: zero padding changes the HFDNet's logits at every small tile's edges, the blending must hide it."""
    sar = smooth_sar(100, 170)
    write(tmp_path / "in.tif", sar)
    one = segment_raster(tmp_path / "in.tif", tmp_path / "one.tif", model_file, tile_size=176, overlap=0)
    monkeypatch.setattr(tiled, "STRIPE_TARGET_WIDTH", 64)
    many = segment_raster(tmp_path / "in.tif", tmp_path / "many.tif", model_file, tile_size=32, overlap=8)
    assert one.tiles == 1 and many.tiles == 4 * 7
    a, b = read(tmp_path / "one.tif"), read(tmp_path / "many.tif")
    assert (a == b).mean() >= 0.99
    assert (a == expected_classes(sar[0])).mean() >= 0.85  # VV levels, blurred by the box filter and stride 2


@pytest.mark.parametrize("overlap", [0, 8])
def test_stripes_equal_one_tile_exactly_on_a_pointwise_model(tmp_path, pointwise, monkeypatch, overlap):
    """Several stripes (aligned to output blocks with overlap 0) and tile rows; with no spatial context in the
    model the only difference allowed is float rounding of the blend (confidence +-1 %)."""
    sar = smooth_sar(70, 600)
    sar[:, 30:34, 250:262] = np.nan  # a hole across a stripe edge
    write(tmp_path / "in.tif", sar)
    one = segment_raster(
        tmp_path / "in.tif", tmp_path / "one.tif", pointwise, tile_size=608, overlap=0,
        confidence_path=tmp_path / "one_c.tif",
    )  # fmt: skip
    monkeypatch.setattr(tiled, "STRIPE_TARGET_WIDTH", 128)
    many = segment_raster(
        tmp_path / "in.tif", tmp_path / "many.tif", pointwise, tile_size=32, overlap=overlap, batch_size=3,
        confidence_path=tmp_path / "many_c.tif",
    )  # fmt: skip
    assert one.tiles == 1 and many.tiles > 40
    assert (read(tmp_path / "one.tif") == read(tmp_path / "many.tif")).all()
    difference = np.abs(read(tmp_path / "one_c.tif").astype(int) - read(tmp_path / "many_c.tif"))
    assert difference.max() <= (0 if overlap == 0 else 1)
    assert (
        read(tmp_path / "one.tif") == np.where(np.isfinite(sar).all(0), expected_classes(sar[0]), 255)
    ).all()


def test_ramp_window_weights_are_positive_symmetric_and_flat_inside():
    window = tiled.ramp_window(32, 8)
    assert window.shape == (32, 32) and window.min() > 0
    assert window[0, 15] == pytest.approx(max((1 / 9) ** tiled.RAMP_POWER, tiled.RAMP_FLOOR))
    assert (window[8:24, 8:24] == 1).all() and np.array_equal(window, window.T)
    assert np.array_equal(window, window[::-1, ::-1]) and (np.diff(window[15, :9]) > 0).all()
    assert (tiled.ramp_window(16, 0) == 1).all()
    long_ramp = tiled.ramp_window(1024, 512)
    assert long_ramp.min() == pytest.approx(tiled.RAMP_FLOOR**2)  # does not underflow


def test_linear_power_input_gives_the_db_classes(tmp_path, model_file):
    sar = smooth_sar(64, 64)
    write(tmp_path / "db.tif", sar)
    write(tmp_path / "linear.tif", 10 ** (sar / 10))
    db = segment_raster(tmp_path / "db.tif", tmp_path / "a.tif", model_file, tile_size=32)
    linear = segment_raster(tmp_path / "linear.tif", tmp_path / "b.tif", model_file, tile_size=32)
    assert (db.input_scale, linear.input_scale) == ("db", "linear")
    assert (read(tmp_path / "a.tif") == read(tmp_path / "b.tif")).mean() >= 0.999
    forced = segment_raster(tmp_path / "linear.tif", tmp_path / "c.tif", model_file, input_scale="linear")
    assert forced.input_scale == "linear"


def test_reads_are_bounded_by_tile_rows_times_stripe_width(tmp_path, model_file, monkeypatch):
    write(tmp_path / "in.tif", smooth_sar(96, 1100), tiled=True, blockxsize=64, blockysize=64)
    windows, whole = [], []
    original = rasterio.io.DatasetReader.read

    def recording_read(self, *args, **kwargs):
        data = original(self, *args, **kwargs)
        if kwargs.get("window") is not None:
            windows.append((kwargs["window"].height, kwargs["window"].width))
        else:
            whole.append(data.shape[-2:])
        return data

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", recording_read)
    monkeypatch.setattr(tiled, "STRIPE_TARGET_WIDTH", 128)
    segment_raster(tmp_path / "in.tif", tmp_path / "out.tif", model_file, tile_size=32, overlap=0)
    stripe_width = 8 * 32  # block-aligned stripes: lcm(32, 256) / 32 tile columns
    assert (
        len(windows) >= 3 * 5
        and max(h for h, _ in windows) <= 32
        and max(w for _, w in windows) <= stripe_width
    )
    # the one read without a window is the decimated scale/validity sample, never the full raster
    assert len(whole) == 1 and whole[0][0] * whole[0][1] <= tiled.SAMPLE_SIDE**2 and whole[0][1] < 1100


@pytest.mark.parametrize(
    ("cols", "block", "cache"),
    [(64, 32, tiled.GDAL_CACHE_MIN_BYTES), (8192, 1024, 2 * 8192 * 1024 * 2 * 4)],  # two rows of blocks
)
def test_gdal_block_cache_holds_rows_of_blocks_while_segmenting_and_is_restored(
    tmp_path, model_file, cols, block, cache
):
    """rasterio.Env takes an integer GDAL_CACHEMAX as bytes: a cache of 64 bytes made the decimated first read
    of a DEFLATE-tiled raster 36 times slower, and a cache smaller than a whole-width row of blocks 10 times
    on a wide one (bench/README.md)."""
    from osgeo import gdal

    profile = {"tiled": True, "blockxsize": block, "blockysize": block, "compress": "deflate"}
    write(tmp_path / "in.tif", smooth_sar(32, cols), **profile)
    before, during = gdal.GetCacheMax(), []
    segment_raster(
        tmp_path / "in.tif", tmp_path / "out.tif", model_file, tile_size=32,
        progress=lambda _: during.append(gdal.GetCacheMax()),
    )  # fmt: skip
    assert during and set(during) == {cache} and gdal.GetCacheMax() == before


def assert_refused(tmp_path, error, message, input_path, model, **options):
    """``error`` matching ``message``, and the output folder (tmp_path/out) left empty."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    with pytest.raises(error, match=message):
        segment_raster(input_path, out / "x.tif", model, **options)
    assert list(out.iterdir()) == []


def test_bad_inputs_are_refused_clearly_and_leave_nothing(tmp_path, model_file):
    (tmp_path / "text.tif").write_text("this is not a raster\n")
    write(tmp_path / "one_band.tif", smooth_sar(8, 8)[:1])
    write(tmp_path / "nan.tif", np.full((2, 20, 20), np.nan))
    write(tmp_path / "nodata.tif", np.full((2, 20, 20), -9999.0), nodata=-9999.0)
    write(tmp_path / "counts.tif", np.full((2, 8, 8), 3000.0))
    write(tmp_path / "ok.tif", smooth_sar(16, 16))
    assert_refused(tmp_path, InputError, "not a raster", tmp_path / "text.tif", model_file)
    assert_refused(tmp_path, InputError, "not found", tmp_path / "missing.tif", model_file)
    assert_refused(tmp_path, InputError, "has 1 band", tmp_path / "one_band.tif", model_file)
    assert_refused(tmp_path, InputError, "has 2 band", tmp_path / "ok.tif", model_file, bands=[1, 3])
    assert_refused(tmp_path, InputError, "has 2 band", tmp_path / "ok.tif", model_file, bands=[0, 1])
    assert_refused(tmp_path, InputError, "expects 2 bands", tmp_path / "ok.tif", model_file, bands=[1])
    assert_refused(tmp_path, InputError, "it has no band 3$", tmp_path / "ok.tif", model_file, bands=[1, 3])
    assert_refused(tmp_path, InputError, "no valid pixel", tmp_path / "nan.tif", model_file)
    assert_refused(tmp_path, InputError, "no valid pixel", tmp_path / "nodata.tif", model_file)
    assert_refused(
        tmp_path, InputError, "not Sentinel-1", tmp_path / "counts.tif", model_file, input_scale="db"
    )
    assert_refused(
        tmp_path, InputError, "input scale", tmp_path / "ok.tif", model_file, input_scale="decibels"
    )
    if not torch.cuda.is_available():
        assert_refused(tmp_path, InputError, "no CUDA", tmp_path / "ok.tif", model_file, device="cuda")


def test_all_nan_sentinel1_chip_is_refused(tmp_path, model_file, shared_data):
    chip = shared_data / "sen1floods11" / "Paraguay_34417_S1Hand.tif"  # a Sen1Floods11 chip with no data
    assert_refused(tmp_path, InputError, "no valid pixel", chip, model_file)


def test_bad_model_files_are_refused(tmp_path):
    write(tmp_path / "ok.tif", smooth_sar(16, 16))
    (tmp_path / "zeros.pt").write_bytes(b"\x00" * 100)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    for name, message in (
        ("zeros.pt", "not a readable"),
        ("other.pt", "not an HFD-Net"),
        ("no.pt", "not found"),
    ):
        assert_refused(tmp_path, ModelFileError, message, tmp_path / "ok.tif", tmp_path / name)


def test_unwritable_output_is_refused(tmp_path, model_file):
    write(tmp_path / "ok.tif", smooth_sar(16, 16))
    (tmp_path / "file").write_text("a regular file can never be a folder")
    with pytest.raises(InputError, match="output"):
        segment_raster(tmp_path / "ok.tif", tmp_path / "file" / "x.tif", model_file)
    with pytest.raises(InputError, match="output"):
        segment_raster(tmp_path / "ok.tif", tmp_path / "no_such_folder" / "x.tif", model_file)


def test_read_only_output_folder_is_refused(tmp_path, model_file):
    write(tmp_path / "ok.tif", smooth_sar(16, 16))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable (see test_unwritable_output)")
        with pytest.raises(InputError, match="cannot write the output"):
            segment_raster(tmp_path / "ok.tif", locked / "x.tif", model_file)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(stat.S_IRWXU)


def test_cancel_mid_run_leaves_no_output_or_temporary_file(tmp_path, model_file):
    write(tmp_path / "in.tif", smooth_sar(128, 128))
    calls = []

    def cancel_on_sixth_call() -> bool:
        calls.append(1)
        return len(calls) >= 6

    assert_refused(
        tmp_path, Canceled, "cancel", tmp_path / "in.tif", model_file, tile_size=32, overlap=0, batch_size=1,
        confidence_path=tmp_path / "out" / "c.tif", is_canceled=cancel_on_sixth_call,
    )  # fmt: skip
    assert len(calls) == 6


def test_cancel_during_the_last_batch_still_writes_nothing(tmp_path, model_file):
    """Cancel was asked before each batch only: a Ctrl-C during the last batch (a fifth of a 2000 x 2000 px
    run) was caught, then the output was written in full and the run ended well."""
    write(tmp_path / "in.tif", smooth_sar(64, 64))
    progress: list[float] = []
    assert_refused(
        tmp_path, Canceled, "cancel", tmp_path / "in.tif", model_file, tile_size=32, overlap=0,
        progress=progress.append, is_canceled=lambda: bool(progress) and progress[-1] > 99,
    )  # fmt: skip


def test_progress_is_monotone_and_ends_at_100(tmp_path, model_file):
    write(tmp_path / "in.tif", smooth_sar(80, 100))
    seen = []
    result = segment_raster(
        tmp_path / "in.tif", tmp_path / "out.tif", model_file, tile_size=32, overlap=8, progress=seen.append
    )
    assert len(seen) > result.tiles // 5 and seen == sorted(seen) and seen[-1] == 100.0 and seen[0] > 0


def test_progress_comes_after_each_batch_not_each_row(tmp_path, model_file):
    """Per tile row, a 3072-pixel-wide raster showed no figure until an eighth of its tiles were done (6 s in
    the desktop, a busy bar before)."""
    write(tmp_path / "in.tif", smooth_sar(32, 320))
    seen = []
    segment_raster(
        tmp_path / "in.tif", tmp_path / "out.tif", model_file, tile_size=32, overlap=0, batch_size=2,
        progress=seen.append,
    )  # fmt: skip
    assert seen[:5] == [20.0, 40.0, 60.0, 80.0, 99.9] and seen[-1] == 100.0  # one row of 10 tiles


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hfd_core", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_segment_and_preview_commands(tmp_path, model_file):
    write(tmp_path / "in.tif", smooth_sar(40, 50))
    out = tmp_path / "out.tif"
    done = run_cli(
        "segment", str(tmp_path / "in.tif"), str(out), "--model", str(model_file), "--tile-size", "32",
        "--bands", "1,2", "--confidence", str(tmp_path / "c.tif"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "MP" in done.stdout and "100.0%" in done.stderr
    assert read(out).shape == (40, 50) and (tmp_path / "out.qml").is_file() and (tmp_path / "c.tif").is_file()
    done = run_cli("preview", str(out), str(tmp_path / "p.png"), "--input", str(tmp_path / "in.tif"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_segment_command_reports_bad_input(tmp_path, model_file):
    (tmp_path / "text.tif").write_text("not a raster")
    done = run_cli(
        "segment", str(tmp_path / "text.tif"), str(tmp_path / "out.tif"), "--model", str(model_file)
    )
    assert done.returncode != 0 and "not a raster" in done.stderr
    assert not (tmp_path / "out.tif").exists()


BUNDLED_STUDENT = REPO / "resources" / "models" / "student.pt"
needs_bundled_student = pytest.mark.skipif(
    not BUNDLED_STUDENT.is_file(), reason="bundled student not built (make train-bundled)"
)


@needs_bundled_student
def test_segment_command_without_model_uses_the_bundled_student(tmp_path):
    """As hfd:segment without MODEL: the bundled student, whose class names land in the style."""
    out = tmp_path / "out.tif"
    done = run_cli("segment", str(REPO / "resources" / "samples" / "s1_demo_vv_vh_db.tif"), str(out))
    assert done.returncode == 0, done.stderr
    names = [c.name for c in load_model(BUNDLED_STUDENT)[1].classes]
    assert all(f'label="{name}"' in out.with_suffix(".qml").read_text() for name in names)
    assert read(out).max() < len(names)


@pytest.fixture(scope="module")
def bundled_runs(shared_data, tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A real Sentinel-1 chip and the bundled student's classes on it: one 512-pixel tile; 128-pixel tiles
    overlapping by 32 (read in place, outputs in a temporary folder)."""
    chip = shared_data / "sen1floods11" / "India_900498_S1Hand.tif"
    folder = tmp_path_factory.mktemp("bundled")
    one = segment_raster(chip, folder / "one.tif", BUNDLED_STUDENT, tile_size=512, overlap=0, device="cpu")
    many = segment_raster(chip, folder / "many.tif", BUNDLED_STUDENT, tile_size=128, overlap=32, device="cpu")
    assert one.tiles == 1 and many.tiles == 25 and one.input_scale == "db"
    return chip, read(folder / "one.tif"), read(folder / "many.tif")


@pytest.mark.slow
@needs_bundled_student
def test_bundled_student_small_tiles_are_the_blend_of_their_tiles(bundled_runs):
    """On a real Sentinel-1 chip, the streamed result equals a blend of the same 25 tiles computed here."""
    chip, _, many = bundled_runs
    network, meta = load_model(BUNDLED_STUDENT)
    with rasterio.open(chip) as src:
        sar = src.read().astype(np.float32)
    normalised = (sar - np.float32(meta.mean)[:, None, None]) / np.float32(meta.std)[:, None, None]
    padded = np.zeros((2, 608, 608), np.float32)
    padded[:, :512, :512] = np.nan_to_num(normalised)
    weights, total = ramp_window(128, 32), np.zeros((6, 608, 608), np.float32)
    with torch.no_grad():
        for y in range(0, 512 - 32, 96):
            for x in range(0, 512 - 32, 96):
                tile = torch.from_numpy(padded[None, :, y : y + 128, x : x + 128])
                total[:5, y : y + 128, x : x + 128] += torch.softmax(network(tile), 1)[0].numpy() * weights
                total[5, y : y + 128, x : x + 128] += weights
    reference = (total[:5, :512, :512] / total[5, :512, :512]).argmax(0)
    assert (many == reference).mean() >= 0.999


@pytest.mark.slow
@needs_bundled_student
@pytest.mark.xfail(
    strict=True,
    reason="with tiles of 128 overlapping by 32 the bundled student agrees on 90% of this chip (256/64: "
    "96%; model card, 2026-12-05): its receptive field (64-96 px) is wider than a quarter of such a tile, so "
    "uncertain pixels follow the context the tile gives them, inside tiles as well as at seams; the blend "
    "itself is checked exactly above, and with a half-tile overlap the 99% target is met "
    "(test_segment_algorithm). XPASS (a failure) means a model now meets it with small tiles too: drop this "
    "mark.",
)
def test_bundled_student_small_tiles_agree_with_one_tile(bundled_runs):
    _, one, many = bundled_runs
    assert (one != IGNORE_INDEX).all() and len(np.unique(one)) >= 2  # a map, so agreement is informative
    assert (one == many).mean() >= 0.99

"""The catalogue of issue 15: defects an independent bad-input probe found in hfd:segment, hfd:finetune,
hfd:evaluate and ``python -m hfd_core``. One test per numbered item, named after it, its docstring quoting the
defect; each failed before its fix. Item 13 (hfd:evaluate with a text REFERENCE_FIELD) belongs to the rework
of hfd:evaluate's reference parameters (issue 16) and is tested there.

Small GeoTIFFs are written here; the real broken Sen1Floods11 chips of ../shared/data are used where they are
the case (tests skip with the reason when that folder is absent).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from recording_feedback import Feedback

from hfd_core import IGNORE_INDEX
from hfd_core.errors import InputError, ModelFileError
from hfd_core.infer.tiled import segment_raster
from hfd_core.modelfile import load_model, read_metadata, save_model

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODELS = REPO / "resources" / "models"
CRS, TRANSFORM = "EPSG:32633", from_origin(600000.0, 5100000.0, 10.0, 10.0)


# --- helpers -----------------------------------------------------------------------------------------------


def write(path: Path, array: np.ndarray, descriptions: list[str] | None = None, **profile) -> Path:
    """(C, H, W) float32 GeoTIFF, optionally with band descriptions."""
    array = np.asarray(array, np.float32)
    options = dict(driver="GTiff", count=array.shape[0], height=array.shape[1], width=array.shape[2])
    options.update(dtype="float32", crs=CRS, transform=TRANSFORM, **profile)
    with rasterio.open(path, "w", **options) as dst:
        dst.write(array)
        for index, text in enumerate(descriptions or [], start=1):
            dst.set_band_description(index, text)
    return path


def sar_db(rows: int = 96, cols: int = 96, seed: int = 0) -> np.ndarray:
    """Smooth VV, VH in dB around typical land and water levels."""
    rng = np.random.default_rng(seed)
    vv = -12 + 6 * np.sin(np.arange(cols) / 9)[None, :] + rng.normal(0, 1.5, (rows, cols))
    return np.stack([vv, vv - 7 + rng.normal(0, 1, (rows, cols))]).astype(np.float32)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hfd_core", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def assert_one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    """Exit status 2, no traceback, the message on one line that names ``words``."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert all(word in lines[-1] for word in words), lines[-1]
    assert len([line for line in lines if "error" in line.lower()]) == 1, done.stderr


def processing(algorithm: str, parameters: dict, feedback=None) -> dict:
    import processing as qgis_processing

    return qgis_processing.run(algorithm, parameters, feedback=feedback)


def dead_pid() -> int:
    """The id of a process that has just ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a read-only file system (a tmpfs mounted ro when root, else a 0555 folder)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        yield folder
        folder.chmod(stat.S_IRWXU)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only file system here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture(scope="session")
def shared_data_or_none() -> Path | None:
    """../shared/data when present: the parts of a test that need it are left out without it."""
    from conftest import SHARED_DATA

    return SHARED_DATA if SHARED_DATA.is_dir() else None


@pytest.fixture
def sar(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return write(folder / "sar.tif", sar_db(), ["VV", "VH"])


# --- data loss ---------------------------------------------------------------------------------------------


def test_01_output_same_file_as_input(processing_provider, sar, tiny_sar_model, tmp_path, monkeypatch):
    """`qgis_process run hfd:segment -- INPUT=/t/in.tif OUTPUT=/t/in.tif` exits 0 and replaces the SAR raster
    with the class map; `python -m hfd_core segment in.tif in.tif --model ...` does the same. Refuse any
    output that is the same file as an input or as another output (resolve paths: symlinks, relative paths,
    case)."""
    from qgis.core import QgsProcessingException

    original = sar.read_bytes()
    link = tmp_path / "link.tif"
    link.symlink_to(sar)
    monkeypatch.chdir(tmp_path)
    relative = Path("in") / ".." / "in" / "sar.tif"
    for output in (sar, link, relative):
        with pytest.raises(QgsProcessingException, match="same file"):
            processing(
                "hfd:segment", {"INPUT": str(sar), "MODEL": str(tiny_sar_model), "OUTPUT": str(output)}
            )
        assert sar.read_bytes() == original
    model_bytes = tiny_sar_model.read_bytes()
    with pytest.raises(QgsProcessingException, match="same file"):
        processing(
            "hfd:segment", {"INPUT": str(sar), "MODEL": str(tiny_sar_model), "OUTPUT": str(tiny_sar_model)}
        )
    assert tiny_sar_model.read_bytes() == model_bytes
    done = run_cli("segment", str(sar), str(link), "--model", str(tiny_sar_model))
    assert_one_line_error(done, "same file")
    done = run_cli("preview", str(sar), str(link), "--input", str(sar))  # the PNG over the raster
    assert_one_line_error(done, "same file")
    assert sar.read_bytes() == original


def test_01b_output_over_a_file_that_a_vrt_input_reads(processing_provider, sar, tiny_sar_model, tmp_path):
    """`gdalbuildvrt in.vrt in.tif; qgis_process run hfd:segment -- INPUT=in.vrt OUTPUT=in.tif` exits 0 and
    replaces the SAR raster behind the VRT with the class map. Refuse an output that an input reads."""
    from osgeo import gdal
    from qgis.core import QgsProcessingException

    original = sar.read_bytes()
    vrt, of_vrt = tmp_path / "sar.vrt", tmp_path / "of_vrt.vrt"
    gdal.BuildVRT(str(vrt), [str(sar)]).FlushCache()
    gdal.BuildVRT(str(of_vrt), [str(vrt)]).FlushCache()  # GDAL lists only the next level: sar.vrt
    for source in (vrt, of_vrt):
        with pytest.raises(QgsProcessingException, match=r"a file that SAR layer \[INPUT\] .* reads"):
            processing(
                "hfd:segment", {"INPUT": str(source), "MODEL": str(tiny_sar_model), "OUTPUT": str(sar)}
            )
    done = run_cli("segment", str(vrt), str(sar), "--model", str(tiny_sar_model))
    assert_one_line_error(done, "reads and would overwrite it")
    assert sar.read_bytes() == original
    result = processing(
        "hfd:segment", {"INPUT": str(vrt), "MODEL": str(tiny_sar_model), "OUTPUT": str(tmp_path / "map.tif")}
    )
    assert Path(result["OUTPUT"]).is_file()


def test_01c_output_named_as_another_format(processing_provider, sar, tiny_sar_model, tmp_path):
    """`qgis_process run hfd:segment -- ... OUTPUT=/t/map.png` exited 0 and wrote a GeoTIFF named map.png
    (QGIS 3.22's qgis_process does not hold the provider's extensions against it); so did processing.run,
    checked here. Refuse it before any work."""
    from qgis.core import QgsProcessingException

    for output, confidence in ((tmp_path / "map.png", None), (tmp_path / "map.tif", tmp_path / "conf.jpg")):
        parameters = {"INPUT": str(sar), "MODEL": str(tiny_sar_model), "OUTPUT": str(output)}
        with pytest.raises(
            QgsProcessingException, match="is written as a GeoTIFF: give it the extension .tif"
        ):
            processing("hfd:segment", {**parameters, "CONFIDENCE": str(confidence) if confidence else None})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_02_evaluate_report_over_prediction(processing_provider, tmp_path):
    """`hfd:evaluate` with OUTPUT_HTML equal to the PREDICTION overwrites the prediction raster with HTML,
    exit 0."""
    from qgis.core import QgsProcessingException

    classes = np.zeros((1, 40, 40), np.float32)
    classes[:, :, 20:] = 1
    prediction = write(tmp_path / "prediction.tif", classes)
    reference = write(tmp_path / "reference.tif", classes)
    original = prediction.read_bytes()
    for html, csv in ((prediction, tmp_path / "t.csv"), (tmp_path / "r.html", reference)):
        parameters = {
            "PREDICTION": str(prediction),
            "REFERENCE": str(reference),
            "OUTPUT_HTML": str(html),
            "OUTPUT_CSV": str(csv),
        }
        with pytest.raises(QgsProcessingException, match="same file"):
            processing("hfd:evaluate", parameters)
    assert prediction.read_bytes() == original
    assert read(reference).max() == 1


def test_03_confidence_same_as_output(processing_provider, sar, tiny_sar_model, tmp_path):
    """CONFIDENCE equal to OUTPUT: traceback (`FileNotFoundError`), exit 1, and the confidence raster left
    under the output's name."""
    from qgis.core import QgsProcessingException

    output = tmp_path / "classes.tif"
    parameters = {"INPUT": str(sar), "MODEL": str(tiny_sar_model), "OUTPUT": str(output)}
    with pytest.raises(
        QgsProcessingException,
        match=r"Confidence \(percent\) \[CONFIDENCE\] and Class map \[OUTPUT\] are the same file",
    ):
        processing("hfd:segment", {**parameters, "CONFIDENCE": str(output)})
    assert not output.exists()
    with pytest.raises(InputError, match="same file"):  # both styles would be classes.qml
        segment_raster(sar, output, tiny_sar_model, confidence_path=tmp_path / "classes.tiff")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_04_bundled_models_protected_wherever_they_live(qgis_app, sar, tmp_path):
    """Fine-tuning can overwrite the repository's own bundled model (`OUTPUT_MODEL=<repo>/resources/models/
    student.pt` is accepted: only the installed plugin's copy is protected). Protect every bundled model file
    wherever it lives (compare with the bundled files' content or identity, not one path)."""
    from qgis.core import QgsProcessingContext, QgsProject

    from hfd_qgis.finetune_algorithm import FinetuneAlgorithm

    bundled = sorted(BUNDLED_MODELS.glob("*.pt"))
    if not bundled:
        pytest.skip("no bundled model built (make train-bundled)")
    copies = tmp_path / "installed" / "resources" / "models"
    copies.mkdir(parents=True)
    for model in bundled:  # the installed plugin's copy, a file elsewhere with the same bytes
        shutil.copy2(model, copies / model.name)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    for target in [BUNDLED_MODELS / "student.pt", *sorted(copies.glob("*.pt"))]:
        before = target.read_bytes()
        feedback = Feedback()
        parameters = {"SAR": str(sar), "EO": str(sar), "OUTPUT_MODEL": str(target), "EPOCHS": 1}
        results, ok = FinetuneAlgorithm().create().run(parameters, context, feedback)
        assert not ok and any("bundled models are not overwritten" in line for line in feedback.lines)
        assert target.read_bytes() == before


def test_05_finetune_output_checked_before_training(
    qgis_app, shared_data, read_only_folder, tmp_path, tmp_path_factory, monkeypatch
):
    """`hfd:finetune` with OUTPUT_MODEL on a read-only file system fails only after training, and the trained
    model is lost. Check that the output can be written before training; if saving fails at the end anyway,
    keep the model somewhere and say where."""
    from qgis.core import QgsProcessingContext, QgsProject
    from test_finetune_fixtures import FAST, india_paths, tiny_models

    from hfd_core.train import finetune as finetune_module
    from hfd_qgis.finetune_algorithm import FinetuneAlgorithm

    india = india_paths(shared_data)
    models = tiny_models(india, tmp_path_factory)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    parameters = {
        "SAR": str(india["S1Hand"]),
        "EO": str(india["S2Hand"]),
        "BASE_MODEL": str(models["student"]),
        "TEACHER_MODEL": str(models["teacher"]),
        "OUTPUT_MODEL": str(read_only_folder / "tuned.pt"),
        "EPOCHS": 1,
        "TILE_SIZE": 64,
    }
    feedback = Feedback()
    results, ok = FinetuneAlgorithm().create().run(parameters, context, feedback)
    assert not ok and any(
        "cannot write Fine-tuned model [OUTPUT_MODEL]" in line for line in feedback.lines
    ), feedback.lines
    assert not any(line.startswith("epoch") for line in feedback.lines)  # refused before training

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    target = tmp_path / "tuned.pt"
    real_save = finetune_module.save_model

    def disk_gone(path, model, metadata):  # the output's disk fails after the check
        if Path(path) == target:
            raise OSError(30, "Read-only file system", str(path))
        real_save(path, model, metadata)

    monkeypatch.setattr(finetune_module, "save_model", disk_gone)
    with pytest.raises(InputError, match="saved to .*rescued") as refused:
        finetune_module.finetune(
            india["S1Hand"],
            india["S2Hand"],
            target,
            models["student"],
            models["teacher"],
            device="cpu",
            **FAST,
        )
    rescued = list(home.glob("tuned-rescued-*.pt"))
    assert len(rescued) == 1 and str(rescued[0]) in str(refused.value)
    assert read_metadata(rescued[0]).training["fine_tuning"]


# --- silently wrong maps -----------------------------------------------------------------------------------


def test_06b_a_chosen_scale_the_values_contradict_is_refused(processing_provider, tiny_sar_model, tmp_path):
    """`INPUT_SCALE=linear power` on a scene in dB, or `dB` on a scene in power, ran with exit code 0 and no
    warning (the demo scene: 92 % bare ground, 99.5 % low vegetation): negative values cannot be power, and
    values that are all positive and small cannot be dB."""
    from qgis.core import QgsProcessingException

    db = sar_db(seed=6)
    cases = {
        "power and amplitude are never negative": (write(tmp_path / "db.tif", db), "linear power"),
        "look like linear power or amplitude": (write(tmp_path / "power.tif", 10 ** (db / 10)), "dB"),
    }
    for message, (raster, scale) in cases.items():
        parameters = {"INPUT": str(raster), "MODEL": str(tiny_sar_model), "INPUT_SCALE": scale}
        with pytest.raises(QgsProcessingException, match=message):
            processing("hfd:segment", {**parameters, "OUTPUT": str(tmp_path / "o.tif")})
    assert not (tmp_path / "o.tif").exists()


def test_06_amplitude_detected_or_refused(processing_provider, tiny_sar_model, tmp_path, shared_data_or_none):
    """An amplitude image (sqrt of linear power) is taken for linear power: only 33 % of pixels agree with
    the dB run. Detect amplitude as well as linear power and dB, or refuse what cannot be told apart with a
    message naming INPUT_SCALE; add `amplitude` to INPUT_SCALE."""
    from qgis.core import QgsProcessingException

    from hfd_core.data.sar import TYPICAL_DB, sar_scale

    db = sar_db(seed=1)
    write(tmp_path / "db.tif", db)
    write(tmp_path / "amplitude.tif", 10 ** (db / 20))
    write(tmp_path / "power.tif", 10 ** (db / 10))
    reference = segment_raster(tmp_path / "db.tif", tmp_path / "db_classes.tif", tiny_sar_model)
    for name, scale in (("amplitude", "amplitude"), ("power", "linear")):
        result = segment_raster(tmp_path / f"{name}.tif", tmp_path / f"{name}_classes.tif", tiny_sar_model)
        assert result.input_scale == scale
        agreement = (read(tmp_path / f"{name}_classes.tif") == read(tmp_path / "db_classes.tif")).mean()
        assert agreement > 0.99, (name, agreement)
    assert reference.input_scale == "db"
    explicit = processing(
        "hfd:segment",
        {
            "INPUT": str(tmp_path / "amplitude.tif"),
            "MODEL": str(tiny_sar_model),
            "INPUT_SCALE": 3,  # amplitude
            "OUTPUT": str(tmp_path / "explicit.tif"),
        },
    )
    assert (read(Path(explicit["OUTPUT"])) == read(tmp_path / "db_classes.tif")).mean() > 0.99
    # medians at 2/3 of the typical Sentinel-1 means in dB (as power): power and amplitude readings are
    # equally far from them (the statistics VV and VH are read against, whatever the model's own)
    typical = np.array([TYPICAL_DB[band][0] for band in read_metadata(tiny_sar_model).bands])
    ambiguous = typical[:, None, None] * 2 / 3 + np.random.default_rng(2).normal(0, 1, db.shape)
    write(tmp_path / "ambiguous.tif", 10 ** (ambiguous / 10))
    with pytest.raises(QgsProcessingException, match="INPUT_SCALE"):
        processing(
            "hfd:segment",
            {
                "INPUT": str(tmp_path / "ambiguous.tif"),
                "MODEL": str(tiny_sar_model),
                "OUTPUT": str(tmp_path / "a.tif"),
            },
        )
    # real Sentinel-1 chips in dB, as power and as amplitude, read right for the bundled student (whose own
    # training statistics are narrower than Sentinel-1's: they read Sri Lanka's amplitude as power)
    bundled = BUNDLED_MODELS / "student.pt"
    if shared_data_or_none is None or not bundled.is_file():
        return
    student = read_metadata(bundled)
    for chip in sorted((shared_data_or_none / "sen1floods11").glob("*_S1Hand.tif")):
        with rasterio.open(chip) as src:
            values = src.read().astype(np.float64)
        if not np.isfinite(values).any():
            continue  # Paraguay_34417: all NaN
        for scale, power in (("linear", 10 ** (values / 10)), ("amplitude", 10 ** (values / 20))):
            found = sar_scale(power, "auto", student.bands, student.mean, student.std)
            assert found == scale, (chip.name, scale)


def test_07_band_descriptions_used_or_contradiction_refused(processing_provider, tiny_sar_model, tmp_path):
    """Band descriptions are ignored: a raster whose bands are described "VH, VV" is read in reverse order.
    When the raster's band descriptions name the model's bands, use them (and say so in the log); when they
    contradict BANDS, refuse with a clear message."""
    from qgis.core import QgsProcessingException

    db = sar_db(seed=3)
    write(tmp_path / "vv_vh.tif", db, ["VV", "VH"])
    write(tmp_path / "vh_vv.tif", db[::-1], ["Sigma0_VH_db", "Sigma0_VV_db"])
    segment_raster(tmp_path / "vv_vh.tif", tmp_path / "a.tif", tiny_sar_model)
    feedback = Feedback()
    parameters = {"INPUT": str(tmp_path / "vh_vv.tif"), "MODEL": str(tiny_sar_model)}
    processing("hfd:segment", {**parameters, "OUTPUT": str(tmp_path / "b.tif")}, feedback)
    assert (read(tmp_path / "a.tif") == read(tmp_path / "b.tif")).all()
    assert any("VV=band 2, VH=band 1 (from the band descriptions)" in line for line in feedback.lines)
    with pytest.raises(QgsProcessingException, match="contradict the raster's band descriptions"):
        processing("hfd:segment", {**parameters, "BANDS": [1, 2], "OUTPUT": str(tmp_path / "c.tif")})
    assert not (tmp_path / "c.tif").exists()


def test_07b_unnamed_bands_in_vh_vv_order_refused(
    processing_provider, tiny_sar_model, tmp_path, shared_data_or_none
):
    """Bands without names stacked VH, VV (what `gdalbuildvrt -separate *_VH.tif *_VV.tif` gives) were read as
    VV, VH: on the real India chip the water model called 4.1 % water instead of 47.8 %, and the log only said
    "the first 2 of 2". The band read as VV is darker than the one read as VH: refuse and say which numbers to
    choose; those numbers then give the map of the right order. Fine-tuning reads its SAR the same way."""
    from qgis.core import QgsProcessingException

    from hfd_core.modelfile import read_metadata
    from hfd_core.train.finetune import prepare_scenes

    db = sar_db(seed=4)
    if shared_data_or_none is not None:
        with rasterio.open(shared_data_or_none / "sen1floods11" / "India_900498_S1Hand.tif") as src:
            db = src.read()[:, :256, :256]
    write(tmp_path / "vv_vh.tif", db)
    write(tmp_path / "vh_vv.tif", db[::-1])
    parameters = {"INPUT": str(tmp_path / "vh_vv.tif"), "MODEL": str(tiny_sar_model)}
    with pytest.raises(QgsProcessingException, match=r"band 1, taken as VV.*look swapped.*here 2,1"):
        processing("hfd:segment", {**parameters, "OUTPUT": str(tmp_path / "a.tif")})
    processing("hfd:segment", {**parameters, "BANDS": [2, 1], "OUTPUT": str(tmp_path / "b.tif")})
    # as qgis_process passes `BANDS=2,1`, the numbers the message gives (QGIS read it as band 0)
    processing("hfd:segment", {**parameters, "BANDS": "2,1", "OUTPUT": str(tmp_path / "d.tif")})
    processing(
        "hfd:segment", {**parameters, "INPUT": str(tmp_path / "vv_vh.tif"), "OUTPUT": str(tmp_path / "c.tif")}
    )
    assert (read(tmp_path / "b.tif") == read(tmp_path / "c.tif")).all()
    assert (read(tmp_path / "d.tif") == read(tmp_path / "c.tif")).all()
    model = read_metadata(tiny_sar_model)
    with pytest.raises(InputError, match="look swapped"):
        prepare_scenes(tmp_path / "vh_vv.tif", tmp_path / "vv_vh.tif", model, model, tile_size=32)


def test_07c_chosen_numbers_or_descriptions_that_swap_vv_and_vh_refused(
    processing_provider, tiny_sar_model, tmp_path, shared_data_or_none
):
    """`BANDS=2,1`, the help's example, copied onto a raster stacked VV, VH was taken at its word: on the real
    India chip the water model called 4.1 % water (IoU 0.09) instead of 47.8 % (0.77), without a word; a
    raster whose descriptions say VV, VH over VH, VV data did the same. The data contradict both (VH is the
    darker band): refuse, saying which numbers to choose or how to correct the descriptions; the corrected
    descriptions then give the map of the right order."""
    from osgeo import gdal
    from qgis.core import QgsProcessingException

    db = sar_db(seed=5)
    if shared_data_or_none is not None:
        with rasterio.open(shared_data_or_none / "sen1floods11" / "India_900498_S1Hand.tif") as src:
            db = src.read()[:, :256, :256]
    write(tmp_path / "vv_vh.tif", db)
    write(tmp_path / "misnamed.tif", db[::-1], ["VV", "VH"])
    parameters = {"INPUT": str(tmp_path / "vv_vh.tif"), "MODEL": str(tiny_sar_model)}
    with pytest.raises(
        QgsProcessingException, match=r"band 2, chosen as VV.*numbers look swapped: choose 1,2"
    ):
        processing("hfd:segment", {**parameters, "BANDS": "2,1", "OUTPUT": str(tmp_path / "a.tif")})
    assert not (tmp_path / "a.tif").exists()
    processing("hfd:segment", {**parameters, "BANDS": "1,2", "OUTPUT": str(tmp_path / "b.tif")})
    misnamed = {**parameters, "INPUT": str(tmp_path / "misnamed.tif"), "OUTPUT": str(tmp_path / "c.tif")}
    with pytest.raises(
        QgsProcessingException, match="band 1, described as VV.*descriptions look swapped"
    ) as error:
        processing("hfd:segment", misnamed)
    command = re.search(r'python3 -c "(.*)"', str(error.value)).group(1)
    subprocess.run([sys.executable, "-c", command], cwd=tmp_path, check=True)
    processing("hfd:segment", misnamed)
    assert (read(tmp_path / "b.tif") == read(tmp_path / "c.tif")).all()
    assert gdal.Open(str(tmp_path / "misnamed.tif")).GetRasterBand(2).GetDescription() == "VV"


def test_08_teacher_on_13_band_sentinel2(shared_data, tmp_path):
    """`MODEL=teacher.pt` on a 13-band Sentinel-2 file uses bands 1-6 (B01-B06) instead of the teacher's B02,
    B03, B04, B08, B11, B12: 0.6 % water instead of 68.2 %. Use the same band finding as fine-tuning
    (descriptions, 12/13-band Sentinel-2 order)."""
    teacher = BUNDLED_MODELS / "teacher.pt"
    if not teacher.is_file():
        pytest.skip("no bundled teacher built (make train-bundled)")
    s2 = shared_data / "sen1floods11" / "India_900498_S2Hand.tif"  # 13 bands described B1..B12
    with rasterio.open(s2) as src:
        profile = src.profile
        six = src.read([2, 3, 4, 8, 12, 13])
    with rasterio.open(tmp_path / "six.tif", "w", **{**profile, "count": 6}) as dst:
        dst.write(six)
    whole = segment_raster(s2, tmp_path / "whole.tif", teacher, tile_size=512, device="cpu")
    segment_raster(tmp_path / "six.tif", tmp_path / "six_classes.tif", teacher, tile_size=512, device="cpu")
    assert (read(tmp_path / "whole.tif") == read(tmp_path / "six_classes.tif")).all()
    assert "B02=band 2" in whole.bands and "B12=band 13" in whole.bands
    undescribed = tmp_path / "undescribed.tif"  # the same file without band names: 13-band Sentinel-2 order
    with rasterio.open(undescribed, "w", **profile) as dst, rasterio.open(s2) as src:
        dst.write(src.read())
    result = segment_raster(undescribed, tmp_path / "u.tif", teacher, tile_size=512, device="cpu")
    assert "13-band Sentinel-2 order" in result.bands
    assert (read(tmp_path / "u.tif") == read(tmp_path / "six_classes.tif")).all()


def test_09_cli_numbers_validated(sar, tiny_sar_model, tmp_path):
    """CLI `--batch-size -1` labels every pixel water. Validate every numeric option in the CLI as the
    algorithms do."""
    output = tmp_path / "out.tif"
    for option, value in (("--batch-size", "-1"), ("--tile-size", "-16"), ("--overlap", "5000")):
        done = run_cli("segment", str(sar), str(output), "--model", str(tiny_sar_model), option, value)
        assert done.returncode == 2 and f"argument {option}" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and not output.exists()
    for option, value in (
        ("--epochs", "0"),
        ("--lr", "-1"),
        ("--val-fraction", "1.5"),
        ("--batch-size", "0"),
    ):
        done = run_cli(
            "train-teacher", "--dataset", "folder", "--root", str(tmp_path), "--out", str(tmp_path / "r"),
            option, value,
        )  # fmt: skip
        assert done.returncode == 2 and f"argument {option}" in done.stderr, done.stderr
    with pytest.raises(InputError, match="batch size -1"):
        segment_raster(sar, output, tiny_sar_model, batch_size=-1)


# --- tracebacks instead of messages ------------------------------------------------------------------------


def test_10_truncated_geotiff(processing_provider, tiny_sar_model, tmp_path):
    """A truncated GeoTIFF as INPUT (`RasterioIOError ... IReadBlock failed` from the scale sample)."""
    from qgis.core import QgsProcessingException

    whole = write(tmp_path / "whole.tif", sar_db(256, 256), compress="deflate", tiled=True)
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    output = tmp_path / "out.tif"
    with pytest.raises(QgsProcessingException, match="damaged or truncated"):
        processing(
            "hfd:segment", {"INPUT": str(truncated), "MODEL": str(tiny_sar_model), "OUTPUT": str(output)}
        )
    assert_one_line_error(
        run_cli("segment", str(truncated), str(output), "--model", str(tiny_sar_model)), "truncated"
    )
    assert not output.exists()


def test_11_output_on_read_only_file_system(processing_provider, sar, tiny_sar_model, read_only_folder):
    """OUTPUT on a read-only file system (the clean-up fails and hides the real message)."""
    from qgis.core import QgsProcessingException

    output = read_only_folder / "out.tif"
    with pytest.raises(QgsProcessingException, match=r"cannot write Class map \[OUTPUT\]"):
        processing("hfd:segment", {"INPUT": str(sar), "MODEL": str(tiny_sar_model), "OUTPUT": str(output)})
    done = run_cli("segment", str(sar), str(output), "--model", str(tiny_sar_model))
    assert_one_line_error(done, "cannot write the output")


def test_12_evaluate_output_folder_read_only_or_missing(processing_provider, read_only_folder, tmp_path):
    """`hfd:evaluate` writing to a read-only or missing folder."""
    from qgis.core import QgsProcessingException

    classes = np.ones((1, 20, 20), np.float32)
    prediction = write(tmp_path / "prediction.tif", classes)
    for folder, message in (
        (read_only_folder, r"cannot write Report \[OUTPUT_HTML\]"),
        (tmp_path / "missing", r"the folder of Report \[OUTPUT_HTML\] does not exist"),
    ):
        parameters = {
            "PREDICTION": str(prediction),
            "REFERENCE": str(prediction),
            "OUTPUT_HTML": str(folder / "report.html"),
            "OUTPUT_CSV": str(tmp_path / "table.csv"),
        }
        with pytest.raises(QgsProcessingException, match=message):
            processing("hfd:evaluate", parameters)
        assert not (tmp_path / "table.csv").exists()


def test_14_cli_user_errors_one_line(sar, tiny_sar_model, tmp_path):
    """CLI user errors print full tracebacks: print one line and exit 2."""
    not_a_model = tmp_path / "model.pt"
    not_a_model.write_text("not a model")
    cases = (
        (
            (
                "segment",
                str(tmp_path / "missing.tif"),
                str(tmp_path / "o.tif"),
                "--model",
                str(tiny_sar_model),
            ),
            "not found",
        ),
        (("segment", str(sar), str(tmp_path / "o.tif"), "--model", str(not_a_model)), "model.pt"),
        (
            ("segment", str(sar), str(tmp_path / "no" / "o.tif"), "--model", str(tiny_sar_model)),
            "does not exist",
        ),
        (
            ("segment", str(sar), str(tmp_path / "o.tif"), "--model", str(tiny_sar_model), "--bands", "1,5"),
            "band",
        ),
        (("preview", str(tmp_path / "missing.tif"), str(tmp_path / "p.png")), "missing.tif"),
    )
    for args, word in cases:
        assert_one_line_error(run_cli(*args), word)
    assert not (tmp_path / "o.tif").exists()


# --- lower -------------------------------------------------------------------------------------------------


def test_15_tile_size_and_overlap_changes_are_logged(processing_provider, sar, tiny_sar_model, tmp_path):
    """TILE_SIZE below 16 is raised to 16 and OVERLAP cut without a word: warn in the log."""
    feedback = Feedback()
    parameters = {"INPUT": str(sar), "MODEL": str(tiny_sar_model), "TILE_SIZE": 8, "OVERLAP": 30}
    processing("hfd:segment", {**parameters, "OUTPUT": str(tmp_path / "o.tif")}, feedback)
    assert any("tile size 8 changed to 16" in line for line in feedback.lines), feedback.lines
    assert any("overlap 30 cut to 8" in line for line in feedback.lines), feedback.lines
    quiet = segment_raster(sar, tmp_path / "q.tif", tiny_sar_model, tile_size=32, overlap=16)
    assert quiet.warnings == []
    # the default overlap (96) on tiles of 32, as on a GPU with a model of small tiles: cut to 16, no warning
    default = segment_raster(sar, tmp_path / "d.tif", tiny_sar_model, tile_size=32)
    assert default.warnings == [] and default.tiles == quiet.tiles


def test_16_labels_outside_classes_warned(shared_data, tmp_path):
    """Labels outside the model's classes are dropped silently: warn with their count."""
    from test_finetune_fixtures import india_paths

    from hfd_core.train.finetune import prepare_scenes

    india = india_paths(shared_data)
    student = (
        read_metadata(BUNDLED_MODELS / "student.pt") if (BUNDLED_MODELS / "student.pt").is_file() else None
    )
    teacher = (
        read_metadata(BUNDLED_MODELS / "teacher.pt") if (BUNDLED_MODELS / "teacher.pt").is_file() else None
    )
    if student is None or teacher is None:
        pytest.skip("no bundled models built (make train-bundled)")
    classes = len(teacher.classes)
    with rasterio.open(india["LabelHand"]) as src:
        profile, hand = src.profile, src.read(1)
    label = hand.copy()
    label[:10, :] = classes + 3  # 10 rows of an id the model does not have
    with rasterio.open(tmp_path / "labels.tif", "w", **profile) as dst:
        dst.write(label[np.newaxis])
    heard: list[str] = []
    prepare_scenes(
        india["S1Hand"],
        india["S2Hand"],
        student,
        teacher,
        tmp_path / "labels.tif",
        tile_size=64,
        warn=heard.append,
    )
    outside = int(((label < 0) | (label >= classes)).sum())
    assert len(heard) == 1 and f"{outside} labelled pixel(s)" in heard[0] and f"{classes + 3}" in heard[0]
    ghana = shared_data / "sen1floods11" / "Ghana_83483_LabelHand.tif"  # a real label chip that is all -1
    with rasterio.open(ghana) as src:
        all_minus_one = src.read(1)
    assert (all_minus_one == -1).all()
    with rasterio.open(tmp_path / "ghana_on_india.tif", "w", **profile) as dst:
        dst.write(all_minus_one[np.newaxis])
    with pytest.raises(InputError, match=r"no class id .* only 262144 labelled pixel\(s\) .*\(-1\)"):
        prepare_scenes(india["S1Hand"], india["S2Hand"], student, teacher, tmp_path / "ghana_on_india.tif")


def test_17_all_zero_raster_named(processing_provider, tiny_sar_model, tmp_path, shared_data_or_none):
    """An all-zero raster is refused with "values -60 to -60": name the zeros that are in the file."""
    from qgis.core import QgsProcessingException

    write(tmp_path / "zeros.tif", np.zeros((2, 40, 40)))
    with pytest.raises(QgsProcessingException, match="0 in every valid pixel") as refused:
        processing(
            "hfd:segment",
            {
                "INPUT": str(tmp_path / "zeros.tif"),
                "MODEL": str(tiny_sar_model),
                "OUTPUT": str(tmp_path / "o.tif"),
            },
        )
    assert "-60" not in str(refused.value)
    if shared_data_or_none is not None:  # the real all-NaN chip keeps its own message
        chip = shared_data_or_none / "sen1floods11" / "Paraguay_34417_S1Hand.tif"
        with pytest.raises(InputError, match="no valid pixel"):
            segment_raster(chip, tmp_path / "p.tif", tiny_sar_model)


def test_17b_zero_border_without_nodata_value_is_nodata(tiny_sar_model, tmp_path):
    """Sentinel-1 exports often fill the border with 0 and declare no nodata value: as linear power the scene
    was refused ("values -60 to ... are not Sentinel-1 sigma0 in dB"), in dB the border was bright ground.
    Pixels 0 in every band are read as nodata, exactly as with nodata 0 declared, and the log says so."""
    for scale, image in (("linear", 10 ** (sar_db(seed=3) / 10)), ("db", sar_db(seed=3))):
        bordered = np.zeros((2, 96, 160), np.float32)
        bordered[:, :, 64:] = image
        untagged = write(tmp_path / f"{scale}.tif", bordered)
        tagged = write(tmp_path / f"{scale}_tagged.tif", bordered, nodata=0)
        found = segment_raster(untagged, tmp_path / f"{scale}_out.tif", tiny_sar_model, tile_size=64)
        declared = segment_raster(tagged, tmp_path / f"{scale}_tagged_out.tif", tiny_sar_model, tile_size=64)
        assert found.input_scale == declared.input_scale == scale
        classes = read(tmp_path / f"{scale}_out.tif")
        assert (classes == read(tmp_path / f"{scale}_tagged_out.tif")).all()
        assert (classes[:, :64] == IGNORE_INDEX).all() and (classes[:, 64:] != IGNORE_INDEX).all()
        assert any("40% of the raster is 0 in every band" in line for line in found.warnings), found.warnings


def test_17c_linear_power_with_zeros_below_the_noise_floor(tmp_path, shared_data_or_none):
    """Thermal noise removal clips power below the noise floor to 0, in VH above all over calm water. With 1 %
    of such zeros a linear scene was refused ("SAR VH values (-60 to ...) are not Sentinel-1 sigma0 in dB"),
    naming a value the file does not hold. They read as the darkest water: the water model's map of the
    scene in linear power, zeros and all, is nearly the map of the same scene in dB (India: 99.97 % of the
    pixels the same with the darkest 1 % of VH zero, 99.4 % with 5 %)."""
    db = sar_db(seed=5)
    if shared_data_or_none is not None:
        with rasterio.open(shared_data_or_none / "sen1floods11" / "India_900498_S1Hand.tif") as src:
            db = src.read().astype(np.float32)
    water_model = BUNDLED_MODELS / "water_student.pt"
    reference = segment_raster(write(tmp_path / "db.tif", db), tmp_path / "db_out.tif", water_model)
    assert reference.input_scale == "db"
    with rasterio.open(tmp_path / "db_out.tif") as src:  # the raster's bands, not the model's features
        assert src.tags()["MODEL_BANDS"] == "VV,VH"
    for share, agreement in ((0.01, 0.995), (0.05, 0.99)):
        for scale, exponent in (("linear", 1), ("amplitude", 0.5)):
            image = (10 ** (db / 10)) ** exponent
            image[1][db[1] <= np.nanquantile(db[1], share)] = 0  # the darkest VH, where the noise floor lies
            out = tmp_path / f"zeros_{scale}_{share}.tif"
            result = segment_raster(write(tmp_path / f"{scale}_{share}.tif", image), out, water_model)
            assert result.input_scale == scale
            assert (read(out) == read(tmp_path / "db_out.tif")).mean() > agreement, (scale, share)


def test_18_an_output_written_again_loses_the_old_statistics(sar, tiny_sar_model, tmp_path):
    """`gdalinfo -stats` (or QGIS) writes `<output>.aux.xml` with the map's statistics; a new map written over
    it kept that file, so GDAL reported the old map's statistics (maximum 1 for classes up to 4)."""
    out = tmp_path / "classes.tif"
    segment_raster(sar, out, tiny_sar_model)
    Path(f"{out}.aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="1"><Metadata>'
        '<MDI key="STATISTICS_MAXIMUM">1</MDI></Metadata></PAMRasterBand></PAMDataset>'
    )
    segment_raster(sar, out, tiny_sar_model)
    assert not Path(f"{out}.aux.xml").exists()


def test_18a_model_errors_without_unsafe_advice(tmp_path, sar):
    """Model-file errors repeat torch's advice to load with `weights_only=False`: never pass that advice
    on."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "hfd-net", "payload": Payload()}, tmp_path / "hostile.pt")
    with pytest.raises(ModelFileError) as refused:
        load_model(tmp_path / "hostile.pt")
    assert "could run code" in str(refused.value) and "weights_only" not in str(refused.value)
    assert not marker.exists()
    done = run_cli("segment", str(sar), str(tmp_path / "o.tif"), "--model", str(tmp_path / "hostile.pt"))
    assert_one_line_error(done, "hostile.pt")
    assert "weights_only" not in done.stderr and not marker.exists()


def test_18b_models_saved_with_the_umask(tiny_sar_model, tmp_path):
    """Models and training checkpoints (`last.ckpt`) were saved with mode 0600: now 0666 less the umask. A
    killed run left its temporary checkpoint beside them; a file planted under the temporary name is
    replaced, never written through."""
    from hfd_core.train.checkpoint import save_checkpoint

    model, metadata = load_model(tiny_sar_model)
    debris = tmp_path / f".last.partial-{dead_pid()}.ckpt"
    debris.write_bytes(b"x" * 1000)
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_bytes(b"keep")
    (tmp_path / f".shared.partial-{os.getpid()}.pt").symlink_to(victim)
    previous = os.umask(0o022)
    try:
        save_model(tmp_path / "shared.pt", model, metadata)
        save_checkpoint(tmp_path / "last.ckpt", {"epoch": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "shared.pt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "last.ckpt").stat().st_mode) == 0o644
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.ckpt", "shared.pt"]
    assert victim.read_bytes() == b"keep"


def test_18c_debris_of_killed_runs_removed(sar, tiny_sar_model, tmp_path):
    """SIGTERM or `kill -9` leaves a 0-byte `.<name>.partial-<pid>.tif` and an 18 MB `/tmp/hfd-finetune-*`
    folder: remove such debris at the next start, or put it where the user will find it."""
    from hfd_core.train.finetune import finetune

    gone = dead_pid()
    out = tmp_path / "out"
    out.mkdir()
    debris = [out / f".classes.partial-{gone}.tif", out / f".model.partial-{gone}.pt"]
    for path in debris:
        path.write_bytes(b"")
    running = out / f".other.partial-{os.getpid()}.tif"  # a run still going on: kept
    running.write_bytes(b"")
    segment_raster(sar, out / "classes.tif", tiny_sar_model)
    assert not any(path.exists() for path in debris) and running.exists()

    work = tmp_path / "work"
    (work / f"hfd-finetune-{gone}-abc").mkdir(parents=True)
    (work / f"hfd-finetune-{gone}-abc" / "last.ckpt").write_bytes(b"x" * 1000)
    with pytest.raises(ModelFileError):  # fails at once (no such base model), after the clean-up
        finetune(sar, sar, tmp_path / "t.pt", tmp_path / "none.pt", tmp_path / "none2.pt", work_dir=work)
    assert list(work.iterdir()) == []

    # SIGTERM: the command line removes its temporary files on the way out
    big = write(tmp_path / "big.tif", sar_db(2048, 2048))
    child = subprocess.Popen(
        [sys.executable, "-m", "hfd_core", "segment", str(big), str(out / "big.tif"),
         "--model", str(tiny_sar_model), "--device", "cpu"],
        cwd=REPO, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stderr.read(1) == b"\r"  # the progress bar started: the partial file exists
    child.terminate()
    child.wait(timeout=60)
    assert not list(out.glob(".big.partial-*")) and not (out / "big.tif").exists()


def test_18d_only_folders_named_by_a_dead_run_are_removed(tmp_path):
    """The clean-up must never take a name's leading digits for a process id: a folder made by another
    tool (``tempfile``'s random suffix, e.g. ``hfd-finetune-77syrtd1``) may belong to a live job."""
    from hfd_core.files import remove_stale

    foreign = tmp_path / "hfd-finetune-77syrtd1"
    killed = tmp_path / f"hfd-finetune-{dead_pid()}-abc"
    alive = tmp_path / f"hfd-finetune-{os.getpid()}-abc"
    for folder in (foreign, killed, alive):
        folder.mkdir()
    assert remove_stale(tmp_path, "hfd-finetune-*") == [killed]
    assert foreign.is_dir() and alive.is_dir()

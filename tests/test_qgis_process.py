"""`qgis_process` from a shell, through the project's launcher bin/qgis_process (Debian's wrapper is broken on
QGIS 3.22, qgis/QGIS#57683), with the plugin installed by scripts/install_plugin.py in a temporary profile."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import rasterio

from hfd_core import IGNORE_INDEX
from hfd_core.modelfile import read_metadata

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "bin" / "qgis_process"
BUNDLED_STUDENT = REPO / "resources" / "models" / "student.pt"


def test_launcher_lists_the_hfd_provider(qgis_process, installed_profile):
    listing = qgis_process(installed_profile, "list")
    assert listing.returncode == 0, listing.stderr
    assert "HFD-Net SAR segmentation" in listing.stdout
    for algorithm in ("hfd:segment\tSegment SAR layer", "hfd:finetune", "hfd:evaluate"):
        assert algorithm in listing.stdout


def test_launcher_does_not_pass_noversioncheck():
    """The option Debian's wrapper adds is refused by qgis_process.bin 3.22; the launcher must not add it."""
    assert "--noversioncheck" not in "".join(
        line for line in LAUNCHER.read_text().splitlines() if not line.lstrip().startswith("#")
    )


def test_run_segment_from_the_shell_writes_a_styled_geotiff(
    qgis_process, installed_profile, demo_sample, tiny_sar_model, tmp_path
):
    output = tmp_path / "land_cover.tif"
    run = qgis_process(
        installed_profile, "run", "hfd:segment", "--",
        f"INPUT={demo_sample}", f"MODEL={tiny_sar_model}", f"OUTPUT={output}",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "VALID_PIXELS:\t65536" in run.stdout
    with rasterio.open(output) as out, rasterio.open(demo_sample) as src:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
        assert out.nodata == IGNORE_INDEX
        assert out.colormap(1)[0][:3] == (0x2B, 0x7B, 0xB9)  # class 0 "water" colour from the model file
        assert out.read(1).max() <= 2
    assert 'label="built-up"' in output.with_suffix(".qml").read_text()


@pytest.mark.skipif(
    not BUNDLED_STUDENT.is_file(), reason="bundled model not trained yet (make train-bundled)"
)
def test_documented_command_uses_the_bundled_model(qgis_process, installed_profile, demo_sample, tmp_path):
    """`qgis_process run hfd:segment -- INPUT=... OUTPUT=...` as README shows it: MODEL left out."""
    output = tmp_path / "land_cover.tif"
    run = qgis_process(
        installed_profile, "run", "hfd:segment", "--", f"INPUT={demo_sample}", f"OUTPUT={output}"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    names = [c.name for c in read_metadata(BUNDLED_STUDENT).classes]
    with rasterio.open(output) as out:
        assert out.read(1).max() < len(names)
    assert all(f'label="{name}"' in output.with_suffix(".qml").read_text() for name in names)


def test_choices_take_the_option_name_from_the_shell(qgis_process, installed_profile, demo_sample, tmp_path):
    """`BUNDLED_MODEL=water` (the option's label, any case) picks the water model as `BUNDLED_MODEL=1` does;
    QGIS 3.22's Choice alone takes only the number. `INPUT_SCALE=dB` (a label without its explanation in
    brackets) had been refused with "Incorrect parameter value for INPUT_SCALE". A name that is no option is
    refused before any work, with the accepted values."""
    outputs = {}
    for value in ("water", "1"):
        outputs[value] = tmp_path / f"water_{value}.tif"
        run = qgis_process(
            installed_profile, "run", "hfd:segment", "--", f"INPUT={demo_sample}", f"BUNDLED_MODEL={value}",
            "DEVICE=CPU", f"INPUT_SCALE={'dB' if value == 'water' else 1}", f"OUTPUT={outputs[value]}",
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        assert 'label="not water"' in outputs[value].with_suffix(".qml").read_text()
    with rasterio.open(outputs["water"]) as by_name, rasterio.open(outputs["1"]) as by_number:
        assert (by_name.read(1) == by_number.read(1)).all()
    refused = qgis_process(
        installed_profile, "run", "hfd:segment", "--",
        f"INPUT={demo_sample}", "BUNDLED_MODEL=lakes", f"OUTPUT={tmp_path / 'refused.tif'}",
    )  # fmt: skip
    assert refused.returncode != 0
    assert (
        "BUNDLED_MODEL='lakes' is not an option: 0 or 'Land cover'; 1 or 'Water'"
        in refused.stdout + refused.stderr
    )
    assert not (tmp_path / "refused.tif").exists()


def test_run_segment_failure_is_reported_with_the_reason(
    qgis_process, installed_profile, demo_sample, tmp_path
):
    not_a_model = tmp_path / "model.pt"
    not_a_model.write_text("not a model")
    output = tmp_path / "o.tif"
    run = qgis_process(
        installed_profile, "run", "hfd:segment", "--",
        f"INPUT={demo_sample}", f"MODEL={not_a_model}", f"OUTPUT={output}",
    )  # fmt: skip
    assert run.returncode != 0
    assert "model.pt" in run.stdout + run.stderr
    assert not output.exists()


def test_evaluate_runs_with_only_its_required_parameters(
    qgis_process, installed_profile, demo_sample, tiny_sar_model, tmp_path
):
    from hfd_core.infer.tiled import segment_raster

    prediction, reference = tmp_path / "prediction.tif", tmp_path / "reference.tif"
    segment_raster(demo_sample, prediction, tiny_sar_model, device="cpu")
    shutil.copyfile(prediction, reference)  # the same file is refused (every score would be 1)
    run = qgis_process(
        installed_profile, "run", "hfd:evaluate", "--", f"PREDICTION={prediction}", f"REFERENCE={reference}"
    )  # the reports were required: a user who wanted the scores had to name two files
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OA:\t1" in run.stdout and "mIoU 1.0000" in run.stdout
    assert "OUTPUT_HTML:\t\n" in run.stdout and "OUTPUT_CSV:\t\n" in run.stdout  # no report written
    html, csv = tmp_path / "report.html", tmp_path / "table.csv"
    run = qgis_process(
        installed_profile, "run", "hfd:evaluate", "--",
        f"PREDICTION={prediction}", f"REFERENCE={reference}", f"OUTPUT_HTML={html}",
        f"OUTPUT_CSV={csv}",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "<table" in html.read_text() and csv.read_text().count("\n") > 2


def test_finetune_trains_inside_qgis_python(
    qgis_process, installed_profile, shared_data, tmp_path_factory, tmp_path
):
    """A short fine-tuning run in QGIS's own Python (/usr/bin/python3 with Debian's packages, among them
    python3-sympy 1.11 when QGIS came with its recommended packages): torch's training code must load."""
    from test_finetune_fixtures import india_paths, tiny_models

    india = india_paths(shared_data)
    models = tiny_models(india, tmp_path_factory)
    output = tmp_path / "tuned.pt"
    run = qgis_process(
        installed_profile, "run", "hfd:finetune", "--",
        f"SAR={india['S1Hand']}", f"EO={india['S2Hand']}", f"BASE_MODEL={models['student']}",
        f"TEACHER_MODEL={models['teacher']}", "EPOCHS=1", "TILE_SIZE=64", f"OUTPUT_MODEL={output}",
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "BEST_EPOCH:\t1" in run.stdout
    assert read_metadata(output).training["fine_tuning"][-1]["best_epoch"] == 1

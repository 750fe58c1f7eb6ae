"""The plugin in the real QGIS desktop (the qgis binary, under Xvfb when there is no display).

QGIS 3.22 crashed (SIGSEGV in QgsProcessingFieldWidgetWrapper::setParentLayerWrapperValue) when the
Evaluate or fine-tune Processing dialogs met a raster where a class-field parameter's parent could be one;
only the real desktop shows it, ``processing.run`` never builds the widgets. tests/desktop_session.py drives
the session; screenshots land in test-output/desktop/ (ignored by git).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, SHARED_DATA

OUT = REPO / "test-output" / "desktop"
TIMEOUT_S = 600


def _command(settings_root: Path) -> list[str]:
    qgis = ["qgis", "--profiles-path", str(settings_root), "--nologo", "--noversioncheck"]
    qgis += ["--code", str(REPO / "tests" / "desktop_session.py")]
    if os.environ.get("DISPLAY"):
        return qgis
    return ["xvfb-run", "-a", "-s", "-screen 0 1400x1000x24", *qgis]


@pytest.fixture(scope="module")
def desktop_session(installed_profile) -> tuple[subprocess.CompletedProcess, dict]:
    if shutil.which("qgis") is None:
        pytest.skip("the QGIS desktop (qgis) is not installed")
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run") is None:
        pytest.skip("no display and no xvfb-run (apt-get install xvfb xauth) to start the QGIS desktop")
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    shutil.copy2(REPO / "resources" / "samples" / "s1_demo_vv_vh_db.tif", OUT / "s1_demo_vv_vh_db.tif")
    dropped = ("PYTHONPATH", "HFD_PYTHONPATH", "QT_QPA_PLATFORM")  # torch comes from the installed plugin
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        HFD_DESKTOP_OUT=str(OUT), HFD_DESKTOP_SAMPLE=str(OUT / "s1_demo_vv_vh_db.tif"),
        HFD_SHARED_DATA=str(SHARED_DATA),
    )  # fmt: skip
    completed = subprocess.run(
        _command(installed_profile), env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    result_file = OUT / "result.json"
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    return completed, result


@pytest.mark.slow
def test_qgis_survives_the_dialogs_with_a_raster_active(desktop_session):
    completed, result = desktop_session
    assert completed.returncode == 0, (completed.returncode, result.get("error"), completed.stderr[-3000:])
    assert result["plugin_loaded"] and result["done"]
    for name in (
        "evaluate_dialog_default",
        "evaluate_dialog_raster_reference",
        "evaluate_batch_dialog",
        "finetune_processing_dialog_raster_labels",
        "finetune_plugin_dialog",
    ):
        assert name in result["steps"] and (OUT / f"{name}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_outputs_are_named_after_the_input_and_batch_leaves_no_false_error(desktop_session):
    _, result = desktop_session
    sar = "s1_demo_vv_vh_db"
    assert f"{sar} land cover" in result["loaded_layers"]
    assert f"{sar} land cover confidence" in result["loaded_layers"]
    assert result["layer_order"] == [f"{sar} land cover", f"{sar} land cover confidence", sar]
    assert not [line for line in result["batch_log"] if "not correctly generated" in line]


@pytest.mark.slow
def test_a_second_run_goes_on_top_with_its_class_legend_open(desktop_session):
    """A second run's outputs went under the first run's, which still hid them; both confidences had one
    name; the class legend was collapsed and the confidence ramp open (a user's desktop audit)."""
    _, result = desktop_session
    sar = "s1_demo_vv_vh_db"
    runs = [f"{sar} {model}{kind}" for model in ("water", "land cover") for kind in ("", " confidence")]
    assert result["layer_order_after_water"] == [*runs, sar]
    expanded = result["legend_expanded"]
    assert expanded[f"{sar} water"] and not expanded[f"{sar} water confidence"]


@pytest.mark.slow
def test_raster_menu_has_segment_and_fine_tune(desktop_session):
    _, result = desktop_session
    entries = result["raster_menu"]["HFD-Net SAR segmentation"]
    assert entries == ["Segment SAR layer…", "Fine-tune SAR model with EO reference…"]
    assert "segment_dialog_from_menu" in result["steps"]


@pytest.mark.slow
def test_segment_dialog_after_a_run_starts_from_the_sar_layer(desktop_session):
    _, result = desktop_session
    probe = result["open_output_probe"]
    assert result["active_after_segment"] == probe["default_input"] == "s1_demo_vv_vh_db"
    assert probe["after"] == [True, True]  # "Open output file" of land cover and confidence


@pytest.mark.slow
def test_water_against_the_rest_on_the_real_chip_in_the_desktop(desktop_session, shared_data):
    _, result = desktop_session
    india = result["india"]
    assert india["blind_oa"] < 0.1 and india["blind_warned"]
    # the report's water IoU and OA are the ones counted from the two rasters (measured 2026-12-05: 0.093,
    # 0.567; the bundled land-cover student never saw this chip and calls most flooded fields another class)
    assert india["water_iou"] == pytest.approx(india["counted_water_iou"], abs=1e-4)
    assert india["water_oa"] == pytest.approx(india["counted_oa"], abs=1e-4)

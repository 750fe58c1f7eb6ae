"""Whole-scene evaluation and `python -m hfd_core evaluate --json`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data import _write_ombria
from test_train_fixtures import EO_BANDS, SAR_BANDS, toy_scene
from torch import nn

from hfd_core import IGNORE_INDEX
from hfd_core.cli import main
from hfd_core.data import Scene
from hfd_core.errors import InputError
from hfd_core.modelfile import ClassInfo, ModelMetadata, bundled_model_path, model_argument, save_model
from hfd_core.models import HFDNet, HFDNetConfig
from hfd_core.train.datasets import DATASETS, DatasetSpec, load_scenes
from hfd_core.train.evaluation import evaluate_model_file, evaluate_scenes, model_input, predict_scene

CLASSES = [ClassInfo(0, "dry", "#000000"), ClassInfo(1, "wet", "#0000ff")]


class SignOfFirstBand(nn.Module):
    """Class 1 where the (normalised) first band is positive: a model whose predictions are known exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([-x[:, :1], x[:, :1]], dim=1)


def _metadata(role: str = "student", bands=SAR_BANDS, tile_size: int = 16) -> ModelMetadata:
    config = HFDNetConfig(in_channels=len(bands), num_classes=2, widths=(4, 8, 8, 8), align_dim=8)
    return ModelMetadata(
        role=role,
        config=config,
        bands=list(bands),
        input_kind="sar_db",
        mean=[0.0] * len(bands),
        std=[1.0] * len(bands),
        classes=CLASSES,
        tile_size=tile_size,
    )


def _scene(sar: np.ndarray, label: np.ndarray, name: str = "chip") -> Scene:
    return Scene(name=name, group=name, sar=sar, eo=None, label=label, sar_bands=list(SAR_BANDS), eo_bands=[])


def test_predict_scene_covers_odd_sizes_and_marks_nodata():
    rng = np.random.default_rng(0)
    sar = rng.normal(size=(2, 37, 45)).astype(np.float32)
    sar[:, 3, 4] = np.nan
    prediction = predict_scene(
        SignOfFirstBand(), _metadata(tile_size=16), _scene(sar, None), torch.device("cpu")
    )
    assert prediction.shape == (37, 45) and prediction.dtype == np.uint8
    assert prediction[3, 4] == IGNORE_INDEX
    expected = (sar[0] > 0).astype(np.uint8)
    expected[3, 4] = IGNORE_INDEX
    assert np.array_equal(prediction, expected)


def test_scores_match_hand_computed_values():
    sar = np.ones((2, 4, 4), np.float32)
    sar[0, :, :2] = -1  # predicts dry on the left half, wet on the right half
    perfect = _scene(sar, (sar[0] > 0).astype(np.uint8), "perfect")
    wrong = _scene(sar, np.ones((4, 4), np.uint8), "all_wet")  # left half wrong: 8 wet pixels called dry
    wrong.label[0, 0] = IGNORE_INDEX
    report = evaluate_scenes(SignOfFirstBand(), _metadata(), [perfect, wrong], device="cpu")
    assert report["confusion_matrix"] == [[8, 0], [7, 16]]
    assert report["per_class_iou"]["dry"] == pytest.approx(8 / 15)
    assert report["per_class_iou"]["wet"] == pytest.approx(16 / 23)
    assert report["oa"] == pytest.approx(24 / 31)
    assert report["per_chip"][0]["miou"] == pytest.approx(1.0)
    # second chip: dry IoU 0 (no dry truth, 7 false dry), wet IoU 8/15
    assert report["per_chip_miou"] == pytest.approx((1.0 + (0.0 + 8 / 15) / 2) / 2)


def test_model_input_follows_the_role():
    scene = toy_scene(0)
    teacher_meta = _metadata("teacher", EO_BANDS)
    assert predict_scene(SignOfFirstBand(), teacher_meta, scene, torch.device("cpu")).shape == (32, 32)
    with pytest.raises(InputError, match="bands"):
        predict_scene(SignOfFirstBand(), _metadata("student", ["HH", "HV"]), scene, torch.device("cpu"))
    scene.eo = None
    with pytest.raises(InputError, match="EO"):
        predict_scene(SignOfFirstBand(), teacher_meta, scene, torch.device("cpu"))


def test_evaluate_command_writes_json(tmp_path, monkeypatch, capsys):
    scenes = [toy_scene(i) for i in range(3)]
    monkeypatch.setitem(DATASETS, "toy", DatasetSpec("toy", lambda root, split: scenes))
    model_path = tmp_path / "student.pt"
    save_model(model_path, HFDNet(_metadata().config), _metadata())
    out = tmp_path / "scores.json"
    code = main(
        [
            "evaluate",
            "--dataset",
            "toy",
            "--root",
            str(tmp_path),
            "--split",
            "all",
            "--model",
            str(model_path),
            "--json",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["dataset"] == "toy" and report["split"] == "all" and report["num_scenes"] == 3
    assert set(report) >= {"miou", "per_class_iou", "oa", "kappa", "f1", "confusion_matrix", "per_chip_miou"}
    assert sum(map(sum, report["confusion_matrix"])) == 3 * 32 * 32
    assert report["per_chip_miou"] == pytest.approx(np.mean([c["miou"] for c in report["per_chip"]]))
    assert f"{report['miou']:.4f}" in capsys.readouterr().out


def test_model_input_picks_the_model_bands_by_name():
    """A scene holding more bands (OMBRIA before + after) gives the model the ones it was trained on."""
    scene = toy_scene(0)
    scene.sar = np.stack([scene.sar[0] * 0 - 5, scene.sar[0]])
    scene.sar_bands = ["VV_before", "VV_after"]
    metadata = _metadata("student", ["VV_after"])
    assert np.array_equal(model_input(scene, metadata), scene.sar[[1]])
    with pytest.raises(InputError, match="expects"):
        model_input(scene, _metadata("student", ["VH_after"]))


@pytest.mark.parametrize("bands", [["VV_after"], ["VV_before", "VV_after"]])
def test_evaluate_command_on_ombria_layout_for_both_inputs(tmp_path, bands):
    """`evaluate --dataset ombria` scores an after-only student and a before+after student alike."""
    _write_ombria(tmp_path, "test", ["0001", "0002"])
    metadata = _metadata("student", bands)
    save_model(tmp_path / "student.pt", HFDNet(metadata.config), metadata)
    out = tmp_path / "scores.json"
    args = ["evaluate", "--dataset", "ombria", "--root", str(tmp_path), "--split", "test"]
    assert main([*args, "--model", str(tmp_path / "student.pt"), "--json", str(out), "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    assert report["num_scenes"] == 2 and report["bands"] == bands
    assert sum(map(sum, report["confusion_matrix"])) == 2 * 16 * 16


def test_evaluate_takes_a_bundled_model_by_name(tmp_path, monkeypatch):
    """`evaluate --model water` scores the bundled water model (names in any case); a file of that name is
    still a file."""
    _write_ombria(tmp_path, "test", ["0001"])
    monkeypatch.chdir(tmp_path)
    args = ["evaluate", "--dataset", "ombria", "--root", str(tmp_path), "--device", "cpu", "--json", "s.json"]
    assert main([*args, "--model", "water"]) == 0
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["model"] == str(bundled_model_path("water_student"))
    assert report["per_class_iou"].keys() == {"not water", "water"}
    assert model_argument("Water") == bundled_model_path("water_student")
    (tmp_path / "land-cover").mkdir()  # a folder is not a model file
    assert model_argument("land-cover") == bundled_model_path("student")
    shutil.copy(bundled_model_path("student"), tmp_path / "water")
    assert model_argument("water") == Path("water")


def test_ombria_without_before_images_reads_the_after_image(tmp_path):
    """Flood events published with only the after images: after-only models work, a before+after model is
    refused by band name."""
    _write_ombria(tmp_path, "test", ["0001"])
    for sensor in ("S1", "S2"):
        shutil.rmtree(tmp_path / f"Ombria{sensor}" / "test" / "BEFORE")
    (scene,) = load_scenes("ombria", tmp_path, "test")
    assert scene.sar_bands == ["VV_after"]
    metadata = _metadata("student", ["VV_before", "VV_after"])
    save_model(tmp_path / "both.pt", HFDNet(metadata.config), metadata)
    with pytest.raises(InputError, match="expects"):
        evaluate_model_file(tmp_path / "both.pt", [scene], device="cpu")


class WindowMean(nn.Module):
    """Context-dependent model: class 1 where the first band is above its window's mean."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x[:, :1] - x[:, :1].mean(dim=(2, 3), keepdim=True)
        return torch.cat([-centred, centred], dim=1)


def test_scene_up_to_the_evaluation_window_is_predicted_in_one_piece():
    """A chip no larger than EVAL_WINDOW is one forward pass, whatever the model's (smaller) tile size."""
    rng = np.random.default_rng(1)
    sar = rng.normal(size=(2, 64, 64)).astype(np.float32)
    sar[0, :32] += 2  # top half bright: small windows would centre each half on its own mean
    prediction = predict_scene(WindowMean(), _metadata(tile_size=16), _scene(sar, None), torch.device("cpu"))
    assert np.array_equal(prediction, (sar[0] > sar[0].mean()).astype(np.uint8))


def test_overlapping_evaluation_windows_blend_without_changing_a_pointwise_model():
    rng = np.random.default_rng(2)
    sar = rng.normal(size=(2, 70, 53)).astype(np.float32)
    prediction = predict_scene(
        SignOfFirstBand(), _metadata(), _scene(sar, None), torch.device("cpu"), window=32
    )
    assert np.array_equal(prediction, (sar[0] > 0).astype(np.uint8))

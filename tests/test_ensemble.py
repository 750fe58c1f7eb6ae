"""Ensembles of model files: averaged probabilities, one file, each member's own input statistics."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from test_train_fixtures import TINY_MODEL, tiny_config, toy_scenes

from hfd_core.data.normalization import BandStats, normalize
from hfd_core.errors import InputError, ModelFileError
from hfd_core.infer.tiled import segment_raster
from hfd_core.modelfile import ClassInfo, ModelMetadata, combine_model_files, load_model, save_model
from hfd_core.models import HFDNet, HFDNetConfig
from hfd_core.models.ensemble import HFDEnsemble
from hfd_core.train import train_student

CLASSES = [ClassInfo(0, "not water", "#d9d9d9"), ClassInfo(1, "water", "#2e86de")]


def _model_file(path, seed: int, mean: list[float], std: list[float]):
    torch.manual_seed(seed)
    config = HFDNetConfig(2, 2, **TINY_MODEL)
    network = HFDNet(config).eval()
    metadata = ModelMetadata(
        role="student", config=config, bands=["VV", "VH"], input_kind="sar_db", mean=mean, std=std,
        classes=CLASSES, tile_size=32,
    )  # fmt: skip
    save_model(path, network, metadata)
    return path


@pytest.fixture
def members(tmp_path):
    return [
        _model_file(tmp_path / "a.pt", 0, [-12.0, -19.0], [4.0, 5.0]),
        _model_file(tmp_path / "b.pt", 1, [-11.0, -20.0], [3.0, 6.0]),
        _model_file(tmp_path / "c.pt", 2, [-12.5, -18.0], [4.5, 4.0]),
    ]


def test_ensemble_file_averages_the_members_probabilities_each_with_its_own_statistics(members, tmp_path):
    ensemble, metadata = combine_model_files(members)
    save_model(tmp_path / "ensemble.pt", ensemble, metadata)
    loaded, loaded_metadata = load_model(tmp_path / "ensemble.pt")
    assert isinstance(loaded, HFDEnsemble) and len(loaded_metadata.members) == 3
    assert loaded_metadata.training["ensemble_of"] == [str(path) for path in members]
    raw = np.random.default_rng(0).normal([[[-12.0]], [[-19.0]]], 4.0, (2, 32, 32)).astype(np.float32)
    expected = 0
    for path in members:
        network, member = load_model(path)
        x = torch.from_numpy(normalize(raw, BandStats(member.mean, member.std)))[None]
        with torch.no_grad():
            expected = expected + torch.softmax(network(x), dim=1) / len(members)
    x = torch.from_numpy(normalize(raw, BandStats(loaded_metadata.mean, loaded_metadata.std)))[None]
    with torch.no_grad():
        averaged = torch.softmax(loaded(x), dim=1)
    assert torch.allclose(averaged, expected, atol=1e-5)


def test_segment_raster_runs_an_ensemble_file(members, tmp_path, demo_sample):
    ensemble, metadata = combine_model_files(members)
    save_model(tmp_path / "ensemble.pt", ensemble, metadata)
    segment_raster(demo_sample, tmp_path / "map.tif", tmp_path / "ensemble.pt", tile_size=64, overlap=16)
    with rasterio.open(tmp_path / "map.tif") as src:
        assert set(np.unique(src.read(1))) <= {0, 1}


def test_combining_refuses_one_model_other_tasks_and_ensembles(members, tmp_path):
    with pytest.raises(ModelFileError, match="two or more"):
        combine_model_files(members[:1])
    network, metadata = load_model(members[0])
    metadata.bands = ["HH", "HV"]
    save_model(tmp_path / "other.pt", network, metadata)
    with pytest.raises(ModelFileError, match="same task"):
        combine_model_files([members[0], tmp_path / "other.pt"])
    ensemble, metadata = combine_model_files(members[:2])
    save_model(tmp_path / "ensemble.pt", ensemble, metadata)
    with pytest.raises(ModelFileError, match="already an ensemble"):
        combine_model_files([tmp_path / "ensemble.pt", members[2]])
    with pytest.raises(ModelFileError, match="is given twice"):  # it was averaged with itself
        combine_model_files([members[0], members[1], members[0]])


def _ensemble_file(paths, out):
    save_model(out, *combine_model_files(paths))
    return out


def test_an_ensemble_is_neither_trained_further_nor_a_teacher(members, tmp_path, demo_sample):
    """Refused at the start with a clear message: as the model to train, as a teacher, in fine-tuning."""
    from hfd_core.train.finetune import finetune

    ensemble = _ensemble_file(members[:2], tmp_path / "ensemble.pt")
    scenes = toy_scenes(3)
    config = tiny_config(tmp_path / "run", distill_weight=0.0, init_from=str(ensemble))
    with pytest.raises(
        InputError, match="ensemble of 2 networks.*training it further needs a single network"
    ):
        train_student(scenes[:2], scenes[2:], None, config)
    network, metadata = load_model(members[0])
    metadata.role = "teacher"
    teachers = [tmp_path / "teacher_a.pt", tmp_path / "teacher_b.pt"]
    for path in teachers:
        save_model(path, network, metadata)
    teacher_ensemble = _ensemble_file(teachers, tmp_path / "teachers.pt")
    with pytest.raises(InputError, match="a teacher needs a single network"):
        train_student(scenes[:2], scenes[2:], teacher_ensemble, tiny_config(tmp_path / "distilled"))
    with pytest.raises(InputError, match="fine-tuning needs a single network"):
        finetune(demo_sample, demo_sample, tmp_path / "tuned.pt", ensemble, teachers[0])
    with pytest.raises(InputError, match="a teacher needs a single network"):
        finetune(demo_sample, demo_sample, tmp_path / "tuned.pt", members[0], teacher_ensemble)
    assert not (tmp_path / "tuned.pt").exists()


def test_ensemble_files_have_their_own_format_version(members, tmp_path):
    """Format 2 for an ensemble, so that a plugin from before ensembles asks for an update; a single network's
    file stays format 1 without the new field."""
    ensemble = _ensemble_file(members[:2], tmp_path / "ensemble.pt")
    assert torch.load(ensemble, weights_only=True)["format_version"] == 2
    single = torch.load(members[0], weights_only=True)
    assert single["format_version"] == 1 and "members" not in single["metadata_json"]


def test_an_ensemble_is_evaluated_like_a_network(members, tmp_path):
    from hfd_core.train.evaluation import evaluate_scenes

    ensemble, metadata = combine_model_files(members)
    report = evaluate_scenes(ensemble, metadata, toy_scenes(2), torch.device("cpu"))
    assert 0 <= report["miou"] <= 1


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda members: members[1].update(std=[1.0]), "member 1 has statistics for other inputs"),
        (lambda members: members[1].update(std=[1.0, 0.0]), "member 1 has a non-positive standard deviation"),
        (lambda members: members[0].update(mean=[0.0, 0.0]), "member 0 is not the file's own"),
        (lambda members: members.pop(), "two or more members"),
    ],
)
def test_a_damaged_ensemble_file_is_refused(members, tmp_path, damage, message):
    ensemble, metadata = combine_model_files(members[:2])
    damage(metadata.members)
    with pytest.raises(ModelFileError, match=message):
        save_model(tmp_path / "ensemble.pt", ensemble, metadata)


def test_ensemble_command(members, tmp_path, capsys):
    from hfd_core.cli import main

    out = tmp_path / "ensemble.pt"
    assert main(["ensemble", "--models", *map(str, members), "--out", str(out)]) == 0
    assert len(load_model(out)[1].members) == 3
    assert "ensemble of 3 models" in capsys.readouterr().out

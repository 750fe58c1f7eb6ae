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


def test_an_ensemble_is_not_trained_further(members, tmp_path):
    ensemble, metadata = combine_model_files(members[:2])
    save_model(tmp_path / "ensemble.pt", ensemble, metadata)
    scenes = toy_scenes(3)
    config = tiny_config(tmp_path / "run", distill_weight=0.0, init_from=str(tmp_path / "ensemble.pt"))
    with pytest.raises(InputError, match="ensemble of 2 models.*a.pt"):
        train_student(scenes[:2], scenes[2:], None, config)


def test_a_damaged_ensemble_file_is_refused(members, tmp_path):
    ensemble, metadata = combine_model_files(members[:2])
    metadata.members[1]["std"] = [1.0]
    with pytest.raises(ModelFileError, match="member 1 has statistics for other inputs"):
        save_model(tmp_path / "ensemble.pt", ensemble, metadata)


def test_ensemble_command(members, tmp_path, capsys):
    from hfd_core.cli import main

    out = tmp_path / "ensemble.pt"
    assert main(["ensemble", "--models", *map(str, members), "--out", str(out)]) == 0
    assert len(load_model(out)[1].members) == 3
    assert "ensemble of 3 models" in capsys.readouterr().out

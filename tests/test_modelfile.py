"""Model file: round trip, safety, clear errors."""

from __future__ import annotations

import os

import pytest
import torch

from hfd_core.errors import ModelFileError
from hfd_core.modelfile import ClassInfo, ModelMetadata, load_model, read_metadata, save_model
from hfd_core.models import HFDNet, HFDNetConfig

CONFIG = HFDNetConfig(2, 2, widths=(4, 8, 8, 8), align_dim=8)


def _metadata(**changes) -> ModelMetadata:
    values = dict(
        role="student",
        config=CONFIG,
        bands=["VV", "VH"],
        input_kind="sar_db",
        mean=[-12.0, -19.0],
        std=[4.0, 5.0],
        classes=[ClassInfo(0, "land", "#a0a0a0"), ClassInfo(1, "water", "#2b7bb9")],
        training={"epochs": 3, "groups": ["a", "b"]},
        metrics={"miou": 0.5},
    )
    return ModelMetadata(**{**values, **changes})


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    model = HFDNet(CONFIG)
    path = tmp_path / "m.pt"
    save_model(path, model, _metadata())
    loaded, metadata = load_model(path)
    assert metadata == _metadata() and read_metadata(path) == metadata
    assert not loaded.training
    x = torch.randn(1, 2, 32, 32)
    assert torch.allclose(loaded(x), model.eval()(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable"),
        (b"GeoTIFF? no, just text", "not a readable"),
    ],
)
def test_garbage_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    save_model(path, HFDNet(CONFIG), _metadata())
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model(path)


def test_other_torch_files_and_versions_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="not an HFD-Net model file"):
        load_model(tmp_path / "other.pt")
    save_model(tmp_path / "m.pt", HFDNet(CONFIG), _metadata())
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="version 99"):
        load_model(tmp_path / "future.pt")


def test_pickled_objects_are_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"format": "hfd-net", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_inconsistent_metadata_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="bands"):
        save_model(tmp_path / "m.pt", HFDNet(CONFIG), _metadata(bands=["VV"], mean=[0.0], std=[1.0]))
    with pytest.raises(ModelFileError, match="role"):
        save_model(tmp_path / "m.pt", HFDNet(CONFIG), _metadata(role="oracle"))


def test_missing_file_message(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nope.pt")

"""Teacher and student training loops: learning, frozen teacher, --no-distill, resume, best-on-val, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train_fixtures import EO_BANDS, SAR_BANDS, TINY_MODEL, tiny_config, toy_scenes

from hfd_core.data.normalization import compute_band_stats
from hfd_core.errors import Canceled, InputError
from hfd_core.modelfile import load_model
from hfd_core.models import HFDNet, HFDNetConfig
from hfd_core.train import TrainCallbacks, train_student, train_teacher
from hfd_core.train.checkpoint import load_checkpoint, save_checkpoint
from hfd_core.train.objectives import StudentObjective


@pytest.fixture(scope="module")
def scenes():
    all_scenes = toy_scenes(5)
    return all_scenes[:4], all_scenes[4:]


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory, scenes):
    out = tmp_path_factory.mktemp("teacher")
    return train_teacher(*scenes, tiny_config(out, epochs=3)).best_path


def _weights(path) -> dict[str, torch.Tensor]:
    return load_model(path)[0].state_dict()


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_teacher_learns_and_writes_model_file(tmp_path, scenes):
    train, val = scenes
    seen = []
    result = train_teacher(
        train,
        val,
        tiny_config(tmp_path, epochs=4, samples_per_epoch=32),  # 32 steps: BatchNorm statistics settle
        TrainCallbacks(on_epoch_end=lambda epoch, values: seen.append((epoch, values))),
    )
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert [epoch for epoch, _ in seen] == [1, 2, 3, 4]
    assert result.history[-1]["val_miou"] > 0.5
    model, metadata = load_model(result.best_path)
    assert metadata.role == "teacher" and metadata.bands == EO_BANDS
    expected = compute_band_stats([s.eo for s in train])
    assert np.allclose(metadata.mean, expected.mean) and np.allclose(metadata.std, expected.std)
    assert metadata.metrics["val_miou"] == max(row["val_miou"] for row in result.history)
    assert metadata.training["best_epoch"] == result.best_epoch
    assert metadata.training["train_scenes"] == 4 and metadata.training["val_groups"] == ["g4"]
    assert (tmp_path / "last.ckpt").exists() and (tmp_path / "history.json").exists()


def test_student_distilled_from_teacher(tmp_path, scenes, teacher_path):
    before = _weights(teacher_path)
    result = train_student(
        *scenes, teacher_path, tiny_config(tmp_path, distill_weight=1.0, logit_distill_weight=0.5)
    )
    assert _same(before, _weights(teacher_path))
    assert {"train_feature_distill", "train_logit_distill", "train_seg"} <= set(result.history[0])
    _, metadata = load_model(result.best_path)
    assert metadata.role == "student" and metadata.bands == SAR_BANDS
    assert metadata.training["teacher"] == str(teacher_path)
    assert metadata.config.widths == tuple(TINY_MODEL["widths"]) and metadata.config.in_channels == 2


def test_teacher_stays_frozen_during_student_steps(scenes):
    teacher = HFDNet(HFDNetConfig(in_channels=3, num_classes=2, **TINY_MODEL))
    student = HFDNet(HFDNetConfig(in_channels=2, num_classes=2, **TINY_MODEL))
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    objective = StudentObjective(teacher, distill_weight=1.0, logit_distill_weight=1.0, pseudo_labels=True)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    batch = {
        "sar": torch.randn(2, 2, 16, 16),
        "eo": torch.randn(2, 3, 16, 16),
        "label": torch.randint(0, 2, (2, 16, 16)),
        "valid": torch.ones(2, 16, 16, dtype=torch.bool),
    }
    student.train()
    for _ in range(2):
        loss, parts = objective.loss(student, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert _same(frozen, teacher.state_dict())
    assert parts["feature_distill"] > 0


def test_no_distill_ignores_the_teacher_weights(tmp_path, scenes):
    teachers = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        teachers.append(tmp_path / f"teacher{seed}.pt")
        train_teacher(*scenes, tiny_config(tmp_path / f"t{seed}", epochs=1, seed=seed))
        (tmp_path / f"t{seed}" / "best.pt").rename(teachers[-1])
    assert not _same(_weights(teachers[0]), _weights(teachers[1]))
    students = [
        train_student(*scenes, t, tiny_config(tmp_path / t.stem, distill_weight=0.0)).best_path
        for t in teachers
    ]
    assert _same(_weights(students[0]), _weights(students[1]))
    assert "teacher" not in load_model(students[0])[1].training


def test_distillation_needs_a_teacher_and_eo(tmp_path, scenes, teacher_path):
    with pytest.raises(InputError, match="teacher"):
        train_student(*scenes, None, tiny_config(tmp_path, distill_weight=1.0))
    no_eo = toy_scenes(4)
    no_eo[0].eo = None
    with pytest.raises(InputError, match="EO"):
        train_student(no_eo, [], teacher_path, tiny_config(tmp_path, distill_weight=1.0))


def _stop_after(batches: int) -> TrainCallbacks:
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > batches

    return TrainCallbacks(should_stop=should_stop)


def test_resume_continues_exactly(tmp_path, scenes):
    straight = train_teacher(*scenes, tiny_config(tmp_path / "straight", epochs=2))
    killed = train_teacher(
        *scenes, tiny_config(tmp_path / "split", epochs=2), _stop_after(2)
    )  # after epoch 1
    assert killed.canceled and len(killed.history) == 1
    resumed = train_teacher(*scenes, tiny_config(tmp_path / "split", epochs=2, resume=True))
    assert resumed.history == straight.history
    a = load_checkpoint(tmp_path / "straight" / "last.ckpt")["model"]
    b = load_checkpoint(tmp_path / "split" / "last.ckpt")["model"]
    assert _same(a, b)


def test_cancel_keeps_best_so_far(tmp_path, scenes):
    # 2 batches per epoch: stops in the middle of epoch 2
    result = train_teacher(*scenes, tiny_config(tmp_path, epochs=3), _stop_after(3))
    assert result.canceled and result.best_epoch == 1 and len(result.history) == 1
    assert load_model(result.best_path)[1].training["best_epoch"] == 1
    assert load_checkpoint(tmp_path / "last.ckpt")["epoch"] == 1


def test_cancel_before_any_epoch_raises(tmp_path, scenes):
    with pytest.raises(Canceled):
        train_teacher(*scenes, tiny_config(tmp_path), TrainCallbacks(should_stop=lambda: True))
    assert not (tmp_path / "best.pt").exists()


def test_fine_tuning_starts_from_model_file(tmp_path, scenes, teacher_path):
    result = train_teacher(*scenes, tiny_config(tmp_path, epochs=1, init_from=str(teacher_path)))
    _, base = load_model(teacher_path)
    _, tuned = load_model(result.best_path)
    assert tuned.mean == base.mean and tuned.training["fine_tuning"] == [{"from": str(teacher_path)}]


def test_pseudo_labels_train_without_labels(tmp_path, scenes, teacher_path):
    unlabelled = toy_scenes(4)
    for scene in unlabelled:
        scene.label = np.full_like(scene.label, 255)
    result = train_student(
        unlabelled, scenes[1], teacher_path, tiny_config(tmp_path, distill_weight=0.0, pseudo_labels=True)
    )
    assert np.isfinite(result.history[0]["train_seg"]) and result.history[0]["train_seg"] > 0


class FixedLogits(torch.nn.Module):
    """A network that answers the same (1, K, H, W) logits for any input (no features)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)
        self.offset = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, return_features=False):
        out = self.logits.expand(x.shape[0], -1, -1, -1) + self.offset
        return (out, []) if return_features else out


def test_pseudo_labels_below_the_confidence_threshold_do_not_train():
    """Teacher: class 1 at 99% on the top row, 52% on the bottom row; only the top row is a target at 0.9."""
    teacher = FixedLogits(torch.tensor([[[5.0, 5.0], [0.1, 0.1]], [[0.0, 0.0], [0.0, 0.0]]]).flip(0)[None])
    student_logits = torch.tensor([[[1.0, 1.0], [3.0, 3.0]], [[0.0, 0.0], [0.0, 0.0]]])[None]
    batch = {
        "sar": torch.zeros(1, 2, 2, 2),
        "eo": torch.zeros(1, 3, 2, 2),
        "label": torch.full((1, 2, 2), 255),
        "valid": torch.ones(1, 2, 2, dtype=torch.bool),
    }
    target = torch.ones(1, 2, 2, dtype=torch.long)
    ce = torch.nn.functional.cross_entropy(student_logits, target, reduction="none")
    for threshold, expected in ((0.0, ce.mean()), (0.9, ce[0, 0].mean())):
        objective = StudentObjective(teacher, pseudo_labels=True, pseudo_label_confidence=threshold)
        _, parts = objective.loss(FixedLogits(student_logits), batch)
        assert torch.isclose(parts["seg"], expected), threshold


def test_checkpoint_roundtrip_and_foreign_file(tmp_path):
    save_checkpoint(tmp_path / "a.ckpt", {"epoch": 3, "model": {"w": torch.ones(2)}})
    assert load_checkpoint(tmp_path / "a.ckpt")["epoch"] == 3
    assert list(tmp_path.iterdir()) == [tmp_path / "a.ckpt"]
    (tmp_path / "b.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_checkpoint(tmp_path / "b.ckpt")

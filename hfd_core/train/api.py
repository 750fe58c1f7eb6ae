"""Programmatic entry points: ``train_teacher`` and ``train_student`` (also used by QGIS fine-tuning).

Both follow the same steps: join the process group (torchrun) and pick the device, seed, compute the
normalisation statistics on the *training* scenes, build the network (or start from ``config.init_from``),
build random training windows and grid validation tiles, then ``loop.fit``.

Choices:
* Student architecture = teacher architecture (the paper's setting; the distilled features must have the same
  shape), only the input channels differ. Without a teacher, ``config.model`` decides.
* The student reads the EO with the teacher's own normalisation statistics (those it was trained with).
* Fine-tuning (``init_from``) keeps the starting model's architecture, bands, classes and normalisation (its
  weights were learned with them) and appends this run to ``training["fine_tuning"]``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hfd_core import IGNORE_INDEX
from hfd_core.data import PairedTileDataset, Scene
from hfd_core.data.normalization import BandStats, compute_band_stats
from hfd_core.errors import InputError
from hfd_core.modelfile import ClassInfo, ModelMetadata, load_model, require_single_network
from hfd_core.models import HFDNet, HFDNetConfig
from hfd_core.train.config import TrainCallbacks, TrainConfig
from hfd_core.train.datasets import DatasetSpec, default_classes
from hfd_core.train.distributed import setup, teardown
from hfd_core.train.loop import TrainResult, fit, seed_everything
from hfd_core.train.objectives import StudentObjective, TeacherObjective

log = logging.getLogger(__name__)


def _require(scenes: list[Scene], attribute: str, purpose: str) -> None:
    missing = [scene.name for scene in scenes if getattr(scene, attribute) is None]
    if missing:
        raise InputError(
            f"{purpose} needs {attribute.upper()} in every scene; missing in: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )


def require_teacher(config: TrainConfig, teacher_path: str | Path | None) -> None:
    """InputError when ``config`` distils from a teacher (``TrainConfig.uses_teacher``) and none is given;
    the CLI asks before it reads the data."""
    if config.uses_teacher and not teacher_path:
        raise InputError("train-student distils from a teacher: give --teacher, or --no-distill for SAR only")


def _require_labelled_pixels(scenes: list[Scene], purpose: str) -> None:
    """InputError when no training scene has a labelled pixel: the run would train on nothing (loss 0) and
    write a model all the same."""
    if not any(scene.label is not None and (scene.label != IGNORE_INDEX).any() for scene in scenes):
        raise InputError(
            f"{purpose}: none of the {len(scenes)} training scene(s) has a labelled pixel (all nodata)"
        )


def _require_tiles_fit(scenes: list[Scene], tile_size: int) -> None:
    """InputError when the tile is larger than every training scene in both directions: most of each tile
    would be padding."""
    shapes = [scene.shape for scene in scenes]
    if shapes and all(rows < tile_size and cols < tile_size for rows, cols in shapes):
        largest = max(max(shape) for shape in shapes)
        raise InputError(
            f"tile size {tile_size} is larger than every training scene (the largest side is {largest} "
            f"pixels): choose a tile size of at most {largest}"
        )


def _bands(scenes: list[Scene], attribute: str) -> list[str]:
    bands = getattr(scenes[0], f"{attribute}_bands")
    for scene in scenes:
        if getattr(scene, f"{attribute}_bands") != bands:
            raise InputError(
                f"scenes disagree on {attribute.upper()} bands: {bands} vs "
                f"{getattr(scene, f'{attribute}_bands')} in {scene.name}"
            )
    return list(bands)


def _classes(scenes: list[Scene], spec: DatasetSpec | None) -> list[ClassInfo]:
    if spec is not None and spec.classes is not None:
        return list(spec.classes)
    highest = max(
        int(np.max(np.where(s.label == IGNORE_INDEX, 0, s.label))) for s in scenes if s.label is not None
    )
    return default_classes(max(highest + 1, 2))


def _stats(metadata: ModelMetadata) -> BandStats:
    return BandStats(mean=list(metadata.mean), std=list(metadata.std))


def _tiles(
    scenes: list[Scene],
    config: TrainConfig,
    sar_stats: BandStats | None,
    eo_stats: BandStats | None,
    training: bool,
) -> PairedTileDataset:
    return PairedTileDataset(
        scenes,
        tile_size=config.tile_size,
        sar_stats=sar_stats,
        eo_stats=eo_stats,
        mode="random" if training else "grid",
        samples_per_epoch=config.samples_per_epoch,
        augment=training and config.augment,
        seed=config.seed,
    )


def _summary(train: list[Scene], val: list[Scene]) -> dict:
    return {
        "train_scenes": len(train),
        "val_scenes": len(val),
        "train_groups": sorted({s.group for s in train}),
        "val_groups": sorted({s.group for s in val}),
    }


def _start(
    role: str,
    attribute: str,
    train: list[Scene],
    config: TrainConfig,
    classes: list[ClassInfo],
    input_kind: str,
    architecture: dict,
) -> tuple[HFDNet, ModelMetadata]:
    """The network to train and the metadata of its model file, from scratch or from ``config.init_from``."""
    bands = _bands(train, attribute)
    if config.init_from:
        model, metadata = load_model(config.init_from)
        require_single_network(metadata, config.init_from, "training it further")
        if metadata.role != role or metadata.bands != bands:
            raise InputError(
                f"{config.init_from} is a {metadata.role} for bands {metadata.bands}; this run trains "
                f"a {role} on bands {bands}"
            )
        history = [*metadata.training.get("fine_tuning", []), {"from": str(config.init_from)}]
        metadata.training = {**metadata.training, "fine_tuning": history}
        return model, metadata
    stats = compute_band_stats([getattr(scene, attribute) for scene in train])
    model_config = HFDNetConfig(**{**architecture, "in_channels": len(bands), "num_classes": len(classes)})
    metadata = ModelMetadata(
        role=role,
        config=model_config,
        bands=bands,
        input_kind=input_kind,
        mean=list(stats.mean),
        std=list(stats.std),
        classes=classes,
        tile_size=config.tile_size,
        nodata=IGNORE_INDEX,
    )
    return HFDNet(model_config), metadata


def _run(
    objective,
    model: HFDNet,
    metadata: ModelMetadata,
    train: list[Scene],
    val: list[Scene],
    config: TrainConfig,
    callbacks: TrainCallbacks | None,
    sar_stats: BandStats | None,
    eo_stats: BandStats | None,
) -> TrainResult:
    ctx = setup(config.device)
    try:
        if objective.teacher is not None:
            objective.teacher.to(ctx.device)
        metadata.training = {**metadata.training, **_summary(train, val)}
        return fit(
            model.to(ctx.device),
            objective,
            metadata,
            _tiles(train, config, sar_stats, eo_stats, True),
            _tiles(val, config, sar_stats, eo_stats, False) if val else None,
            config,
            callbacks or TrainCallbacks(),
            ctx,
        )
    finally:
        teardown(ctx)


def train_teacher(
    train_scenes: list[Scene],
    val_scenes: list[Scene],
    config: TrainConfig,
    callbacks: TrainCallbacks | None = None,
    spec: DatasetSpec | None = None,
) -> TrainResult:
    """Train the EO teacher on EO + labels; the best epoch is ``<out_dir>/best.pt``."""
    _require(train_scenes + val_scenes, "eo", "teacher training")
    _require(train_scenes + val_scenes, "label", "teacher training")
    _require_labelled_pixels(train_scenes, "teacher training")
    _require_tiles_fit(train_scenes, config.tile_size)
    seed_everything(config.seed)
    model, metadata = _start(
        "teacher",
        "eo",
        train_scenes,
        config,
        _classes(train_scenes + val_scenes, spec),
        spec.eo_kind if spec else "eo_reflectance",
        dict(config.model),
    )
    eo_stats = _stats(metadata)
    return _run(
        TeacherObjective(), model, metadata, train_scenes, val_scenes, config, callbacks, None, eo_stats
    )


def train_student(
    train_scenes: list[Scene],
    val_scenes: list[Scene],
    teacher_path: str | Path | None,
    config: TrainConfig,
    callbacks: TrainCallbacks | None = None,
    spec: DatasetSpec | None = None,
) -> TrainResult:
    """Train the SAR student, distilled from the teacher file (or SAR-only when it is None or unused)."""
    require_teacher(config, teacher_path)
    uses_teacher = config.uses_teacher
    teacher, teacher_meta = load_model(teacher_path) if teacher_path else (None, None)
    if teacher_meta is not None:
        require_single_network(teacher_meta, teacher_path, "a teacher")
    scenes = train_scenes + val_scenes
    _require(scenes, "sar", "student training")
    if not config.pseudo_labels:
        _require(scenes, "label", "student training without pseudo-labels")
        _require_labelled_pixels(train_scenes, "student training without pseudo-labels")
    _require_tiles_fit(train_scenes, config.tile_size)
    seed_everything(config.seed)
    if teacher_meta is None:
        architecture, classes, eo_stats = dict(config.model), _classes(scenes, spec), None
    else:
        architecture = teacher_meta.config.architecture()
        classes, eo_stats = list(teacher_meta.classes), _stats(teacher_meta)
    if uses_teacher:
        _require(train_scenes, "eo", "distillation")
        eo_bands = _bands(train_scenes, "eo")
        if teacher_meta.bands != eo_bands:
            raise InputError(f"teacher expects EO bands {teacher_meta.bands}, the scenes have {eo_bands}")
    else:
        teacher = None
    model, metadata = _start(
        "student", "sar", train_scenes, config, classes, spec.sar_kind if spec else "sar_db", architecture
    )
    if uses_teacher:
        metadata.training = {**metadata.training, "teacher": str(teacher_path)}
    objective = StudentObjective(
        teacher,
        config.distill_weight,
        config.distill_scales,
        config.logit_distill_weight,
        config.temperature,
        config.pseudo_labels,
        config.distill_loss,
        config.consistency_weight,
        config.pseudo_label_confidence,
    )
    return _run(
        objective, model, metadata, train_scenes, val_scenes, config, callbacks, _stats(metadata), eo_stats
    )

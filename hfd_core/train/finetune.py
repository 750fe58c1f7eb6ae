"""Fine-tune a SAR student on one area from a SAR raster and an overlapping EO raster (and optional labels).

Steps:
1. Read the student's SAR bands (``find_bands``; bands taken by their order alone are checked for a VV/VH
   swap; linear backscatter is converted to dB) and the teacher's EO bands (``band_indices``), bring the EO
   (bilinear) and the labels (nearest) onto the SAR grid, and keep only the overlap: the SAR grid is cropped
   to the rows and columns where the EO has data, and SAR pixels without EO become nodata (NaN). No overlap:
   InputError.
2. Hold out spatial blocks (``tile_size`` squares, ``validation_fraction`` of the full blocks, seeded) for
   validation; the rest of the overlap, with those blocks blanked, is the training scene. Blocks rather than
   random pixels, because neighbouring pixels are nearly copies of each other.
3. ``train_student`` from the base student, distilled from the frozen teacher. Targets: the labels where
   given, the teacher's prediction on the EO elsewhere (``pseudo_labels``). Without labels (``targets``,
   ``label_free_targets``): by default the spectral rules' classes on the EO where a rule claims the pixel
   (``data.spectral_labels``: the labels the bundled teacher learnt from, with the product level found by
   ``product_level``), nothing where they see cloud or snow, the teacher's elsewhere; or the teacher's
   everywhere. Rules first, because a teacher can be wrong on a scene new to it where its own training rules
   are not: on India_900498 one training of a teacher without that chip mapped its water at IoU 0.30-0.48,
   the water rule at 0.77-0.95 (docs/experiments/finetune_defaults.md).
   Validation is against the labels, or without labels against the same targets on the held-out blocks.
4. Score the base student on the same validation blocks first, so the log shows before and after.
5. Write the best epoch to ``output_path`` with this run (inputs, scores before/after) appended to
   ``training["fine_tuning"]``. The output is checked before any work (``hfd_core.files.check_outputs``: not
   an input, not a bundled model, its folder writable); if writing fails at the end all the same, the model
   is saved to the home (or temporary) folder and the error says where.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from scipy.optimize import linear_sum_assignment

from hfd_core import IGNORE_INDEX
from hfd_core.data import Scene
from hfd_core.data.bands import band_indices, find_bands
from hfd_core.data.raster import read_float, warp_to_grid, warp_to_grid_below
from hfd_core.data.sar import check_polarisation_order, mask_fills, sar_scale, to_db
from hfd_core.data.scene_context import SCENE_KIND
from hfd_core.data.spectral_labels import LAND_COVER_CLASSES, RULE_BANDS, product_level, rule_labels
from hfd_core.errors import InputError
from hfd_core.files import check_outputs, remove_stale
from hfd_core.finetune_defaults import DEFAULTS, TARGETS
from hfd_core.modelfile import ModelMetadata, load_model, read_metadata, require_single_network, save_model
from hfd_core.train.api import train_student
from hfd_core.train.config import TrainCallbacks, TrainConfig
from hfd_core.train.distributed import resolve_device
from hfd_core.train.evaluation import evaluate_scenes, predict_scene

log = logging.getLogger(__name__)

#: Temporary run folders: ``hfd-finetune-<pid>-*`` in ``work_dir``; those of dead processes are removed.
RUN_DIR_PREFIX = "hfd-finetune-"
#: EO values below this are reflectance x 10000 in no convention (Sentinel-2's processing baseline 04.00
#: offset reaches -1000 at most): nodata the file does not declare.
EO_FILL_BELOW = -1000.0
#: A validation block needs at least this share of valid SAR pixels.
MIN_VALID_SHARE = 0.5
#: Rules first warns when at least this share of the training pixels is under cloud or snow (no target).
MAX_HIDDEN_SHARE = 0.5
#: Random training windows per epoch, per tile-sized area of the training scene, and at least
#: ``MIN_WINDOWS_PER_EPOCH``: a single 512 x 512 chip would otherwise give an epoch of 2 steps.
WINDOWS_PER_AREA = 2
MIN_WINDOWS_PER_EPOCH = 32
#: The model file's record of what a run trained on (``planned_targets``' answers).
TARGET_DESCRIPTIONS = {
    "rules": "spectral rules on the EO where they claim a pixel, none under cloud or snow, teacher EO "
    "predictions elsewhere",
    "teacher": "teacher EO predictions",
    "labels": "labels (teacher predictions where unlabelled)",
}


@dataclass
class FinetuneResult:
    """Outcome: the written model, per-epoch history, best epoch scores and the base model's score;
    ``held_out``: the validation blocks as (row, column, size) in SAR raster pixels, never trained on;
    ``targets``: what it trained on, "labels" or ``label_free_targets``' answer."""

    output_path: Path
    history: list[dict]
    best_epoch: int
    best_metrics: dict
    base_metrics: dict
    label_free: bool
    canceled: bool
    train_pixels: int
    validation_blocks: int
    held_out: list[tuple[int, int, int]]
    targets: str


def _crop_to(valid: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(valid.any(axis=1))[0], np.nonzero(valid.any(axis=0))[0]
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _validation_blocks(sar: np.ndarray, block: int, fraction: float, seed: int) -> list[tuple[int, int]]:
    """Top-left corners of the held-out blocks: full ``block`` squares with enough valid SAR."""
    if fraction <= 0:
        return []
    valid = np.isfinite(sar).all(axis=0)
    rows, cols = valid.shape
    full = [
        (r, c)
        for r in range(0, rows - block + 1, block)
        for c in range(0, cols - block + 1, block)
        if valid[r : r + block, c : c + block].mean() >= MIN_VALID_SHARE
    ]
    count = max(1, round(fraction * math.ceil(rows / block) * math.ceil(cols / block)))
    if len(full) < 2 or count >= len(full):
        raise InputError(
            f"the SAR/EO overlap ({rows} x {cols} pixels) is too small to hold out {fraction:.0%} of it in "
            f"{block} x {block} blocks and still train: use a smaller tile size or validation fraction 0"
        )
    order = np.random.default_rng(seed).permutation(len(full))[:count]
    return [full[i] for i in sorted(order)]


def prepare_scenes(
    sar_path: str | Path,
    eo_path: str | Path,
    student: ModelMetadata,
    teacher: ModelMetadata,
    label_path: str | Path | None = None,
    *,
    tile_size: int = DEFAULTS.tile_size,
    validation_fraction: float = DEFAULTS.validation_fraction,
    sar_bands: list[int] | None = None,
    eo_bands: list[int] | None = None,
    seed: int = 0,
    warn: Callable[[str], None] | None = None,
) -> tuple[list[Scene], list[Scene], list[tuple[int, int, int]]]:
    """Training scene and validation block scenes over the SAR/EO overlap (module doc), and the held-out
    blocks as (row, column, size) in pixels of the SAR raster (block scene names count from the overlap).
    ``warn`` gets what the caller should tell the user (labels outside the model's classes)."""
    sar_choice = find_bands(sar_path, student.bands, sar_bands)
    eo_index = band_indices(eo_path, teacher.bands, eo_bands)
    sar = read_float(sar_path, sar_choice.indices)
    for note in mask_fills(sar):
        (warn or log.warning)(note)
    if student.input_kind == "sar_db":
        # before the scale: swapped bands mislead its detection
        check_polarisation_order(sar, student.bands, sar_choice, Path(sar_path).name)
        scale = sar_scale(sar, "auto", student.bands, student.mean, student.std)
        if scale != "db":
            log.info("%s looks like %s backscatter: converted to dB", Path(sar_path).name, scale)
            sar = to_db(sar, scale)
    with rasterio.open(sar_path) as grid:
        eo = _warp_eo(eo_path, grid, eo_index, warn or log.warning)
        label = None
        if label_path is not None:
            label = warp_to_grid(label_path, grid, bands=[1], resampling="nearest")[0]
    eo_valid = np.isfinite(eo).all(axis=0)
    if not eo_valid.any():
        raise InputError(
            f"the EO raster {Path(eo_path).name} does not overlap the SAR raster {Path(sar_path).name}"
        )
    rows, cols = _crop_to(eo_valid)
    sar, eo, eo_valid = sar[:, rows, cols], eo[:, rows, cols], eo_valid[rows, cols]
    sar[:, ~eo_valid] = np.nan
    if not np.isfinite(sar).all(axis=0).any():
        raise InputError("the SAR raster has no valid pixels where the EO raster has data")
    if label is not None:
        label = _class_ids(label[rows, cols], len(teacher.classes), label_path, warn)
    if min(sar.shape[1:]) < tile_size:
        raise InputError(
            f"the SAR/EO overlap ({sar.shape[1]} x {sar.shape[2]} pixels) is smaller than the tile size "
            f"{tile_size}: choose a smaller tile size"
        )
    blocks = _validation_blocks(sar, tile_size, validation_fraction, seed)
    scene = Scene(
        name="overlap",
        group="train",
        sar=sar,
        eo=eo,
        label=label,
        sar_bands=list(student.bands),
        eo_bands=list(teacher.bands),
    )
    validation = [_block(scene, r, c, tile_size) for r, c in blocks]
    for r, c in blocks:
        scene.sar[:, r : r + tile_size, c : c + tile_size] = np.nan
    held_out = [(int(rows.start + r), int(cols.start + c), tile_size) for r, c in blocks]
    return [scene], validation, held_out


def _warp_eo(
    eo_path: str | Path, grid: rasterio.DatasetReader, bands: list[int], warn: Callable[[str], None]
) -> np.ndarray:
    """The EO bands on the SAR grid (bilinear); a value below ``EO_FILL_BELOW`` that the file does not declare
    as nodata (-9999 ...) is nodata too, named to ``warn``. Taken for reflectance, it was given to the
    teacher, and its pixels became validation targets (India_900498 with a -9999 border: held-out scores
    0.218 -> 0.248 instead of 0.270 -> 0.442), without a word."""
    eo, fill = warp_to_grid_below(eo_path, grid, bands, EO_FILL_BELOW)
    if fill:
        warn(
            f"{fill:.1%} of the EO raster over the SAR raster holds values below {EO_FILL_BELOW:g}, which "
            "no reflectance x 10000 takes (nodata the file does not declare, such as -9999): read as nodata; "
            "set the raster's nodata value if that is wrong"
        )
    return eo


def _class_ids(
    values: np.ndarray, num_classes: int, path: str | Path, warn: Callable[[str], None] | None = None
) -> np.ndarray:
    """Labels as uint8 class ids; values outside 0..K-1 (nodata, -1, NaN) become IGNORE_INDEX, and ``warn``
    hears how many pixels had which of those values (the file's declared nodata is NaN here, not counted)."""
    known = np.isfinite(values) & (values >= 0) & (values < num_classes)
    outside = values[np.isfinite(values) & ~known]
    found = ""
    if outside.size:
        kinds = np.unique(outside)
        shown = ", ".join(f"{v:g}" for v in kinds[:5]) + (", ..." if kinds.size > 5 else "")
        found = f"{outside.size} labelled pixel(s) with values outside the model's classes ({shown})"
    if not known.any():
        raise InputError(
            f"the labels {Path(path).name} have no class id 0..{num_classes - 1} of the model "
            f"inside the overlap{': only ' + found if found else ''}"
        )
    if found and warn is not None:
        warn(f"{Path(path).name}: {found} are ignored; the model's classes are 0..{num_classes - 1}")
    return np.where(known, np.nan_to_num(values), IGNORE_INDEX).astype(np.uint8)


def renumbering_hint(matrix: np.ndarray, classes: list[str]) -> str | None:
    """A warning when labels look numbered differently from the model's classes, else None. ``matrix``: the
    base model's confusion (labels x predictions) on the held-out blocks. Of every one-to-one reading of the
    label ids present as model classes, the one the base model agrees with most (an assignment problem) is
    compared with the ids as they are; a reading that agrees at least twice as often and by 25 points more is
    named. Measured on India_900498's hand labels (1 water, 0 not water) given as they are: the bundled
    student agreed with them on 2 % of the held-out pixels, and on 46 % read as 0 bare / sparse, 1 water;
    training had gone on silently, learning water as built-up."""
    total = matrix.sum()
    present = [label for label in range(len(classes)) if matrix[label].sum()]
    if not total or len(present) < 2:
        return None
    rows, best = linear_sum_assignment(matrix[present], maximize=True)
    as_given = np.trace(matrix) / total
    agreement = matrix[present][rows, best].sum() / total
    if agreement < 2 * as_given or agreement - as_given < 0.25:
        return None
    reading = ", ".join(f"{label} as {classes[c]}" for label, c in zip(present, best, strict=True))
    ids = ", ".join(f"{i} {name}" for i, name in enumerate(classes))
    return (
        f"the base model agrees with the labels on {as_given:.0%} of the held-out pixels, but on "
        f"{agreement:.0%} with the label ids read as {reading}: if the labels number the classes "
        f"differently, recode them to the model's ids ({ids}) and run again"
    )


def _block(scene: Scene, row: int, col: int, size: int) -> Scene:
    window = (slice(row, row + size), slice(col, col + size))
    return Scene(
        name=f"block-r{row}c{col}",
        group=f"validation-r{row}c{col}",
        sar=scene.sar[:, window[0], window[1]].copy(),
        eo=scene.eo[:, window[0], window[1]].copy(),
        label=None if scene.label is None else scene.label[window].copy(),
        sar_bands=list(scene.sar_bands),
        eo_bands=list(scene.eo_bands),
    )


def _teacher_targets(scenes: list[Scene], teacher_path: str | Path, device: str) -> None:
    """Label-free validation: each scene's label becomes the teacher's EO map where the SAR is valid."""
    model, metadata = load_model(teacher_path)
    torch_device = resolve_device(device)
    model = model.to(torch_device)
    for scene in scenes:
        label = predict_scene(model, metadata, scene, torch_device)
        label[~np.isfinite(scene.sar).all(axis=0)] = IGNORE_INDEX
        scene.label = label


def label_free_targets(teacher: ModelMetadata, targets: str = DEFAULTS.targets) -> str:
    """What a run without labels trains on: "rules" when asked and the teacher reads the rules' bands and
    predicts their classes (the bundled teacher does), else "teacher"."""
    if targets not in TARGETS:
        raise InputError(f"targets must be one of {TARGETS}, not {targets!r}")
    rule_classes = [name for _, name, _ in LAND_COVER_CLASSES]
    fits = list(teacher.bands) == list(RULE_BANDS) and [c.name for c in teacher.classes] == rule_classes
    return "rules" if targets == "rules" and fits else "teacher"


def planned_targets(
    teacher_path: str | Path, label_path: str | Path | None, targets: str = DEFAULTS.targets
) -> str:
    """What a run will train on: "labels" when it has labels, else ``label_free_targets`` for the teacher
    file."""
    return "labels" if label_path is not None else label_free_targets(read_metadata(teacher_path), targets)


def _rule_targets(train: list[Scene], validation: list[Scene]) -> tuple[str, float]:
    """The spectral rules' classes on the EO as labels where a rule claims the pixel: the training scene's
    other pixels are left to the teacher (pseudo-labels), the validation blocks keep the teacher's classes
    there (set by ``_teacher_targets`` first). Where the rules see cloud or snow (``rule_labels``) the EO
    does not show the ground the SAR sees, so there is no target at all: the training scene's EO is blanked
    (no pseudo-label, no feature distillation) and the validation blocks ignore those pixels. On India_900498
    with a third of its Sentinel-2 under real cloud (nine runs, docs/experiments/finetune_defaults.md), no
    target there beat the teacher's classes there in 8 of 9 runs, by 0.100 water IoU on average on the
    held-out blocks (0.22-0.41 where the teacher was poor; one block lost 0.156) and by 0.190 on the whole
    chip.

    Returns the product level the rules were applied for and the share of the training scene's valid pixels
    left without a target that way."""
    scene = train[0]
    level = product_level(scene.eo)
    scene.label, hidden = rule_labels(scene.eo, level)
    valid = np.isfinite(scene.sar).all(axis=0)
    hidden &= valid
    scene.eo[:, hidden] = np.nan
    for block in validation:
        rules, block_hidden = rule_labels(block.eo, level)
        claimed = (rules != IGNORE_INDEX) & (block.label != IGNORE_INDEX)
        block.label[claimed] = rules[claimed]
        block.label[block_hidden] = IGNORE_INDEX
    return level, float(hidden.sum() / max(valid.sum(), 1))


def _rules_first(train: list[Scene], validation: list[Scene], warn: Callable[[str], None]) -> None:
    """``_rule_targets``, then says how much of the EO is cloud or snow: logged, a warning from
    ``MAX_HIDDEN_SHARE``, an InputError when it is all of it (no target anywhere)."""
    level, hidden = _rule_targets(train, validation)
    log.info(
        "targets: the spectral rules (%s) where they claim a pixel, none under cloud or snow (%.0f %% of the "
        "training pixels), the teacher elsewhere", level, 100 * hidden,
    )  # fmt: skip
    if hidden >= 1.0:
        raise InputError(
            "the EO layer is cloud or snow wherever it overlaps the SAR: without labels there is nothing to "
            "learn from; choose a clearer EO image of the same area, or give labels"
        )
    if hidden >= MAX_HIDDEN_SHARE:
        warn(
            f"{100 * hidden:.0f} % of the EO layer over the SAR is cloud or snow: the student gets no "
            "targets there; a clearer EO image of the same area would teach it more"
        )


def _warner(callbacks: TrainCallbacks | None) -> Callable[[str], None]:
    """Logs a warning and passes it to ``callbacks.on_warning``."""

    def warn(message: str) -> None:
        log.warning("%s", message)
        if callbacks is not None and callbacks.on_warning is not None:
            callbacks.on_warning(message)

    return warn


def _save_or_rescue(output_path: Path, model, metadata: ModelMetadata) -> None:
    """Write the model; when the output cannot be written after all (checked before training, but a disk can
    fill up or be unmounted meanwhile) write it to the home or temporary folder and say where in the
    InputError, so the training is not lost."""
    try:
        save_model(output_path, model, metadata)
        return
    except OSError as error:
        failure = f"{error.strerror or error}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for folder in (Path.home(), Path(tempfile.gettempdir())):
        rescue = folder / f"{output_path.stem}-rescued-{stamp}.pt"
        try:
            save_model(rescue, model, metadata)
        except OSError:
            continue
        raise InputError(
            f"cannot write the fine-tuned model to {output_path} ({failure}); it was saved to {rescue} "
            "instead: move it where you want it"
        )
    raise InputError(f"cannot write the fine-tuned model to {output_path} ({failure}), nor to a rescue copy")


def finetune(
    sar_path: str | Path,
    eo_path: str | Path,
    output_path: str | Path,
    student_path: str | Path,
    teacher_path: str | Path,
    label_path: str | Path | None = None,
    *,
    epochs: int = DEFAULTS.epochs,
    lr: float = DEFAULTS.lr,
    distill_weight: float = DEFAULTS.distill_weight,
    pseudo_label_confidence: float = DEFAULTS.pseudo_label_confidence,
    targets: str = DEFAULTS.targets,
    tile_size: int = DEFAULTS.tile_size,
    validation_fraction: float = DEFAULTS.validation_fraction,
    batch_size: int = 4,
    samples_per_epoch: int | None = None,
    device: str = "auto",
    sar_bands: list[int] | None = None,
    eo_bands: list[int] | None = None,
    seed: int = 0,
    callbacks: TrainCallbacks | None = None,
    work_dir: str | Path | None = None,
) -> FinetuneResult:
    """Fine-tune ``student_path`` on this area and write the best model to ``output_path`` (module doc).

    ``callbacks`` get the per-epoch values and progress and may cancel: then the best epoch so far is written
    and ``canceled`` is True (``Canceled`` when no epoch finished). ``samples_per_epoch`` defaults to
    ``WINDOWS_PER_AREA`` random windows per tile-sized area of the training scene, at least
    ``MIN_WINDOWS_PER_EPOCH``.
    """
    output_path = Path(output_path)
    inputs = {
        "the SAR raster": sar_path,
        "the EO raster": eo_path,
        "the labels": label_path,
        "the base model": student_path,
        "the teacher model": teacher_path,
    }
    check_outputs({"the output model": output_path}, inputs)
    work_dir = Path(work_dir or tempfile.gettempdir())
    remove_stale(work_dir, f"{RUN_DIR_PREFIX}*")
    student, teacher = read_metadata(student_path), read_metadata(teacher_path)
    if student.role != "student" or teacher.role != "teacher":
        raise InputError(f"{student_path} must be a student and {teacher_path} a teacher model file")
    if student.input_kind == SCENE_KIND:
        raise InputError(
            f"{student_path} is a water model: it reads each pixel with the whole raster's statistics, which "
            "fine-tuning does not gather; fine-tune a land-cover student (the bundled one by default) and "
            "map water with the bundled water model"
        )
    require_single_network(student, student_path, "fine-tuning")
    require_single_network(teacher, teacher_path, "a teacher")
    warn = _warner(callbacks)
    train, validation, held_out = prepare_scenes(
        sar_path,
        eo_path,
        student,
        teacher,
        label_path,
        tile_size=tile_size,
        validation_fraction=validation_fraction,
        sar_bands=sar_bands,
        eo_bands=eo_bands,
        seed=seed,
        warn=warn,
    )
    label_free = train[0].label is None
    used = planned_targets(teacher_path, label_path, targets)
    if label_free:
        _teacher_targets(validation, teacher_path, device)
    if used == "rules":
        _rules_first(train, validation, warn)
    scored = [block for block in validation if (block.label != IGNORE_INDEX).any()]
    if len(scored) < len(validation):
        log.info("%d held-out block(s) without any target are not scored", len(validation) - len(scored))
        validation = scored
    base_metrics = {}
    if validation:
        base_model, _ = load_model(student_path)
        base = evaluate_scenes(base_model, student, validation, device)
        base_metrics = {"val_miou": base["miou"], "val_oa": base["oa"], "val_kappa": base["kappa"]}
        if not label_free:
            renumbered = renumbering_hint(np.asarray(base["confusion_matrix"]), base["classes"])
            if renumbered:
                warn(renumbered)
    train_pixels = int(np.isfinite(train[0].sar).all(axis=0).sum())
    if samples_per_epoch is None:
        areas = math.ceil(train_pixels / tile_size**2)
        samples_per_epoch = max(batch_size, MIN_WINDOWS_PER_EPOCH, WINDOWS_PER_AREA * areas)
        samples_per_epoch = math.ceil(samples_per_epoch / batch_size) * batch_size
    with tempfile.TemporaryDirectory(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-", dir=work_dir) as run_dir:
        config = TrainConfig(
            out_dir=run_dir,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            tile_size=tile_size,
            samples_per_epoch=samples_per_epoch,
            distill_weight=distill_weight,
            pseudo_labels=True,
            pseudo_label_confidence=pseudo_label_confidence,
            seed=seed,
            device=device,
            init_from=str(student_path),
            progress=False,
        )
        result = train_student(train, validation, teacher_path, config, callbacks)
        model, metadata = load_model(result.best_path)
    history = metadata.training.get("fine_tuning", [])
    history[-1] = {
        **history[-1],
        "sar": str(sar_path),
        "eo": str(eo_path),
        "labels": None if label_free else str(label_path),
        "targets": TARGET_DESCRIPTIONS[used],
        "validation": f"agreement with the {used}" if label_free else "labels",
        "epochs_trained": result.history[-1]["epoch"] if result.history else 0,
        "best_epoch": result.best_epoch,
        "canceled": result.canceled,
        "held_out_blocks": [list(block) for block in held_out],
        "before": base_metrics,
        "after": {k: v for k, v in result.best_metrics.items() if k in ("val_miou", "val_oa", "val_kappa")},
    }
    metadata.training = {**metadata.training, "fine_tuning": history}
    _save_or_rescue(output_path, model, metadata)
    return FinetuneResult(
        output_path=output_path,
        history=result.history,
        best_epoch=result.best_epoch,
        best_metrics=result.best_metrics,
        base_metrics=base_metrics,
        label_free=label_free,
        canceled=result.canceled,
        train_pixels=train_pixels,
        validation_blocks=len(validation),
        held_out=held_out,
        targets=used,
    )

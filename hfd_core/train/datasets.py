"""Scenes for the command line: ``--dataset NAME --root DIR [--split train|test|all]``.

Every dataset is a ``DatasetSpec`` in ``DATASETS``; ``register_dataset`` adds more. ``bundled`` is the
bundled model's training set (``data.bundled``): its "test" split is the fixed validation locations.
``water`` (and its ablation variants ``WATER_DATASETS``) is the water model's set (``data.water``): "test" is
OMBRIA's official test split.
A dataset with official splits (OMBRIA) reads them: ``ombria`` the before and after images stacked (the after
image alone where there is no BEFORE folder), ``ombria-after`` the after image alone; a model reading fewer
bands than a scene holds is given its own bands by name when evaluated. For the others, "test" is a
fixed hold-out of whole groups (locations) chosen by ``split_by_group`` with ``TEST_FRACTION`` and
``TEST_SEED``, and "train" is the rest, so a model trained on "train" never saw the "test" locations.
Training carves its validation set out of "train" the same way (``--val-fraction``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from hfd_core.data import Scene, split_by_group
from hfd_core.errors import InputError
from hfd_core.modelfile import ClassInfo

SPLITS = ("train", "test", "all")
TEST_FRACTION = 0.2
TEST_SEED = 12345
#: Colours of classes when a dataset does not name them (id order).
DEFAULT_COLORS = (
    "#1f3b73",
    "#2e86de",
    "#27ae60",
    "#f1c40f",
    "#e67e22",
    "#c0392b",
    "#8e44ad",
    "#7f8c8d",
    "#16a085",
    "#d35400",
)


@dataclass(frozen=True)
class DatasetSpec:
    """How to read one public layout, and what its inputs and classes are."""

    name: str
    read: Callable[[Path, str], list[Scene]]  # (root, official split or "all") -> scenes
    official_splits: tuple[str, ...] = ()
    sar_kind: str = "sar_db"
    eo_kind: str = "eo_reflectance"
    classes: tuple[ClassInfo, ...] | None = None


DATASETS: dict[str, DatasetSpec] = {}
#: The water model's data (``data.water``) by source: the pre-training sets (without the dB water chips) and
#: the fine-tuning sets (with them, and with the synthetic water pasted into the paired scenes where those are
#: there); the variants without a source are its ablation.
WATER_DATASETS = {
    "water": ("ombria", "paired", "chips", "synthetic"),
    "water-no-chips": ("ombria", "paired"),
    "water-no-synthetic": ("ombria", "paired", "chips"),
    "water-ombria": ("ombria",),
    "water-ombria-chips": ("ombria", "chips"),
    "water-paired": ("paired",),
    "water-paired-chips": ("paired", "chips", "synthetic"),
}


def register_dataset(spec: DatasetSpec) -> None:
    """Make ``spec`` available to ``load_scenes`` and to the ``--dataset`` option of the commands."""
    DATASETS[spec.name] = spec


def default_classes(num_classes: int) -> list[ClassInfo]:
    return [
        ClassInfo(id=i, name=f"class {i}", color=DEFAULT_COLORS[i % len(DEFAULT_COLORS)])
        for i in range(num_classes)
    ]


def load_scenes(dataset: str, root: str | Path, split: str = "all") -> list[Scene]:
    """Scenes of ``split`` of ``dataset`` under ``root``; InputError for unknown names or empty reads."""
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASETS))}")
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    spec = DATASETS[dataset]
    if spec.official_splits:
        names = spec.official_splits if split == "all" else (split,)
        scenes = [scene for name in names for scene in spec.read(root, name)]
    else:
        scenes = spec.read(root, "all")
        if split != "all":
            train, test = split_by_group(scenes, TEST_FRACTION, TEST_SEED)
            scenes = train if split == "train" else test
    if not scenes:
        raise InputError(f"no scenes of split {split!r} found for dataset {dataset!r} under {root}")
    return scenes


def _whole(reader: Callable[[Path], list[Scene]]) -> Callable[[Path, str], list[Scene]]:
    return lambda root, _split: reader(root)


def _read_ombria_stacked(root: Path, split: str) -> list[Scene]:
    """OMBRIA with the before and after images stacked, or the after image alone where there is no BEFORE
    folder (a model that needs both then says so by band name)."""
    from hfd_core.data import read_ombria

    stacked = (Path(root) / "OmbriaS1" / split / "BEFORE").is_dir()
    return read_ombria(root, split, inputs="before_after" if stacked else "after")


def _register_builtin() -> None:
    from hfd_core.data import (
        read_ombria,
        read_sen1floods11,
        read_sen12ms,
        read_triplet_folder,
        read_whu_opt_sar,
    )
    from hfd_core.data.bundled import read_bundled_split
    from hfd_core.data.scene_context import SCENE_KIND
    from hfd_core.data.spectral_labels import LAND_COVER_CLASSES
    from hfd_core.data.water import read_water

    register_dataset(
        DatasetSpec(
            "sen1floods11",
            _whole(read_sen1floods11),
            classes=(ClassInfo(0, "not water", "#d9d9d9"), ClassInfo(1, "water", "#2e86de")),
        )
    )
    land_cover = tuple(ClassInfo(*c) for c in LAND_COVER_CLASSES)
    register_dataset(DatasetSpec("sen12ms", _whole(read_sen12ms), classes=land_cover))
    register_dataset(DatasetSpec("whu-opt-sar", _whole(read_whu_opt_sar)))
    register_dataset(DatasetSpec("folder", _whole(read_triplet_folder)))
    register_dataset(
        DatasetSpec(
            "bundled",
            read_bundled_split,
            official_splits=("train", "test"),
            classes=tuple(ClassInfo(*c) for c in LAND_COVER_CLASSES),
        )
    )
    water_classes = (ClassInfo(0, "not water", "#d9d9d9"), ClassInfo(1, "water", "#2e86de"))
    for name, sources in WATER_DATASETS.items():
        register_dataset(
            DatasetSpec(
                name,
                partial(read_water, sources=sources),
                official_splits=("train", "test"),
                sar_kind=SCENE_KIND,
                eo_kind="eo_ratios",
                classes=water_classes,
            )
        )
    flood_classes = (ClassInfo(0, "not flooded", "#d9d9d9"), ClassInfo(1, "flood", "#2e86de"))
    for name, read in (
        ("ombria", _read_ombria_stacked),
        ("ombria-after", partial(read_ombria, inputs="after")),
    ):
        register_dataset(
            DatasetSpec(
                name,
                read,
                official_splits=("train", "test"),
                sar_kind="ombria_png",
                eo_kind="ombria_png",
                classes=flood_classes,
            )
        )


_register_builtin()

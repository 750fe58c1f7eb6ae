"""OMBRIA scored on flood events its training did not see, beside its official test (issue 13's OMBRIA check).

    python scripts/ombria_events.py --root ../shared/data/ombria [--folds 5] [--gap 50] [--students after:40]

OMBRIA's official split draws its 70 test chips from the same events as its 624 training chips: the ids
interleave (test 0018 and 0019 lie between training 0017 and 0020), and consecutive ids come from one event.
Issue 13 checks on events that the split does not contain. Here the training chips, in id order, are cut
into ``--folds`` contiguous folds; each fold is mapped by students trained on the other folds less the
``--gap`` ids on either side of it (the events that straddle its edges), so no chip is mapped by a model that
saw its event.
A control keeps every event on both sides: the same folds' chips, dealt by blocks of ten consecutive ids
(``ID_BLOCK``, as the official split interleaves), each fold's training cut at random to the size it has in
the held-out-events protocol, so that only the events seen differ. The same methods are scored on the official
test too (students: the ``ombria_inputs.py`` runs, trained on the whole training split):

* Otsu on the after image, and after the 7 x 7 mean filter (no training);
* the SAR-only students of ``ombria_inputs.py`` (same inputs, schedule and seed);
* a learned threshold: the median of the best filtered-after thresholds (by that chip's mIoU) of the
  ``NEIGHBOURS`` training chips whose before and after histograms are nearest. It learns nothing but which
  threshold chips of a look were labelled with, so its gain measures how much a test chip's event was seen.

Runs resume and finished ones are reused; from scratch about 17 minutes of one CPU thread per 40-epoch student
and fold, 3 minutes per 8-epoch one (two processes with different ``--students`` share the runs).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ombria_inputs import RULES, by_share, features, student_maps, student_spec

from hfd_core.baselines import _otsu
from hfd_core.data import Scene, read_ombria
from hfd_core.data.ombria import ID_BLOCK, sar_with_nodata
from hfd_core.data.speckle import mean_filter
from hfd_core.metrics import confusion_matrix, per_chip_miou

NEIGHBOURS = 15
QUANTILES = np.linspace(0.02, 0.98, 25)
THRESHOLDS = np.arange(0, 256, 2)
Maps = Callable[[list[Scene], list[Scene]], list[np.ndarray]]


def chip_id(chip: Scene) -> int:
    return int(re.findall(r"\d+", chip.name)[-1])


def _filtered_dates(chip: Scene) -> tuple[np.ndarray, np.ndarray]:
    before, after = sar_with_nodata(chip.sar)
    return mean_filter(before.astype(np.float32)), mean_filter(after.astype(np.float32))


def histogram_features(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Quantiles and Otsu threshold of the filtered before and after images (edge fill left out)."""
    values = [image[np.isfinite(image)] for image in (before, after)]
    return np.concatenate([[*np.quantile(v, QUANTILES), _otsu(v)] for v in values])


#: chip name -> (``histogram_features``, best threshold): each training chip serves 11 fits.
_SUMMARIES: dict[str, tuple[np.ndarray, float]] = {}


def _training_summary(chip: Scene) -> tuple[np.ndarray, float]:
    """The chip's ``histogram_features`` and the filtered-after threshold that scores it best against its
    own labels."""
    if chip.name not in _SUMMARIES:
        before, after = _filtered_dates(chip)
        best = max(THRESHOLDS, key=lambda t: per_chip_miou([confusion_matrix(after < t, chip.label, 2)]))
        _SUMMARIES[chip.name] = histogram_features(before, after), float(best)
    return _SUMMARIES[chip.name]


def learned_threshold_maps(train: list[Scene], test: list[Scene]) -> list[np.ndarray]:
    """Each test chip below the median best threshold of its ``NEIGHBOURS`` nearest training chips."""
    summaries = [_training_summary(c) for c in train]
    known = np.array([features for features, _ in summaries])
    targets = np.array([threshold for _, threshold in summaries])
    scale = known.std(0) + 1e-6
    maps = []
    for chip in test:
        before, after = _filtered_dates(chip)
        distance = (((histogram_features(before, after) - known) / scale) ** 2).sum(1)
        threshold = np.median(targets[np.argsort(distance)[:NEIGHBOURS]])
        maps.append((after < threshold).astype(np.int64))
    return maps


def folds(chips: list[Scene], count: int, gap: int) -> list[tuple[list[Scene], list[Scene]]]:
    """(training, held out) per contiguous id fold; training leaves out ``gap`` ids on either side."""
    ordered = sorted(chips, key=chip_id)
    pairs = []
    for held in np.array_split(np.arange(len(ordered)), count):
        low, high = chip_id(ordered[held[0]]) - gap, chip_id(ordered[held[-1]]) + gap
        pairs.append(([c for c in ordered if not low <= chip_id(c) <= high], [ordered[i] for i in held]))
    return pairs


def block_folds(chips: list[Scene], sizes: list[int], seed: int) -> list[tuple[list[Scene], list[Scene]]]:
    """The control: (training, held out) per fold of id blocks dealt in turn (block b to fold b mod the fold
    count), training cut at random to ``sizes`` (one per fold)."""
    rng = np.random.default_rng(seed)
    ordered = sorted(chips, key=chip_id)
    fold_of = [chip_id(c) // ID_BLOCK % len(sizes) for c in ordered]
    pairs = []
    for fold, size in enumerate(sizes):
        rest = [c for c, f in zip(ordered, fold_of, strict=True) if f != fold]
        kept = sorted(rng.choice(len(rest), size, replace=False))
        pairs.append(
            ([rest[i] for i in kept], [c for c, f in zip(ordered, fold_of, strict=True) if f == fold])
        )
    return pairs


def _rule(rule: Callable[[Scene], np.ndarray]) -> Callable[[Path], Maps]:
    """A rule that needs no training, as a method: every run folder, every training set, the same maps."""
    return lambda run: lambda train, test: [rule(c) for c in test]


def _student(variant: str, epochs: int, seed: int) -> Callable[[Path], Maps]:
    """The ``ombria_inputs`` student of ``variant`` trained in each run folder; each chip's ``features``
    made once, though the folds share chips."""
    made: dict[str, Scene] = {}

    def featured(chips: list[Scene]) -> list[Scene]:
        for chip in chips:
            if chip.name not in made:
                made[chip.name] = features(chip, variant)
        return [made[chip.name] for chip in chips]

    return lambda run: (
        lambda train, test: student_maps(featured(train), featured(test), variant, seed, run, epochs)
    )


def methods(students: list[tuple[str, int]], seed: int) -> dict[str, Callable[[Path], Maps]]:
    """Name -> (run folder -> maps of test chips from training chips)."""
    return {
        **{name: _rule(RULES[name]) for name in ("Otsu, after", "Otsu, filtered after")},
        "learned threshold (nearest histograms)": lambda run: learned_threshold_maps,
        **{f"student, {v}, {e} epochs": _student(v, e, seed) for v, e in students},
    }


PROTOCOLS = ("official test", "seen events (control)", "held-out events")


def page(rows: dict[str, list[float]], count: int, gap: int) -> str:
    head = [
        "method",
        *(f"{protocol}: {measure}" for protocol in PROTOCOLS for measure in ("per-chip", "pooled")),
    ]
    lines = [
        "# OMBRIA on flood events its training did not see",
        "",
        "Generated by `scripts/ombria_events.py` (its docstring has the protocol). Official test: 70 chips "
        "of the events the training split also holds; held-out events: the 624 training chips in "
        f"{count} contiguous id folds, each mapped by a model trained without its ids and {gap} ids either "
        "side; seen events: the 624 chips in folds of id blocks dealt in turn, each fold mapped by a model "
        "trained on as many chips as in the held-out protocol, drawn from the other folds, so of the same "
        "events. Per-chip mIoU and the flood IoU pooled over the chips, with the gain over Otsu on the after "
        "image in brackets.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    otsu = rows["Otsu, after"]
    for name, values in rows.items():
        cells = [
            f"{v:.3f}" if name == "Otsu, after" else f"{v:.3f} ({v - o:+.3f})"
            for v, o in zip(values, otsu, strict=True)
        ]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/data/ombria"))
    parser.add_argument("--run", type=Path, default=Path("runs/ombria_events"))
    parser.add_argument("--official-run", type=Path, default=Path("runs/ombria_inputs"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--gap", type=int, default=50, help="ids left out of training either side of a fold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--students",
        nargs="+",
        type=student_spec,
        default=[("after", 40), ("before", 40), ("after", 8), ("before", 8)],  # the page's rows
    )
    parser.add_argument("--out", type=Path, default=Path("docs/experiments/ombria_events.md"))
    args = parser.parse_args()
    chips = read_ombria(args.root, "train", inputs="before_after")
    test = read_ombria(args.root, "test", inputs="before_after")
    held_out_events = folds(chips, args.folds, args.gap)
    control = block_folds(chips, [len(train) for train, _ in held_out_events], args.seed)
    rows = {}
    for name, maps_in in methods(args.students, args.seed).items():
        official = by_share(maps_in(args.official_run)(chips, test), test)
        rows[name] = [official[0], official[-1]]
        for prefix, pairs in (("blocks-fold", control), ("fold", held_out_events)):
            held, maps = [], []
            for fold, (train, held_out) in enumerate(pairs):
                maps += maps_in(args.run / f"{prefix}{fold}")(train, held_out)
                held += held_out
            scored = by_share(maps, held)
            rows[name] += [scored[0], scored[-1]]
        print(name, " ".join(f"{v:.3f}" for v in rows[name]), flush=True)
        args.out.write_text(page(rows, args.folds, args.gap))  # after every method: a cut run leaves a page


if __name__ == "__main__":
    main()

"""Stage 2 of the water model: fine-tune a pre-trained student (trained without the dB water chips) with every
labelled pixel, and once per chip location with that location left out (leave-one-location-out), loading the
data once for all runs.

``--pretrained`` names the pre-training set (``WATER_DATASETS`` without chips). Fine-tuning adds the dB
chips and, where the pre-training set has the paired scenes, the synthetic water pasted into them
(``data.synthetic_water``; ``--without-synthetic`` leaves it out). The default, all sources but the chips,
gives the shipped model (``water/<variant>``) and its leave-out folds (``leave-out/<variant>/``); another
pre-training set or ``--without-synthetic`` gives the data-source ablation: leave-out folds only, under the
fine-tuning set's name (``ablation/<set>/<variant>/``).

``--from-scratch`` trains every run from random weights instead, with the pre-trained student's architecture
and the same data (so the dB chips are there from the first step; give it the pre-training's ``--epochs 8 --lr
2e-3``): an experiment on the seeds whose pre-training learnt "dB input means dry" (README, water model), not
the shipped recipe.

Validation blocks are drawn from OMBRIA, the paired scenes and their synthetic water (a validation scene's
synthetic version is held out with it): the dB water chips are too few to spare one for validation, and each
is scored by the fold that leaves it out. The synthetic water in validation is what lets the best epoch see a
student that calls dB water dry: without it, the only dB scenes validated on are mostly dry, and 6 epochs
chose an epoch that failed so (distilled seed 2: pooled leave-out water IoU 0.592; with it 0.784, seeds 0 and
3 level: 0.861 and 0.891 against 0.866 and 0.892 for 3 epochs validated without it; findings doc). Every run
resumes (``last.ckpt``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hfd_core.data import split_by_group
from hfd_core.data.water import CHIP_GROUP_PREFIXES
from hfd_core.modelfile import read_metadata
from hfd_core.train.api import train_student
from hfd_core.train.config import TrainConfig
from hfd_core.train.datasets import DATASETS, WATER_DATASETS, load_scenes

VARIANTS = ("student", "student_sar_only")
SHIPPED_PRETRAINING = "water-no-chips"
#: Pre-training sets: every water dataset without the dB chips.
PRETRAINING = tuple(name for name, sources in WATER_DATASETS.items() if "chips" not in sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=Path("../shared/data"))
    parser.add_argument("--run", type=Path, default=Path("runs/water"))
    parser.add_argument("--variant", choices=VARIANTS, required=True, help="distilled or SAR-only student")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--samples-per-epoch", type=int, default=320)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pretrained", choices=PRETRAINING, default=SHIPPED_PRETRAINING, help="pre-training set"
    )
    parser.add_argument(
        "--from-scratch", action="store_true", help="random initial weights, not the pre-trained ones"
    )
    parser.add_argument(
        "--without-synthetic", action="store_true", help="ablation: no synthetic water in fine-tuning"
    )
    parser.add_argument(
        "--leave-out",
        action="append",
        default=[],
        metavar="GROUP",
        help="leave this group out of every run (as train-student's --leave-out; repeatable)",
    )
    parser.add_argument(
        "--final-only", action="store_true", help="only the model with every chip, no leave-out folds"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    pretrained = args.run / args.pretrained
    teacher = pretrained / "teacher" / "best.pt" if args.variant == "student" else None
    sources = (*WATER_DATASETS[args.pretrained], "chips")
    if "paired" in sources and not args.without_synthetic:
        sources += ("synthetic",)
    dataset = next(name for name, value in WATER_DATASETS.items() if set(value) == set(sources))
    if args.final_only and dataset != "water":
        parser.error("--final-only: the ablation sets have no final model, only leave-out folds")
    scenes = load_scenes(dataset, args.samples, "train")
    unknown = set(args.leave_out) - {s.group for s in scenes}
    if unknown:  # a typo would leave nothing out, silently
        parser.error(f"--leave-out: no group {', '.join(sorted(unknown))} in {dataset}")
    scenes = [s for s in scenes if s.group not in args.leave_out]
    chips = [s for s in scenes if s.group.startswith(CHIP_GROUP_PREFIXES)]
    others = [s for s in scenes if not s.group.startswith(CHIP_GROUP_PREFIXES)]
    train_others, validation = split_by_group(others, args.val_fraction, args.seed)
    groups = sorted({s.group for s in chips})
    if dataset == "water":
        folds = [(args.run / "water" / args.variant, None)]
        if not args.final_only:
            folds += [(args.run / "leave-out" / args.variant / group, group) for group in groups]
    else:
        folds = [(args.run / "ablation" / dataset / args.variant / group, group) for group in groups]
    start = pretrained / args.variant / "best.pt"
    architecture = read_metadata(start).config.architecture()
    for out_dir, left_out in folds:
        train = train_others + [s for s in chips if s.group != left_out]
        config = TrainConfig(
            out_dir=str(out_dir),
            epochs=args.epochs,
            batch_size=8,
            lr=args.lr,
            tile_size=128,
            samples_per_epoch=args.samples_per_epoch,
            distill_weight=1.0 if teacher else 0.0,
            seed=args.seed,
            resume=True,
            model=architecture if args.from_scratch else {},
            init_from=None if args.from_scratch else str(start),
            progress=False,
        )
        result = train_student(train, validation, teacher, config, spec=DATASETS[dataset])
        print(f"{out_dir}: left out {left_out or 'nothing'}, best epoch {result.best_epoch}", flush=True)


if __name__ == "__main__":
    main()

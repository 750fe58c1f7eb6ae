"""Commands ``train-teacher``, ``train-student`` and ``evaluate`` of ``python -m hfd_core``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from hfd_core.cli import number
from hfd_core.data import split_by_group
from hfd_core.errors import InputError
from hfd_core.files import check_outputs
from hfd_core.modelfile import BUNDLED_NAMES, combine_model_files, model_argument, save_model
from hfd_core.models.hfdnet import SIZE_MULTIPLE
from hfd_core.train.api import require_teacher, train_student, train_teacher
from hfd_core.train.checkpoint import BEST_MODEL_NAME, CHECKPOINT_NAME
from hfd_core.train.config import TrainConfig
from hfd_core.train.datasets import DATASETS, SPLITS, load_scenes
from hfd_core.train.evaluation import evaluate_model_file, format_report
from hfd_core.train.loop import TrainResult

DEFAULTS = TrainConfig()


def _dataset_arguments(parser: argparse.ArgumentParser, split: str) -> None:
    parser.add_argument(
        "--dataset", required=True, choices=sorted(DATASETS), help="layout of the data folder"
    )
    parser.add_argument("--root", required=True, type=Path, help="data folder")
    parser.add_argument(
        "--split", default=split, choices=SPLITS, help=f"which part of the data (default {split})"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    _dataset_arguments(parser, "train")
    parser.add_argument(
        "--out", required=True, type=Path, help="run folder: best.pt, last.ckpt, history.json"
    )
    parser.add_argument(
        "--val-fraction",
        type=number(float, 0, below=1),
        default=0.2,
        help="share of groups held out for validation",
    )
    parser.add_argument(
        "--leave-out",
        action="append",
        default=[],
        metavar="GROUP",
        help="leave this group (location) out of training and validation, e.g. to score a model on it later "
        "(leave-one-location-out); repeatable",
    )
    parser.add_argument("--epochs", type=number(int, 1), default=DEFAULTS.epochs)
    parser.add_argument("--batch-size", type=number(int, 1), default=DEFAULTS.batch_size)
    parser.add_argument("--lr", type=number(float, above=0), default=DEFAULTS.lr)
    parser.add_argument("--weight-decay", type=number(float, 0), default=DEFAULTS.weight_decay)
    parser.add_argument("--tile-size", type=number(int, 16), default=DEFAULTS.tile_size)
    parser.add_argument("--samples-per-epoch", type=number(int, 1), default=DEFAULTS.samples_per_epoch)
    parser.add_argument(
        "--seed",
        type=number(int, 0),
        default=DEFAULTS.seed,
        help="initial weights, training windows, batch order and the validation groups",
    )
    parser.add_argument("--num-workers", type=number(int, 0), default=DEFAULTS.num_workers)
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.ckpt")
    parser.add_argument("--init-from", type=Path, help="start from this model file (fine-tuning)")
    parser.add_argument(
        "--widths", type=number(int, 1), nargs="+", help="encoder widths (default of HFDNetConfig)"
    )
    parser.add_argument("--align-dim", type=number(int, 1), help="channels of the aligned pyramid")
    parser.add_argument(
        "--no-align", action="store_true", help="plain upsample+sum instead of feature alignment"
    )
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    teacher = subparsers.add_parser("train-teacher", help="train the EO teacher on EO + labels")
    _train_arguments(teacher)
    teacher.set_defaults(func=run_train_teacher)

    student = subparsers.add_parser("train-student", help="train the SAR student, distilled from a teacher")
    _train_arguments(student)
    student.add_argument("--teacher", type=Path, help="teacher model file (needed unless --no-distill)")
    student.add_argument("--distill-weight", type=number(float, 0), default=DEFAULTS.distill_weight)
    student.add_argument("--no-distill", action="store_true", help="SAR-only baseline: no teacher at all")
    student.add_argument(
        "--distill-scales", type=number(int, 0), nargs="+", help="pyramid levels to distil (0 = finest)"
    )
    student.add_argument(
        "--distill-loss",
        choices=("feature", "affinity"),
        default=DEFAULTS.distill_loss,
        help="feature: standardised features position by position (HFDM); affinity: pair-wise similarities",
    )
    student.add_argument(
        "--logit-distill-weight", type=number(float, 0), default=DEFAULTS.logit_distill_weight
    )
    student.add_argument("--temperature", type=number(float, above=0), default=DEFAULTS.temperature)
    student.add_argument(
        "--pseudo-labels", action="store_true", help="teacher arg-max where labels are missing"
    )
    student.add_argument(
        "--consistency-weight",
        type=number(float, 0),
        default=DEFAULTS.consistency_weight,
        help="weight of the tile-consistency loss (a half-size crop must agree with the whole window)",
    )
    student.set_defaults(func=run_train_student)

    evaluate = subparsers.add_parser("evaluate", help="scores of a model file on labelled scenes")
    _dataset_arguments(evaluate, "test")
    evaluate.add_argument(
        "--model",
        required=True,
        type=model_argument,
        help=f"model file (.pt), or a bundled model: {', '.join(BUNDLED_NAMES)}",
    )
    evaluate.add_argument("--json", type=Path, help="also write the scores to this JSON file")
    evaluate.set_defaults(func=run_evaluate)

    ensemble = subparsers.add_parser(
        "ensemble", help="one model file that averages the class probabilities of several (e.g. seeds)"
    )
    ensemble.add_argument("--models", required=True, type=Path, nargs="+", help="two or more model files")
    ensemble.add_argument("--out", required=True, type=Path, help="the ensemble's model file (.pt)")
    ensemble.set_defaults(func=run_ensemble)


def _config(args: argparse.Namespace, **extra) -> TrainConfig:
    model = {
        "widths": tuple(args.widths) if args.widths else None,
        "align_dim": args.align_dim,
        "align": False if args.no_align else None,
    }
    return TrainConfig(
        out_dir=str(args.out),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        tile_size=args.tile_size,
        samples_per_epoch=args.samples_per_epoch,
        augment=not args.no_augment,
        model={k: v for k, v in model.items() if v is not None},
        seed=args.seed,
        device=args.device,
        amp=not args.no_amp,
        num_workers=args.num_workers,
        resume=args.resume,
        init_from=str(args.init_from) if args.init_from else None,
        progress=not args.quiet,
        **extra,
    )


def _check_run(args: argparse.Namespace) -> None:
    """User errors that need no data, found before any is read (a full dataset takes minutes to load)."""
    if args.tile_size % SIZE_MULTIPLE:
        raise InputError(
            f"--tile-size must be a multiple of {SIZE_MULTIPLE} (the network halves it four times), "
            f"not {args.tile_size}"
        )
    if args.widths and len(args.widths) != 4:
        raise InputError(f"--widths needs 4 numbers, one per encoder stage, not {len(args.widths)}")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out} is a file: give a run folder")
    held = [name for name in (CHECKPOINT_NAME, BEST_MODEL_NAME) if (args.out / name).exists()]
    if held and not args.resume:
        raise InputError(
            f"{args.out} already holds a run ({', '.join(held)}): add --resume to continue it, or give "
            "another --out (nothing was overwritten)"
        )
    if args.resume and not (args.out / CHECKPOINT_NAME).exists() and _is_main():
        print(
            f"--resume: no {CHECKPOINT_NAME} in {args.out} yet, starting from the first epoch",
            file=sys.stderr,
        )


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _split(args: argparse.Namespace):
    scenes = load_scenes(args.dataset, args.root, args.split)
    unknown = set(args.leave_out) - {scene.group for scene in scenes}
    if unknown:
        raise InputError(f"--leave-out: no group {', '.join(sorted(unknown))} in {args.dataset}")
    scenes = [scene for scene in scenes if scene.group not in args.leave_out]
    train, val = split_by_group(scenes, args.val_fraction, args.seed)
    if _is_main():
        print(f"{args.dataset}: {len(train)} training and {len(val)} validation scenes", file=sys.stderr)
    return train, val


def summary_table(result: TrainResult) -> str:
    """Per-epoch training loss and validation scores, best epoch marked."""
    lines = [f"{'epoch':>5} {'train loss':>10} {'val mIoU':>9} {'val OA':>8} {'val kappa':>9}"]
    for row in result.history:
        scores = [
            f"{row[k]:>{w}.4f}" if k in row else f"{'-':>{w}}"
            for k, w in (("val_miou", 9), ("val_oa", 8), ("val_kappa", 9))
        ]
        best = "  *best" if row["epoch"] == result.best_epoch else ""
        lines.append(f"{row['epoch']:>5} {row['train_loss']:>10.4f} {' '.join(scores)}{best}")
    lines.append(
        f"best model: {result.best_path}" + ("  (training was cancelled)" if result.canceled else "")
    )
    return "\n".join(lines)


def _finish(result: TrainResult) -> int:
    if _is_main():
        print(summary_table(result))
    return 0


def run_train_teacher(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO)
    _check_run(args)
    train, val = _split(args)
    return _finish(train_teacher(train, val, _config(args), spec=DATASETS[args.dataset]))


def run_train_student(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO)
    _check_run(args)
    config = _config(
        args,
        distill_weight=0.0 if args.no_distill else args.distill_weight,
        distill_scales=tuple(args.distill_scales) if args.distill_scales else None,
        distill_loss=args.distill_loss,
        logit_distill_weight=0.0 if args.no_distill else args.logit_distill_weight,
        temperature=args.temperature,
        pseudo_labels=args.pseudo_labels and not args.no_distill,
        consistency_weight=args.consistency_weight,
    )
    require_teacher(config, args.teacher)  # before the data is read
    if args.teacher and (args.widths or args.align_dim or args.no_align) and _is_main():
        print(
            "--widths, --align-dim, --no-align: ignored, the student takes its teacher's architecture",
            file=sys.stderr,
        )
    train, val = _split(args)
    return _finish(train_student(train, val, args.teacher, config, spec=DATASETS[args.dataset]))


def run_evaluate(args: argparse.Namespace) -> int:
    if args.json:  # before the scoring, which can take minutes
        args.json.parent.mkdir(parents=True, exist_ok=True)
        check_outputs({"--json": args.json}, {"--model": args.model})
    report = evaluate_model_file(args.model, load_scenes(args.dataset, args.root, args.split), args.device)
    report = {"dataset": args.dataset, "root": str(args.root), "split": args.split, **report}
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def run_ensemble(args: argparse.Namespace) -> int:
    check_outputs({"--out": args.out}, {f"--models {path}": path for path in args.models})
    network, metadata = combine_model_files(args.models)
    save_model(args.out, network, metadata)
    print(f"{args.out}: ensemble of {len(args.models)} models")
    return 0

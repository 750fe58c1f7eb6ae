"""Ensembles of the water model's SAR-only seeds (``models.ensemble``): the final models of the given seeds,
and for every leave-one-location-out fold the same seeds' folds, so the card scores the ensemble the way it
scores one seed (``<run>/water/<name>/best.pt``, ``<run>/leave-out/<name>/<location>/best.pt``).

The base seed (mk/water.mk's ``WATER_SEED``) is the run folder itself, another seed ``N`` its ``seed<N>/``.
An ensemble's folder is written afresh, so no fold of an earlier build is left behind.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from hfd_core.modelfile import combine_model_files, save_model

VARIANT = "student_sar_only"


def seed_folder(run: Path, seed: int, base_seed: int) -> Path:
    return run if seed == base_seed else run / f"seed{seed}"


def build(run: Path, seeds: list[int], base_seed: int, name: str) -> list[Path]:
    """Writes the ensembles of ``seeds`` named ``name``; returns their paths."""
    folders = [seed_folder(run, seed, base_seed) for seed in seeds]
    locations = sorted(p.name for p in (folders[0] / "leave-out" / VARIANT).iterdir() if p.is_dir())
    jobs = {run / "water" / name / "best.pt": [f / "water" / VARIANT / "best.pt" for f in folders]}
    for location in locations:
        members = [f / "leave-out" / VARIANT / location / "best.pt" for f in folders]
        jobs[run / "leave-out" / name / location / "best.pt"] = members
    for folder in (run / "water" / name, run / "leave-out" / name):
        shutil.rmtree(folder, ignore_errors=True)
    for out, members in jobs.items():
        save_model(out, *combine_model_files(members))
    return list(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/water"))
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument(
        "--base-seed", type=int, default=0, help="the seed whose runs are the run folder itself"
    )
    parser.add_argument("--name", required=True, help="variant name of the ensemble in the run folder")
    args = parser.parse_args()
    for path in build(args.run, args.seeds, args.base_seed, args.name):
        print(path)


if __name__ == "__main__":
    main()

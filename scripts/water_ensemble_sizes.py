"""How many seeds a water ensemble needs: the leave-one-location-out pooled water IoU of every subset of the
SAR-only seeds (single seeds, pairs, triples, ...), probabilities averaged as ``models.ensemble`` does.

    .venv/bin/python scripts/water_ensemble_sizes.py --run runs/water --seeds 0 1 2 3 4

Each chip is scored by the seeds' folds that left its location out, predicted as ``evaluate`` does
(``predict_probabilities``; on these 512-pixel chips the single-seed rows equal the card's, which runs
``segment_raster``). Prints, per ensemble size, the mean, minimum and maximum over the subsets; the water
card has the same table.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np
import torch
from water_ensembles import VARIANT, seed_folder
from water_model_card import WATER, Chip, pooled_iou, read_chips, run_arguments, water_counts

from hfd_core.data import Scene
from hfd_core.modelfile import load_model
from hfd_core.train.evaluation import predict_probabilities


def water_probability(model: Path, chip: Chip) -> np.ndarray:
    """(H, W) probability of water of ``model`` on the whole chip."""
    network, metadata = load_model(model)
    sar = np.stack([chip.vv, chip.vh]).astype(np.float32)
    scene = Scene(chip.name, chip.location, sar, None, None, ["VV", "VH"], [])
    return predict_probabilities(network, metadata, scene, torch.device("cpu"))[0][WATER]


def ensemble_iou(chips: list[Chip], probabilities: dict[str, list[np.ndarray]]) -> float:
    """Pooled water IoU over the chips with water of the averaged ``probabilities`` (chip -> members)."""
    wet = [chip for chip in chips if (chip.label == WATER).any()]
    return pooled_iou([water_counts(np.mean(probabilities[c.name], axis=0) > 0.5, c) for c in wet])


def size_table(chips: list[Chip], run: Path, seeds: list[int], base_seed: int) -> str:
    """Markdown table: per ensemble size, the mean, minimum and maximum pooled water IoU over the subsets."""
    probability = {
        (seed, chip.name): water_probability(
            seed_folder(run, seed, base_seed) / "leave-out" / VARIANT / chip.location / "best.pt", chip
        )
        for seed in seeds
        for chip in chips
    }
    lines = [
        "| seeds averaged | subsets | mean pooled water IoU | min | max |",
        "|---|---|---|---|---|",
    ]
    for size in range(1, len(seeds) + 1):
        subsets = itertools.combinations(seeds, size)
        scores = [
            ensemble_iou(chips, {c.name: [probability[seed, c.name] for seed in subset] for c in chips})
            for subset in subsets
        ]
        lines.append(
            f"| {size} | {len(scores)} | {np.mean(scores):.3f} | {min(scores):.3f} | {max(scores):.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = run_arguments(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--base-seed", type=int, default=0, help="the seed of the run folder's own runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        chips = read_chips(args.samples, Path(workdir))
    print(size_table(chips, args.run, args.seeds, args.base_seed))


if __name__ == "__main__":
    main()

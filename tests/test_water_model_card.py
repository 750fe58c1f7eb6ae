"""The water model card's shipping rule (scripts/water_model_card.py ``ship_decision``): the chosen variant
ships only if, leave-one-location-out, it beats every threshold and keeps the dry chips dry."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
card = importlib.import_module("water_model_card")


def _decision(model_iou: float, dry_water: int) -> tuple[bool, str]:
    """The rule on one wet and one dry chip: every threshold at water IoU 0.5 and no water on the dry chip;
    the distilled student's leave-out fold at ``model_iou``, calling ``dry_water`` of 100 dry pixels water."""
    wet = np.zeros((4, 4), np.uint8)
    wet[:2] = card.WATER
    dry = np.zeros((4, 4), np.uint8)
    chips = [
        card.Chip(name, name, Path(name), wet * 0.0, wet * 0.0, label)
        for name, label in (("wet", wet), ("dry", dry))
    ]

    def row(iou: float, called: int) -> dict:
        wet_counts = {"intersection": round(100 * iou), "union": 100, "water": 50, "truth": 60, "pixels": 100}
        return {"wet": wet_counts, "dry": {"water": called, "pixels": 100}}

    results = {name: row(0.5, 0) for name in card.THRESHOLD_BASELINES}
    results[card._leave_out_label("student")] = row(model_iou, dry_water)
    return card.ship_decision(chips, results, "student")


def test_ships_what_beats_every_threshold_and_keeps_dry_chips_dry():
    shipped, reason = _decision(0.8, 1)
    assert shipped and "pooled water IoU 0.800 vs 0.500" in reason and "1.00 % water on a dry chip" in reason


def test_refuses_a_model_level_with_a_threshold_or_wet_on_a_dry_chip():
    assert not _decision(0.5, 0)[0]
    assert not _decision(0.8, 2)[0]


def test_cards_name_the_rows_as_the_script_does():
    """The committed cards come from the script as it is: a renamed row means the cards must be generated
    again (``make water-card``), not edited by hand."""
    for path in card.CARDS:
        text = (Path(__file__).resolve().parents[1] / path).read_text()
        for label in card.VARIANT_LABELS.values():
            assert f"| {label}, all data" in text, (path, label)
        assert card.USE_AND_LIMITS + "\n## Calibrated dB chips" in text, path

"""Where the plugin finds its files, both in the repository and in an installed plugin folder."""

from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """`resources/` inside an installed plugin, else the repository's `resources/`."""
    installed = PLUGIN_DIR / "resources"
    return installed if installed.is_dir() else PLUGIN_DIR.parent / "resources"


def icon_path(name: str = "hfd") -> str:
    """The plugin's icon, or an algorithm's (``segment``, ``finetune``, ``evaluate``)."""
    return str(resources_dir() / "icons" / f"{name}.svg")


def model_card_path(card: str = "MODEL_CARD.md") -> Path:
    """A bundled model's card (classes, training data, accuracy on held-out locations, limits): the
    land-cover model's, or ``WATER_MODEL_CARD.md``."""
    return resources_dir() / "models" / card

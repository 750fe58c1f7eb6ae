"""Sen1Floods11 hand-labelled chips: ``<Region>_<id>_S1Hand.tif`` (VV, VH dB, NaN nodata), optional
``_S2Hand.tif`` (13 bands L1C) and ``_LabelHand.tif`` (1 water, 0 not water, -1 nodata).

The files may lie in one folder or in the release layout (``S1Hand/``, ``S2Hand/``, ``LabelHand/`` siblings).
Group = region (the prefix before the first ``_``). Chips that cannot train anything are skipped with a
logged reason (``sen1floods11_problems`` tells why): an all-NaN SAR chip, or a label with no valid pixel.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hfd_core.data.raster import read_float, read_label
from hfd_core.data.scene import Scene

log = logging.getLogger(__name__)

SAR_BANDS = ["VV", "VH"]
S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
LABEL_MAPPING = {0: 0, 1: 1}  # -1 (nodata) and anything else -> IGNORE_INDEX


def _sibling(s1_path: Path, kind: str) -> Path | None:
    name = s1_path.name.replace("_S1Hand", f"_{kind}")
    for folder in (s1_path.parent, s1_path.parent.parent / kind):
        if (folder / name).is_file():
            return folder / name
    return None


def sen1floods11_problems(scene: Scene) -> list[str]:
    """Why a chip cannot be used (empty when it can)."""
    problems = []
    if scene.sar is not None and not np.isfinite(scene.sar).any():
        problems.append("SAR is all NaN (no valid pixel)")
    if scene.label is not None and not (scene.label != 255).any():
        problems.append("label has no valid pixel (all -1)")
    return problems


def read_sen1floods11(root: str | Path) -> list[Scene]:
    scenes = []
    for s1_path in sorted(Path(root).rglob("*_S1Hand.tif")):
        stem = s1_path.name.removesuffix("_S1Hand.tif")
        s2_path, label_path = _sibling(s1_path, "S2Hand"), _sibling(s1_path, "LabelHand")
        scene = Scene(
            name=stem,
            group=stem.split("_")[0],
            sar=read_float(s1_path),
            eo=read_float(s2_path) if s2_path else None,
            label=read_label(label_path, LABEL_MAPPING) if label_path else None,
            sar_bands=list(SAR_BANDS),
            eo_bands=list(S2_BANDS) if s2_path else [],
        )
        problems = sen1floods11_problems(scene)
        if problems:
            log.warning("Sen1Floods11 chip %s skipped: %s", stem, "; ".join(problems))
            continue
        scenes.append(scene)
    return scenes

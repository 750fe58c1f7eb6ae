"""WHU-OPT-SAR: ``optical/`` (4 bands R, G, B, NIR), ``sar/`` (1 band, GF-3) and ``lab/`` folders holding
co-registered GeoTIFFs of the same file name. Labels are grey values 10, 20, ..., 70 (farmland, city, village,
water, forest, road, other) mapped to ids 0..6; 0 (unlabelled) is nodata. Group = file name (each image is
its own area).
"""

from __future__ import annotations

from pathlib import Path

from hfd_core.data.raster import read_float, read_label
from hfd_core.data.scene import Scene

CLASS_NAMES = ("farmland", "city", "village", "water", "forest", "road", "other")
LABEL_MAPPING = {10 * (i + 1): i for i in range(len(CLASS_NAMES))}
OPTICAL_BANDS = ["R", "G", "B", "NIR"]


def read_whu_opt_sar(root: str | Path) -> list[Scene]:
    root = Path(root)
    scenes = []
    for sar_path in sorted((root / "sar").glob("*.tif")):
        optical, label = root / "optical" / sar_path.name, root / "lab" / sar_path.name
        sar = read_float(sar_path)
        eo = read_float(optical) if optical.is_file() else None
        scenes.append(
            Scene(
                name=sar_path.stem,
                group=sar_path.stem,
                sar=sar,
                eo=eo,
                label=read_label(label, LABEL_MAPPING) if label.is_file() else None,
                sar_bands=["SAR"] if sar.shape[0] == 1 else [f"SAR{i + 1}" for i in range(sar.shape[0])],
                eo_bands=OPTICAL_BANDS[: eo.shape[0]] if eo is not None else [],
            )
        )
    return scenes

"""SEN12MS and DFC2020 patches: ``<ROI>_<season>_s1_<scene>_p<n>.tif`` (VV, VH dB) with ``_s2_`` (13 bands
L1C), ``_lc_`` (MODIS land cover, IGBP in band 1) and/or ``_dfc_`` (DFC2020 labels) under any folder depth.

Labels are mapped onto the project's five land-cover classes (``spectral_labels.LAND_COVER_CLASSES``) by
``IGBP_TO_LAND_COVER`` / ``DFC_TO_LAND_COVER``; pass another mapping to keep another scheme. DFC2020 labels
win over the coarse MODIS ones when both exist. Group = ROI and scene id (patches of one scene are
neighbours).
"""

from __future__ import annotations

import re
from pathlib import Path

from hfd_core.data.raster import read_float, read_label
from hfd_core.data.scene import Scene
from hfd_core.data.sen1floods11 import S2_BANDS
from hfd_core.data.spectral_labels import BARE, BUILT_UP, LOW_VEGETATION, TREE, WATER

SAR_BANDS = ["VV", "VH"]
#: IGBP (MODIS LCCS-1 band of SEN12MS) -> land-cover class; wetlands (11) and snow/ice (15) are not mapped.
IGBP_TO_LAND_COVER = {
    1: TREE, 2: TREE, 3: TREE, 4: TREE, 5: TREE, 8: TREE,
    6: LOW_VEGETATION, 7: BARE, 9: LOW_VEGETATION, 10: LOW_VEGETATION, 12: LOW_VEGETATION, 14: LOW_VEGETATION,
    13: BUILT_UP, 16: BARE, 17: WATER,
}  # fmt: skip
#: DFC2020 -> land-cover class (1 forest, 2 shrubland, 3 savanna, 4 grassland, 5 wetland, 6 cropland,
#: 7 urban, 8 snow/ice, 9 barren, 10 water); wetland and snow/ice are not mapped.
DFC_TO_LAND_COVER = {
    1: TREE, 2: LOW_VEGETATION, 3: LOW_VEGETATION, 4: LOW_VEGETATION, 6: LOW_VEGETATION,
    7: BUILT_UP, 9: BARE, 10: WATER,
}  # fmt: skip
_NAME = re.compile(r"^(?P<roi>ROIs?\d+)_(?P<season>[a-z]+)_s1_(?P<scene>\d+)_p(?P<patch>\d+)\.tif$")


def read_sen12ms(root: str | Path) -> list[Scene]:
    """The SEN12MS patches under ``root``: S1 (VV, VH dB), S2 where present, and the land-cover classes of the
    DFC map where present, else of the coarse IGBP map."""
    files = {path.name: path for path in Path(root).rglob("*.tif")}
    scenes = []
    for name in sorted(files):
        match = _NAME.match(name)
        if not match:
            continue
        s2 = files.get(name.replace("_s1_", "_s2_"))
        dfc, lc = files.get(name.replace("_s1_", "_dfc_")), files.get(name.replace("_s1_", "_lc_"))
        if dfc is not None:
            label = read_label(dfc, DFC_TO_LAND_COVER)
        elif lc is not None:
            label = read_label(lc, IGBP_TO_LAND_COVER)
        else:
            label = None
        scenes.append(
            Scene(
                name=name.removesuffix(".tif").replace("_s1_", "_"),
                group=f"{match['roi']}_{match['season']}_{match['scene']}",
                sar=read_float(files[name]),
                eo=read_float(s2) if s2 else None,
                label=label,
                sar_bands=list(SAR_BANDS),
                eo_bands=list(S2_BANDS) if s2 else [],
            )
        )
    return scenes

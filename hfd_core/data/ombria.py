"""OMBRIA flood chips (official layout):
``OmbriaS1/{train,test}/{BEFORE,AFTER,MASK}/S1_{before,after,mask}_NNNN.png``
and ``OmbriaS2/...`` with the same ids.

S1 is VV only, 8-bit, stretched per chip (not dB); S2 is a B11/B8/B3 false colour, 8-bit. Arrays stay uint8 in
memory (the tile dataset converts per tile). ``inputs="after"``: SAR = after image (1 band), EO = S2 after
(3 bands); ``inputs="before_after"``: before and after stacked (2 and 6 bands). Label: mask > 127 -> 1
(flood) else 0. Group = block of ``ID_BLOCK`` consecutive ids, so validation carved from train by
``split_by_group`` is made of whole id blocks, not random chips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.io import imread

from hfd_core.data.scene import Scene
from hfd_core.errors import InputError

ID_BLOCK = 10
INPUTS = ("after", "before_after")
S2_COLOURS = ("B11", "B08", "B03")


def _png(path: Path) -> np.ndarray:
    image = imread(path)
    return image[None] if image.ndim == 2 else np.moveaxis(image[..., :3], -1, 0)


def read_ombria(root: str | Path, split: str = "train", inputs: str = "after") -> list[Scene]:
    if inputs not in INPUTS:
        raise InputError(f"inputs must be one of {INPUTS}, not {inputs!r}")
    root = Path(root)
    s1, s2 = root / "OmbriaS1" / split, root / "OmbriaS2" / split
    if not (s1 / "AFTER").is_dir():
        raise InputError(f"no OMBRIA {split} split under {root} (expected {s1 / 'AFTER'})")
    times = ("before", "after") if inputs == "before_after" else ("after",)
    scenes = []
    for after in sorted((s1 / "AFTER").glob("S1_after_*.png")):
        chip = after.stem.removeprefix("S1_after_")
        sar = np.concatenate([_png(s1 / t.upper() / f"S1_{t}_{chip}.png") for t in times])
        eo_paths = [s2 / t.upper() / f"S2_{t}_{chip}.png" for t in times]
        eo = np.concatenate([_png(p) for p in eo_paths]) if all(p.is_file() for p in eo_paths) else None
        mask = _png(s1 / "MASK" / f"S1_mask_{chip}.png")[0]
        scenes.append(
            Scene(
                name=f"ombria-{split}-{chip}",
                group=f"ombria-{split}-block{int(chip) // ID_BLOCK}",
                sar=sar,
                eo=eo,
                label=(mask > 127).astype(np.uint8),
                sar_bands=[f"VV_{t}" for t in times],
                eo_bands=[f"{band}_{t}" for t in times for band in S2_COLOURS] if eo is not None else [],
            )
        )
    return scenes

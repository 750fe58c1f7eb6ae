"""OMBRIA flood chips (official layout):
``OmbriaS1/{train,test}/{BEFORE,AFTER,MASK}/S1_{before,after,mask}_NNNN.png``
and ``OmbriaS2/...`` with the same ids.

S1 is VV only, 8-bit, stretched per chip (not dB); S2 is a B11/B8/B3 false colour, 8-bit. Arrays stay uint8 in
memory (the tile dataset converts per tile). ``inputs="after"``: SAR = after image (1 band), EO = S2 after
(3 bands); ``inputs="before_after"``: before and after stacked (2 and 6 bands). Label: mask > 127 -> 1
(flood) else 0 (a mask of 0 and 1 is read as it is); a chip missing one of its S1 images is an error that
names it, as does one whose images differ in size. Group = block of ``ID_BLOCK`` consecutive ids, so
validation carved from train by ``split_by_group`` is made of whole id blocks, not random chips; chips of
other events may be named their own way (``S1_after_<any id>.png``), each its own group.

Fill: 45 of the 624 training chips and 4 of the 70 test chips have 1 to 64 rows or columns at an edge where
the SAR is one grey level (often 255, as the stretch was made with the fill in it; else a mid grey), ending in
a wedge of that value along the slanted swath edge. ``edge_fill`` finds both; their label is
``IGNORE_INDEX`` (no SAR there to judge a map by) and ``sar_with_nodata`` makes them NaN for the water
model's scene statistics. Counted as data, the fill was a spike in the chip's histogram that pulled Otsu's
threshold above the whole chip: the water model called 88 % of test chip 0019 (4 % flood) flood, and Otsu on
that chip scored 0.06 mIoU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.io import imread
from skimage.measure import label as label_regions

from hfd_core import IGNORE_INDEX
from hfd_core.data.scene import Scene
from hfd_core.errors import InputError

ID_BLOCK = 10
INPUTS = ("after", "before_after")
S2_COLOURS = ("B11", "B08", "B03")


def _png(path: Path, grey: bool = False) -> np.ndarray:
    """(B, H, W) uint8: a grey image as one band (``grey``: S1 images and masks; a grey image saved with
    colour or alpha channels is read as its grey band, a colour one is refused), else three colour bands."""
    if not path.is_file():
        before = path.parent.name == "BEFORE"
        hint = " or read the after images alone (`--dataset ombria-after`)" if before else ""
        raise InputError(
            f"OMBRIA layout: {path} is missing (each chip needs its S1 images and its mask{hint})"
        )
    image = imread(path)
    if image.ndim == 2:
        return image[None]
    bands = np.moveaxis(image[..., :3], -1, 0)
    if not grey:
        return bands
    if np.ptp(bands, axis=0).any():
        raise InputError(f"OMBRIA layout: {path} is a colour image; S1 images and masks are grey (one band)")
    return bands[:1]


def _group(split: str, chip: str) -> str:
    """A chip's group: its block of ``ID_BLOCK`` consecutive ids, or the chip itself where the id is not a
    number (chips of other events named their own way)."""
    return f"ombria-{split}-block{int(chip) // ID_BLOCK}" if chip.isdigit() else f"ombria-{split}-{chip}"


def _straight_fill(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: the rows and columns peeled off an image's edges, one at a time, while the edge line of
    what is left holds a single value (fills that meet at a corner are both found)."""
    top, bottom, left, right = 0, image.shape[0], 0, image.shape[1]
    while top < bottom and left < right:
        if np.ptp(image[top, left:right]) == 0:
            top += 1
        elif np.ptp(image[bottom - 1, left:right]) == 0:
            bottom -= 1
        elif np.ptp(image[top:bottom, left]) == 0:
            left += 1
        elif np.ptp(image[top:bottom, right - 1]) == 0:
            right -= 1
        else:
            break
    fill = np.ones(image.shape, bool)
    fill[top:bottom, left:right] = False
    return fill


def edge_fill(sar: np.ndarray) -> np.ndarray:
    """(H, W) bool: the fill at the edges of any image of a (B, H, W) chip: the whole rows and columns of one
    value (``_straight_fill``) and the pixels of that value connected to them. The swath edge is slanted, so
    the fill ends in a wedge (test chip 0018: rows of 255 then 250, 194, 137, 81 and 24 pixels of 255)."""
    fill = np.zeros(sar.shape[1:], bool)
    for image in sar:
        straight = _straight_fill(image)
        if not straight.any():
            continue
        regions = label_regions(straight | np.isin(image, np.unique(image[straight])), connectivity=1)
        fill |= np.isin(regions, np.unique(regions[straight]))
    return fill


def sar_with_nodata(sar: np.ndarray) -> np.ndarray:
    """A chip's 8-bit SAR as float32 with its ``edge_fill`` NaN (nodata)."""
    values = sar.astype(np.float32)
    values[:, edge_fill(sar)] = np.nan
    return values


def flood_share(label: np.ndarray) -> float:
    """Share of a chip's labelled pixels (not ``IGNORE_INDEX``) that are flood."""
    labelled = label[label != IGNORE_INDEX]
    return float((labelled == 1).mean()) if labelled.size else 0.0


def _check_same_size(chip: str, images: dict[Path, np.ndarray]) -> None:
    if len({image.shape[1:] for image in images.values()}) > 1:
        sizes = ", ".join(
            f"{path.name} {image.shape[2]} x {image.shape[1]}" for path, image in images.items()
        )
        raise InputError(f"OMBRIA layout: chip {chip}'s images differ in size ({sizes})")


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
        sar_paths = [s1 / t.upper() / f"S1_{t}_{chip}.png" for t in times]
        mask_path = s1 / "MASK" / f"S1_mask_{chip}.png"
        eo_paths = [s2 / t.upper() / f"S2_{t}_{chip}.png" for t in times]
        eo_paths = eo_paths if all(p.is_file() for p in eo_paths) else []
        images = {
            path: _png(path, grey=path.name.startswith("S1_")) for path in [*sar_paths, mask_path, *eo_paths]
        }
        _check_same_size(chip, images)
        sar, mask = np.concatenate([images[p] for p in sar_paths]), images[mask_path][0]
        eo = np.concatenate([images[p] for p in eo_paths]) if eo_paths else None
        label = (mask > (127 if mask.max() > 1 else 0)).astype(np.uint8)
        label[edge_fill(sar)] = IGNORE_INDEX
        scenes.append(
            Scene(
                name=f"ombria-{split}-{chip}",
                group=_group(split, chip),
                sar=sar,
                eo=eo,
                label=label,
                sar_bands=[f"VV_{t}" for t in times],
                eo_bands=[f"{band}_{t}" for t in times for band in S2_COLOURS] if eo is not None else [],
            )
        )
    return scenes

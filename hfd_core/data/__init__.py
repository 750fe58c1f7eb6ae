"""Scenes, dataset readers for public layouts, SAR conventions, normalisation and paired tiles."""

from hfd_core.data.ombria import read_ombria
from hfd_core.data.scene import Scene, split_by_group
from hfd_core.data.sen1floods11 import read_sen1floods11
from hfd_core.data.sen12ms import read_sen12ms
from hfd_core.data.tiles import PairedTileDataset
from hfd_core.data.triplets import read_triplet_folder
from hfd_core.data.whu_opt_sar import read_whu_opt_sar

__all__ = [
    "PairedTileDataset",
    "Scene",
    "read_ombria",
    "read_sen12ms",
    "read_sen1floods11",
    "read_triplet_folder",
    "read_whu_opt_sar",
    "split_by_group",
]

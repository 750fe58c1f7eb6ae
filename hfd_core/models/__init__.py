"""HFD-Net: one segmentation network class for both roles (EO teacher, SAR student)."""

from hfd_core.models.complexity import count_flops, count_parameters
from hfd_core.models.hfdnet import HFDNet, HFDNetConfig

__all__ = ["HFDNet", "HFDNetConfig", "count_flops", "count_parameters"]

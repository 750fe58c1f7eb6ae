"""Teacher training, student distillation, checkpoints, evaluation and the training commands.

``train_teacher`` / ``train_student`` are the programmatic API (also used by QGIS fine-tuning); see
``api.py``.
"""

from hfd_core.train.api import train_student, train_teacher
from hfd_core.train.config import TrainCallbacks, TrainConfig
from hfd_core.train.evaluation import evaluate_model_file, evaluate_scenes
from hfd_core.train.loop import TrainResult

__all__ = [
    "TrainCallbacks",
    "TrainConfig",
    "TrainResult",
    "evaluate_model_file",
    "evaluate_scenes",
    "train_student",
    "train_teacher",
]

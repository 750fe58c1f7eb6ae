"""Fine-tuning as a QGIS background task: QGIS stays responsive, the dialog follows it through signals."""

from __future__ import annotations

import traceback

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from hfd_core.errors import user_error_message


class FinetuneTask(QgsTask):
    """Runs ``hfd_core.train.finetune.finetune(**arguments)`` in a worker thread.

    ``epoch_finished(epoch, values)`` is emitted after every epoch and ``warned(message)`` for every warning
    of the run (an EO mostly under cloud, labels off the model's classes...), both queued to the receiver's
    thread.
    After the run ``result`` holds the ``FinetuneResult`` (None when it failed
    or was cancelled before the first epoch) and ``error`` the message of a failure.
    """

    epoch_finished = pyqtSignal(int, object)
    warned = pyqtSignal(str)

    def __init__(self, arguments: dict) -> None:
        super().__init__("Fine-tune SAR model with EO reference", QgsTask.CanCancel)
        self.arguments = dict(arguments)
        self.result = None
        self.error: str | None = None

    def run(self) -> bool:
        from hfd_core.train.config import TrainCallbacks  # hfd_core.train needs torch: only when running
        from hfd_core.train.finetune import finetune

        callbacks = TrainCallbacks(
            on_epoch_end=lambda epoch, values: self.epoch_finished.emit(epoch, dict(values)),
            should_stop=self.isCanceled,
            on_progress=self.setProgress,
            on_warning=self.warned.emit,
        )
        try:
            self.result = finetune(**self.arguments, callbacks=callbacks)
        except Exception as error:  # bad input, unwritable output, Canceled before the first epoch finished
            # a bug (no user message) must reach the log with its traceback, not vanish in the worker thread
            self.error = user_error_message(error) or traceback.format_exc()
            return False
        return True

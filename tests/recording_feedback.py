"""A Processing feedback that records its log (info, warnings, errors) for tests to read."""

from __future__ import annotations


class Feedback:
    """A QgsProcessingFeedback that records the log and can cancel after a given log line appears."""

    def __new__(cls, cancel_on: str | None = None):
        from qgis.core import QgsProcessingFeedback

        class Recording(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.lines: list[str] = []
                self.progress_texts: list[str] = []

            def pushInfo(self, info):  # noqa: N802
                self.lines.append(info)
                if cancel_on and info.startswith(cancel_on):
                    self.cancel()

            def setProgressText(self, text):  # noqa: N802
                self.progress_texts.append(text)

            def pushWarning(self, warning):  # noqa: N802
                self.lines.append(warning)

            def reportError(self, error, fatalError=False):  # noqa: N802, N803
                self.lines.append(error)

        return Recording()

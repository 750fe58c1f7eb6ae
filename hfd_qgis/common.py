"""What every algorithm of the provider shares: device choices, the bundled models, band lists, turning
``hfd_core`` errors into Processing errors and a Processing feedback into ``hfd_core`` callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsProcessingParameterFile

from hfd_core.errors import HFDError, InputError
from hfd_qgis.dependencies import missing_dependency_message
from hfd_qgis.paths import resources_dir

DEVICES = ("auto", "cpu", "cuda")


def bundled_model(role: str) -> str:
    """Path of the bundled ``teacher`` or ``student`` model file."""
    return str(resources_dir() / "models" / f"{role}.pt")


def parse_band_list(text: str) -> list[int] | None:
    """``"2, 3, 4"`` -> [2, 3, 4]; empty -> None (bands found automatically)."""
    text = text.strip()
    if not text:
        return None
    try:
        return [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise InputError(f"band numbers must be integers separated by commas, not {text!r}") from None


@contextmanager
def core_errors() -> Iterator[None]:
    """Run ``hfd_core`` work: a missing torch or an HFDError becomes a QgsProcessingException."""
    message = missing_dependency_message()
    if message:
        raise QgsProcessingException(message)
    try:
        yield
    except HFDError as error:
        raise QgsProcessingException(str(error)) from None


def progress_callbacks(feedback: QgsProcessingFeedback) -> tuple[Callable[[float], None], Callable[[], bool]]:
    """(progress, is_canceled) callables for ``hfd_core`` from a Processing feedback."""
    return feedback.setProgress, feedback.isCanceled


def model_file_parameter(name: str, description: str, role: str) -> QgsProcessingParameterFile:
    """A model-file parameter defaulting to the bundled ``role`` model. Optional, because QGIS 3.22 does not
    apply a file parameter's default when the value is left out (qgis_process, processing.run)."""
    return QgsProcessingParameterFile(
        name, description, extension="pt", defaultValue=bundled_model(role), optional=True
    )


def model_file(algorithm, parameters: dict, name: str, context, role: str) -> str:
    """The chosen model file, or the bundled ``role`` model when none was given; InputError when that
    bundled model is missing (a plugin installed without its models)."""
    path = algorithm.parameterAsFile(parameters, name, context) or bundled_model(role)
    if Path(path) == Path(bundled_model(role)) and not Path(path).is_file():
        raise InputError(
            f"the bundled {role} model {path} is missing: choose a model file ({name}), or reinstall the "
            "plugin (`make install`; `make train-bundled` rebuilds the bundled models)"
        )
    return path

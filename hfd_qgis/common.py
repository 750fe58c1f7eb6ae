"""What every algorithm of the provider shares: device choices, the bundled models, band lists, the output
guard, turning ``hfd_core`` errors into Processing errors and a Processing feedback into ``hfd_core``
callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFile,
)

from hfd_core import files
from hfd_core.errors import InputError, user_error_message
from hfd_qgis.dependencies import missing_dependency_message
from hfd_qgis.label_layers import layer_file
from hfd_qgis.paths import resources_dir

DEVICES = ("auto", "cpu", "cuda")


class ChoicesByLabel(QgsProcessingAlgorithm):
    """Base of the provider's algorithms: a Choice parameter takes, in any case, an option's label, the label
    without its explanation in brackets, or its name in ``CHOICE_NAMES`` (``BUNDLED_MODEL=water``,
    ``DEVICE=cpu``, ``INPUT_SCALE=dB``, ``TARGETS=teacher``), as well as its number. QGIS 3.22's Choice takes
    only the number, and a Choice of static strings would refuse the numbers that scripts already pass. A
    value that is none of these is refused with the accepted ones listed."""

    #: Choice parameter -> the options' names in hfd_core, in the options' order.
    CHOICE_NAMES: dict[str, tuple[str, ...]] = {}

    def addParameter(self, definition, createOutput=True) -> bool:  # noqa: N802, N803 (QGIS API names)
        """Every Choice's help lists the names it takes (``qgis_process help`` shows only the numbers, with
        QGIS's stock line about comma-separated lists, which a single Choice refuses)."""
        if definition.type() == "enum" and not definition.help():
            default = definition.defaultValue()
            after = f"; default {default}" if default is not None else ""
            definition.setHelp(
                f"one option, by number or name (any case): {self._accepted(definition)}{after}"
            )
        return super().addParameter(definition, createOutput)

    def _accepted(self, definition) -> str:
        return "; ".join(
            f"{number} or {' or '.join(repr(name) for name in names)}"
            for number, names in enumerate(self._option_names(definition))
        )

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API name)
        resolved = self.choices_as_numbers(parameters)
        for definition in self.parameterDefinitions():
            value = resolved.get(definition.name())
            if definition.type() == "enum" and isinstance(value, str) and not value.strip().isdigit():
                return False, f"{definition.name()}={value!r} is not an option: {self._accepted(definition)}"
        return super().checkParameterValues(resolved, context)

    def _option_names(self, definition) -> list[list[str]]:
        """Each option's accepted names: its label, the label without the part in brackets, its hfd_core
        name."""
        core = self.CHOICE_NAMES.get(definition.name(), ())
        names = []
        for index, label in enumerate(definition.options()):
            unique: list[str] = []
            for name in (label, label.split(" (")[0], *core[index : index + 1]):
                if name.casefold() not in (kept.casefold() for kept in unique):
                    unique.append(name)
            names.append(unique)
        return names

    def choices_as_numbers(self, parameters: dict) -> dict:
        """``parameters`` with each Choice given by a name of an option replaced by the option's number; call
        it first in ``processAlgorithm``."""
        resolved = dict(parameters)
        for definition in self.parameterDefinitions():
            value = resolved.get(definition.name())
            if definition.type() != "enum" or not isinstance(value, str):
                continue
            for number, names in enumerate(self._option_names(definition)):
                if value.strip().casefold() in (name.casefold() for name in names):
                    resolved[definition.name()] = number
        return resolved


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
    """Run ``hfd_core`` work: a missing torch, an HFDError or another user error (unreadable or unwritable
    file, ``hfd_core.errors.user_error_message``) becomes a QgsProcessingException with one clear line."""
    message = missing_dependency_message()
    if message:
        raise QgsProcessingException(message)
    try:
        yield
    except Exception as error:
        message = user_error_message(error)
        if message is None:
            raise
        raise QgsProcessingException(message) from None


def _source_path(algorithm: QgsProcessingAlgorithm, parameters: dict, definition, context) -> str | None:
    """The file behind an input parameter (layer or file), None when it has none."""
    name = definition.name()
    if isinstance(definition, QgsProcessingParameterFile):
        return algorithm.parameterAsFile(parameters, name, context) or None
    if definition.type() in ("raster", "vector", "source", "layer"):
        layer = algorithm.parameterAsLayer(parameters, name, context)
        return layer_file(layer) if layer is not None else None
    return None


def check_outputs(algorithm: QgsProcessingAlgorithm, parameters: dict, context: QgsProcessingContext) -> None:
    """``hfd_core.files.check_outputs`` over every destination and every file or layer input of
    ``algorithm``, each named by its dialog label and parameter name (``Class map [OUTPUT]``: messages that
    gave only the name left a dialog user to guess which field it was): no output replaces an input, another
    output or a bundled model, and every output folder exists and is writable. Call it first in
    ``processAlgorithm``."""
    outputs, inputs = {}, {}
    for definition in algorithm.parameterDefinitions():
        label = f"{definition.description()} [{definition.name()}]"
        if definition.isDestination():
            outputs[label] = algorithm.parameterAsFileOutput(parameters, definition.name(), context)
        else:
            inputs[label] = _source_path(algorithm, parameters, definition, context)
    with core_errors():
        files.check_outputs(outputs, inputs, [resources_dir() / "models"])


def progress_callbacks(
    feedback: QgsProcessingFeedback, time_left: bool = False
) -> tuple[Callable[[float], None], Callable[[], bool]]:
    """(progress, is_canceled) callables for ``hfd_core`` from a Processing feedback; with ``time_left`` the
    progress text shows the estimated time left (``hfd_core.infer.timing``)."""
    if not time_left:
        return feedback.setProgress, feedback.isCanceled
    from hfd_core.infer.timing import with_time_left

    return with_time_left(feedback.setProgress, feedback.setProgressText), feedback.isCanceled


def model_file_parameter(name: str, description: str, role: str) -> QgsProcessingParameterFile:
    """A model-file parameter defaulting to the bundled ``role`` model. Optional, because QGIS 3.22 does not
    apply a file parameter's default when the value is left out (qgis_process, processing.run)."""
    return QgsProcessingParameterFile(
        name, description, extension="pt", defaultValue=bundled_model(role), optional=True
    )


def model_file(
    algorithm: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext, role: str
) -> str:
    """The chosen model file, or the bundled ``role`` model when none was given; InputError when that
    bundled model is missing (a plugin installed without its models)."""
    path = algorithm.parameterAsFile(parameters, name, context) or bundled_model(role)
    if Path(path) == Path(bundled_model(role)) and not Path(path).is_file():
        raise InputError(
            f"the bundled {role} model {path} is missing: choose a model file ({name}), or reinstall the "
            "plugin (`make install`; `make train-bundled` rebuilds the bundled models)"
        )
    return path

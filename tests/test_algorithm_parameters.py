"""Every parameter of every `hfd` algorithm: its default is a value the parameter accepts, and exactly the
documented inputs are required (everything else is optional or has a usable default)."""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingParameterDefinition

#: What a user must give (README "The algorithms"); every other parameter has a default or is optional.
REQUIRED = {
    "hfd:segment": {"INPUT", "OUTPUT"},
    "hfd:finetune": {"SAR", "EO", "OUTPUT_MODEL"},
    "hfd:evaluate": {"PREDICTION", "REFERENCE"},
}


def _algorithm(algorithm_id: str):
    return QgsApplication.processingRegistry().algorithmById(algorithm_id)


def _is_optional(parameter) -> bool:
    return bool(parameter.flags() & QgsProcessingParameterDefinition.FlagOptional)


@pytest.mark.parametrize("algorithm_id", sorted(REQUIRED))
def test_every_default_is_acceptable(processing_provider, algorithm_id):
    for parameter in _algorithm(algorithm_id).parameterDefinitions():
        default = parameter.defaultValue()
        if default is not None:
            assert parameter.checkValueIsAcceptable(default), (parameter.name(), default)


@pytest.mark.parametrize("algorithm_id", sorted(REQUIRED))
def test_only_the_documented_inputs_are_required(processing_provider, algorithm_id):
    required = {
        p.name()
        for p in _algorithm(algorithm_id).parameterDefinitions()
        if not _is_optional(p) and p.defaultValue() is None
    }
    assert required == REQUIRED[algorithm_id]


@pytest.mark.parametrize("algorithm_id", sorted(REQUIRED))
def test_required_values_alone_pass_the_parameter_check(
    processing_provider, demo_sample, tmp_path, algorithm_id
):
    """Processing's own check (the one that reports "mandatory parameters were not specified") with only the
    required parameters: every default must fill in the rest."""
    algorithm = _algorithm(algorithm_id)
    values = {}
    for name in REQUIRED[algorithm_id]:
        parameter = algorithm.parameterDefinition(name)
        values[name] = str(tmp_path / name) if parameter.isDestination() else str(demo_sample)
    ok, message = algorithm.checkParameterValues(values, QgsProcessingContext())
    assert ok, message


def test_validation_fraction_accepts_its_documented_range(processing_provider):
    """Regression: built with positional (default, optional, min, max) arguments its minimum was 0.5."""
    parameter = _algorithm("hfd:finetune").parameterDefinition("VALIDATION_FRACTION")
    assert (parameter.minimum(), parameter.maximum()) == (0, 0.5)
    assert all(parameter.checkValueIsAcceptable(v) for v in (0, 0.2, 0.5))
    assert not parameter.checkValueIsAcceptable(0.6)


@pytest.mark.parametrize("algorithm_id", sorted(REQUIRED))
def test_every_choice_says_the_names_it_takes(processing_provider, algorithm_id):
    """`qgis_process help` listed only the options' numbers (and QGIS's line about comma-separated lists),
    never the names every Choice takes (BUNDLED_MODEL=water, INPUT_SCALE=dB, DEVICE=cpu)."""
    for parameter in _algorithm(algorithm_id).parameterDefinitions():
        if parameter.type() == "enum":
            assert "by number or name" in parameter.help(), parameter.name()
            for label in parameter.options():
                assert repr(label) in parameter.help(), (parameter.name(), label)

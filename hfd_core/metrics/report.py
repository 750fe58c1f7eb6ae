"""Accuracy report of a segmentation raster against a reference raster: scores, confusion matrix, HTML, CSV.

The two rasters may lie on different grids (CRS, resolution, extent): the reference is brought onto the
prediction's grid with nearest-neighbour resampling (class ids must not be averaged) and only the overlap is
compared. Not counted: the prediction's nodata (``IGNORE_INDEX``), the reference's nodata value, reference
values outside ``0..K-1`` (e.g. ``-1`` "no data" in Sen1Floods11 labels) and pixels outside the overlap.
``K`` is the number of class names: given, else read from the prediction (its ``CLASS_NAMES`` tag, written
by segmentation, or the paletted ``.qml`` style beside it), else the highest class id seen plus one.

References rarely share the model's class ids (Sen1Floods11: 1 water, 0 not water; the bundled model:
0 water). A ``mapping`` {reference value: model class} translates them; reference values it does not list are
not counted. A binary comparison (``positive``: one model class against the rest) scores e.g. water against
not water: the reference values mapped to that class (or, without a mapping, equal to its id) are the class;
the rest is the values the mapping gives other classes (others not counted), or, where it gives none, every
other valid reference value (``_binary``: its warnings name them when there are several, and say when the
reference labels the class alone). Without a mapping, ``warnings`` says when the reference's
values do not line up with the prediction's classes: values outside the classes, or a much better agreement
when each reference value is paired with the class it most often meets (the suggested pairs are in it).
"""

from __future__ import annotations

import csv
import html
import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

from hfd_core import IGNORE_INDEX
from hfd_core.data.raster import warp_to_grid
from hfd_core.errors import InputError
from hfd_core.files import same_file
from hfd_core.metrics.confusion import confusion_matrix, scores

#: Value the reference takes outside the overlap and where it is nodata (any negative value is ignored).
_OUTSIDE = -1
#: Warn about the class ids when pairing each reference value with its most frequent predicted class agrees
#: on this much more of the pixels than the ids as they are (India_900498 with the land-cover student of
#: 2026-12-04: 0.026 as they are, 0.696 paired).
_PAIRING_GAIN = 0.25


@dataclass
class SegmentationReport:
    """Scores of one prediction against one reference (``matrix``: rows reference, columns predicted)."""

    prediction_path: str
    reference_path: str
    class_names: list[str]
    matrix: np.ndarray
    oa: float
    miou: float
    kappa: float
    iou: list[float]
    f1: list[float]
    precision: list[float]
    recall: list[float]
    pixels: int
    warnings: list[str] = field(default_factory=list)
    comparison: str = "class ids as they are"
    #: The prediction's class id of each row, "" for the rest of a one-class comparison (its rows are
    #: numbered 0, 1 in ``matrix``; the CSV had given the compared class id 0 whatever its id in the map).
    class_ids: list[str] = field(default_factory=list)

    def ids(self) -> list[str]:
        """``class_ids``, or the row numbers when the classes are the prediction's own."""
        return self.class_ids or [str(i) for i in range(len(self.class_names))]

    def to_dict(self) -> dict:
        """JSON-ready values."""
        return {
            "prediction": self.prediction_path,
            "reference": self.reference_path,
            "classes": list(self.class_names),
            "oa": self.oa,
            "miou": self.miou,
            "kappa": self.kappa,
            "per_class_iou": dict(zip(self.class_names, self.iou, strict=True)),
            "f1": dict(zip(self.class_names, self.f1, strict=True)),
            "confusion_matrix": self.matrix.tolist(),
            "pixels": self.pixels,
            "comparison": self.comparison,
            "warnings": list(self.warnings),
        }


def _require_class_ids(values: np.ndarray, path: str | Path, what: str) -> None:
    """InputError when finite ``values`` (nodata already NaN) are not whole numbers (to 1e-6): a SAR raster
    given as a class map (the desktop dialog offers the active layer for both) was truncated to integers and
    scored, an mIoU of 1.0 for the SAR against itself."""
    finite = values[np.isfinite(values)]
    fractional = finite[np.abs(finite - np.round(finite)) > 1e-6]
    if fractional.size:
        raise InputError(
            f"{what} {Path(path).name} holds values that are not class ids (such as {fractional[0]:g}): "
            "give a class map, such as the output of hfd:segment, not a SAR raster"
        )


def reference_on_grid(reference_path: str | Path, grid_path: str | Path) -> np.ndarray:
    """The reference's class ids (its band 1) on the grid of ``grid_path`` (int32; negative where absent or
    nodata); InputError when it holds values that are not class ids."""
    with rasterio.open(grid_path) as grid:
        values = warp_to_grid(reference_path, grid, bands=[1], resampling="nearest")[0]
    _require_class_ids(values, reference_path, "the reference")
    return np.where(np.isfinite(values) & (values >= 0), np.nan_to_num(values), _OUTSIDE).astype(np.int32)


def prediction_class_names(prediction_path: str | Path) -> list[str] | None:
    """Class names of a segmentation: its ``CLASS_NAMES`` tag (JSON list), else the labels of the paletted
    ``.qml`` style beside it (ids 0..K-1 in order), else None."""
    with rasterio.open(prediction_path) as src:
        tag = src.tags().get("CLASS_NAMES")
    if tag:
        try:
            names = json.loads(tag)
        except json.JSONDecodeError:
            names = None
        if isinstance(names, list) and names:
            return [str(name) for name in names]
    qml = Path(prediction_path).with_suffix(".qml")
    if not qml.is_file():
        return None
    try:
        entries = ElementTree.parse(qml).getroot().iter("paletteEntry")
        labels = {int(e.get("value")): e.get("label") or f"class {e.get('value')}" for e in entries}
    except (ElementTree.ParseError, TypeError, ValueError):
        return None
    labels = {k: v for k, v in labels.items() if 0 <= k < IGNORE_INDEX}
    if not labels:
        return None
    return [labels.get(i, f"class {i}") for i in range(max(labels) + 1)]


def class_id(text: str, class_names: list[str]) -> int:
    """A model class given by id (``"0"``) or name (``"water"``, any case); InputError otherwise."""
    text = text.strip()
    lowered = [name.lower() for name in class_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < len(class_names):
        raise InputError(
            f"{text!r} is not a class of the prediction; its classes are "
            + ", ".join(f"{i} {name}" for i, name in enumerate(class_names))
        )
    return value


def parse_class_mapping(text: str, class_names: list[str]) -> dict[int, int]:
    """``"1: water, 0: low vegetation"`` -> {1: 0, 0: 3}: reference value -> model class (id or name)."""
    mapping = {}
    for item in text.replace(";", ",").split(","):
        if not item.strip():
            continue
        value, sep, target = item.partition(":")
        if not sep:
            raise InputError(f"class mapping items are 'reference value: model class', not {item.strip()!r}")
        try:
            key = int(value)
        except ValueError:
            raise InputError(
                f"reference value {value.strip()!r} in the class mapping is not an integer"
            ) from None
        mapping[key] = class_id(target, class_names)
    return mapping


def _agreement_warnings(prediction: np.ndarray, reference: np.ndarray, class_names: list[str]) -> list[str]:
    """Warnings when the reference's values (ids as they are) do not line up with the prediction's classes."""
    valid = (reference >= 0) & (prediction != IGNORE_INDEX)
    ref, pred = reference[valid], prediction[valid]
    if ref.size == 0:
        return []
    warnings = []
    values, counts = np.unique(ref, return_counts=True)
    outside = values >= len(class_names)
    if outside.any():
        share = counts[outside].sum() / ref.size
        warnings.append(
            f"{share:.0%} of the reference pixels have values that are not classes of the prediction "
            f"({', '.join(map(str, values[outside][:10]))}) and are not counted: give a class mapping"
        )
    pairs = {}
    paired = 0
    for value in values:
        classes, hits = np.unique(pred[ref == value], return_counts=True)
        pairs[int(value)] = int(classes[hits.argmax()])
        paired += int(hits.max())
    as_is = float(np.mean(ref == pred))
    if paired / ref.size - as_is >= _PAIRING_GAIN:
        named = {value: c for value, c in pairs.items() if c < len(class_names)}
        suggestion = ", ".join(f"{value}: {class_names[c]}" for value, c in named.items())
        advice = (
            "If the reference uses its own ids, give a class mapping (reference value: model class), or "
            "compare one class against the rest (e.g. water vs not water)"
        )
        telling = _most_telling_pair(ref, pred, len(class_names))
        if len(set(named.values())) < len(named) and telling:  # e.g. a water label against land cover
            value, c = telling
            advice = (
                "Several reference values meet the same class most, so no renumbering lines them up: the "
                "reference may label fewer classes than the model. Compare one class against the rest, e.g. "
                f"{class_names[c]} with the class mapping '{value}: {class_names[c]}' (of the reference's "
                f"values, {value} meets {class_names[c]} most, for how often the prediction calls it)"
            )
        warnings.append(
            "the reference's values do not look like the prediction's class ids: as they are, they agree on "
            f"{as_is:.1%} of the pixels; paired with the class each value meets most, on "
            f"{paired / ref.size:.1%} (pairs {suggestion}). {advice}"
        )
    return warnings


def _most_telling_pair(ref: np.ndarray, pred: np.ndarray, num_classes: int) -> tuple[int, int] | None:
    """(reference value, class) where the class is most over-represented among the value's pixels (the
    lift P(class | value) / P(class); ties to the larger P(class | value)), over values and classes of at
    least 1 % of the pixels; None when no value covers 1 % (e.g. polygon ids taken for classes)."""
    overall = np.bincount(pred[pred < num_classes], minlength=num_classes) / ref.size
    candidates = []
    for value in np.unique(ref):
        inside = pred[ref == value]
        if inside.size < 0.01 * ref.size:
            continue
        given = np.bincount(inside[inside < num_classes], minlength=num_classes) / inside.size
        lift = np.where(overall >= 0.01, given / np.maximum(overall, 1e-12), 0.0)
        candidates += [(lift[c], given[c], int(value), c) for c in range(num_classes)]
    if not candidates:
        return None
    _, _, value, c = max(candidates)
    return value, c


def _binary(
    prediction: np.ndarray, reference: np.ndarray, positive: int, mapping: dict[int, int] | None, name: str
) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Prediction and reference as 0 (the ``positive`` class) / 1 (the rest), nodata kept out, warnings, and
    the comparison in words (which reference values are the class and which the rest).
    The rest is the reference values the mapping gives other classes, unlisted ones not counted, as without
    a class compared; where it gives none, every other valid value, named in a warning when there are several
    or one is 255 or more (an ignore value the file does not declare, such as 255, then counts as the
    rest)."""
    values = [v for v, c in mapping.items() if c == positive] if mapping else [positive]
    if not values:
        raise InputError("the class mapping gives no reference value for the class compared against the rest")
    listed_rest = [v for v, c in mapping.items() if c != positive] if mapping else []
    binary_prediction = np.where(prediction == positive, 0, 1)
    binary_prediction[prediction == IGNORE_INDEX] = IGNORE_INDEX
    binary_reference = np.where(np.isin(reference, values), 0, 1)
    outside = reference < 0
    if listed_rest:
        outside |= ~np.isin(reference, values + listed_rest)
    binary_reference[outside] = _OUTSIDE
    counted = (binary_reference >= 0) & (binary_prediction != IGNORE_INDEX)
    rest, counts = np.unique(reference[counted & (binary_reference == 1)], return_counts=True)
    warnings = []
    if not listed_rest and (len(rest) > 1 or (rest >= IGNORE_INDEX).any()):
        shares = ", ".join(
            f"{v} ({c / counts.sum():.0%})" for v, c in zip(rest[:10], counts[:10], strict=True)
        ) + (", ..." if len(rest) > 10 else "")
        warnings.append(
            f"not {name} is every other reference value: {shares}. If one of them marks unlabelled pixels "
            "(such as 255), declare it as the reference's nodata value, or give the class mapping the values "
            f"of the rest too (e.g. '{values[0]}: {name}, {rest[0]}: <another class>'): unlisted values are "
            "then not counted"
        )
    if counted.any() and not len(rest):
        warnings.append(
            f"the reference labels {name} only: the pixels it leaves unlabelled are not counted, so {name} "
            f"mapped outside its {name} is not measured and the IoU is the share of its {name} found (the "
            "recall). Label the rest too (e.g. polygons of the other ground, or a raster with 0 there)"
        )
    rest_values = ", ".join(map(str, listed_rest)) if listed_rest else "every other valid value"
    comparison = (
        f"{name} against the rest (reference {', '.join(map(str, values))} as {name}; {rest_values} as "
        "the rest)"
    )
    return binary_prediction, binary_reference, warnings, comparison


def _mapped(reference: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Reference values translated to model classes; values the mapping does not list become ``_OUTSIDE``."""
    mapped = np.full_like(reference, _OUTSIDE)
    for value, target in mapping.items():
        mapped[reference == value] = target
    return mapped


def compare_rasters(
    prediction_path: str | Path,
    reference_path: str | Path,
    class_names: list[str] | None = None,
    mapping: dict[int, int] | None = None,
    positive: int | None = None,
) -> SegmentationReport:
    """Scores of the class raster ``prediction_path`` against ``reference_path`` (band 1 of each).

    ``mapping``: {reference value: model class}; ``positive``: a model class compared against the rest
    (binary report, classes "<name>" and "not <name>"). InputError when a file cannot be read, the rasters do
    not overlap, no pixel is valid in both, or they are the same file (a map scored against itself: in
    QGIS's dialog both default to the active layer).
    """
    try:
        with rasterio.open(prediction_path) as src:
            prediction = src.read(1).astype(np.float32)  # exact for class ids; nodata becomes NaN
            nodata = src.nodata
        if nodata is not None:
            prediction[prediction == nodata] = np.nan
        _require_class_ids(prediction, prediction_path, "the segmentation")
        if same_file(prediction_path, reference_path):
            raise InputError(
                f"the segmentation and the reference are the same file ({prediction_path}): a map scored "
                "against itself measures nothing; choose the reference labels (a class-id raster or "
                "polygons) as the reference"
            )
        prediction = np.where(np.isfinite(prediction), np.round(prediction), IGNORE_INDEX).astype(np.int32)
        reference = reference_on_grid(reference_path, prediction_path)
        class_names = class_names or prediction_class_names(prediction_path)
    except rasterio.errors.RasterioIOError as error:
        raise InputError(f"cannot read raster: {error}") from None
    prediction[(prediction < 0) | (prediction > IGNORE_INDEX)] = IGNORE_INDEX
    if (reference < 0).all():
        raise InputError(
            f"the reference {reference_path} does not overlap the prediction {prediction_path} "
            "(or has only nodata there)"
        )
    if class_names is None:
        present = np.concatenate([prediction[prediction != IGNORE_INDEX], reference[reference >= 0]])
        highest = int(present.max()) if present.size else 0
        class_names = [f"class {i}" for i in range(max(highest + 1, 2))]
    if mapping and max(mapping.values()) >= len(class_names):
        raise InputError(f"the class mapping names classes beyond the prediction's {len(class_names)}")
    if mapping and min(mapping) < 0:
        raise InputError(
            f"the class mapping lists the reference value {min(mapping)}: negative reference values are "
            "read as nodata, as is ground outside the reference, and never counted; leave it out"
        )
    warnings = [] if mapping else _agreement_warnings(prediction, reference, class_names)
    comparison = "class ids as they are"
    class_ids = []
    if positive is not None:
        name = class_names[positive]
        prediction, reference, warnings, comparison = _binary(prediction, reference, positive, mapping, name)
        class_names = [name, f"not {name}"]
        class_ids = [str(positive), ""]
    elif mapping:
        reference = _mapped(reference, mapping)
        comparison = "reference values mapped to classes: " + ", ".join(
            f"{value} -> {class_names[target]}" for value, target in mapping.items()
        )
    matrix = confusion_matrix(prediction, reference, len(class_names)).numpy()
    if matrix.sum() == 0:
        raise InputError(
            "no pixel has a valid class in both the prediction and the reference "
            f"(classes 0..{len(class_names) - 1}); if the reference uses other values, give a class mapping"
            + "".join(f". {warning}" for warning in warnings)
        )
    values = scores(matrix)
    return SegmentationReport(
        prediction_path=str(prediction_path),
        reference_path=str(reference_path),
        class_names=list(class_names),
        matrix=matrix,
        oa=values["oa"],
        miou=values["miou"],
        kappa=values["kappa"],
        iou=values["iou"],
        f1=values["f1"],
        precision=values["precision"],
        recall=values["recall"],
        pixels=values["pixels"],
        warnings=warnings,
        comparison=comparison,
        class_ids=class_ids,
    )


def write_csv(report: SegmentationReport, path: str | Path) -> None:
    """One row per class: its scores, then its row of the confusion matrix (pixels per predicted class);
    classes by the prediction's ids (``SegmentationReport.ids``; the rest of a one-class comparison: "",
    its column ``predicted_rest``)."""
    ids = report.ids()
    header = ["class_id", "class_name", "iou", "f1", "precision", "recall", "reference_pixels"]
    header += [f"predicted_{i or 'rest'}" for i in ids]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, name in enumerate(report.class_names):
            row = [ids[i], name, report.iou[i], report.f1[i], report.precision[i], report.recall[i]]
            writer.writerow([*row, int(report.matrix[i].sum()), *map(int, report.matrix[i])])


def format_score(value: float) -> str:
    """A score to 4 decimals; "n/a" where it is undefined (NaN: e.g. the IoU of a class in neither map)."""
    return "n/a" if np.isnan(value) else f"{value:.4f}"


def write_html(report: SegmentationReport, path: str | Path) -> None:
    """A self-contained HTML page: summary scores, per-class table and the confusion matrix."""
    names = [html.escape(name) for name in report.class_names]
    ids = report.ids()
    per_class = "".join(
        f"<tr><td>{ids[i]}</td><td>{name}</td><td>{format_score(report.iou[i])}</td>"
        f"<td>{format_score(report.f1[i])}</td><td>{format_score(report.precision[i])}</td>"
        f"<td>{format_score(report.recall[i])}</td></tr>"
        for i, name in enumerate(names)
    )
    warnings = "".join(f'<p style="color:#b35900">Warning: {html.escape(w)}</p>' for w in report.warnings)
    matrix_head = "".join(f"<th>{name}</th>" for name in names)
    matrix_rows = "".join(
        f"<tr><th>{name}</th>" + "".join(f"<td>{int(v)}</td>" for v in report.matrix[i]) + "</tr>"
        for i, name in enumerate(names)
    )
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Segmentation accuracy</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #999;padding:3px 8px;text-align:right}}</style></head><body>
<h1>Segmentation accuracy</h1>
<p>Prediction: {html.escape(report.prediction_path)}<br>Reference: {html.escape(report.reference_path)}<br>
Compared: {html.escape(report.comparison)}<br>Pixels compared: {report.pixels}</p>{warnings}
<table><tr><th>Overall accuracy</th><td>{format_score(report.oa)}</td></tr>
<tr><th>Mean IoU</th><td>{format_score(report.miou)}</td></tr>
<tr><th>Cohen's kappa</th><td>{format_score(report.kappa)}</td></tr></table>
<h2>Per class</h2>
<table><tr><th>id</th><th>class</th><th>IoU</th><th>F1</th><th>precision</th><th>recall</th></tr>{per_class}</table>
<h2>Confusion matrix</h2><p>Rows: reference; columns: prediction (pixels).</p>
<table><tr><th></th>{matrix_head}</tr>{matrix_rows}</table>
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")

"""Accuracy report of a segmentation raster against a reference raster: scores, confusion matrix, HTML, CSV.

The two rasters may lie on different grids (CRS, resolution, extent): the reference is brought onto the
prediction's grid with nearest-neighbour resampling (class ids must not be averaged) and only the overlap is
compared. Not counted: the prediction's nodata (``IGNORE_INDEX``), the reference's nodata value, reference
values outside ``0..K-1`` (e.g. ``-1`` "no data" in Sen1Floods11 labels) and pixels outside the overlap.
``K`` is the number of class names when given, else the highest class id seen in either raster plus one.
"""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from hfd_core import IGNORE_INDEX
from hfd_core.data.raster import warp_to_grid
from hfd_core.errors import InputError
from hfd_core.metrics.confusion import confusion_matrix, scores

#: Value the reference takes outside the overlap and where it is nodata (any negative value is ignored).
_OUTSIDE = -1


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
        }


def reference_on_grid(reference_path: str | Path, grid_path: str | Path, band: int = 1) -> np.ndarray:
    """The reference's class ids on the grid of ``grid_path`` (int32; negative where absent or nodata)."""
    with rasterio.open(grid_path) as grid:
        values = warp_to_grid(reference_path, grid, bands=[band], resampling="nearest")[0]
    return np.where(np.isfinite(values) & (values >= 0), np.nan_to_num(values), _OUTSIDE).astype(np.int32)


def compare_rasters(
    prediction_path: str | Path,
    reference_path: str | Path,
    class_names: list[str] | None = None,
    reference_band: int = 1,
) -> SegmentationReport:
    """Scores of the class raster ``prediction_path`` (band 1) against ``reference_path``.

    InputError when a file cannot be read, the rasters do not overlap, or no pixel is valid in both.
    """
    try:
        with rasterio.open(prediction_path) as src:
            prediction = src.read(1).astype(np.int32)
            nodata = src.nodata
        reference = reference_on_grid(reference_path, prediction_path, reference_band)
    except rasterio.errors.RasterioIOError as error:
        raise InputError(f"cannot read raster: {error}") from None
    if nodata is not None and np.isfinite(nodata):
        prediction[prediction == int(nodata)] = IGNORE_INDEX
    prediction[prediction < 0] = IGNORE_INDEX
    if (reference < 0).all():
        raise InputError(
            f"the reference {reference_path} does not overlap the prediction {prediction_path} "
            "(or has only nodata there)"
        )
    if class_names is None:
        present = np.concatenate([prediction[prediction != IGNORE_INDEX], reference[reference >= 0]])
        highest = int(present.max()) if present.size else 0
        class_names = [f"class {i}" for i in range(max(highest + 1, 2))]
    matrix = confusion_matrix(prediction, reference, len(class_names)).numpy()
    if matrix.sum() == 0:
        raise InputError(
            "no pixel has a valid class in both the prediction and the reference "
            f"(classes 0..{len(class_names) - 1})"
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
    )


def write_csv(report: SegmentationReport, path: str | Path) -> None:
    """One row per class: its scores, then its row of the confusion matrix (pixels per predicted class)."""
    header = ["class_id", "class_name", "iou", "f1", "precision", "recall", "reference_pixels"]
    header += [f"predicted_{i}" for i in range(len(report.class_names))]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, name in enumerate(report.class_names):
            row = [i, name, report.iou[i], report.f1[i], report.precision[i], report.recall[i]]
            writer.writerow([*row, int(report.matrix[i].sum()), *map(int, report.matrix[i])])


def _number(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.4f}"


def write_html(report: SegmentationReport, path: str | Path) -> None:
    """A self-contained HTML page: summary scores, per-class table and the confusion matrix."""
    names = [html.escape(name) for name in report.class_names]
    per_class = "".join(
        f"<tr><td>{i}</td><td>{name}</td><td>{_number(report.iou[i])}</td><td>{_number(report.f1[i])}</td>"
        f"<td>{_number(report.precision[i])}</td><td>{_number(report.recall[i])}</td></tr>"
        for i, name in enumerate(names)
    )
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
Pixels compared: {report.pixels}</p>
<table><tr><th>Overall accuracy</th><td>{_number(report.oa)}</td></tr>
<tr><th>Mean IoU</th><td>{_number(report.miou)}</td></tr>
<tr><th>Cohen's kappa</th><td>{_number(report.kappa)}</td></tr></table>
<h2>Per class</h2>
<table><tr><th>id</th><th>class</th><th>IoU</th><th>F1</th><th>precision</th><th>recall</th></tr>{per_class}</table>
<h2>Confusion matrix</h2><p>Rows: reference; columns: prediction (pixels).</p>
<table><tr><th></th>{matrix_head}</tr>{matrix_rows}</table>
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")

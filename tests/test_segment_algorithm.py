"""hfd:segment through Processing (pytest-qgis): real Sentinel-1 samples, styling, confidence, bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from hfd_core import IGNORE_INDEX
from hfd_core.modelfile import read_metadata

REPO = Path(__file__).resolve().parents[1]
BUNDLED_STUDENT = REPO / "resources" / "models" / "student.pt"


def segment(**parameters) -> dict:
    import processing

    return processing.run("hfd:segment", parameters)


def copy_input(path: Path, folder: Path) -> Path:
    """A copy of a shared sample: QGIS writes statistics (.aux.xml) beside the rasters it opens."""
    folder.mkdir(exist_ok=True)
    return Path(shutil.copy2(path, folder / path.name))


def run_and_check(input_path: Path, model: Path, output: Path, **extra) -> np.ndarray:
    """Segment `input_path` and check the output keeps its grid; return the class array."""
    result = segment(INPUT=str(input_path), MODEL=str(model), OUTPUT=str(output), **extra)
    assert Path(result["OUTPUT"]) == output
    with rasterio.open(input_path) as src, rasterio.open(output) as out:
        assert out.crs == src.crs
        assert out.transform == src.transform
        assert (out.width, out.height) == (src.width, src.height)
        assert out.count == 1 and out.dtypes[0] == "uint8"
        assert out.nodata == IGNORE_INDEX
        classes = out.read(1)
    valid = classes != IGNORE_INDEX
    assert result["VALID_PIXELS"] == int(valid.sum())
    assert classes[valid].max() < len(read_metadata(model).classes)
    return classes


def test_demo_sample_keeps_grid_and_opens_styled(processing_provider, demo_sample, tiny_sar_model, tmp_path):
    from qgis.core import QgsRasterLayer

    output = tmp_path / "land_cover.tif"
    classes = run_and_check(demo_sample, tiny_sar_model, output)
    assert (classes != IGNORE_INDEX).all()  # the sample has no nodata

    qml = output.with_suffix(".qml")
    assert qml.is_file()
    layer = QgsRasterLayer(str(output), "land cover")  # loads the .qml beside the file by default
    assert layer.isValid()
    assert layer.renderer().type() == "paletted"
    labels = {c.value: c.label for c in layer.renderer().classes()}
    assert labels == {0: "water", 1: "vegetation", 2: "built-up"}

    explicit = QgsRasterLayer(str(output), "land cover", "gdal", QgsRasterLayer.LayerOptions(False))
    message, ok = explicit.loadNamedStyle(str(qml))
    assert ok, message
    assert explicit.renderer().type() == "paletted"


def test_result_loaded_into_the_project_shows_class_names(
    processing_provider, demo_sample, tiny_sar_model, tmp_path
):
    """As the Processing dialog does: the loaded layer gets the .qml (Processing skips default styles, and the
    GeoTIFF colour table alone would give 256 entries labelled by number)."""
    import processing
    from qgis.core import QgsProject

    output = tmp_path / "land_cover.tif"
    parameters = {"INPUT": str(demo_sample), "MODEL": str(tiny_sar_model), "OUTPUT": str(output)}
    processing.runAndLoadResults("hfd:segment", parameters)
    project = QgsProject.instance()
    [layer] = [layer for layer in project.mapLayers().values() if layer.source() == str(output)]
    classes = [(c.value, c.label, c.color.name()) for c in layer.renderer().classes()]
    project.removeMapLayer(layer)
    assert classes == [(0, "water", "#2b7bb9"), (1, "vegetation", "#33a02c"), (2, "built-up", "#e31a1c")]


def test_confidence_output_is_percent_on_the_same_grid(
    processing_provider, demo_sample, tiny_sar_model, tmp_path
):
    confidence = tmp_path / "confidence.tif"
    result = segment(
        INPUT=str(demo_sample),
        MODEL=str(tiny_sar_model),
        OUTPUT=str(tmp_path / "c.tif"),
        CONFIDENCE=str(confidence),
    )
    assert Path(result["CONFIDENCE"]) == confidence
    with rasterio.open(confidence) as out, rasterio.open(demo_sample) as src:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
        values = out.read(1)
    assert values.min() >= 100 / 3 - 1  # max of three probabilities is at least a third
    assert values.max() <= 100
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(str(confidence), "confidence")  # loads the .qml beside the file
    assert layer.renderer().type() == "singlebandpseudocolor"
    legend = [label for label, _ in layer.renderer().legendSymbologyItems()]
    assert legend[0] == "33 %" and legend[-1] == "100 %" and len(legend) == 5


def test_loaded_outputs_are_named_after_the_input(processing_provider, demo_sample, tiny_sar_model):
    """Temporary outputs (the dialog's default) are loaded as "<input> <model>" / "<input> <model>
    confidence", a model file by its name (a fine-tuned model's map read as the bundled land cover's, and the
    confidence of any two runs had one name: a user's desktop audit)."""
    import processing
    from qgis.core import QgsProject, QgsRasterLayer

    project = QgsProject.instance()
    sar = QgsRasterLayer(str(demo_sample), "S1 scene")
    project.addMapLayer(sar)
    parameters = {"INPUT": sar.id(), "MODEL": str(tiny_sar_model), "OUTPUT": "TEMPORARY_OUTPUT"}
    results = processing.runAndLoadResults("hfd:segment", {**parameters, "CONFIDENCE": "TEMPORARY_OUTPUT"})
    loaded = [layer for layer in project.mapLayers().values() if layer.source() in results.values()]
    names = {layer.name() for layer in loaded}
    project.removeMapLayers([layer.id() for layer in loaded] + [sar.id()])
    model = Path(tiny_sar_model).stem
    assert names == {f"S1 scene {model}", f"S1 scene {model} confidence"}


def test_maps_are_named_by_the_bundled_model_or_the_model_file(qgis_app, tmp_path):
    """A bundled model chosen as a model file keeps its word ("water", not "water_student")."""
    from hfd_qgis.common import bundled_model
    from hfd_qgis.segment_algorithm import SegmentAlgorithm

    algorithm = SegmentAlgorithm()
    assert algorithm.map_name(bundled_model("water_student")) == "water"
    assert algorithm.map_name(bundled_model("student")) == "land cover"
    assert algorithm.map_name(str(tmp_path / "tuned_on_my_area.pt")) == "tuned_on_my_area"


def test_an_empty_optional_output_is_not_loaded(qgis_app):
    """A batch row with CONFIDENCE empty registers "" for loading: QGIS calls it "not correctly generated"."""
    from qgis.core import QgsProcessingContext, QgsProject

    from hfd_qgis.segment_algorithm import forget_skipped_outputs

    context = QgsProcessingContext()
    details = QgsProcessingContext.LayerDetails("", QgsProject.instance(), "CONFIDENCE")
    context.addLayerToLoadOnCompletion("", details)
    context.addLayerToLoadOnCompletion("/tmp/land_cover.tif", details)
    forget_skipped_outputs(context)
    assert list(context.layersToLoadOnCompletion()) == ["/tmp/land_cover.tif"]


def test_tiling_and_device_are_advanced_parameters(processing_provider):
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition

    algorithm = QgsApplication.processingRegistry().algorithmById("hfd:segment")
    advanced = {
        p.name()
        for p in algorithm.parameterDefinitions()
        if p.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    }
    assert advanced == {"TILE_SIZE", "OVERLAP", "BATCH_SIZE", "DEVICE"}
    assert "MODEL_CARD.md" in algorithm.helpUrl() and algorithm.helpUrl().startswith("file:///")


def test_nan_input_pixels_become_nodata(processing_provider, demo_sample, tiny_sar_model, tmp_path):
    holed = tmp_path / "holed.tif"
    with rasterio.open(demo_sample) as src:
        profile, data = src.profile, src.read()
    data[:, 40:90, 100:180] = np.nan
    data[1, 200, 5] = np.nan  # one band missing is nodata too
    with rasterio.open(holed, "w", **profile) as dst:
        dst.write(data)
    classes = run_and_check(holed, tiny_sar_model, tmp_path / "out.tif")
    assert (classes[40:90, 100:180] == IGNORE_INDEX).all()
    assert classes[200, 5] == IGNORE_INDEX
    assert (classes == IGNORE_INDEX).sum() == 50 * 80 + 1


def test_small_overlapping_tiles_agree_with_one_big_tile(
    processing_provider, demo_sample, tiny_sar_model, tmp_path
):
    whole = run_and_check(demo_sample, tiny_sar_model, tmp_path / "whole.tif", TILE_SIZE=256, OVERLAP=0)
    tiled = run_and_check(demo_sample, tiny_sar_model, tmp_path / "tiled.tif", TILE_SIZE=64, OVERLAP=16)
    assert (whole == tiled).mean() >= 0.99


def test_tiny_raster_smaller_than_a_tile_works(processing_provider, demo_sample, tiny_sar_model, tmp_path):
    tiny = tmp_path / "tiny.tif"
    with rasterio.open(demo_sample) as src:
        window = rasterio.windows.Window(30, 20, 13, 10)
        profile = {**src.profile, "width": 13, "height": 10, "transform": src.window_transform(window)}
        profile.update(tiled=False, blockxsize=None, blockysize=None)
        data = src.read(window=window)
    with rasterio.open(tiny, "w", **{k: v for k, v in profile.items() if v is not None}) as dst:
        dst.write(data)
    classes = run_and_check(tiny, tiny_sar_model, tmp_path / "out.tif")
    assert classes.shape == (10, 13)
    assert (classes != IGNORE_INDEX).all()


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "relative", ["sen1floods11/India_900498_S1Hand.tif", "sen12ms/ROIs1158_spring_s1_1_p30.tif"]
)
def test_real_samples_keep_georeferencing(
    processing_provider, shared_data, tiny_sar_model, tmp_path, relative
):
    source = copy_input(shared_data / relative, tmp_path)
    classes = run_and_check(
        source, tiny_sar_model, tmp_path / "out.tif", BANDS=[1, 2], TILE_SIZE=128, OVERLAP=16
    )
    with rasterio.open(source) as src:
        nodata_input = ~np.isfinite(src.read()).all(axis=0)
    assert ((classes == IGNORE_INDEX) == nodata_input).all()


@pytest.mark.slow
@pytest.mark.skipif(
    not BUNDLED_STUDENT.is_file(), reason="bundled model not trained yet (make train-bundled)"
)
def test_bundled_student_on_the_demo_sample(processing_provider, demo_sample, tmp_path):
    """The default MODEL is the bundled student; a realistic run on a real Sentinel-1 patch. Its log points
    to the water model, which maps water far better than the land-cover model's class 0."""
    import processing
    from recording_feedback import Feedback

    from hfd_qgis.segment_algorithm import WATER_HINT

    output, feedback = tmp_path / "bundled.tif", Feedback()
    result = processing.run(
        "hfd:segment", {"INPUT": str(demo_sample), "OUTPUT": str(output)}, feedback=feedback
    )
    assert WATER_HINT in feedback.lines
    classes = run_and_check(demo_sample, BUNDLED_STUDENT, tmp_path / "explicit.tif")
    with rasterio.open(result["OUTPUT"]) as out:
        assert (out.read(1) == classes).all()


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.skipif(
    not BUNDLED_STUDENT.is_file(), reason="bundled model not trained yet (make train-bundled)"
)
@pytest.mark.parametrize(
    "chip", ["Ghana_83483", "Ghana_97059", "India_900498", "Spain_6860600", "Sri-Lanka_534068"]
)
def test_bundled_student_half_overlapping_tiles_agree_with_one_tile(
    processing_provider, shared_data, tmp_path, chip
):
    """No seam with the default model on real Sentinel-1 chips: tiles of a quarter of the chip overlapping by
    half a tile give the classes of one tile over the whole 512-pixel chip on at least 99% of the pixels."""
    source = copy_input(shared_data / "sen1floods11" / f"{chip}_S1Hand.tif", tmp_path)
    whole = run_and_check(source, BUNDLED_STUDENT, tmp_path / "whole.tif", TILE_SIZE=512, OVERLAP=0)
    tiled = run_and_check(source, BUNDLED_STUDENT, tmp_path / "tiled.tif", TILE_SIZE=256, OVERLAP=128)
    valid = whole != IGNORE_INDEX
    assert valid.mean() > 0.5
    if chip != "Sri-Lanka_534068":  # 98 % water, "bare / sparse" everywhere for the student of 2026-12-05
        assert len(np.unique(whole[valid])) >= 2  # a map, so agreement is informative
    assert ((tiled == IGNORE_INDEX) == ~valid).all()
    assert (whole[valid] == tiled[valid]).mean() >= 0.99


def write_one_band(path: Path, demo_sample: Path) -> Path:
    with rasterio.open(demo_sample) as src:
        profile, vv = src.profile, src.read(1)
    with rasterio.open(path, "w", **{**profile, "count": 1}) as dst:
        dst.write(vv, 1)
    return path


def assert_fails(match: str, output: Path, **parameters) -> None:
    from qgis.core import QgsProcessingException

    output.parent.mkdir(exist_ok=True)
    with pytest.raises(QgsProcessingException, match=match):
        segment(OUTPUT=str(output), **parameters)
    assert not output.exists()
    leftovers = [p.name for p in output.parent.iterdir() if p.name.startswith(output.stem) or "tmp" in p.name]
    assert leftovers == []


def test_too_few_bands_is_refused(processing_provider, demo_sample, tiny_sar_model, tmp_path):
    (tmp_path / "in").mkdir()
    one_band = write_one_band(tmp_path / "in" / "vv_only.tif", demo_sample)
    # no advice that cannot help (naming or choosing bands), no Sentinel-2 product for SAR; how to stack
    # bands that lie in separate files (STAC Overflow's *_vv.tif, *_vh.tif), which no message had said
    stack = r"bands in separate files: stack them first, in the model's order \(gdalbuildvrt -separate"
    assert_fails(
        r"has 1 band\(s\); the model needs 2 \(VV, VH\): give a raster with those bands; " + stack,
        tmp_path / "out" / "o.tif", INPUT=str(one_band), MODEL=str(tiny_sar_model),
    )  # fmt: skip
    assert_fails(  # the water model with VV alone: why it is refused, and what to do instead
        r"has one band; the water model reads VV and VH: give both \(the bands named, or in that order; "
        + stack + r".*\), or threshold VV. With VV alone it called far more false water",
        tmp_path / "out" / "o.tif", INPUT=str(one_band), BUNDLED_MODEL=1,
    )  # fmt: skip


@pytest.mark.shared_data
def test_all_nan_raster_is_refused(processing_provider, shared_data, tiny_sar_model, tmp_path):
    all_nan = copy_input(shared_data / "sen1floods11" / "Paraguay_34417_S1Hand.tif", tmp_path / "in")
    assert_fails(
        r"(?i)no valid|nodata|NaN", tmp_path / "o.tif", INPUT=str(all_nan), MODEL=str(tiny_sar_model)
    )


def test_file_that_is_not_a_model_is_refused(processing_provider, demo_sample, tmp_path):
    fake = tmp_path / "in" / "model.pt"
    fake.parent.mkdir()
    fake.write_text("not a model")
    assert_fails(r"model\.pt", tmp_path / "out" / "o.tif", INPUT=str(demo_sample), MODEL=str(fake))


def test_missing_bundled_model_is_a_clear_error(processing_provider, demo_sample, tmp_path, monkeypatch):
    """A plugin installed without its models: leaving MODEL out names the missing file and the way out."""
    import hfd_qgis.common

    monkeypatch.setattr(hfd_qgis.common, "resources_dir", lambda: tmp_path / "no_resources")
    assert_fails(r"bundled student model .*student\.pt is missing.*MODEL", tmp_path / "out" / "o.tif",
                 INPUT=str(demo_sample))  # fmt: skip


def test_cuda_without_a_gpu_is_refused(processing_provider, demo_sample, tiny_sar_model, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    assert_fails(r"'cuda'.*no CUDA GPU", tmp_path / "out" / "o.tif", INPUT=str(demo_sample),
                 MODEL=str(tiny_sar_model), DEVICE=2)  # fmt: skip


def test_unwritable_output_is_refused(processing_provider, demo_sample, tiny_sar_model, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file, not a folder")
    output = blocker / "o.tif"
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=r"a_file"):
        segment(INPUT=str(demo_sample), MODEL=str(tiny_sar_model), OUTPUT=str(output))
    assert blocker.read_text() == "a file, not a folder"


def test_cancel_from_progress_leaves_no_output(processing_provider, demo_sample, tiny_sar_model, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda _percent: feedback.cancel())
    output = tmp_path / "cancelled.tif"
    parameters = {
        "INPUT": str(demo_sample),
        "MODEL": str(tiny_sar_model),
        "OUTPUT": str(output),
        "TILE_SIZE": 64,
    }
    with pytest.raises(QgsProcessingException, match="(?i)cancel"):
        processing.run("hfd:segment", parameters, feedback=feedback)
    assert feedback.isCanceled()
    assert list(tmp_path.iterdir()) == []


def _load_run(demo_sample, folder, run: str, first: str, input_layer, insert_at) -> list:
    """A run's class map and confidence loaded as QGIS does, ``first`` first: each inserted at
    ``insert_at()`` (above the active layer), then post-processed."""
    from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer

    from hfd_qgis.segment_algorithm import StyleFromQml

    layers = {}
    for kind in sorted(("class map", "confidence"), key=lambda k: k != first):
        path = shutil.copy2(demo_sample, folder / f"{run} {kind}.tif")
        layers[kind] = layer = QgsRasterLayer(str(path), f"{run} {kind}")
        QgsProject.instance().addMapLayer(layer, False)
        QgsProject.instance().layerTreeRoot().insertLayer(insert_at(), layer)
        processor = StyleFromQml(
            "/nonexistent.qml", input_layer.id(), str(demo_sample), run, kind == "confidence"
        )
        processor.postProcessLayer(layer, QgsProcessingContext(), None)
    return list(layers.values())


@pytest.mark.parametrize("first", ["class map", "confidence"])
def test_each_run_ends_on_top_class_map_above_confidence_in_either_load_order(
    demo_sample, first, qgis_app, tmp_path
):
    """QGIS loads outputs in the order of their paths, each above the active layer, which the post-processors
    make the input again: they fix the tree's order. A second run's outputs went under the first run's,
    which still hid them (a user's desktop audit)."""
    from qgis.core import QgsProject, QgsRasterLayer

    project = QgsProject.instance()
    tree = project.layerTreeRoot()
    sar = QgsRasterLayer(str(demo_sample), "sar")
    project.addMapLayer(sar)
    above_input = lambda: tree.children().index(tree.findLayer(sar.id()))  # noqa: E731
    loaded = [sar]
    for run in ("water", "land cover"):
        loaded += _load_run(demo_sample, tmp_path, run, first, sar, above_input)
    ours = {layer.id() for layer in loaded}  # other tests may leave layers behind
    nodes = [node for node in tree.children() if node.layerId() in ours]
    order, expanded = [node.name() for node in nodes], {node.name(): node.isExpanded() for node in nodes}
    project.removeMapLayers(list(ours))
    runs = [f"{run} {kind}" for run in ("land cover", "water") for kind in ("class map", "confidence")]
    assert order == [*runs, "sar"]
    assert expanded["land cover class map"] and not expanded["land cover confidence"]


@pytest.mark.parametrize("first", ["class map", "confidence"])
def test_outputs_stay_above_a_selected_layer_over_the_input(demo_sample, first, qgis_app, tmp_path):
    """QGIS inserts outputs above the selected layer: with another layer selected on top of the input, moving
    them down to the input hid them under it (a second desktop audit)."""
    from qgis.core import QgsProject, QgsRasterLayer

    project = QgsProject.instance()
    tree = project.layerTreeRoot()
    sar = QgsRasterLayer(str(demo_sample), "sar")
    labels = QgsRasterLayer(str(shutil.copy2(demo_sample, tmp_path / "labels.tif")), "labels")
    project.addMapLayer(sar)
    project.addMapLayer(labels)  # on top, selected
    above_labels = lambda: tree.children().index(tree.findLayer(labels.id()))  # noqa: E731
    loaded = [sar, labels, *_load_run(demo_sample, tmp_path, "run", first, sar, above_labels)]
    ours = {layer.id() for layer in loaded}
    order = [node.name() for node in tree.children() if node.layerId() in ours]
    project.removeMapLayers(list(ours))
    assert order == ["run class map", "run confidence", "labels", "sar"]


@pytest.mark.parametrize("first", ["class map", "confidence"])
def test_class_map_above_confidence_when_the_input_was_a_file(demo_sample, first, qgis_app, tmp_path):
    """An input given as a file (the dialog's file button, a batch row) is not in the project and cannot be
    made active again: QGIS inserts each output above the one loaded before (a review found the confidence
    above its map when the map loaded first)."""
    from qgis.core import QgsProject, QgsRasterLayer

    project = QgsProject.instance()
    outside = QgsRasterLayer(str(demo_sample), "input, not in the project")
    loaded = _load_run(demo_sample, tmp_path, "run", first, outside, lambda: 0)
    ours = {layer.id() for layer in loaded}
    order = [node.name() for node in project.layerTreeRoot().children() if node.layerId() in ours]
    project.removeMapLayers(list(ours))
    assert order == ["run class map", "run confidence"]

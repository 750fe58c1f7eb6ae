"""The bundled model's training set, read from the real samples."""

import numpy as np
import pytest

from hfd_core import IGNORE_INDEX
from hfd_core.data.bundled import (
    BUNDLED_VALIDATION_GROUPS,
    EO_BANDS,
    SAR_BANDS,
    read_bundled_scenes,
    split_bundled,
)
from hfd_core.data.spectral_labels import LAND_COVER_CLASSES, WATER

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def scenes(shared_data):
    return read_bundled_scenes(shared_data)


def test_every_paired_source_is_read_on_one_grid(scenes):
    sources = {s.name.split("-")[0] for s in scenes}
    assert sources == {"bigearthnet", "ssl4eo", "sen12mscr", "sen1floods11"}
    assert len(scenes) == 6 + 24 + 2 + 2 + 1
    for scene in scenes:
        assert scene.sar.shape[0] == len(SAR_BANDS) and scene.eo.shape[0] == len(EO_BANDS)
        assert scene.sar.shape[1:] == scene.eo.shape[1:] == scene.label.shape
        finite = scene.sar[np.isfinite(scene.sar)]
        assert -40 < np.median(finite) < 5, scene.name  # sigma0 in dB
        assert 100 < np.median(scene.eo) < 6000, scene.name  # reflectance x 10000
        assert set(np.unique(scene.label)) <= {c[0] for c in LAND_COVER_CLASSES} | {IGNORE_INDEX}


def test_true_labels_are_used_where_they_exist(scenes):
    india = next(s for s in scenes if s.name == "sen1floods11-India_900498")
    water_share = (india.label == WATER).mean()
    assert 0.3 < water_share < 0.6  # hand labels: about 47 % water
    corine = next(s for s in scenes if s.name.endswith("T33UUP-26_57"))
    assert set(np.unique(corine.label)) == {2, 3}  # forest / agriculture only, no spectral guesses


def test_validation_locations_are_held_out_whole(scenes):
    train, validation = split_bundled(scenes)
    assert {s.group for s in validation} == set(BUNDLED_VALIDATION_GROUPS)
    assert not {s.group for s in train} & {s.group for s in validation}
    assert len(train) + len(validation) == len(scenes)

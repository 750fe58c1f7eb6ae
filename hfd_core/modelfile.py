"""One-file model format: weights plus everything needed to use them.

The file is ``torch.save`` of a plain dict ``{"format": "hfd-net", "format_version": 1, "metadata_json": str,
"state_dict": {name: tensor}}``. Loading uses ``torch.load(weights_only=True)``, which refuses to unpickle
arbitrary objects, so a model file from a stranger cannot run code. Saving goes through a temporary file in
the same folder and ``os.replace``: a crash never leaves a half-written model, and the temporary file of a
killed process is removed by the next save into that folder (``hfd_core.files.write_atomically``).

An ensemble (``models.ensemble``) is one file too, of format version 2: ``metadata.members`` holds each
member's architecture and input statistics (member 0's are the file's own ``config``, ``mean`` and ``std``),
its weights are under ``members.<i>.``; ``combine_model_files`` makes one from model files of the same task.
"""

from __future__ import annotations

import functools
import json
import pickle
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from hfd_core import IGNORE_INDEX, __version__
from hfd_core.data.scene_context import FEATURES, RASTER_BANDS, SCENE_KIND
from hfd_core.errors import InputError, ModelFileError
from hfd_core.files import same_file, write_atomically
from hfd_core.models import HFDNet, HFDNetConfig
from hfd_core.models.ensemble import HFDEnsemble

FORMAT = "hfd-net"
#: Version 1: one network; version 2: an ensemble (``metadata.members``), so that a plugin older than
#: ensembles says "update the plugin" instead of failing on the metadata. This version reads both.
FORMAT_VERSION = 1
ENSEMBLE_FORMAT_VERSION = 2
ROLES = ("teacher", "student")


@dataclass
class ClassInfo:
    """One output class: id (0..K-1), name, colour ``#rrggbb``."""

    id: int
    name: str
    color: str


@dataclass
class ModelMetadata:
    """What a model expects and what it was trained on."""

    role: str
    config: HFDNetConfig
    bands: list[str]
    input_kind: str
    mean: list[float]
    std: list[float]
    classes: list[ClassInfo]
    tile_size: int = 256
    nodata: int = IGNORE_INDEX
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    version: str = __version__
    members: list[dict] = field(default_factory=list)  # an ensemble's: {"config", "mean", "std"} each

    @property
    def raster_bands(self) -> list[str]:
        """Bands read from a raster: ``bands`` itself, except for a model whose inputs are scene features
        computed from VV and VH (``data.scene_context``)."""
        return list(RASTER_BANDS) if self.input_kind == SCENE_KIND else list(self.bands)

    def to_json(self) -> str:
        values = asdict(self)
        values["config"] = self.config.to_dict()
        if not self.members:  # a single network's metadata stays readable by versions before ensembles
            del values["members"]
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        values = json.loads(text)
        values["config"] = HFDNetConfig.from_dict(values["config"])
        values["classes"] = [ClassInfo(**c) for c in values["classes"]]
        return cls(**values)

    def validate(self) -> None:
        """ModelFileError when the fields contradict each other."""
        config = self.config
        problems = []
        if self.role not in ROLES:
            problems.append(f"role {self.role!r} is not one of {ROLES}")
        if not len(self.bands) == len(self.mean) == len(self.std) == config.in_channels:
            problems.append(
                f"{len(self.bands)} bands, {len(self.mean)} means, {len(self.std)} stds for "
                f"{config.in_channels} input channels"
            )
        if [c.id for c in self.classes] != list(range(config.num_classes)):
            problems.append(f"class ids {[c.id for c in self.classes]} are not 0..{config.num_classes - 1}")
        if any(s <= 0 for s in self.std):
            problems.append("a band has a non-positive standard deviation")
        problems += self._member_problems()
        if self.input_kind == SCENE_KIND and list(self.bands) != list(FEATURES):
            problems.append(
                f"scene features {self.bands} are not this version's {list(FEATURES)} (a model made by an "
                "older version: train it again, e.g. make water-model)"
            )
        if problems:
            raise ModelFileError("inconsistent model metadata: " + "; ".join(problems))

    def _member_problems(self) -> list[str]:
        if not self.members:
            return []
        first = self.members[0]
        if len(self.members) < 2:
            return ["an ensemble needs two or more members"]
        if (first["config"], first["mean"], first["std"]) != (self.config.to_dict(), self.mean, self.std):
            return ["an ensemble's member 0 is not the file's own architecture and statistics"]
        problems = []
        for index, member in enumerate(self.members):
            config = HFDNetConfig.from_dict(member["config"])
            if (config.in_channels, config.num_classes) != (self.config.in_channels, self.config.num_classes):
                problems.append(f"ensemble member {index} has other inputs or classes")
            if not len(member["mean"]) == len(member["std"]) == config.in_channels:
                problems.append(f"ensemble member {index} has statistics for other inputs")
            elif any(value <= 0 for value in member["std"]):
                problems.append(f"ensemble member {index} has a non-positive standard deviation")
        return problems


def require_single_network(metadata: ModelMetadata, path: str | Path, purpose: str) -> None:
    """InputError when ``path`` is an ensemble, which ``purpose`` (training it further, teaching) cannot use:
    an ensemble only predicts; its members were trained one by one."""
    if metadata.members:
        raise InputError(
            f"{path} is an ensemble of {len(metadata.members)} networks (their probabilities are averaged): "
            f"{purpose} needs a single network, e.g. one of the models the ensemble was made from"
        )


def build_network(metadata: ModelMetadata) -> HFDNet | HFDEnsemble:
    """The untrained network a model file's metadata describes: one HFD-Net, or an ensemble of them."""
    if not metadata.members:
        return HFDNet(metadata.config)
    return HFDEnsemble(
        [HFDNetConfig.from_dict(member["config"]) for member in metadata.members],
        [member["mean"] for member in metadata.members],
        [member["std"] for member in metadata.members],
    )


def combine_model_files(paths: list[str | Path]) -> tuple[HFDEnsemble, ModelMetadata]:
    """An ensemble of the models in ``paths`` (two or more of the same role, bands, input kind and classes)
    and its metadata: the first model's, with every member listed and the sources in ``training``."""
    if len(paths) < 2:
        raise ModelFileError("an ensemble needs two or more model files")
    for index, path in enumerate(paths):
        repeated = [other for other in paths[:index] if same_file(other, path)]
        if repeated:
            raise ModelFileError(
                f"{path} is given twice (as {repeated[0]}): an ensemble averages different models"
            )
    loaded = [load_model(path) for path in paths]
    first = loaded[0][1]
    for path, (network, metadata) in zip(paths, loaded, strict=True):
        if isinstance(network, HFDEnsemble):
            raise ModelFileError(f"{path} is already an ensemble; list its sources instead")
        same = (metadata.role, metadata.bands, metadata.input_kind, metadata.classes)
        if same != (first.role, first.bands, first.input_kind, first.classes):
            raise ModelFileError(
                f"{path} is not a model of the same task as {paths[0]} (role, bands, input kind or classes)"
            )
    metadata = ModelMetadata.from_json(first.to_json())
    metadata.members = [{"config": m.config.to_dict(), "mean": m.mean, "std": m.std} for _, m in loaded]
    metadata.training = {"ensemble_of": [str(path) for path in paths]}
    metadata.metrics = {}
    metadata.version = __version__
    ensemble = build_network(metadata)
    for member, (network, _) in zip(ensemble.members, loaded, strict=True):
        member.load_state_dict(network.state_dict())
    return ensemble.eval(), metadata


def save_model(path: str | Path, model: HFDNet | HFDEnsemble, metadata: ModelMetadata) -> None:
    """Write ``model`` and ``metadata`` to ``path`` atomically."""
    metadata.validate()
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": ENSEMBLE_FORMAT_VERSION if metadata.members else FORMAT_VERSION,
        "metadata_json": metadata.to_json(),
        "state_dict": state,
    }
    write_atomically(path, functools.partial(torch.save, payload))


#: File stems of the bundled models: the land-cover student and its teacher, and the water student.
BUNDLED_MODELS = ("student", "teacher", "water_student")
#: Names that stand for the bundled students on the command line, as hfd:segment's Bundled model choice.
BUNDLED_NAMES = {"land-cover": "student", "water": "water_student"}


def bundled_model_path(role: str) -> Path:
    """The bundled model file ``role`` (``BUNDLED_MODELS``), found without QGIS: ``resources/models``
    beside the ``hfd_core`` package (the repository), else two levels up (an installed plugin keeps
    ``hfd_core`` in its ``lib/`` folder and ``resources/`` beside it, scripts/install_plugin.py). The
    repository's path when neither exists, so an error can name it."""
    if role not in BUNDLED_MODELS:
        raise ValueError(f"role must be one of {BUNDLED_MODELS}, not {role!r}")
    package = Path(__file__).resolve().parent
    roots = (package.parent, package.parents[1])
    candidates = [root / "resources" / "models" / f"{role}.pt" for root in roots]
    return next((path for path in candidates if path.is_file()), candidates[0])


def model_argument(text: str) -> Path:
    """A command line's model: a file, or a bundled student's name (``BUNDLED_NAMES``, e.g. ``water``, any
    case) when no file of that name exists."""
    name = text.lower()
    if name in BUNDLED_NAMES and not Path(text).is_file():
        return bundled_model_path(BUNDLED_NAMES[name])
    return Path(text)


def read_metadata(path: str | Path) -> ModelMetadata:
    """Metadata of a model file (the weights are read too, but no network is built)."""
    return _read(path)[1]


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[HFDNet | HFDEnsemble, ModelMetadata]:
    """The network in eval mode on ``device`` and its metadata; ModelFileError with the reason otherwise."""
    state, metadata = _read(path)
    model = build_network(metadata)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ModelFileError(
            f"{path}: weights do not match the architecture in its metadata ({error})"
        ) from None
    return model.to(device).eval(), metadata


#: Sentences of torch's messages that are not passed on: its advice to load with weights_only=False would run
#: any code a hostile file holds.
_TORCH_ADVICE = re.compile(r"weights_only|re-running|trusted source|documentation of torch", re.IGNORECASE)


def _torch_reason(error: Exception) -> str:
    """torch's message without its advice on unsafe loading (and without blank lines)."""
    sentences = re.split(r"(?<=\.)\s+", str(error).strip())
    return " ".join(s for s in sentences if s and not _TORCH_ADVICE.search(s)) or type(error).__name__


def _read(path: str | Path) -> tuple[dict, ModelMetadata]:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for garbage, truncation, pickled objects
        if isinstance(error, pickle.UnpicklingError) and "GLOBAL" in str(error).upper():
            # what weights_only=True refuses: a class or function to call, i.e. code
            raise ModelFileError(
                f"{path} holds Python objects besides tensors ({_torch_reason(error)}); it is refused "
                "because loading it could run code. HFD-Net model files hold only tensors and text"
            ) from None
        raise ModelFileError(
            f"{path} is not a readable HFD-Net model file (damaged or another format): {_torch_reason(error)}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is a torch file but not an HFD-Net model file")
    version = payload.get("format_version")
    if version not in (FORMAT_VERSION, ENSEMBLE_FORMAT_VERSION):
        raise ModelFileError(
            f"{path} has model format version {version}; this plugin ({__version__}) reads versions "
            f"{FORMAT_VERSION} and {ENSEMBLE_FORMAT_VERSION}: update the plugin or re-export the model"
        )
    try:
        metadata = ModelMetadata.from_json(payload["metadata_json"])
        metadata.validate()
        state = dict(payload["state_dict"])
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: model metadata is missing or invalid ({error})") from None
    return state, metadata

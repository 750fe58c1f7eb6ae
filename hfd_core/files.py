"""Output files that never destroy the user's files, and no debris left behind by a killed run.

``check_outputs`` is the one guard every writer calls (``segment_raster``, ``finetune``, the CLI and, through
``hfd_qgis.common.check_outputs``, every Processing algorithm) before any work starts:

* an output may not be the same file as an input, as a file an input raster reads (a VRT's sources: GDAL's
  file list), or as another output. Two paths name the same file when
  ``os.path.samefile`` says so (symbolic and hard links, relative paths, case-insensitive file systems), or,
  for files that do not exist yet, when their resolved paths are equal (case-folded where the folder ignores
  case);
* an output may not replace a bundled model: by place (a ``resources/models`` folder of this package) and by
  content (SHA-256 equal to a bundled ``*.pt``, wherever the copy lives);
* the output's folder must exist and accept a new file (a probe file is created and removed), so a read-only
  or missing folder is reported before minutes of work, not after.

Writers work under temporary names that carry their process id (``partial_path``, ``.<stem>.partial-<pid>``;
``hfd-finetune-<pid>-*`` folders); ``remove_stale`` deletes those whose process is gone, so a run killed with
SIGKILL leaves nothing behind after the next run in the same folder.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from hfd_core.errors import InputError

PathLike = str | os.PathLike
#: Message of a refused bundled model (the dialog and hfd:finetune show it as is).
BUNDLED_REFUSED = "the bundled models are not overwritten, nor copies of them: write to another file"
_PID = re.compile(r"(?:\.partial|hfd-finetune)-(\d+)(?=[-.])")


def bundled_model_dirs() -> list[Path]:
    """``resources/models`` of the repository (``hfd_core`` beside ``resources``) and of an installed plugin
    (``lib/hfd_core`` two levels below ``resources``), those that exist."""
    package = Path(__file__).resolve().parent
    candidates = (package.parent / "resources" / "models", package.parents[1] / "resources" / "models")
    return [folder for folder in candidates if folder.is_dir()]


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size, mtime: cache key only
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(path: Path) -> str:
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def is_bundled_model(path: PathLike, extra_dirs: list[Path] | None = None) -> bool:
    """True when ``path`` lies in a bundled-models folder or holds the same bytes as a bundled model."""
    path = Path(path)
    folders = bundled_model_dirs() + list(extra_dirs or [])
    if any(_resolved(path).parent == folder.resolve() for folder in folders):
        return True
    if not path.is_file():
        return False
    size = path.stat().st_size
    bundled = {model for folder in folders for model in folder.glob("*.pt") if model.stat().st_size == size}
    return any(_digest(path) == _digest(model) for model in bundled)


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def _ignores_case(folder: Path) -> bool:
    """Whether ``folder``'s file system ignores case: an entry is found under its swapped-case name."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.swapcase() != entry.name:
                    return os.path.exists(folder / entry.name.swapcase())
    except OSError:
        pass
    return False


def _key(path: Path) -> str:
    resolved = _resolved(path)
    return str(resolved).casefold() if _ignores_case(resolved.parent) else str(resolved)


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file (links, relative paths, case; see the module doc)."""
    a, b = Path(a), Path(b)
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return _key(a) == _key(b)


def check_writable_folder(path: PathLike, name: str = "the output") -> None:
    """InputError unless ``path``'s folder exists and a new file can be created in it."""
    path = Path(path)
    folder = _resolved(path).parent
    if path.is_dir():
        raise InputError(f"{name} {path} is a folder: give a file name")
    if not folder.is_dir():
        raise InputError(f"the folder of {name} does not exist: {folder}")
    probe = folder / f".hfd-write-check-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as error:
        raise InputError(f"cannot write {name} {path}: {error.strerror} ({folder})") from None


def check_outputs(
    outputs: Mapping[str, PathLike | None],
    inputs: Mapping[str, PathLike | None],
    extra_bundled_dirs: list[Path] | None = None,
) -> None:
    """InputError when an output (name -> path; None: not written) would replace an input, another output or
    a bundled model, or cannot be written (see the module doc). Names are how the user knows the parameters
    (the command line's words; in QGIS the dialog's label and the parameter's name)."""
    given_outputs = [(name, Path(path)) for name, path in outputs.items() if path]
    given_inputs = [(name, Path(path)) for name, path in inputs.items() if path]
    read = [(name, input_path, _files_read(input_path)) for name, input_path in given_inputs]
    for index, (name, path) in enumerate(given_outputs):
        if is_bundled_model(path, extra_bundled_dirs):
            raise InputError(f"{name} ({path}): {BUNDLED_REFUSED}")
        for other, other_path, files in read:
            if same_file(path, other_path):
                raise InputError(
                    f"{name} ({path}) is the same file as {other} ({other_path}) and would overwrite it: "
                    f"choose another file for {name}"
                )
            if any(same_file(path, file) for file in files):
                raise InputError(
                    f"{name} ({path}) is a file that {other} ({other_path}) reads and would overwrite it: "
                    f"choose another file for {name}"
                )
        for other, other_path in given_outputs[:index]:
            if same_file(path, other_path):
                raise InputError(f"{name} and {other} are the same file ({path}): choose two different files")
        check_writable_folder(path, name)


def _files_read(path: Path, seen: set[str] | None = None) -> list[Path]:
    """The other files a raster input reads (GDAL's file list: a VRT's sources, sidecars), and the files those
    read in turn (a VRT of VRTs lists only the next level); none for a model file or a path GDAL cannot
    open."""
    seen = set() if seen is None else seen
    if path.suffix.lower() == ".pt" or not path.is_file() or _key(path) in seen:
        return []
    seen.add(_key(path))
    import rasterio

    try:
        with rasterio.open(path) as src:
            listed = [Path(file) for file in src.files if not same_file(file, path)]
    except (rasterio.errors.RasterioError, rasterio.errors.RasterioIOError):  # not related in rasterio 1.3
        return []
    return listed + [deeper for file in listed for deeper in _files_read(file, seen)]


def partial_path(path: PathLike) -> Path:
    """Temporary name beside ``path`` while it is written: ``.<stem>.partial-<pid><suffix>``."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


def write_atomically(path: PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary file beside ``path`` (``partial_path``), then move it onto ``path``: a
    crash never leaves a half-written file, and what a killed writer left is removed first (``remove_stale``).
    The file is created like any new file (0666 less the umask), not 0600 as ``tempfile.mkstemp`` would:
    models and checkpoints are shared between users of a run folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{path.stem}.partial-*{path.suffix}")
    temporary = partial_path(path)
    temporary.unlink(missing_ok=True)  # then created anew: never written through a link planted there
    os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o666))
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(folder: PathLike, pattern: str) -> list[Path]:
    """Delete the entries of ``folder`` matching ``pattern`` whose process id (``.partial-<pid>`` or
    ``hfd-finetune-<pid>``) is not running: what a killed run left. Returns what was removed."""
    removed = []
    try:
        candidates = list(Path(folder).glob(pattern))
    except OSError:
        return removed
    for path in candidates:
        match = _PID.search(path.name)
        if match is None or _alive(int(match.group(1))):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed

"""Exceptions shared by the core modules, so the QGIS layer can turn them into clear messages."""


class HFDError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(HFDError, ValueError):
    """The user's input (raster, bands, parameters) cannot be used; the message says why."""


class ModelFileError(HFDError, ValueError):
    """A file is not an HFD-Net model file, is damaged, or comes from an incompatible version."""


class Canceled(HFDError):
    """Long work stopped because the caller asked for it."""


def user_error_message(error: BaseException) -> str | None:
    """One line for an error the user can fix (bad input, unreadable or unwritable file), None for a bug.

    HFDError messages as they are; OSError (permission, read-only file system, missing file, disk full) and
    GDAL's read/write errors with the file they concern. Never a traceback for these.
    """
    if isinstance(error, HFDError):
        return str(error)
    if type(error).__module__.startswith("rasterio"):  # RasterioIOError & co; rasterio is not imported here
        return f"cannot read or write a raster: {error}"
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}"
    return None

"""Exceptions shared by the core modules, so the QGIS layer can turn them into clear messages."""


class HFDError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(HFDError, ValueError):
    """The user's input (raster, bands, parameters) cannot be used; the message says why."""


class ModelFileError(HFDError, ValueError):
    """A file is not an HFD-Net model file, is damaged, or comes from an incompatible version."""


class Canceled(HFDError):
    """Long work stopped because the caller asked for it."""

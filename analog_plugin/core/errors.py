"""Error classes of the core engine (see docs/DESIGN.md, "Errors").

Every message says what was wrong, with which value, and what to do: the QGIS glue shows
``str(err)`` verbatim in a QgsProcessingException, and the CLI prints it, so the message is the
whole user interface of a failure. The second base class of each error (OSError, ValueError,
RuntimeError) lets callers that do not know about ``AnalogError`` still catch it sensibly.
"""

from __future__ import annotations


class AnalogError(Exception):
    """Base of every error raised on purpose by the core."""


class ModelLoadError(AnalogError, OSError):
    """The ONNX file is missing, unreadable or not a valid ONNX model."""


class ModelContractError(AnalogError, ValueError):
    """The model's metadata or input/output signature breaks the embedding-model contract."""


class DeviceUnavailableError(AnalogError, RuntimeError):
    """DEVICE=cuda was requested but onnxruntime has no usable CUDAExecutionProvider."""


class LibraryError(AnalogError, ValueError):
    """The analogue library is unreadable, malformed or empty."""


class LibraryModelMismatchError(LibraryError):
    """The library was built with another model (its sha256 differs from the model's)."""


class RasterReadError(AnalogError, OSError):
    """The raster (or an exemplar image) cannot be opened or read, or a band does not exist."""


class TilingError(AnalogError, ValueError):
    """Tile size, overlap, extent, mask or band choice make tiling impossible."""


class ParameterError(TilingError):
    """A parameter value is outside its definition (core/params.py): range, type or option.

    A TilingError too, since most parameters shape the tiling (size, overlap, batch)."""


class NoValidTilesError(AnalogError, ValueError):
    """Every tile had a valid fraction below MIN_VALID (e.g. an all-nodata raster)."""


class NoSiteError(AnalogError, ValueError):
    """No candidate landing ellipse satisfies the constraints (area, exclusions, slope, band)."""


class OutputError(AnalogError, OSError):
    """The output path is not a .gpkg or its folder is not writable."""


class AnalogCancelled(AnalogError):
    """The user cancelled; any existing output was left untouched."""


__all__ = [
    "AnalogCancelled",
    "AnalogError",
    "DeviceUnavailableError",
    "LibraryError",
    "LibraryModelMismatchError",
    "ModelContractError",
    "ModelLoadError",
    "NoSiteError",
    "NoValidTilesError",
    "OutputError",
    "ParameterError",
    "RasterReadError",
    "TilingError",
]

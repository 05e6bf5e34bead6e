"""Every parameter of every task, defined ONCE: name, kind, default, range, help.

The Processing algorithms (``processing/param_factory.py``) and the command line (``cli.py``) are
built from these definitions and validate values through :meth:`Param.validate`, so a range, a
default or a message cannot drift between the toolbox, ``qgis_process`` and ``python -m
analog_plugin``. Parameter names are API: users script against them, never rename one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import ParameterError

UNITS = ("pixels", "metres")
DEVICES = ("auto", "cpu", "cuda")
MAX_BATCH = 1024
MAX_OVERLAP = 95.0
UNIT_ALIASES = {"pixel": "pixels", "px": "pixels", "meters": "metres", "metre": "metres",
                "meter": "metres", "m": "metres"}


@dataclass(frozen=True)
class Param:
    """One parameter. ``kind`` is one of: raster, file, folder, polygons, field, number,
    integer, enum, extent, bands, output_vector, output_raster."""

    name: str
    kind: str
    label: str
    help: str
    default: Any = None
    optional: bool = False
    advanced: bool = False
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False  # minimum itself not allowed (a size must be > 0)
    options: tuple[str, ...] = ()
    extension: str = ""
    parent: str = ""
    example: str = ""

    @property
    def cli_flag(self) -> str:
        """``TILE_SIZE`` -> ``--tile-size``."""
        return "--" + self.name.lower().replace("_", "-")

    @property
    def arg(self) -> str:
        """The core keyword argument: ``TILE_SIZE`` -> ``tile_size``."""
        return self.name.lower()

    def full_help(self) -> str:
        return f"{self.help} Example: {self.example}." if self.example else self.help

    def validate(self, value: Any) -> Any:
        """The checked, normalised value (the default when unset), or ParameterError saying what
        was wrong, with which value, and what to do."""
        if _unset(value):
            if self.default is None and not self.optional:
                raise ParameterError(f"{self.name} is required: {self.help}")
            return self.default
        if self.kind in ("number", "integer"):
            return self._number(value)
        if self.kind == "enum":
            text = str(value).strip().lower()
            text = UNIT_ALIASES.get(text, text) if self.options == UNITS else text
            if text not in self.options:
                raise ParameterError(
                    f"{self.name} must be one of: {', '.join(self.options)} (got {value!r})"
                )
            return text
        return value

    def _number(self, value: Any) -> float | int:
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ParameterError(
                f"{self.name} must be a number (got {value!r}); {self._range_text()}"
            ) from None
        bad = not math.isfinite(x)
        bad |= self.minimum is not None and (
            x <= self.minimum if self.exclusive_min else x < self.minimum
        )
        bad |= self.maximum is not None and x > self.maximum
        bad |= self.kind == "integer" and not float(x).is_integer()
        if bad:
            raise ParameterError(f"{self.name} = {value!r} is not allowed; {self._range_text()}")
        return int(x) if self.kind == "integer" or x.is_integer() else x

    def _range_text(self) -> str:
        lo = "" if self.minimum is None else f"{self.minimum:g}"
        hi = "" if self.maximum is None else f"{self.maximum:g}"
        what = "a whole number" if self.kind == "integer" else "a number"
        rng = f" between {lo} and {hi}" if lo and hi else (
            f" {'>' if self.exclusive_min else '>='} {lo}" if lo else ""
        )
        tip = f" (e.g. {self.example})" if self.example else ""
        return f"give {what}{rng}{tip}"


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# -- shared parameters ------------------------------------------------------------------------
MODEL = Param(
    "MODEL", "file", "Embedding model (ONNX)",
    "ONNX embedding network following the plugin's model contract; empty: the model bundled with "
    "the plugin. The library and the scoring run must use the same model.",
    optional=True, extension="onnx", example="models/analog-siamese.onnx",
)
TILE_SIZE = Param(
    "TILE_SIZE", "number", "Tile size (empty = the model's training tile size in pixels)",
    "Edge length of the square tiles in TILE_UNITS. Empty: the tile the model was trained to see "
    "(its tile_px, in source pixels). Each tile is resampled to the model input size; in metres "
    "the size is measured on the CRS's own body at each tile's position.",
    optional=True, minimum=0.0, exclusive_min=True, example="200 (pixels) or 5000 (metres)",
)
TILE_UNITS = Param(
    "TILE_UNITS", "enum", "Tile size units",
    "Units of TILE_SIZE: 'pixels' or 'metres'. Metres use the CRS's own ellipsoid or sphere "
    "(Mars 3 396 190 m) and its local scale, right at any latitude and in polar projections.",
    default="pixels", options=UNITS, example="metres",
)
BANDS = Param(
    "BANDS", "bands", "Bands",
    "Bands fed to the model (1-based). Empty: all bands; a 3-band raster becomes luma for a "
    "1-channel model, a single band is repeated for a 3-channel model.",
    optional=True, advanced=True, example="1,2,3",
)
DEVICE = Param(
    "DEVICE", "enum", "Inference device",
    "'auto' uses CUDA when onnxruntime offers it, else the CPU; 'cpu' forces the CPU; 'cuda' "
    "requires the CUDA execution provider (onnxruntime-gpu) and fails otherwise, never silently "
    "falling back.",
    default="auto", options=DEVICES, advanced=True, example="cpu",
)
BATCH_SIZE = Param(
    "BATCH_SIZE", "integer", "Batch size (tiles per inference call)",
    "Tiles sent to the network at once. Larger keeps a GPU busier; progress and cancel are "
    "checked between batches.",
    default=64, minimum=1, maximum=MAX_BATCH, advanced=True, example="64",
)

# -- analog:scoretiles ------------------------------------------------------------------------
INPUT = Param(
    "INPUT", "raster", "Raster to search (file-based)",
    "Raster whose tiles are scored (a HiRISE/CTX/HRSC image...), any GDAL-readable file in any "
    "CRS including Mars ones; 8/16-bit integer and float data, nodata honoured.",
    example="ESP_012345_1234_RED.tif",
)
LIBRARY = Param(
    "LIBRARY", "file", "Analogue library (GeoPackage)",
    "GeoPackage written by 'Build analogue library' with the same MODEL: the exemplar embeddings "
    "each tile is compared with.",
    extension="gpkg", example="qaidam_dunes.gpkg",
)
OVERLAP = Param(
    "OVERLAP", "number", "Tile overlap (%)",
    "Overlap between neighbouring tiles in percent of the tile size; the stride is "
    "round(size x (1 - overlap / 100)) pixels.",
    default=0.0, minimum=0.0, maximum=MAX_OVERLAP, example="50",
)
EXTENT = Param(
    "EXTENT", "extent", "Extent to process",
    "Only tiles over this extent (intersected with the raster) are processed; empty: the whole "
    "raster.", optional=True, example="137.2,-5.0,137.6,-4.5",
)
MASK = Param(
    "MASK", "polygons", "Mask polygons",
    "Pixels outside these polygons count as invalid (see MIN_VALID); they must be on the same "
    "body as the raster.", optional=True, example="study_area.gpkg",
)
MIN_VALID = Param(
    "MIN_VALID", "number", "Minimum valid fraction of a tile",
    "Tiles whose fraction of valid pixels (inside the raster, not nodata, inside MASK) is below "
    "this value are skipped.",
    default=0.5, minimum=0.0, maximum=1.0, example="0.5",
)
OUTPUT_SCORES = Param(
    "OUTPUT", "output_vector", "Tile scores",
    "GeoPackage (.gpkg) of tile polygons with their scores, written atomically: a failed or "
    "cancelled run leaves an existing file untouched.", example="scores.gpkg",
)

# -- analog:buildlibrary ----------------------------------------------------------------------
RASTER = Param(
    "RASTER", "raster", "Raster under the exemplar polygons",
    "Raster the exemplar polygons were drawn on (e.g. an Earth analogue image).",
    optional=True, example="qaidam.tif",
)
POLYGONS = Param(
    "POLYGONS", "polygons", "Exemplar polygons",
    "Polygons over RASTER, each with a landform class in CLASS_FIELD; each is cut into tiles of "
    "the scoring tile size.", optional=True, example="exemplars.gpkg",
)
CLASS_FIELD = Param(
    "CLASS_FIELD", "field", "Class field",
    "Field of POLYGONS holding the landform class; a polygon whose class is NULL or empty is an "
    "error.", optional=True, parent="POLYGONS", example="landform",
)
IMAGE_FOLDER = Param(
    "IMAGE_FOLDER", "folder", "Exemplar image folder",
    "Folder of exemplar images (.jpg/.png/.tif), one sub-folder per class (the folder's name for "
    "files directly in it); each image is one exemplar.",
    optional=True, example="exemplars/",
)
OUTPUT_LIBRARY = Param(
    "OUTPUT", "output_vector", "Analogue library",
    "GeoPackage (.gpkg) of exemplar embeddings, written atomically.", example="library.gpkg",
)

SCORE_PARAMS = (INPUT, LIBRARY, MODEL, TILE_SIZE, TILE_UNITS, OVERLAP, EXTENT, MASK, BANDS,
                MIN_VALID, DEVICE, BATCH_SIZE, OUTPUT_SCORES)
LIBRARY_PARAMS = (RASTER, POLYGONS, CLASS_FIELD, IMAGE_FOLDER, MODEL, TILE_SIZE, TILE_UNITS,
                  BANDS, DEVICE, BATCH_SIZE, OUTPUT_LIBRARY)


def check(param: Param, value: Any) -> Any:
    """``param.validate(value)``: the one validation path of core, CLI and Processing."""
    return param.validate(value)

"""Every parameter of every task, defined ONCE: name, kind, default, range, help.

The Processing algorithms (``processing/param_factory.py``) and the command line (``cli.py``) are
built from these definitions and validate values through :meth:`Param.validate`
(``param_spec.py``), so a range, a default or a message cannot drift between the toolbox,
``qgis_process`` and ``python -m analog_plugin``. Parameter names are API: users script against
them, never rename one.
"""

from __future__ import annotations

from typing import Any

from .param_spec import DEVICES, UNITS, Param

MAX_BATCH = 1024
MAX_OVERLAP = 95.0


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
    "BATCH_SIZE", "integer", "Batch size (tiles read and embedded together)",
    "Tiles read, prepared and written together. On a GPU a batch is one network call (larger "
    "keeps it busier); on CPU the network runs it in slices of 8 tiles of 128 px (fewer for "
    "larger inputs), which keep its activations in the CPU's cache. "
    "Progress and cancel are checked between batches.",
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

NEGATIVE_CLASSES = Param(
    "NEGATIVE_CLASSES", "names", "Negative classes (counter-examples)",
    "Library classes that are counter-examples, comma-separated: a tile closer to a negative "
    "exemplar than to every positive one loses twice the margin, score = clip(p - max(0, n - p), "
    "0, 1) with p / n its best positive / negative class score. Empty: every class is positive.",
    optional=True, example="river,farmland",
)
OUTPUT_HEATMAP = Param(
    "OUTPUT_HEATMAP", "output_raster", "Similarity heat map (GeoTIFF)",
    "Optional float32 GeoTIFF of the score on the input raster's grid, one cell per HEATMAP_CELL "
    "pixels; overlapping tiles are averaged, cells no scored tile covers are nodata (-1). A colour "
    "ramp style is stored beside it (.qml).", optional=True, example="heatmap.tif",
)
HEATMAP_CELL = Param(
    "HEATMAP_CELL", "integer", "Heat map cell size (input pixels)",
    "Input pixels per heat map cell side; empty: the tile stride (one cell per tile step).",
    optional=True, minimum=1, maximum=100000, advanced=True, example="32",
)

# -- analog:classifylandforms -----------------------------------------------------------------
K = Param(
    "K", "integer", "Neighbours (K)",
    "Number of most similar library exemplars that vote for a tile's landform, each weighted by "
    "its score (1 + cosine) / 2; confidence is the winning class's share of the votes.",
    default=5, minimum=1, maximum=500, example="5",
)
SMOOTH = Param(
    "SMOOTH", "enum", "Neighbour smoothing",
    "'none': each tile on its own; 'majority': the votes of the tile (counted twice) and its 8 "
    "neighbours; 'mrf': iterated conditional modes on a Potts model (own vote share + 0.5 x "
    "share of neighbours with the class), which removes isolated flips but keeps boundaries "
    "where the evidence is strong.",
    default="none", options=("none", "majority", "mrf"), example="majority",
)
OUTPUT_LANDFORMS = Param(
    "OUTPUT", "output_vector", "Landforms",
    "GeoPackage (.gpkg) of tile polygons with landform, confidence, second_landform and "
    "valid_frac, styled by landform (one colour per class found), written atomically.",
    example="landforms.gpkg",
)

# -- analog:comparetiles ----------------------------------------------------------------------
IMAGE_A = Param(
    "IMAGE_A", "raster", "Place A (image or raster)",
    "An image file (.jpg/.png/.tif) or a raster layer; with EXTENT_A only that region of it.",
    example="qaidam_yardangs.jpg",
)
EXTENT_A = Param(
    "EXTENT_A", "extent", "Region of A",
    "Region of IMAGE_A to compare (in its CRS); empty: the whole image.", optional=True,
    example="137.30,-4.70,137.32,-4.68",
)
IMAGE_B = Param(
    "IMAGE_B", "raster", "Place B (image or raster)",
    "The second image file or raster layer.", example="ESP_012345_1234_RED.tif",
)
EXTENT_B = Param(
    "EXTENT_B", "extent", "Region of B",
    "Region of IMAGE_B to compare (in its CRS); empty: the whole image.", optional=True,
    example="137.40,-4.60,137.42,-4.58",
)
COMPARE_PARAMS = (IMAGE_A, EXTENT_A, IMAGE_B, EXTENT_B, MODEL, DEVICE)

# -- analog:ranksites -------------------------------------------------------------------------
SCORES = Param(
    "SCORES", "polygons", "Tile scores",
    "Polygon layer written by 'Score raster tiles' (or any polygons with a numeric score), in any "
    "CRS on any body.", example="scores.gpkg",
)
SCORE_FIELD = Param(
    "SCORE_FIELD", "field", "Score field",
    "Numeric field ranked on: 'score' (best over all positive classes) or one 'score_<class>'.",
    default="score", parent="SCORES", example="score_dune",
)
ELLIPSE_MAJOR_KM = Param(
    "ELLIPSE_MAJOR_KM", "number", "Ellipse major axis (km)",
    "Full length of the landing ellipse along its major axis (Curiosity 20 km, Mars 2020 7.7 km).",
    default=20.0, minimum=0.0, exclusive_min=True, maximum=1000.0, example="20",
)
ELLIPSE_MINOR_KM = Param(
    "ELLIPSE_MINOR_KM", "number", "Ellipse minor axis (km)",
    "Full width of the ellipse (Curiosity 7 km, Mars 2020 6.6 km); at most the major axis.",
    default=7.0, minimum=0.0, exclusive_min=True, maximum=1000.0, example="7",
)
AZIMUTH = Param(
    "AZIMUTH", "number", "Ellipse azimuth (degrees)",
    "Direction of the major axis, degrees clockwise from north at the site (set by the approach "
    "trajectory).", default=90.0, minimum=0.0, maximum=360.0, example="75",
)
SPACING_KM = Param(
    "SPACING_KM", "number", "Candidate spacing (km)",
    "Distance between candidate centres on a square lattice; empty: a quarter of the minor axis.",
    optional=True, minimum=0.0, exclusive_min=True, advanced=True, example="1",
)
DEM = Param(
    "DEM", "raster", "Elevation model (DEM)",
    "Optional elevation raster in metres on the same body (e.g. MOLA or a HiRISE DTM); slope is "
    "measured in metres on the body, right in any CRS and at any latitude.",
    optional=True, example="mola_dem.tif",
)
MAX_SLOPE = Param(
    "MAX_SLOPE", "number", "Maximum slope (degrees)",
    "Ellipses whose steepest DEM slope exceeds this are never proposed (needs DEM).",
    optional=True, minimum=0.0, maximum=90.0, example="15",
)
MIN_ELEVATION = Param(
    "MIN_ELEVATION", "number", "Minimum elevation (m)",
    "Every point of an ellipse must be at least this high (needs DEM).",
    optional=True, minimum=-1e5, maximum=1e5, example="-5000",
)
MAX_ELEVATION = Param(
    "MAX_ELEVATION", "number", "Maximum elevation (m)",
    "Every point of an ellipse must be at most this high (needs DEM); Zhurong's zone lay below "
    "-3000 m.", optional=True, minimum=-1e5, maximum=1e5, example="-3000",
)
EXCLUDE = Param(
    "EXCLUDE", "polygons", "Exclusion zones",
    "Polygons no ellipse may touch (hazards, protected regions).",
    optional=True, example="hazards.gpkg",
)
LATITUDE_MIN = Param(
    "LATITUDE_MIN", "number", "Minimum latitude (degrees)",
    "Southern limit of the band every ellipse must lie in, planetocentric/graphic as the layer's "
    "body, whatever the layer's CRS.", optional=True, minimum=-90.0, maximum=90.0, example="5",
)
LATITUDE_MAX = Param(
    "LATITUDE_MAX", "number", "Maximum latitude (degrees)",
    "Northern limit of the latitude band.", optional=True, minimum=-90.0, maximum=90.0,
    example="30",
)
THRESHOLD = Param(
    "THRESHOLD", "number", "Score threshold",
    "frac_above is the share of an ellipse scoring at least this; empty: the 90th percentile of "
    "the layer's scores (the top 10 % of tiles).", optional=True, minimum=0.0, maximum=1.0,
    example="0.8",
)
COUNT = Param(
    "COUNT", "integer", "Number of sites",
    "How many non-overlapping ellipses to return, best first.",
    default=5, minimum=1, maximum=1000, example="5",
)
OUTPUT_SITES = Param(
    "OUTPUT", "output_vector", "Candidate landing sites",
    "GeoPackage (.gpkg) of ellipses with rank, mean_score, frac_above, max_slope, "
    "mean_elevation, lat, lon, labelled by rank, written atomically.", example="sites.gpkg",
)
SITES_PARAMS = (SCORES, SCORE_FIELD, ELLIPSE_MAJOR_KM, ELLIPSE_MINOR_KM, AZIMUTH, SPACING_KM,
                DEM, MAX_SLOPE, MIN_ELEVATION, MAX_ELEVATION, EXCLUDE, LATITUDE_MIN,
                LATITUDE_MAX, THRESHOLD, COUNT, OUTPUT_SITES)

# -- cluster backend (analog:scoretiles SCHEDULER, python -m analog_plugin score --scheduler) ----
SCHEDULER = Param(
    "SCHEDULER", "string", "Dask scheduler (cluster run)",
    "Empty: score in this process. 'local': start a dask LocalCluster on this machine (WORKERS "
    "processes). 'tcp://HOST:PORT': an existing dask.distributed scheduler (dask-jobqueue on "
    "SLURM, dask-kubernetes...). Tiles are scored in chunks written as GeoParquet parts beside "
    "OUTPUT (resumable), then merged into OUTPUT.",
    optional=True, advanced=True, example="tcp://10.0.0.5:8786",
)
WORKERS = Param(
    "WORKERS", "integer", "Local cluster workers",
    "Worker processes of SCHEDULER=local (one onnxruntime thread each); empty: the CPUs this "
    "process may use.", optional=True, minimum=1, maximum=1024, advanced=True, example="2",
)
CHUNK_TILES = Param(
    "CHUNK_TILES", "integer", "Tiles per chunk (cluster run)",
    "Consecutive tiles of one raster scored as one task and written as one GeoParquet part: the "
    "unit of scheduling and of resuming.", default=2048, minimum=16, maximum=10_000_000,
    advanced=True, example="2048",
)

SCORE_PARAMS = (INPUT, LIBRARY, MODEL, TILE_SIZE, TILE_UNITS, OVERLAP, EXTENT, MASK, BANDS,
                MIN_VALID, NEGATIVE_CLASSES, DEVICE, BATCH_SIZE, OUTPUT_SCORES, OUTPUT_HEATMAP,
                HEATMAP_CELL, SCHEDULER)
CLASSIFY_PARAMS = (INPUT, LIBRARY, MODEL, K, SMOOTH, TILE_SIZE, TILE_UNITS, OVERLAP, EXTENT,
                   MASK, BANDS, MIN_VALID, DEVICE, BATCH_SIZE, OUTPUT_LANDFORMS)
LIBRARY_PARAMS = (RASTER, POLYGONS, CLASS_FIELD, IMAGE_FOLDER, MODEL, TILE_SIZE, TILE_UNITS,
                  BANDS, DEVICE, BATCH_SIZE, OUTPUT_LIBRARY)


def check(param: Param, value: Any) -> Any:
    """``param.validate(value)``: the one validation path of core, CLI and Processing."""
    return param.validate(value)

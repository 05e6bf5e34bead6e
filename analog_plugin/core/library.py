"""Analogue library: exemplar embeddings in a GeoPackage, tied to the model that made them.

Layout (docs/DESIGN.md): layer ``exemplars`` (polygon footprints in the source raster's CRS,
NULL for image-folder exemplars) with exemplar_id, class, source and the embedding as a float32
little-endian blob; attribute table ``library_meta`` (key, value).

Why the model sha256: embeddings of two different models live in unrelated spaces; comparing
them gives confident nonsense. A library therefore records the sha256 of the ONNX file and is
refused by any other model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import ogr

from .atomic import atomic_output
from .errors import LibraryError, LibraryModelMismatchError, TilingError
from .feedback import Feedback, ensure_feedback
from .output_writer import (
    add_default_style,
    add_fields,
    create_gpkg,
    create_layer,
    make_srs,
    polygon_from_ring,
    read_style,
)
from .raster_reader import (
    RasterSource,
    decimated_shape,
    geometries_from_wkb,
    geometries_to_geojson,
)
from .tiling import (
    PixelWindow,
    bounds_to_window,
    clip_window,
    make_grid,
    window_bounds,
    window_ring,
)

EXEMPLARS_LAYER = "exemplars"
META_TABLE = "library_meta"


@dataclass(frozen=True, eq=False)
class Exemplar:
    """One exemplar: its embedding (D,) and optional footprint (WKB polygon, library CRS)."""

    exemplar_id: str
    class_name: str
    source: str
    embedding: np.ndarray
    footprint_wkb: bytes | None = None


@dataclass(frozen=True, eq=False)
class AnalogueLibrary:
    """A loaded library: parallel tuples per exemplar and the (M, D) float32 embeddings."""

    path: Path
    exemplar_ids: tuple[str, ...]
    classes: tuple[str, ...]
    sources: tuple[str, ...]
    embeddings: np.ndarray
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def model_sha256(self) -> str:
        return self.meta.get("model_sha256", "")

    @property
    def n_exemplars(self) -> int:
        return len(self.exemplar_ids)

    @property
    def embedding_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.classes)))

    def check_model(self, sha256: str, model_label: str = "the model") -> None:
        """LibraryModelMismatchError when the library was built with another model."""
        if self.model_sha256 != sha256:
            raise LibraryModelMismatchError(
                f"library '{self.path.name}' was built with the model of sha256 "
                f"{self.model_sha256 or '(unknown)'} (version "
                f"{self.meta.get('model_version', '?')}), but {model_label} has sha256 {sha256}; "
                "rebuild the library with analog:buildlibrary (or analog_cli.py build-library) "
                "and this model"
            )


def write_library(
    path: str | os.PathLike[str],
    exemplars: Sequence[Exemplar],
    *,
    crs_wkt: str,
    model_sha256: str,
    model_version: str,
    input_size: int,
    style_qml: Path | None = None,
    feedback: Feedback | None = None,
) -> Path:
    """Write the library atomically (temp file + os.replace)."""
    fb = ensure_feedback(feedback)
    if not exemplars:
        raise LibraryError("no exemplar to write: every source was empty or skipped")
    dims = {int(e.embedding.shape[-1]) for e in exemplars}
    if len(dims) != 1:
        raise LibraryError(f"exemplars have different embedding sizes {sorted(dims)}")
    dim = dims.pop()
    classes = sorted({e.class_name for e in exemplars})
    meta = {
        "model_sha256": model_sha256,
        "model_version": model_version,
        "embedding_dim": str(dim),
        "input_size": str(input_size),
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "n_exemplars": str(len(exemplars)),
        "classes": json.dumps(classes),
    }
    qml = read_style(style_qml)
    target = Path(os.fspath(path)).absolute()
    with atomic_output(target) as tmp:
        ds = create_gpkg(tmp)
        try:
            lyr = create_layer(ds, EXEMPLARS_LAYER, make_srs(crs_wkt), ogr.wkbPolygon)
            add_fields(
                lyr,
                [
                    ("exemplar_id", ogr.OFTString),
                    ("class", ogr.OFTString),
                    ("source", ogr.OFTString),
                    ("embedding", ogr.OFTBinary),
                ],
            )
            defn = lyr.GetLayerDefn()
            lyr.StartTransaction()
            for e in exemplars:
                feat = ogr.Feature(defn)
                feat.SetField("exemplar_id", e.exemplar_id)
                feat.SetField("class", e.class_name)
                feat.SetField("source", e.source)
                blob = np.asarray(e.embedding, dtype="<f4").ravel().tobytes()
                feat.SetFieldBinaryFromHexString("embedding", blob.hex())
                if e.footprint_wkb is not None:
                    geom = ogr.CreateGeometryFromWkb(bytes(e.footprint_wkb))
                    if geom is not None:
                        feat.SetGeometry(geom)
                if lyr.CreateFeature(feat) != 0:
                    raise LibraryError(f"cannot write exemplar '{e.exemplar_id}'")
            lyr.CommitTransaction()
            mlyr = ds.CreateLayer(META_TABLE, None, ogr.wkbNone)
            if mlyr is None:
                raise LibraryError("cannot create the library_meta table")
            add_fields(mlyr, [("key", ogr.OFTString), ("value", ogr.OFTString)])
            for k, v in meta.items():
                feat = ogr.Feature(mlyr.GetLayerDefn())
                feat.SetField("key", k)
                feat.SetField("value", v)
                mlyr.CreateFeature(feat)
            if qml is not None:
                add_default_style(ds, EXEMPLARS_LAYER, qml, "library", "analogue exemplars")
            else:
                fb.pushInfo("no library.qml style found; the library is written without a style")
        finally:
            ds = None
    return target


def _open(path: Path) -> Any:
    try:
        ds = ogr.Open(str(path), 0)
    except RuntimeError:
        ds = None
    if ds is None:
        raise LibraryError(f"cannot open library '{path}' as a GeoPackage; check the path")
    return ds


def load_library(
    path: str | os.PathLike[str],
    expected_sha256: str | None = None,
    model_label: str = "the model",
) -> AnalogueLibrary:
    """Read a library; with ``expected_sha256`` also check it was built with that model."""
    p = Path(os.fspath(path))
    if not p.is_file():
        raise LibraryError(
            f"library '{p}' not found; build one with analog:buildlibrary "
            "(or analog_cli.py build-library)"
        )
    ds = _open(p)
    try:
        mlyr = ds.GetLayerByName(META_TABLE)
        lyr = ds.GetLayerByName(EXEMPLARS_LAYER)
        if mlyr is None or lyr is None:
            raise LibraryError(
                f"'{p.name}' is not an analogue library (no '{EXEMPLARS_LAYER}' layer or "
                f"'{META_TABLE}' table); build one with analog:buildlibrary"
            )
        meta = {f.GetField("key"): f.GetField("value") for f in mlyr}
        if "model_sha256" not in meta or "embedding_dim" not in meta:
            raise LibraryError(f"library '{p.name}' lacks model_sha256/embedding_dim metadata")
        try:
            dim = int(meta["embedding_dim"])
        except ValueError as err:
            bad = meta["embedding_dim"]
            raise LibraryError(f"library '{p.name}': bad embedding_dim {bad!r}") from err
        ids: list[str] = []
        classes: list[str] = []
        sources: list[str] = []
        vecs: list[np.ndarray] = []
        lyr.ResetReading()
        for f in lyr:
            blob = f.GetFieldAsBinary("embedding")
            vec = np.frombuffer(blob, dtype="<f4")
            if vec.size != dim:
                raise LibraryError(
                    f"library '{p.name}': exemplar '{f.GetField('exemplar_id')}' has "
                    f"{vec.size} values, expected embedding_dim {dim}; rebuild the library"
                )
            ids.append(f.GetField("exemplar_id") or "")
            classes.append(f.GetField("class") or "")
            sources.append(f.GetField("source") or "")
            vecs.append(vec.astype(np.float32))
    finally:
        ds = None
    if not ids:
        raise LibraryError(f"library '{p.name}' has no exemplars; rebuild it with exemplars")
    lib = AnalogueLibrary(
        path=p,
        exemplar_ids=tuple(ids),
        classes=tuple(classes),
        sources=tuple(sources),
        embeddings=np.vstack(vecs),
        meta=meta,
    )
    if expected_sha256 is not None:
        lib.check_model(expected_sha256, model_label)
    return lib


# -- exemplar planning from polygons over a raster ---------------------------------------------

LIBRARY_MIN_COVER = 0.5
"""A polygon tile becomes an exemplar when >= half of it is inside the polygon and valid."""


@dataclass(frozen=True)
class ExemplarPolygon:
    """An exemplar polygon in the raster CRS (WKB), its class, and where it came from."""

    wkb: bytes
    class_name: str
    source: str


@dataclass(frozen=True)
class RasterExemplarJob:
    """A tile window of the raster to embed as one exemplar."""

    window: PixelWindow
    exemplar_id: str
    class_name: str
    source: str
    footprint_wkb: bytes


def window_geometry(src: RasterSource, window: PixelWindow) -> Any:
    """OGR polygon of a pixel window's footprint (raster CRS)."""
    return polygon_from_ring(window_ring(src.info.transform, window))


def _fid_of(poly: ExemplarPolygon, i: int) -> str:
    if "#" in poly.source:
        tail = poly.source.rsplit("#", 1)[1].strip()
        if tail:
            return tail
    return str(i)


def plan_polygon_exemplars(
    src: RasterSource, polygons: Sequence[ExemplarPolygon], tw: int, th: int, raster_label: str
) -> Iterator[RasterExemplarJob]:
    """Exemplar tile windows for each polygon (see build_library for the rules)."""
    info = src.info
    geoms = geometries_from_wkb([p.wkb for p in polygons], "exemplar polygon")
    used_ids: set[str] = set()
    for i, (poly, geom) in enumerate(zip(polygons, geoms, strict=True)):
        if not poly.class_name or not str(poly.class_name).strip():
            raise LibraryError(f"exemplar polygon #{i} ({poly.source}) has no class name")
        minx, maxx, miny, maxy = geom.GetEnvelope()
        bwin = bounds_to_window(info.transform, (minx, miny, maxx, maxy))
        if clip_window(bwin, info.width, info.height) is None:
            rb = window_bounds(info.transform, PixelWindow(0, 0, info.width, info.height))
            raise TilingError(
                f"exemplar polygon #{i} ({poly.class_name}, {poly.source}) lies outside the "
                f"raster (bounds {tuple(round(v, 6) for v in rb)}); give polygons in the "
                "raster's CRS over the raster"
            )
        fid = _fid_of(poly, i)
        source = poly.source or f"{raster_label}#{fid}"
        shapes = geometries_to_geojson([poly.wkb])
        if bwin.width <= tw and bwin.height <= th:
            windows = [_centred(bwin, tw, th)]
        else:
            # Grow the bounding window to >= one tile per axis (centred), then tile it.
            grown = _centred(bwin, max(tw, bwin.width), max(th, bwin.height))
            grid = make_grid(grown.width, grown.height, tw, th, 0.0)
            cands = [
                PixelWindow(grown.col_off + t.col_off, grown.row_off + t.row_off, tw, th)
                for t in grid
            ]
            covers = [src.coverage(w, shapes, decimated_shape(tw, th, 64)) for w in cands]
            windows = [w for w, c in zip(cands, covers, strict=True) if c >= LIBRARY_MIN_COVER]
            if not windows:
                windows = [cands[int(np.argmax(covers))]]
        for k, w in enumerate(windows):
            eid = f"{poly.class_name}#{fid}_{k}"
            while eid in used_ids:
                eid += "'"
            used_ids.add(eid)
            footprint = window_geometry(src, w).ExportToWkb()
            yield RasterExemplarJob(w, eid, str(poly.class_name), source, bytes(footprint))


def _centred(win: PixelWindow, w: int, h: int) -> PixelWindow:
    c0 = win.col_off + (win.width - w) // 2
    r0 = win.row_off + (win.height - h) // 2
    return PixelWindow(int(c0), int(r0), int(w), int(h))

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import ogr

from .atomic import atomic_output
from .errors import LibraryError, LibraryModelMismatchError
from .feedback import Feedback, ensure_feedback
from .gpkg_io import (
    add_default_style,
    add_fields,
    create_gpkg,
    create_layer,
    make_srs,
    read_style,
    utc_now,
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
    def tile_m(self) -> float | None:
        """Ground size (m) of the tiles the exemplars were cut at, when known."""
        try:
            value = float(self.meta.get("tile_m", ""))
        except ValueError:
            return None
        return value if value > 0 else None

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
    extra_meta: Mapping[str, str] | None = None,
) -> Path:
    """Write the library atomically (temp file + os.replace). ``extra_meta`` adds library_meta
    rows, e.g. ``tile_px``/``tile_m``: the tile size the exemplars were cut at."""
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
        "created_utc": utc_now(),
        "n_exemplars": str(len(exemplars)),
        "classes": json.dumps(classes),
        **{str(k): str(v) for k, v in (extra_meta or {}).items()},
    }
    qml = read_style(style_qml)
    target = Path(os.fspath(path)).absolute()
    with atomic_output(target, fb) as tmp:
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


LIBRARY_FIELDS = ("exemplar_id", "class", "embedding")
"""Fields a library's exemplars layer must have (``source`` is optional)."""


def _check_fields(lyr: Any, name: str) -> None:
    defn = lyr.GetLayerDefn()
    have = {defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())}
    missing = [f for f in LIBRARY_FIELDS if f not in have]
    if missing:
        raise LibraryError(
            f"library '{name}': the exemplars layer lacks the field(s) {missing} (it has "
            f"{sorted(have)}); was it edited by hand? rebuild it with analog:buildlibrary"
        )


def _exemplar_vector(f: Any, dim: int, ex_id: str, name: str) -> np.ndarray:
    """The exemplar's embedding, checked: ``dim`` finite float32 values, not all zero; scaled to
    unit length when a hand edit left it longer or shorter (cosines are plain dot products)."""
    blob = f.GetFieldAsBinary("embedding") if f.IsFieldSetAndNotNull("embedding") else b""
    vec = np.frombuffer(blob, dtype="<f4")
    if vec.size != dim:
        raise LibraryError(
            f"library '{name}': exemplar '{ex_id}' has {vec.size} embedding values, expected "
            f"embedding_dim {dim}; rebuild the library"
        )
    if not np.all(np.isfinite(vec)) or not np.any(vec):
        raise LibraryError(
            f"library '{name}': exemplar '{ex_id}' has a NaN, infinite or all-zero embedding; "
            "delete that exemplar or rebuild the library"
        )
    norm = float(np.linalg.norm(vec.astype(np.float64)))
    return (vec / norm if abs(norm - 1.0) > 1e-4 else vec).astype(np.float32)


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
        _check_fields(lyr, p.name)
        ids: list[str] = []
        classes: list[str] = []
        sources: list[str] = []
        vecs: list[np.ndarray] = []
        lyr.ResetReading()
        for f in lyr:
            ex_id = f.GetField("exemplar_id") or f"fid {f.GetFID()}"
            vecs.append(_exemplar_vector(f, dim, ex_id, p.name))
            cls = f.GetField("class")
            if cls is None or not str(cls).strip():
                raise LibraryError(
                    f"library '{p.name}': exemplar '{ex_id}' has no class (NULL or blank); "
                    "give it a class or delete it (classes name the scores' fields)"
                )
            ids.append(str(ex_id))
            classes.append(str(cls))
            sources.append(f.GetField("source") or "")
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

"""A GeoPackage layer streamed batch by batch into a temp file and published atomically.

Why streaming: holding every record until the end costs memory proportional to the raster and a
crash at 99 % saved nothing useful; here each batch is one SQLite transaction in the temp file.
Why fields by index: ``SetField(name, ...)`` looks the name up for every call, seven lookups per
tile; indices are resolved once. Geometries arrive as WKB built for the whole batch.

Usage::

    with StreamingLayerWriter(target, "scores", crs_wkt, FIELDS) as w:
        w.append(rows, wkbs)          # as many times as needed
        w.datasource                  # e.g. to add layer_styles before the end
    # leaving the block normally: closed, fsync'ed, os.replace'd into place;
    # leaving it by an exception (cancel included): temp file removed, target untouched.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from osgeo import ogr

from .atomic import atomic_output
from .errors import OutputError
from .feedback import Feedback
from .gpkg_io import add_fields, create_gpkg, create_layer, make_srs, set_layer_metadata

_W = TypeVar("_W", bound="StreamingLayerWriter")

FieldSpec = tuple[str, int]
"""(name, OGR field type), e.g. ("score", ogr.OFTReal)."""

_SETTERS = {
    ogr.OFTInteger: "SetFieldInteger64",
    ogr.OFTInteger64: "SetFieldInteger64",
    ogr.OFTReal: "SetField",  # GDAL < 3.8 has no SetFieldDouble; an index skips the lookup
    ogr.OFTString: "SetFieldString",
}


class StreamingLayerWriter:
    """One layer of a new GeoPackage, written in transactions (see module docstring)."""

    def __init__(
        self,
        target: str | os.PathLike[str],
        layer_name: str,
        crs_wkt: str,
        fields: Sequence[FieldSpec],
        geom_type: int = ogr.wkbPolygon,
        metadata: Mapping[str, str] | None = None,
        feedback: Feedback | None = None,
    ) -> None:
        self.target = Path(os.fspath(target)).absolute()
        self.feedback = feedback  # a cancel before the publish discards the file (atomic_output)
        self.layer_name, self.crs_wkt, self.fields = layer_name, crs_wkt, list(fields)
        self.geom_type, self.metadata = geom_type, dict(metadata or {})
        self._stack = contextlib.ExitStack()
        self.datasource: Any = None
        self.layer: Any = None
        self.count = 0

    def __enter__(self: _W) -> _W:
        tmp = self._stack.enter_context(atomic_output(self.target, self.feedback))
        try:
            self.datasource = create_gpkg(tmp)
            self.layer = create_layer(self.datasource, self.layer_name, make_srs(self.crs_wkt),
                                      self.geom_type)
            add_fields(self.layer, self.fields)
            set_layer_metadata(self.layer, self.metadata)
            defn = self.layer.GetLayerDefn()
            self._defn = defn
            self._setters = [
                (defn.GetFieldIndex(name), getattr(ogr.Feature, _SETTERS[ftype]))
                for name, ftype in self.fields
            ]
        except BaseException:
            self.datasource = None
            self._stack.__exit__(*sys.exc_info())
            raise
        return self

    def append(self, rows: Sequence[Sequence[Any]], wkbs: Sequence[bytes]) -> None:
        """Write one batch (values in field order, one WKB geometry per row) in a transaction."""
        lyr, defn, setters = self.layer, self._defn, self._setters
        lyr.StartTransaction()
        try:
            for values, wkb in zip(rows, wkbs, strict=True):
                feat = ogr.Feature(defn)
                for (idx, setter), value in zip(setters, values, strict=True):
                    if value is not None:
                        setter(feat, idx, value)
                geom = ogr.CreateGeometryFromWkb(wkb) if wkb is not None else None
                if geom is not None:
                    feat.SetGeometryDirectly(geom)
                if lyr.CreateFeature(feat) != 0:
                    raise OutputError(f"cannot write feature {self.count} to '{self.target}'")
                self.count += 1
        except BaseException:
            lyr.RollbackTransaction()
            raise
        if lyr.CommitTransaction() != 0:
            raise OutputError(f"cannot commit a batch to '{self.target}' (disk full?)")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.layer = None
        self.datasource = None  # closes and flushes the GeoPackage before the rename
        return self._stack.__exit__(exc_type, exc, tb)

"""The similarity surface: a float32 GeoTIFF on the input raster's grid, streamed as tiles come.

Cell (i, j) covers ``cell`` x ``cell`` input pixels from the processed extent's top-left corner;
its value is the mean score of every scored tile containing the cell's centre (overlapping tiles
are averaged; with cell = stride and no overlap each cell lies in exactly one tile and carries its
score). Cells no scored tile covers are nodata (-1).

Why streamed: tiles arrive in row order, so once a tile row starts below a cell row, that cell
row is final. Only a band of rows (one tile height plus one stride) is held, and finished rows are
written to the temp GeoTIFF at once: memory does not grow with the raster. The file is published
atomically with a ``.qml`` style sidecar beside it, which QGIS applies when it opens the raster,
so it opens coloured after ``qgis_process`` too.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from .atomic import atomic_output, remove_quietly
from .errors import OutputError
from .tiling import Tile, TileGrid, Transform

NODATA = -1.0


class HeatmapWriter:
    """Context manager: ``add(tiles, scores)`` per batch; leaving normally publishes the file."""

    def __init__(self, target: str | os.PathLike[str], grid: TileGrid, transform: Transform,
                 crs_wkt: str, cell: int, style_qml: str | None = None) -> None:
        if cell < 1:
            raise OutputError(f"heat map cell of {cell} px; give at least 1 pixel")
        self.target = Path(os.fspath(target)).absolute()
        self.grid, self.cell, self.crs_wkt, self.style_qml = grid, int(cell), crs_wkt, style_qml
        ext = grid.extent
        self.width = math.ceil(ext.width / self.cell)
        self.height = math.ceil(ext.height / self.cell)
        a, b, c, d, e, f = transform
        ox, oy = a * ext.col_off + b * ext.row_off + c, d * ext.col_off + e * ext.row_off + f
        self.transform = (a * self.cell, b * self.cell, ox, d * self.cell, e * self.cell, oy)
        self.band = (math.ceil(grid.tile_height / self.cell)
                     + math.ceil(grid.stride_y / self.cell) + 2)
        self._sum = np.zeros((self.band, self.width), np.float64)
        self._count = np.zeros((self.band, self.width), np.int32)
        self._top = 0  # heat row held in _sum[0]
        self._stack = contextlib.ExitStack()
        self._ds = None
        self.written_rows = 0

    def __enter__(self) -> HeatmapWriter:
        from osgeo import gdal, osr

        tmp = self._stack.enter_context(atomic_output(self.target))
        self._tmp = tmp
        drv = gdal.GetDriverByName("GTiff")
        ds = drv.Create(str(tmp), self.width, self.height, 1, gdal.GDT_Float32,
                        options=["COMPRESS=DEFLATE", "TILED=YES", "BIGTIFF=IF_SAFER"])
        if ds is None:
            self._stack.close()
            raise OutputError(f"cannot create the heat map '{self.target}' (disk full or "
                              "no write permission?)")
        ds.SetGeoTransform((self.transform[2], self.transform[0], self.transform[1],
                            self.transform[5], self.transform[3], self.transform[4]))
        if self.crs_wkt:
            srs = osr.SpatialReference()
            srs.ImportFromWkt(self.crs_wkt)
            ds.SetProjection(srs.ExportToWkt())
        ds.GetRasterBand(1).SetNoDataValue(NODATA)
        self._ds = ds
        return self

    def _cell_span(self, off: int, size: int, origin: int) -> tuple[int, int]:
        """Cells whose centre lies in pixels [off, off + size) (relative to ``origin``)."""
        lo = math.ceil((off - origin) / self.cell - 0.5)
        hi = math.ceil((off + size - origin) / self.cell - 0.5)
        return max(lo, 0), hi

    def add(self, tiles: Sequence[Tile], scores: np.ndarray) -> None:
        ext = self.grid.extent
        for t, s in zip(tiles, np.asarray(scores, np.float64), strict=True):
            r0, r1 = self._cell_span(t.row_off, t.height, ext.row_off)
            c0, c1 = self._cell_span(t.col_off, t.width, ext.col_off)
            r1, c1 = min(r1, self.height), min(c1, self.width)
            if r0 > self._top:
                self._flush(r0)  # tiles come in row order: rows above r0 are final
            a, b = r0 - self._top, r1 - self._top
            if b > self.band:
                raise OutputError("internal error: heat map band too small for a tile")
            self._sum[a:b, c0:c1] += s
            self._count[a:b, c0:c1] += 1

    def _flush(self, until: int) -> None:
        """Write heat rows ``_top .. until-1`` and shift the band."""
        n = min(until, self.height) - self._top
        if n <= 0:
            return
        n = min(n, self.band)
        with np.errstate(invalid="ignore", divide="ignore"):
            rows = np.where(self._count[:n] > 0, self._sum[:n] / self._count[:n], NODATA)
        band = self._ds.GetRasterBand(1)  # type: ignore[attr-defined]
        if band.WriteArray(rows.astype(np.float32), 0, self._top) not in (None, 0):
            raise OutputError(f"cannot write the heat map '{self.target}' (disk full?)")
        self._sum = np.concatenate([self._sum[n:], np.zeros((n, self.width))])
        self._count = np.concatenate([self._count[n:], np.zeros((n, self.width), np.int32)])
        self._top += n
        self.written_rows = self._top
        if self._top < until:
            self._flush(until)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        try:
            if exc_type is None:
                self._flush(self.height)
                # FlushCache returns None before GDAL 3.7, an error code after
                if self._ds.FlushCache() not in (None, 0):  # type: ignore[attr-defined]
                    raise OutputError(f"cannot write the heat map '{self.target}' (disk full?)")
        except BaseException:
            self._ds = None
            self._stack.__exit__(*sys.exc_info())
            raise
        self._ds = None  # close before the rename
        result = self._stack.__exit__(exc_type, exc, tb)
        if exc_type is None:
            self._write_style()
        return result

    def _write_style(self) -> None:
        if not self.style_qml:
            return
        side = self.target.with_suffix(".qml")
        tmp = side.with_name(f".{side.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(self.style_qml)
            os.replace(tmp, side)
        except OSError:
            remove_quietly(tmp)
            raise

#!/usr/bin/env python3
"""Command line for batch/cluster runs without QGIS: same parameters as the algorithms.

    analog_cli.py build-library --output lib.gpkg --raster ctx.tif --polygons ex.gpkg \
        --class-field class_name [--image-folder exemplars/] [--model m.onnx]
    analog_cli.py score --raster hirise.tif --library lib.gpkg --output scores.gpkg \
        [--tile-size 200 --tile-units metres --overlap 25 --extent xmin,ymin,xmax,ymax]

Messages and progress go to stderr, a JSON summary to stdout. Exit status: 0 success,
1 a user-fixable error (message says what to do), 130 cancelled with Ctrl-C (the output is left
untouched). Vector inputs (--polygons, --mask) are reprojected to the raster's CRS.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from analog_plugin.core.errors import AnalogCancelled, AnalogError, TilingError  # noqa: E402
from analog_plugin.core.feedback import ConsoleFeedback  # noqa: E402
from analog_plugin.core.paths import bundled_model_path  # noqa: E402
from analog_plugin.core.pipeline import (  # noqa: E402
    ExemplarPolygon,
    build_library,
    score_raster,
)


def _bands(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(b) for b in text.replace(" ", "").split(",") if b]
    except ValueError as err:
        msg = f"--bands {text!r}: give 1-based numbers like 1,2,3"
        raise argparse.ArgumentTypeError(msg) from err


def _extent(text: str) -> tuple[float, float, float, float]:
    parts = text.replace(" ", "").split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("--extent takes xmin,ymin,xmax,ymax in the raster CRS")
    xmin, ymin, xmax, ymax = (float(p) for p in parts)
    return xmin, ymin, xmax, ymax


def _raster_wkt(raster: str) -> str:
    import rasterio

    try:
        with rasterio.open(raster) as ds:
            return ds.crs.to_wkt() if ds.crs else ""
    except Exception as err:  # noqa: BLE001 - reported as a user error
        from analog_plugin.core.errors import RasterReadError

        raise RasterReadError(f"cannot open raster '{raster}' ({err})") from err


def read_vector(
    path: str, raster_wkt: str, layer: str | None = None, class_field: str | None = None
) -> list[tuple[bytes, str, str]]:
    """(WKB in the raster CRS, class, source "layer#fid") for each polygon of a vector file."""
    from osgeo import ogr, osr

    ds = ogr.Open(path)
    if ds is None:
        raise TilingError(f"cannot open vector file '{path}'")
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    if lyr is None:
        raise TilingError(f"layer '{layer}' not found in '{path}'")
    if class_field and lyr.GetLayerDefn().GetFieldIndex(class_field) < 0:
        fields = [lyr.GetLayerDefn().GetFieldDefn(i).GetName()
                  for i in range(lyr.GetLayerDefn().GetFieldCount())]
        raise TilingError(f"class field '{class_field}' not in '{path}' (fields: {fields})")
    transform = None
    src_srs = lyr.GetSpatialRef()
    if src_srs is not None and raster_wkt:
        dst = osr.SpatialReference()
        dst.ImportFromWkt(raster_wkt)
        if not src_srs.IsSame(dst):
            src = src_srs.Clone()
            src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            transform = osr.CoordinateTransformation(src, dst)
    out: list[tuple[bytes, str, str]] = []
    for feat in lyr:
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        g = geom.Clone()
        if transform is not None and g.Transform(transform) != 0:
            raise TilingError(f"cannot reproject feature {feat.GetFID()} of '{path}'")
        cls = str(feat.GetField(class_field)) if class_field else ""
        out.append((bytes(g.ExportToWkb()), cls, f"{lyr.GetName()}#{feat.GetFID()}"))
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help=f"ONNX embedding model (default: bundled {bundled_model_path().name})")
    p.add_argument("--tile-size", type=float, default=None,
                   help="tile size (default: the model input size in pixels)")
    p.add_argument("--tile-units", choices=("pixels", "metres"), default="pixels")
    p.add_argument("--bands", type=_bands, default=None, help="1-based bands, e.g. 1,2,3")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="analog_cli.py", description="Mars Analogue Finder without QGIS.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build-library", help="embed exemplars into a library GeoPackage")
    b.add_argument("--output", required=True, help="library .gpkg to write")
    b.add_argument("--raster", help="raster the exemplar polygons lie on")
    b.add_argument("--polygons", help="vector file of exemplar polygons (needs --raster)")
    b.add_argument("--polygon-layer", default=None, help="layer name (default: first layer)")
    b.add_argument("--class-field", default="class_name", help="field with the class name")
    b.add_argument("--image-folder", help="folder of exemplar images, one sub-folder per class")
    _common(b)
    s = sub.add_parser("score", help="score the tiles of a raster against a library")
    s.add_argument("--raster", required=True)
    s.add_argument("--library", required=True)
    s.add_argument("--output", required=True, help="scores .gpkg to write")
    s.add_argument("--overlap", type=float, default=0.0, help="percent, 0..95")
    s.add_argument("--extent", type=_extent, default=None,
                   help="xmin,ymin,xmax,ymax in the raster CRS")
    s.add_argument("--mask", default=None, help="vector file: score only inside its polygons")
    s.add_argument("--min-valid", type=float, default=0.5)
    s.add_argument("--style", default=None, help="QML stored as the default style")
    _common(s)
    return parser


def _tile_size(v: float | None, units: str) -> float | None:
    if v is None:
        return None
    return int(v) if units == "pixels" and float(v).is_integer() else v


def run(args: argparse.Namespace, feedback: ConsoleFeedback) -> dict[str, Any]:
    model = args.model or str(bundled_model_path())
    common = dict(
        model_path=model, tile_size=_tile_size(args.tile_size, args.tile_units),
        tile_units=args.tile_units, bands=args.bands, device=args.device,
        batch_size=args.batch_size, feedback=feedback,
    )
    if args.command == "build-library":
        polygons: list[ExemplarPolygon] = []
        if args.polygons:
            if not args.raster:
                raise TilingError("--polygons needs --raster (the image the polygons lie on)")
            polygons = [
                ExemplarPolygon(wkb, cls, src)
                for wkb, cls, src in read_vector(args.polygons, _raster_wkt(args.raster),
                                                 args.polygon_layer, args.class_field)
            ]
        lib = build_library(output_path=args.output, raster_path=args.raster,
                            polygons=polygons, image_folder=args.image_folder,
                            **common)  # type: ignore[arg-type]
        return {"n_exemplars": lib.n_exemplars, "classes": list(lib.classes),
                "output_path": str(lib.output_path)}
    mask: list[bytes] = []
    if args.mask:
        mask = [w for w, _, _ in read_vector(args.mask, _raster_wkt(args.raster))]
    res = score_raster(raster_path=args.raster, library_path=args.library,
                       output_path=args.output, overlap=args.overlap, extent=args.extent,
                       mask_wkb=mask, min_valid=args.min_valid, style_qml=args.style,
                       **common)  # type: ignore[arg-type]
    return {"n_tiles": res.n_tiles, "n_scored": res.n_scored, "n_skipped": res.n_skipped,
            "provider": res.provider, "seconds": round(res.seconds, 3),
            "output_path": str(res.output_path)}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    feedback = ConsoleFeedback(quiet=args.quiet)

    def on_sigint(signum: int, frame: Any) -> None:
        if feedback.canceled:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        print("cancelling after the current batch (Ctrl-C again to abort)...", file=sys.stderr)
        feedback.cancel()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        summary = run(args, feedback)
    except AnalogCancelled as err:
        print(f"cancelled: {err}", file=sys.stderr)
        return 130
    except AnalogError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

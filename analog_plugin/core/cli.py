"""Command line without QGIS, built from the same parameter definitions as the algorithms:

    python -m analog_plugin build-library --output lib.gpkg --image-folder exemplars/
    python -m analog_plugin build-library --output lib.gpkg --raster earth.tif \\
        --polygons ex.gpkg --class-field landform
    python -m analog_plugin score --input hirise.tif --library lib.gpkg --output scores.gpkg \\
        [--tile-size 200 --tile-units metres --overlap 25 --extent xmin,ymin,xmax,ymax] \\
        [--negative-classes river,farmland --output-heatmap heat.tif]
    python -m analog_plugin classify --input hirise.tif --library lib.gpkg --output lf.gpkg \\
        [--k 5 --smooth majority]
    python -m analog_plugin rank-sites --scores scores.gpkg --output sites.gpkg \\
        [--ellipse-major-km 20 --ellipse-minor-km 7 --dem dem.tif --max-slope 15]
    python -m analog_plugin compare --image-a a.png --image-b b.png

Each ``--flag`` is a Processing parameter name in lower case (``TILE_SIZE`` -> ``--tile-size``),
with the same default, range and message. Messages and progress go to stderr, a JSON summary to
stdout. Exit status: 0 success, 1 a user-fixable error (the message says what to do), 130
cancelled with Ctrl-C (the output is left untouched).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from . import params as P
from .errors import AnalogCancelled, AnalogError, ParameterError
from .feedback import ConsoleFeedback


def _bands(text: str) -> list[int]:
    try:
        return [int(b) for b in text.replace(" ", "").split(",") if b]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give 1-based band numbers like 1,2,3"
        ) from None


def _extent(text: str) -> tuple[float, float, float, float]:
    parts = text.replace(" ", "").split(",")
    try:
        xmin, ymin, xmax, ymax = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give xmin,ymin,xmax,ymax in the raster CRS"
        ) from None
    return xmin, ymin, xmax, ymax


def _add(parser: argparse.ArgumentParser, param: P.Param, *aliases: str,
         many: bool = False) -> None:
    kw: dict[str, Any] = {"dest": param.arg, "default": None, "help": param.full_help()}
    if many:  # --input a.tif b.tif, or --raster a.tif --raster b.tif
        kw.update(action="extend", nargs="+")
    if param.kind == "bands":
        kw["type"] = _bands
    elif param.kind == "extent":
        kw["type"] = _extent
    elif param.kind == "enum":
        kw["help"] += f" One of {', '.join(param.options)} (default {param.default})."
    elif param.default is not None:
        kw["help"] += f" Default {param.default}."
    parser.add_argument(param.cli_flag, *aliases, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analog_plugin", description="Mars Analogue Finder without QGIS.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__,
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build-library", help="embed exemplars into a library GeoPackage")
    for param in P.LIBRARY_PARAMS:
        _add(b, param)
    b.add_argument("--polygon-layer", default=None, help="layer of --polygons (default: first)")
    s = sub.add_parser("score", help="score the tiles of a raster against a library")
    for param in P.SCORE_PARAMS:
        _add(s, param, *(["--raster"] if param is P.INPUT else []), many=param is P.INPUT)
    for param in (P.WORKERS, P.CHUNK_TILES):
        _add(s, param)
    s.add_argument("--style", default=None, help="QML stored as the default style")
    c = sub.add_parser("classify", help="classify the landform of every tile (kNN on a library)")
    for param in P.CLASSIFY_PARAMS:
        _add(c, param, *(["--raster"] if param is P.INPUT else []))
    r = sub.add_parser("rank-sites", help="rank landing ellipses on a scores GeoPackage")
    for param in P.SITES_PARAMS:
        _add(r, param)
    r.add_argument("--scores-layer", default=None, help="layer of --scores (default: first)")
    v = sub.add_parser("compare", help="compare two places (image files or raster regions)")
    for param in P.COMPARE_PARAMS:
        _add(v, param)
    return parser


def _raster_wkt(path: str) -> str:
    from .raster_reader import RasterSource

    with RasterSource(path) as src:
        return src.info.crs_wkt


def run(args: argparse.Namespace, feedback: ConsoleFeedback) -> dict[str, Any]:
    from .exemplar_plan import exemplar_polygons
    from .pipeline import build_library, score_raster
    from .vector_io import read_polygons

    names = ("model", "tile_size", "tile_units", "bands", "device", "batch_size")
    common: dict[str, Any] = {k: getattr(args, k, None) for k in names}
    common = {("model_path" if k == "model" else k): v for k, v in common.items()
              if v is not None}
    if args.command == "classify":
        return _classify(args, feedback, common)
    if args.command == "rank-sites":
        return _rank_sites(args, feedback)
    if args.command == "compare":
        return _compare(args, feedback)
    if args.command == "build-library":
        polygons: list[Any] = []
        if args.polygons:
            if not args.raster:
                raise ParameterError("--polygons needs --raster (the image the polygons lie on)")
            rows, layer_name = read_polygons(args.polygons, _raster_wkt(args.raster),
                                             args.polygon_layer, args.class_field)
            polygons, skipped = exemplar_polygons(rows, args.class_field, layer_name,
                                                  str(args.raster))
            if skipped:
                feedback.pushWarning(f"{skipped} polygon(s) with a NULL '{args.class_field}' "
                                     "were skipped.")
            if not polygons:
                raise ParameterError("POLYGONS has no polygon with a geometry and a class: "
                                     "nothing to use as exemplar")
        lib = build_library(output_path=P.check(P.OUTPUT_LIBRARY, args.output),
                            raster_path=args.raster, polygons=polygons,
                            image_folder=args.image_folder, feedback=feedback, **common)
        return {"n_exemplars": lib.n_exemplars, "classes": list(lib.classes),
                "output_path": str(lib.output_path)}
    inputs = list(args.input or [])
    if len(inputs) > 1 or args.scheduler or (inputs and inputs[0].lower().endswith(".txt")):
        return _score_many(args, feedback, common, inputs)
    raster = P.check(P.INPUT, inputs[0] if inputs else None)
    mask = _mask_wkb(args.mask, raster)
    optional = {k: getattr(args, k) for k in ("overlap", "min_valid", "negative_classes",
                                              "heatmap_cell") if getattr(args, k) is not None}
    res = score_raster(raster_path=raster, library_path=P.check(P.LIBRARY, args.library),
                       output_path=P.check(P.OUTPUT_SCORES, args.output), extent=args.extent,
                       mask_wkb=mask, style_qml=args.style, feedback=feedback,
                       heatmap_path=args.output_heatmap, **optional, **common)
    return {"n_tiles": res.n_tiles, "n_scored": res.n_scored, "n_skipped": res.n_skipped,
            "provider": res.provider, "seconds": round(res.seconds, 3),
            "output_path": str(res.output_path), "timing": res.timing,
            "heatmap_path": str(res.heatmap_path) if res.heatmap_path else None,
            "class_fields": list(res.class_fields)}


def _score_many(args: argparse.Namespace, feedback: ConsoleFeedback, common: dict[str, Any],
                inputs: list[str]) -> dict[str, Any]:
    """Several rasters and/or a dask scheduler: the chunked batch engine (core/batch_job.py)."""
    from .batch_job import score_many

    for unsupported in ("mask", "extent", "output_heatmap"):
        if getattr(args, unsupported, None):
            raise ParameterError(f"--{unsupported.replace('_', '-')} is not available for "
                                 "several rasters or a cluster run; score them one by one")
    optional = {k: getattr(args, k) for k in ("overlap", "min_valid", "negative_classes",
                                              "workers", "chunk_tiles")
                if getattr(args, k) is not None}
    res = score_many(rasters=inputs, library_path=P.check(P.LIBRARY, args.library),
                     output_path=P.check(P.OUTPUT_SCORES, args.output),
                     scheduler=args.scheduler, style_qml=args.style, feedback=feedback,
                     **optional, **common)
    return {"n_rasters": res.n_rasters, "n_chunks": res.n_chunks,
            "n_skipped_chunks": res.n_skipped_chunks, "n_scored": res.n_scored,
            "seconds": round(res.seconds, 3), "output_path": str(res.output_path),
            "parts_dir": str(res.parts_dir), "scheduler": res.scheduler}


def _mask_wkb(path: str | None, raster: str) -> list[bytes]:
    from .vector_io import read_polygons

    if not path:
        return []
    rows, _ = read_polygons(path, _raster_wkt(raster))
    mask = [wkb for wkb, _, _ in rows]
    if not mask:
        raise ParameterError("MASK has no polygon with a geometry: every tile would be masked out")
    return mask


def _classify(args: argparse.Namespace, feedback: ConsoleFeedback,
              common: dict[str, Any]) -> dict[str, Any]:
    from .pipeline import classify_landforms

    raster = P.check(P.INPUT, args.input)
    optional = {k: getattr(args, k) for k in ("k", "smooth", "overlap", "min_valid")
                if getattr(args, k) is not None}
    res = classify_landforms(raster_path=raster, library_path=P.check(P.LIBRARY, args.library),
                             output_path=P.check(P.OUTPUT_LANDFORMS, args.output),
                             extent=args.extent, mask_wkb=_mask_wkb(args.mask, raster),
                             feedback=feedback, **optional, **common)
    return {"n_tiles": res.n_tiles, "n_classified": res.n_classified, "counts": res.counts,
            "provider": res.provider, "output_path": str(res.output_path)}


def _rank_sites(args: argparse.Namespace, feedback: ConsoleFeedback) -> dict[str, Any]:
    from .pipeline import rank_sites
    from .vector_io import read_scores

    scores = P.check(P.SCORES, args.scores)
    field = P.check(P.SCORE_FIELD, args.score_field)
    wkbs, values, wkt = read_scores(scores, field, args.scores_layer)
    exclude: list[bytes] = []
    if args.exclude:
        from .vector_io import read_polygons

        exclude = [w for w, _, _ in read_polygons(args.exclude, wkt)[0]]
    names = ("ellipse_major_km", "ellipse_minor_km", "azimuth", "spacing_km", "max_slope",
             "min_elevation", "max_elevation", "latitude_min", "latitude_max", "threshold",
             "count")
    optional = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    res = rank_sites(scores_wkb=wkbs, scores=values, crs_wkt=wkt,
                     output_path=P.check(P.OUTPUT_SITES, args.output), dem=args.dem,
                     exclude_wkb=exclude, score_field=field, feedback=feedback,
                     inputs=[("SCORES", scores)], **optional)
    return {"n_sites": res.n_sites, "n_candidates": res.n_candidates, "rejected": res.rejected,
            "threshold": res.threshold, "sites": res.sites, "output_path": str(res.output_path)}


def _compare(args: argparse.Namespace, feedback: ConsoleFeedback) -> dict[str, Any]:
    from .compare_job import Place, compare_places

    a = Place(P.check(P.IMAGE_A, args.image_a), args.extent_a, None, "IMAGE_A")
    b = Place(P.check(P.IMAGE_B, args.image_b), args.extent_b, None, "IMAGE_B")
    res = compare_places(a, b, args.model, P.check(P.DEVICE, args.device), feedback)
    return {"score": res.score, "distance": res.distance, "same_landform": res.same_landform,
            "threshold_cos": res.threshold_cos, "calibrated": res.calibrated}


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
    except Exception as err:  # noqa: BLE001 - a bug of ours: one line, traceback on request
        if os.environ.get("ANALOG_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {err} (a bug: please report it with the "
              "command line; ANALOG_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
    print(json.dumps(summary))
    return 0

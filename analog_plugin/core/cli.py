"""Command line without QGIS, built from the same parameter definitions as the algorithms:

    python -m analog_plugin build-library --output lib.gpkg --image-folder exemplars/
    python -m analog_plugin build-library --output lib.gpkg --raster earth.tif \\
        --polygons ex.gpkg --class-field landform
    python -m analog_plugin score --input hirise.tif --library lib.gpkg --output scores.gpkg \\
        [--tile-size 200 --tile-units metres --overlap 25 --extent xmin,ymin,xmax,ymax]

Each ``--flag`` is a Processing parameter name in lower case (``TILE_SIZE`` -> ``--tile-size``),
with the same default, range and message. Messages and progress go to stderr, a JSON summary to
stdout. Exit status: 0 success, 1 a user-fixable error (the message says what to do), 130
cancelled with Ctrl-C (the output is left untouched).
"""

from __future__ import annotations

import argparse
import json
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


def _add(parser: argparse.ArgumentParser, param: P.Param, *aliases: str) -> None:
    kw: dict[str, Any] = {"dest": param.arg, "default": None, "help": param.full_help()}
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
        _add(s, param, *(["--raster"] if param is P.INPUT else []))
    s.add_argument("--style", default=None, help="QML stored as the default style")
    return parser


def _raster_wkt(path: str) -> str:
    from .raster_reader import RasterSource

    with RasterSource(path) as src:
        return src.info.crs_wkt


def run(args: argparse.Namespace, feedback: ConsoleFeedback) -> dict[str, Any]:
    from .exemplar_plan import exemplar_polygons
    from .pipeline import build_library, score_raster
    from .vector_io import read_polygons

    common = {k: getattr(args, k) for k in ("model", "tile_size", "tile_units", "bands",
                                            "device", "batch_size")}
    common = {("model_path" if k == "model" else k): v for k, v in common.items()
              if v is not None}
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
    mask: list[bytes] = []
    raster = P.check(P.INPUT, args.input)
    if args.mask:
        rows, _ = read_polygons(args.mask, _raster_wkt(raster))
        mask = [wkb for wkb, _, _ in rows]
        if not mask:
            raise ParameterError("MASK has no polygon with a geometry: every tile would be "
                                 "masked out")
    optional = {k: getattr(args, k) for k in ("overlap", "min_valid") if getattr(args, k)
                is not None}
    res = score_raster(raster_path=raster, library_path=P.check(P.LIBRARY, args.library),
                       output_path=P.check(P.OUTPUT_SCORES, args.output), extent=args.extent,
                       mask_wkb=mask, style_qml=args.style, feedback=feedback, **optional,
                       **common)
    return {"n_tiles": res.n_tiles, "n_scored": res.n_scored, "n_skipped": res.n_skipped,
            "provider": res.provider, "seconds": round(res.seconds, 3),
            "output_path": str(res.output_path), "timing": res.timing}


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

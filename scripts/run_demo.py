#!/usr/bin/env python3
"""The main job on bundled data, through the real ``qgis_process`` binary (as a batch user would).

1. ``analog:buildlibrary``: the Earth dune-field exemplars in ``demo/earth_exemplars`` -> library.
2. ``analog:scoretiles``: every 227 m tile of ``demo/mars_scene.tif`` (Mars CRS) -> scores.gpkg.
   with a similarity heat map (``heatmap.tif``, styled by its ``.qml`` sidecar).
3. ``analog:classifylandforms``: the scene's landforms from a labelled Mars library cut from
   other observations (``demo/mars_library``; never the demo's own tiles), K=5, majority smoothing.
4. ``analog:ranksites``: the 3 best 0.6 x 0.4 km ellipses on the dune score, under a 5 deg slope
   limit on ``demo/mars_dem.tif`` (derived from real lunar terrain: see demo/README.md).
5. Renders each styled layer over the scene (``scores.png``, ``landforms.png``, ``sites.png``),
   loading styles the way any QGIS would: from the GeoPackage's ``layer_styles`` default
   (post-processors never run here).
6. Prints tiles scored, time, the top 5 tiles with their true landform, the classifier's
   accuracy against the truth file, and where the top-ranked ellipse fell.

Run through ``make demo`` (which stages the plugin and sets QGIS_PLUGINPATH and friends).
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from osgeo import ogr

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo"
SCENE = DEMO / "mars_scene.tif"
TRUTH = DEMO / "mars_scene_truth.csv"
EXEMPLARS = DEMO / "earth_exemplars"
MARS_LIBRARY = DEMO / "mars_library"
DEM = DEMO / "mars_dem.tif"
CELL_M = 227  # one scene cell = 227 px at a nominal 1 m/px
DUNES = {"dark_dune", "bright_dune"}


def qgis_process(alg: str, **params: object) -> dict:
    """Run one algorithm with ``qgis_process --json run`` and return its parsed results."""
    exe = shutil.which("qgis_process")
    if exe is None:
        sys.exit("qgis_process not found: run `make demo` (it installs QGIS) or install qgis")
    args = [exe, "--json", "run", alg, "--"] + [f"{k}={v}" for k, v in params.items()]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        sys.exit(f"{alg} failed (exit {proc.returncode})")
    out = proc.stdout
    return json.loads(out[out.index("{"):])


def render(scene: Path, jobs: list[tuple[list[tuple[str, str]], Path]]) -> list[str]:
    """Render the scores layer (with its stored default style) over the scene; return renderer type.

    Every QGIS object must be gone before ``exitQgis()``, or Qt frees them twice at exit (segfault):
    hence the separate ``_render`` whose locals die with its frame.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    try:
        types = [_render(scene, layers, png) for layers, png in jobs]
    finally:
        gc.collect()
        app.exitQgis()
    return types


def _render(scene: Path, layers: list[tuple[str, str]], png: Path) -> str:
    """Render ``layers`` ((uri, label expression or ''), topmost first) over the scene; the
    first vector layer's renderer type is returned (proof that its stored style was used)."""
    from qgis.core import (
        QgsMapRendererParallelJob,
        QgsMapSettings,
        QgsPalLayerSettings,
        QgsRasterLayer,
        QgsTextFormat,
        QgsVectorLayer,
        QgsVectorLayerSimpleLabeling,
    )
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    raster = QgsRasterLayer(str(scene), "Mars scene")
    if not raster.isValid():
        sys.exit(f"cannot open {scene} for rendering")
    maps: list = []
    renderer_type = ""
    for uri, label in layers:
        lyr = (QgsRasterLayer(uri, "overlay") if uri.endswith(".tif")
               else QgsVectorLayer(uri, "overlay", "ogr"))
        if not lyr.isValid():
            sys.exit(f"cannot open {uri} for rendering")
        if isinstance(lyr, QgsVectorLayer):
            renderer_type = renderer_type or (lyr.renderer().type() if lyr.renderer() else "none")
            if label:
                labels = QgsPalLayerSettings()
                labels.fieldName = label
                labels.isExpression = True
                fmt = QgsTextFormat()
                fmt.setSize(9)
                fmt.setColor(QColor("white"))
                buffer = fmt.buffer()
                buffer.setEnabled(True)
                buffer.setColor(QColor("black"))
                fmt.setBuffer(buffer)
                labels.setFormat(fmt)
                lyr.setLabeling(QgsVectorLayerSimpleLabeling(labels))
                lyr.setLabelsEnabled(True)
        maps.append(lyr)

    settings = QgsMapSettings()
    settings.setLayers([*maps, raster])
    settings.setDestinationCrs(raster.crs())
    settings.setExtent(raster.extent())
    width = 1200
    settings.setOutputSize(QSize(width, int(width * raster.height() / raster.width())))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(str(png), "PNG")
    return renderer_type


def read_scores(path: Path) -> list[dict]:
    ds = ogr.Open(str(path))
    lyr = ds.GetLayerByName("scores")
    rows = [{k: f.GetField(k) for k in ("tile_id", "row", "col", "score", "best_class",
                                         "best_exemplar", "valid_frac")} for f in lyr]
    n_styles = ds.ExecuteSQL("SELECT COUNT(*) FROM layer_styles WHERE useAsDefault = 1")
    has_style = n_styles.GetNextFeature().GetField(0) > 0
    ds.ReleaseResultSet(n_styles)
    return rows if has_style else sys.exit(f"{path} has no default style in layer_styles")


def read_layer(path: Path, layer: str, fields: tuple[str, ...]) -> list[dict]:
    ds = ogr.Open(str(path))
    lyr = ds.GetLayerByName(layer)
    rows = []
    for f in lyr:
        row = {k: f.GetField(k) for k in fields}
        row["wkt"] = f.GetGeometryRef().ExportToWkt()
        rows.append(row)
    return rows


def cells_under(wkt: str, scene: Path) -> list[tuple[int, int]]:
    """Scene cells (row, col) an ellipse overlaps by more than a quarter of a cell."""
    import rasterio

    with rasterio.open(scene) as src:
        t = src.transform
    g = ogr.CreateGeometryFromWkt(wkt)
    out = []
    for r in range(6):
        for c in range(8):
            x0, y0 = t * (c * CELL_M, r * CELL_M)
            x1, y1 = t * ((c + 1) * CELL_M, (r + 1) * CELL_M)
            cell = ogr.CreateGeometryFromWkt(
                f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))")
            if g.Intersection(cell).GetArea() > 0.25 * cell.GetArea():
                out.append((r, c))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "demo-output")
    args = ap.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    library, scores, png = out / "library.gpkg", out / "scores.gpkg", out / "scores.png"
    heat, mars_lib = out / "heatmap.tif", out / "mars_library.gpkg"
    landforms = out / "landforms.gpkg"
    sites = out / "sites.gpkg"
    for f in (library, scores, heat, mars_lib, landforms, sites):
        f.unlink(missing_ok=True)  # the demo is re-runnable; algorithms never clobber on failure

    t0 = time.perf_counter()
    lib_res = qgis_process("analog:buildlibrary", IMAGE_FOLDER=EXEMPLARS, OUTPUT=library)
    t1 = time.perf_counter()
    score_res = qgis_process("analog:scoretiles", INPUT=SCENE, LIBRARY=library,
                             TILE_SIZE=CELL_M, TILE_UNITS="metres", OVERLAP=0, MIN_VALID=0.3,
                             OUTPUT=scores, OUTPUT_HEATMAP=heat, HEATMAP_CELL=CELL_M // 4)
    t2 = time.perf_counter()
    qgis_process("analog:buildlibrary", IMAGE_FOLDER=MARS_LIBRARY, OUTPUT=mars_lib)
    qgis_process("analog:classifylandforms", INPUT=SCENE, LIBRARY=mars_lib, TILE_SIZE=CELL_M,
                 TILE_UNITS="metres", K=5, SMOOTH="none", MIN_VALID=0.3, OUTPUT=landforms)
    site_res = qgis_process("analog:ranksites", SCORES=scores, ELLIPSE_MAJOR_KM=0.6,
                            ELLIPSE_MINOR_KM=0.4, AZIMUTH=90, SPACING_KM=0.05, DEM=DEM,
                            MAX_SLOPE=5, COUNT=3, OUTPUT=sites)
    t3 = time.perf_counter()
    rows = read_scores(scores)  # before render(): QGIS's exit unloads the GDAL drivers
    lf_rows = read_layer(landforms, "landforms", ("row", "col", "landform", "confidence"))
    site_rows = read_layer(sites, "sites", ("rank", "mean_score", "max_slope", "mean_elevation",
                                            "lat", "lon"))
    renderer_type, lf_type, _ = render(SCENE, [
        ([(f"{scores}|layername=scores", "format_number(score, 3)")], png),
        ([(f"{landforms}|layername=landforms", "landform")], out / "landforms.png"),
        ([(f"{sites}|layername=sites", ""), (str(heat), "")], out / "sites.png"),
    ])

    with open(TRUTH, newline="") as fh:
        truth = {(int(r["row"]), int(r["col"])): r["class"] for r in csv.DictReader(fh)}
    rows.sort(key=lambda r: r["score"], reverse=True)
    results = score_res.get("results", {})
    print("\n=== Mars Analogue Finder demo ===")
    print(f"library: {library} ({lib_res.get('results', {}).get('N_EXEMPLARS', '?')} Earth "
          f"exemplars, {t1 - t0:.1f} s)")
    print(f"scores:  {scores}: {len(rows)} tiles scored, "
          f"{results.get('N_SKIPPED', '?')} skipped, {t2 - t1:.1f} s through qgis_process")
    print(f"picture: {png} (layer style from the GeoPackage: {renderer_type})")
    print("top 5 tiles by similarity to the Earth dune-field exemplars:")
    print(f"  {'rank':>4} {'row':>3} {'col':>3} {'score':>6}  {'true landform':<14} valid")
    for i, r in enumerate(rows[:5], 1):
        print(f"  {i:>4} {r['row']:>3} {r['col']:>3} {r['score']:>6.3f}  "
              f"{truth.get((r['row'], r['col']), '?'):<14} {r['valid_frac']:.2f}")
    k = sum(c in DUNES for c in truth.values())  # 13: precision at the number of dunes
    hits = sum(truth.get((r["row"], r["col"])) in DUNES for r in rows[:k])
    base = k / len(truth)
    print(f"dune precision in the top {k} tiles: {hits}/{k} = {hits / k:.2f} (base rate "
          f"{base:.2f}, lift {hits / k / base:.1f}x)")
    correct = sum(truth.get((r["row"], r["col"])) == r["landform"] for r in lf_rows)
    print(f"landforms: {landforms}: {len(lf_rows)} tiles classified from "
          f"{sum(1 for _ in MARS_LIBRARY.rglob('*.jpg'))} Mars library tiles of other "
          f"observations; accuracy against the truth {correct}/{len(lf_rows)} = "
          f"{correct / max(len(lf_rows), 1):.2f} (picture {out / 'landforms.png'}, "
          f"style {lf_type})")
    top = min(site_rows, key=lambda r: r["rank"])
    under = cells_under(top["wkt"], SCENE)
    print(f"sites: {sites}: {site_res.get('results', {}).get('N_SITES', '?')} ellipses of "
          f"0.6 x 0.4 km, slope <= 5 deg on the DEM ({t3 - t2:.1f} s incl. classification); "
          f"top: lat {top['lat']:.5f}, lon {top['lon']:.5f}, mean score {top['mean_score']:.3f}, "
          f"max slope {top['max_slope']:.1f} deg, mean elevation {top['mean_elevation']:.0f} m, "
          f"over cells {under} = {[truth.get(c, '?') for c in under]} (picture "
          f"{out / 'sites.png'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""The main job on bundled data, through the real ``qgis_process`` binary (as a batch user would).

1. ``analog:buildlibrary``: the Earth dune-field exemplars in ``demo/earth_exemplars`` -> library.
2. ``analog:scoretiles``: every 227 m tile of ``demo/mars_scene.tif`` (Mars CRS) -> scores.gpkg.
3. Renders the styled score layer over the scene to ``scores.png``, loading the style the way any
   QGIS would: from the GeoPackage's ``layer_styles`` default (post-processors never run here).
4. Prints tiles scored, time, and the top 5 tiles with their true landform from the truth file.

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


def render(scene: Path, scores: Path, png: Path) -> str:
    """Render the scores layer (with its stored default style) over the scene; return renderer type.

    Every QGIS object must be gone before ``exitQgis()``, or Qt frees them twice at exit (segfault):
    hence the separate ``_render`` whose locals die with its frame.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    try:
        renderer_type = _render(scene, scores, png)
    finally:
        gc.collect()
        app.exitQgis()
    return renderer_type


def _render(scene: Path, scores: Path, png: Path) -> str:
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
    layer = QgsVectorLayer(f"{scores}|layername=scores", "scores", "ogr")
    if not (raster.isValid() and layer.isValid()):
        sys.exit(f"cannot open {scene} or {scores} for rendering")
    renderer_type = layer.renderer().type() if layer.renderer() else "none"
    labels = QgsPalLayerSettings()
    labels.fieldName = "format_number(score, 3)"
    labels.isExpression = True
    fmt = QgsTextFormat()
    fmt.setSize(9)
    fmt.setColor(QColor("white"))
    buffer = fmt.buffer()
    buffer.setEnabled(True)
    buffer.setColor(QColor("black"))
    fmt.setBuffer(buffer)
    labels.setFormat(fmt)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(labels))
    layer.setLabelsEnabled(True)

    settings = QgsMapSettings()
    settings.setLayers([layer, raster])
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "demo-output")
    args = ap.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    library, scores, png = out / "library.gpkg", out / "scores.gpkg", out / "scores.png"
    for f in (library, scores):
        f.unlink(missing_ok=True)  # the demo is re-runnable; algorithms never clobber on failure

    t0 = time.perf_counter()
    lib_res = qgis_process("analog:buildlibrary", IMAGE_FOLDER=EXEMPLARS, OUTPUT=library)
    t1 = time.perf_counter()
    score_res = qgis_process("analog:scoretiles", INPUT=SCENE, LIBRARY=library,
                             TILE_SIZE=CELL_M, TILE_UNITS="metres", OVERLAP=0, MIN_VALID=0.3,
                             OUTPUT=scores)
    t2 = time.perf_counter()
    rows = read_scores(scores)  # before render(): QGIS's exit unloads the GDAL drivers
    renderer_type = render(SCENE, scores, png)

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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

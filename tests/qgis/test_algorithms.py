"""analog:buildlibrary and analog:scoretiles through processing.run with the analytic model."""

from __future__ import annotations

import hashlib
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qgis.core import (
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsProcessingException,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QMetaType

from tests.qgis.conftest import INPUT_SIZE, MARS_TIF, RGB_TIF, RecordingFeedback
from tests.qgis.helpers import (
    expected_score,
    features_by_tile,
    layer_styles,
    read_raster,
    tile_mean01,
)

SCORE_FIELDS = {
    "tile_id": "int", "row": "int", "col": "int", "score": "real", "best_class": "str",
    "best_exemplar": "str", "valid_frac": "real",
}


def run(alg: str, params: dict[str, Any], feedback: Any = None) -> dict[str, Any]:
    import processing

    return processing.run(f"analog:{alg}", params, feedback=feedback)


def n_tiles(length: int, size: int, stride: int) -> int:
    return math.ceil((length - size) / stride) + 1


def kind(field: Any) -> str:
    if field.type() in (QMetaType.Type.Int, QMetaType.Type.LongLong):
        return "int"
    if field.type() == QMetaType.Type.Double:
        return "real"
    if field.type() == QMetaType.Type.QString:
        return "str"
    return field.typeName()


def open_scores(path: Path) -> QgsVectorLayer:
    layer = QgsVectorLayer(f"{path}|layername=scores", "scores", "ogr")
    assert layer.isValid(), path
    return layer


def polygon_layer(crs: str, polygons: dict[str, str], field: str = "kind") -> QgsVectorLayer:
    layer = QgsVectorLayer(f"Polygon?crs={crs}", "sites", "memory")
    layer.dataProvider().addAttributes([QgsField(field, QMetaType.Type.QString)])
    layer.updateFields()
    feats = []
    for wkt_cls, wkt in polygons.items():
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromWkt(wkt))
        f[field] = wkt_cls.split("#")[0]
        feats.append(f)
    assert layer.dataProvider().addFeatures(feats)[0]
    return layer


# ---- build library ---------------------------------------------------------------------------
def test_build_library_from_image_folder(
    provider: Any, models: dict[str, Path], real_image_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lib.gpkg"
    res = run("buildlibrary", {
        "IMAGE_FOLDER": str(real_image_folder), "MODEL": str(models["mean"]), "OUTPUT": str(out),
    })
    assert res["N_EXEMPLARS"] == 3
    assert res["N_CLASSES"] == 2
    assert set(res["CLASSES"].split(",")) == {"crater", "mountain"}
    assert out.is_file()
    layer = QgsVectorLayer(f"{out}|layername=exemplars", "ex", "ogr")
    assert layer.isValid()
    assert {"exemplar_id", "class", "source", "embedding"} <= set(layer.fields().names())
    classes = sorted(f["class"] for f in layer.getFeatures())
    assert classes == ["crater", "crater", "mountain"]
    with sqlite3.connect(out) as con:
        meta = dict(con.execute("SELECT key, value FROM library_meta"))
    assert meta["model_sha256"] == hashlib.sha256(models["mean"].read_bytes()).hexdigest()
    assert int(meta["n_exemplars"]) == 3


def test_build_library_from_raster_and_polygons(
    provider: Any, models: dict[str, Path], tmp_path: Path
) -> None:
    # Two sites over the Rocky Mountain raster, digitised in Web Mercator (reprojected to 4326).
    rgb = QgsRasterLayer(str(RGB_TIF), "rgb")
    ext = rgb.extent()
    px = rgb.rasterUnitsPerPixelX()
    x0, y1 = ext.xMinimum() + 40 * px, ext.yMaximum() - 40 * px
    ridge = QgsGeometry.fromRect(QgsRectangle(x0, y1 - 70 * px, x0 + 70 * px, y1))
    forest = QgsGeometry.fromRect(
        QgsRectangle(x0 + 200 * px, y1 - 250 * px, x0 + 270 * px, y1 - 180 * px)
    )
    layer = polygon_layer("EPSG:4326", {"ridge": ridge.asWkt(), "forest": forest.asWkt()})
    out = tmp_path / "lib.gpkg"
    res = run("buildlibrary", {
        "RASTER": str(RGB_TIF), "POLYGONS": layer, "CLASS_FIELD": "kind",
        "MODEL": str(models["mean"]), "TILE_SIZE": INPUT_SIZE, "OUTPUT": str(out),
    })
    assert set(res["CLASSES"].split(",")) == {"ridge", "forest"}
    assert res["N_EXEMPLARS"] >= 2
    lib = QgsVectorLayer(f"{out}|layername=exemplars", "ex", "ogr")
    assert lib.isValid()
    assert lib.crs().authid() == "EPSG:4326"
    assert QgsWkbTypes.geometryType(lib.wkbType()) == QgsWkbTypes.PolygonGeometry
    feats = list(lib.getFeatures())
    assert len(feats) == res["N_EXEMPLARS"]
    for f in feats:
        site = ridge if f["class"] == "ridge" else forest
        assert f.geometry().intersects(site), f["exemplar_id"]
        assert str(RGB_TIF) in f["source"]


def test_build_library_polygons_in_other_crs_match(
    provider: Any, models: dict[str, Path], tmp_path: Path
) -> None:
    """The same site digitised in EPSG:3857 gives the same exemplars as in EPSG:4326."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    rgb = QgsRasterLayer(str(RGB_TIF), "rgb")
    px = rgb.rasterUnitsPerPixelX()
    ext = rgb.extent()
    site = QgsGeometry.fromRect(QgsRectangle(
        ext.xMinimum() + 100 * px, ext.yMaximum() - 164 * px,
        ext.xMinimum() + 164 * px, ext.yMaximum() - 100 * px))
    merc = QgsGeometry(site)
    merc.transform(QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:4326"), QgsCoordinateReferenceSystem("EPSG:3857"),
        QgsProject.instance()))
    counts = []
    for crs, geom in (("EPSG:4326", site), ("EPSG:3857", merc)):
        out = tmp_path / f"lib_{crs[5:]}.gpkg"
        res = run("buildlibrary", {
            "RASTER": str(RGB_TIF), "POLYGONS": polygon_layer(crs, {"site": geom.asWkt()}),
            "MODEL": str(models["mean"]), "OUTPUT": str(out),
        })
        counts.append(res["N_EXEMPLARS"])
        assert res["CLASSES"] == "sites"  # no CLASS_FIELD: the layer name is the class
    assert counts[0] == counts[1] >= 1


# ---- score tiles -----------------------------------------------------------------------------
def test_score_mars_raster(provider: Any, models: dict[str, Path], library: Path,
                           tmp_path: Path) -> None:
    out = tmp_path / "scores.gpkg"
    fb = RecordingFeedback()
    res = run("scoretiles", {
        "INPUT": str(MARS_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"]),
        "MIN_VALID": 0.0, "BATCH_SIZE": 64, "OUTPUT": str(out),
    }, feedback=fb)
    expected = n_tiles(1024, 32, 32) * n_tiles(512, 32, 32)  # 32 x 16
    assert res["N_TILES"] == expected == 512
    assert res["N_SCORED"] == expected and res["N_SKIPPED"] == 0
    assert res["OUTPUT"] == str(out)
    layer = open_scores(out)
    assert layer.featureCount() == expected
    assert {f.name(): kind(f) for f in layer.fields() if f.name() in SCORE_FIELDS} == SCORE_FIELDS
    # CRS preserved: the Mars sphere, not Earth.
    mars = QgsRasterLayer(str(MARS_TIF), "mars")
    assert layer.crs() == mars.crs()
    assert "Mars" in layer.crs().toWkt()
    assert layer.crs().ellipsoidAcronym() != "EPSG:7030"
    feats = features_by_tile(layer)
    arr, nodata = read_raster(MARS_TIF)
    for row, col in ((5, 7), (8, 20), (3, 30)):
        f = feats[row * 32 + col]
        assert (f["row"], f["col"]) == (row, col)
        assert f["valid_frac"] == pytest.approx(1.0)
        score, best = expected_score(tile_mean01(arr, nodata, row * 32, col * 32, 32))
        assert f["score"] == pytest.approx(score, abs=2e-4)
        assert f["best_class"] == best
        bbox = f.geometry().boundingBox()
        res_deg = 360 / 1024
        assert bbox.xMinimum() == pytest.approx(-180 + col * 32 * res_deg)
        assert bbox.yMaximum() == pytest.approx(90 - row * 32 * res_deg)
    scores = np.array([f["score"] for f in feats.values()])
    assert np.all((scores >= 0) & (scores <= 1))
    assert {f["best_class"] for f in feats.values()} <= {"bright", "dark"}
    # Style: the GeoPackage carries the graduated default style, and QGIS uses it on open.
    styles = layer_styles(out)
    assert any(t == "scores" and d == 1 and "graduatedSymbol" in q for t, d, q in styles)
    assert layer.renderer().type() == "graduatedSymbol"
    # Progress reported per batch, ending at 100.
    assert len(fb.progress_values) >= 2 and max(fb.progress_values) == pytest.approx(100)


def test_score_rgb_raster_min_valid(provider: Any, models: dict[str, Path], library: Path,
                                    tmp_path: Path) -> None:
    out = tmp_path / "rgb.gpkg"
    res = run("scoretiles", {
        "INPUT": str(RGB_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"]),
        "TILE_SIZE": 32, "TILE_UNITS": "pixels", "OUTPUT": str(out),
    })
    cols, rows = n_tiles(485, 32, 32), n_tiles(373, 32, 32)
    assert (cols, rows) == (16, 12)
    assert res["N_TILES"] == cols * rows
    assert res["N_SCORED"] + res["N_SKIPPED"] == res["N_TILES"]
    assert res["N_SKIPPED"] >= cols  # the last column/row runs past the raster (< 50 % valid)
    layer = open_scores(out)
    assert layer.featureCount() == res["N_SCORED"]
    assert layer.crs().authid() == "EPSG:4326"
    feats = features_by_tile(layer)
    assert all(f["valid_frac"] >= 0.5 for f in feats.values())
    arr, nodata = read_raster(RGB_TIF)
    valid = np.all(arr != nodata, axis=0)
    checked = 0
    for (row, col) in ((2, 3), (6, 9), (9, 12), (1, 1)):
        if not valid[row * 32:row * 32 + 32, col * 32:col * 32 + 32].all():
            continue
        f = feats[row * cols + col]
        score, best = expected_score(tile_mean01(arr, nodata, row * 32, col * 32, 32))
        assert f["score"] == pytest.approx(score, abs=2e-4)
        assert f["best_class"] == best
        checked += 1
    assert checked >= 2


def test_score_single_band_selection(provider: Any, models: dict[str, Path], library: Path,
                                     tmp_path: Path) -> None:
    out = tmp_path / "band2.gpkg"
    run("scoretiles", {
        "INPUT": str(RGB_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"]),
        "BANDS": [2], "OUTPUT": str(out),
    })
    feats = features_by_tile(open_scores(out))
    arr, nodata = read_raster(RGB_TIF)
    f = feats[6 * 16 + 9]
    score, _ = expected_score(tile_mean01(arr, nodata, 6 * 32, 9 * 32, 32, bands=[2]))
    assert f["score"] == pytest.approx(score, abs=2e-4)


def test_score_overlap_extent_and_mask(provider: Any, models: dict[str, Path], library: Path,
                                       tmp_path: Path) -> None:
    common = {"INPUT": str(MARS_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"]),
              "MIN_VALID": 0.0}
    res = run("scoretiles", {**common, "TILE_SIZE": 64, "OVERLAP": 50,
                             "OUTPUT": str(tmp_path / "ov.gpkg")})
    assert res["N_TILES"] == n_tiles(1024, 64, 32) * n_tiles(512, 64, 32) == 31 * 15
    # EXTENT: 90 x 45 degrees = 256 x 128 px -> 8 x 4 tiles of 32 px.
    res = run("scoretiles", {**common, "EXTENT": "0,90,0,45",
                             "OUTPUT": str(tmp_path / "ext.gpkg")})
    assert res["N_TILES"] == 8 * 4
    layer = open_scores(tmp_path / "ext.gpkg")
    bbox = layer.extent()
    assert bbox.xMinimum() == pytest.approx(0) and bbox.xMaximum() == pytest.approx(90)
    # MASK (in the raster CRS): only tiles at least half inside are kept.
    mars_crs = QgsRasterLayer(str(MARS_TIF), "m").crs()
    mask = QgsVectorLayer("Polygon", "mask", "memory")
    mask.setCrs(mars_crs)
    f = QgsFeature()
    f.setGeometry(QgsGeometry.fromRect(QgsRectangle(0, 0, 45, 22.5)))  # 128 x 64 px
    mask.dataProvider().addFeatures([f])
    res = run("scoretiles", {**common, "MASK": mask, "MIN_VALID": 0.5,
                             "OUTPUT": str(tmp_path / "mask.gpkg")})
    assert res["N_SCORED"] == 4 * 2
    feats = list(open_scores(tmp_path / "mask.gpkg").getFeatures())
    assert all(f.geometry().boundingBox().xMinimum() >= -1e-9 for f in feats)


def test_tile_size_in_metres_uses_mars_radius(provider: Any, models: dict[str, Path],
                                              library: Path, tmp_path: Path) -> None:
    # One pixel is 360/1024 degrees; on the Mars sphere (R = 3 396 190 m) 32 px are this long.
    metres = 32 * math.radians(360 / 1024) * 3_396_190.0
    res = run("scoretiles", {
        "INPUT": str(MARS_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"]),
        "TILE_SIZE": metres, "TILE_UNITS": "metres", "MIN_VALID": 0.0,
        "OUTPUT": str(tmp_path / "m.gpkg"),
    })
    assert res["N_TILES"] == 512  # Earth's radius would give ~17 px tiles: 60 x 30 tiles


def test_existing_output_replaced_on_success(provider: Any, models: dict[str, Path],
                                             library: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.gpkg"
    out.write_bytes(b"old content")
    run("scoretiles", {"INPUT": str(MARS_TIF), "LIBRARY": str(library),
                       "MODEL": str(models["mean"]), "EXTENT": "0,90,0,45", "OUTPUT": str(out)})
    assert open_scores(out).featureCount() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.gpkg"]  # no temp files left


def test_cancel_leaves_no_output(provider: Any, models: dict[str, Path], library: Path,
                                 tmp_path: Path) -> None:
    out = tmp_path / "scores.gpkg"
    out.write_bytes(b"keep me")
    fb = RecordingFeedback(cancel_after=1)
    with pytest.raises(QgsProcessingException, match="(?i)cancel"):
        run("scoretiles", {"INPUT": str(MARS_TIF), "LIBRARY": str(library),
                           "MODEL": str(models["mean"]), "BATCH_SIZE": 8, "OUTPUT": str(out)},
            feedback=fb)
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.gpkg"]


def test_desktop_load_gets_style_post_processor(provider: Any, models: dict[str, Path],
                                                library: Path, tmp_path: Path) -> None:
    """As in the desktop dialog: an output set to open after running gets the QML applied."""
    import processing
    from qgis.core import (
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingOutputLayerDefinition,
        QgsProject,
    )

    from analog_plugin.processing.postprocess import LayerStylePostProcessor

    out = tmp_path / "scores.gpkg"
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = QgsProcessingFeedback()
    processing.run("analog:scoretiles", {
        "INPUT": str(MARS_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"]),
        "EXTENT": "0,90,0,45",
        "OUTPUT": QgsProcessingOutputLayerDefinition(str(out), QgsProject.instance()),
    }, context=context, feedback=feedback, onFinish=lambda *a: None)
    assert context.willLoadLayerOnCompletion(str(out))
    post = context.layerToLoadOnCompletionDetails(str(out)).postProcessor()
    assert isinstance(post, LayerStylePostProcessor)
    assert post.qml_path.endswith("scores.qml")
    layer = QgsVectorLayer(str(out), "scores", "ogr", QgsVectorLayer.LayerOptions(False))
    assert layer.renderer().type() == "singleSymbol"  # default style not loaded on purpose
    post.postProcessLayer(layer, context, feedback)
    assert layer.renderer().type() == "graduatedSymbol"

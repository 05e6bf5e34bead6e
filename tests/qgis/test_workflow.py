"""The analyst workflow through processing.run: per-class scores with negatives, rank/percentile,
heat map, landform classification, place comparison and site ranking.

Expected values come from the analytic mean model (embedding normalize([mean, 1]), see
tests/onnx_models.py) and constructed rasters whose tile means are known by construction.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsVectorLayer

from tests.core.conftest import write_raster
from tests.onnx_models import expected_mean_embedding
from tests.qgis.conftest import _write_png, half_image
from tests.qgis.helpers import layer_styles

T = 32  # the mean model's input size = tile size used below


def run(alg: str, params: dict[str, Any]) -> dict[str, Any]:
    import processing

    return processing.run(f"analog:{alg}", params)


def cls_score(m: float, q: float) -> float:
    """(1 + cos) / 2 between tiles of 0..1 means m and q under the mean model."""
    return (1.0 + float(expected_mean_embedding(m) @ expected_mean_embedding(q))) / 2.0


def block_raster(tmp_path: Path, means: list[list[float]]) -> Path:
    """Tiles of T x T px whose 0..1 mean (after the layer's 2-98 % stretch) is ``means[r][c]``:
    each tile has round(m * T) rows of 100 and the rest 0; the layer holds both values in > 2 %
    of its pixels, so the stretch is exactly 0..100."""
    rows, cols = len(means), len(means[0])
    a = np.zeros((rows * T, cols * T), np.float32)
    for r in range(rows):
        for c in range(cols):
            n = int(round(means[r][c] * T))
            a[r * T:r * T + n, c * T:(c + 1) * T] = 100.0
    return write_raster(tmp_path / "blocks.tif", a)


@pytest.fixture(scope="module")
def three_class_library(provider: Any, models: dict[str, Path],
                        tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exemplar images with exact 0..1 means: bright 0.75, mid 0.5, dark 0.25."""
    root = tmp_path_factory.mktemp("ex3")
    for name, m in (("bright", 0.75), ("mid", 0.5), ("dark", 0.25)):
        _write_png(root / name / f"{name}.png", half_image(m))
    out = tmp_path_factory.mktemp("lib3") / "lib.gpkg"
    run("buildlibrary", {"IMAGE_FOLDER": str(root), "MODEL": str(models["mean"]),
                         "OUTPUT": str(out)})
    return out


def features(path: Path, layer: str) -> list[Any]:
    lyr = QgsVectorLayer(f"{path}|layername={layer}", layer, "ogr")
    assert lyr.isValid(), path
    return sorted(lyr.getFeatures(), key=lambda f: f["tile_id"] if "tile_id" in
                  lyr.fields().names() else f["rank"])


MEANS = [[0.75, 0.5, 0.25, 0.0], [1.0, 0.625, 0.375, 0.125]]


def test_per_class_scores_negatives_rank_and_percentile(
        three_class_library: Path, models: dict[str, Path], tmp_path: Path) -> None:
    raster = block_raster(tmp_path, MEANS)
    out = tmp_path / "scores.gpkg"
    run("scoretiles", {"INPUT": str(raster), "LIBRARY": str(three_class_library),
                       "MODEL": str(models["mean"]), "TILE_SIZE": T, "MIN_VALID": 0,
                       "NEGATIVE_CLASSES": "dark", "OUTPUT": str(out)})
    feats = features(out, "scores")
    assert len(feats) == 8
    for f in feats:
        m = MEANS[f["row"]][f["col"]]
        per = {c: cls_score(m, q) for c, q in (("bright", 0.75), ("mid", 0.5), ("dark", 0.25))}
        for c, v in per.items():
            assert f[f"score_{c}"] == pytest.approx(v, abs=2e-4)
        p, n = max(per["bright"], per["mid"]), per["dark"]
        assert f["score"] == pytest.approx(min(1, max(0, p - max(0.0, n - p))), abs=2e-4)
        assert f["best_class"] in ("bright", "mid")  # never the negative class
    # a dark tile (mean 0.25) is pushed below every tile that is not nearer a negative
    by_mean = {MEANS[f["row"]][f["col"]]: f for f in feats}
    assert by_mean[0.25]["score"] < by_mean[0.5]["score"] - 0.0
    scores = np.array([f["score"] for f in feats])
    ranks = np.array([f["rank"] for f in feats])
    assert sorted(ranks.tolist()) == list(range(1, 9))
    assert np.all(np.diff(scores[np.argsort(ranks)]) <= 1e-12)  # rank 1 = highest score
    for f in feats:  # percentile = 100 x share of tiles scoring <= this one
        assert f["percentile"] == pytest.approx(100.0 * np.mean(scores <= f["score"]))


def test_negative_class_must_be_a_library_class(three_class_library: Path,
                                                models: dict[str, Path], tmp_path: Path) -> None:
    raster = block_raster(tmp_path, MEANS)
    with pytest.raises(QgsProcessingException, match="NEGATIVE_CLASSES.*not classes"):
        run("scoretiles", {"INPUT": str(raster), "LIBRARY": str(three_class_library),
                           "MODEL": str(models["mean"]), "TILE_SIZE": T,
                           "NEGATIVE_CLASSES": "river", "OUTPUT": str(tmp_path / "s.gpkg")})
    assert not (tmp_path / "s.gpkg").exists()


def test_heatmap_equals_tile_scores_without_overlap(three_class_library: Path,
                                                    models: dict[str, Path],
                                                    tmp_path: Path) -> None:
    raster = block_raster(tmp_path, MEANS)
    out, heat = tmp_path / "scores.gpkg", tmp_path / "heat.tif"
    res = run("scoretiles", {"INPUT": str(raster), "LIBRARY": str(three_class_library),
                             "MODEL": str(models["mean"]), "TILE_SIZE": T, "MIN_VALID": 0,
                             "OUTPUT": str(out), "OUTPUT_HEATMAP": str(heat),
                             "HEATMAP_CELL": 8})
    assert res["OUTPUT_HEATMAP"] == str(heat)
    with rasterio.open(heat) as ds, rasterio.open(raster) as src:
        grid = ds.read(1)
        assert ds.crs == src.crs
        assert ds.transform.a == pytest.approx(src.transform.a * 8)
        assert (ds.transform.c, ds.transform.f) == pytest.approx((src.transform.c,
                                                                 src.transform.f))
        assert ds.nodata == -1
    assert grid.shape == (2 * T // 8, 4 * T // 8)
    for f in features(out, "scores"):
        block = grid[f["row"] * 4:(f["row"] + 1) * 4, f["col"] * 4:(f["col"] + 1) * 4]
        assert np.allclose(block, f["score"], atol=1e-6)
    assert heat.with_suffix(".qml").is_file()
    assert "singlebandpseudocolor" in heat.with_suffix(".qml").read_text()


def test_heatmap_averages_overlapping_tiles(three_class_library: Path, models: dict[str, Path],
                                            tmp_path: Path) -> None:
    raster = block_raster(tmp_path, MEANS)
    out, heat = tmp_path / "scores.gpkg", tmp_path / "heat.tif"
    run("scoretiles", {"INPUT": str(raster), "LIBRARY": str(three_class_library),
                       "MODEL": str(models["mean"]), "TILE_SIZE": T, "OVERLAP": 50,
                       "MIN_VALID": 0, "OUTPUT": str(out), "OUTPUT_HEATMAP": str(heat)})
    feats = {(f["row"], f["col"]): f["score"] for f in features(out, "scores")}
    with rasterio.open(heat) as ds:
        grid = ds.read(1)
    # cell = stride = 16 px; cell (r, c) is covered by tiles (r-1..r, c-1..c) that exist
    for (r, c), _ in np.ndenumerate(grid):
        cover = [feats[(i, j)] for i in (r - 1, r) for j in (c - 1, c) if (i, j) in feats]
        assert grid[r, c] == pytest.approx(np.mean(cover), abs=1e-6)


def test_classifier_recovers_constructed_landforms(three_class_library: Path,
                                                   models: dict[str, Path],
                                                   tmp_path: Path) -> None:
    truth = [["bright", "bright", "mid", "mid", "dark", "dark"],
             ["bright", "bright", "mid", "mid", "dark", "dark"],
             ["bright", "bright", "mid", "mid", "dark", "dark"]]
    value = {"bright": 0.75, "mid": 0.5, "dark": 0.25}
    means = [[value[c] for c in row] for row in truth]
    means[1][2] = 0.40625  # two off-pattern tiles: their expected class is the oracle's
    means[1][4] = 0.375
    raster = block_raster(tmp_path, means)
    out = tmp_path / "landforms.gpkg"
    res = run("classifylandforms", {"INPUT": str(raster), "LIBRARY": str(three_class_library),
                                    "MODEL": str(models["mean"]), "TILE_SIZE": T, "K": 1,
                                    "MIN_VALID": 0, "OUTPUT": str(out)})
    assert res["N_CLASSIFIED"] == 18
    feats = features(out, "landforms")
    got = {(f["row"], f["col"]): f for f in feats}
    for (r, c), f in got.items():
        m = means[r][c]
        expected = max(value, key=lambda k: cls_score(m, value[k]))
        assert f["landform"] == expected
        assert f["confidence"] == pytest.approx(1.0)  # K = 1
        assert f["valid_frac"] == pytest.approx(1.0)
    assert sum(got[(r, c)]["landform"] == truth[r][c] for r, c in got) >= 16
    styles = layer_styles(out)
    (qml,) = [q for t, d, q in styles if t == "landforms" and d == 1]
    assert "categorizedSymbol" in qml
    for name in ("bright", "mid", "dark"):
        assert f'value="{name}"' in qml
    # K = 3 with three exemplars: every class votes; confidence = the winner's weighted share
    out3 = tmp_path / "k3.gpkg"
    run("classifylandforms", {"INPUT": str(raster), "LIBRARY": str(three_class_library),
                              "MODEL": str(models["mean"]), "TILE_SIZE": T, "K": 3,
                              "SMOOTH": "majority", "OUTPUT": str(out3)})
    smoothed = {(g["row"], g["col"]): g for g in features(out3, "landforms")}
    corner = smoothed[(0, 0)]  # itself twice + 3 bright neighbours: bright wins, not unanimously
    assert corner["landform"] == "bright"
    assert corner["second_landform"] in ("mid", "dark")
    assert 0 < corner["confidence"] < 1
    assert smoothed[(1, 4)]["landform"] == "dark"  # the off-pattern tile follows its neighbours


def test_compare_itself_near_one_and_other_lower(models: dict[str, Path], tmp_path: Path,
                                                 provider: Any) -> None:
    a = _write_png(tmp_path / "a.png", half_image(0.5))
    b = _write_png(tmp_path / "b.png", half_image(0.25))
    same = run("comparetiles", {"IMAGE_A": str(a), "IMAGE_B": str(a),
                                "MODEL": str(models["mean"])})
    assert same["SCORE"] == pytest.approx(1.0, abs=1e-6)
    assert same["DISTANCE"] == pytest.approx(0.0, abs=1e-3)
    assert same["SAME_LANDFORM"] is True
    other = run("comparetiles", {"IMAGE_A": str(a), "IMAGE_B": str(b),
                                 "MODEL": str(models["mean"])})
    cos = float(expected_mean_embedding(0.5) @ expected_mean_embedding(0.25))
    assert other["SCORE"] == pytest.approx((1 + cos) / 2, abs=1e-5)
    assert other["DISTANCE"] == pytest.approx(math.sqrt(2 - 2 * cos), abs=1e-4)


def test_compare_regions_of_a_raster(models: dict[str, Path], tmp_path: Path,
                                     provider: Any) -> None:
    raster = block_raster(tmp_path, MEANS)  # UTM 33N, 10 m px, origin (500000, 4000000)
    x0, y0 = 500000.0, 4000000.0
    ext = lambda c, r: f"{x0 + c * 320},{x0 + (c + 1) * 320},{y0 - (r + 1) * 320},{y0 - r * 320}"  # noqa: E731
    res = run("comparetiles", {"IMAGE_A": str(raster), "EXTENT_A": ext(1, 0),  # mean 0.5
                               "IMAGE_B": str(raster), "EXTENT_B": ext(2, 1),  # mean 0.375
                               "MODEL": str(models["mean"])})
    # Each region is its own layer (stretched by its own 2-98 %): both become 0/1 halves, so the
    # comparison is about pattern, not the scene's absolute brightness (as for exemplars).
    assert 0.9 < res["SCORE"] <= 1.0


def _scores_layer(tmp_path: Path) -> Path:
    """A scores GeoPackage on the Mars sphere: 0.05 deg tiles, a 0.9 blob at (2 E, 1 N)."""
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromProj4("+proj=longlat +R=3396190 +no_defs")
    path = tmp_path / "scores.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("scores", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("score", ogr.OFTReal))
    lyr.CreateField(ogr.FieldDefn("score_dune", ogr.OFTReal))
    for x in np.arange(0, 3, 0.05):
        for y in np.arange(0, 2, 0.05):
            f = ogr.Feature(lyr.GetLayerDefn())
            d = math.hypot(x + 0.025 - 2.0, y + 0.025 - 1.0)
            f.SetField("score", 0.9 if d < 0.35 else 0.3)
            f.SetField("score_dune", 0.9 if math.hypot(x + 0.025 - 0.7, y + 0.025 - 1.0) < 0.35
                       else 0.3)
            f.SetGeometry(ogr.CreateGeometryFromWkt(
                f"POLYGON(({x} {y},{x + 0.05} {y},{x + 0.05} {y + 0.05},{x} {y + 0.05},{x} {y}))"))
            lyr.CreateFeature(f)
    ds = None
    return path


def test_rank_sites_with_field_exclusion_band_and_dem(provider: Any, tmp_path: Path) -> None:
    scores = _scores_layer(tmp_path)
    res = run("ranksites", {"SCORES": str(scores), "ELLIPSE_MAJOR_KM": 20,
                            "ELLIPSE_MINOR_KM": 7, "AZIMUTH": 90, "COUNT": 3,
                            "OUTPUT": str(tmp_path / "s1.gpkg")})
    assert res["N_SITES"] == 3
    assert abs(res["TOP_LON"] - 2.0) < 0.2 and abs(res["TOP_LAT"] - 1.0) < 0.3
    # another score field moves the best site to its own blob
    res = run("ranksites", {"SCORES": str(scores), "SCORE_FIELD": "score_dune", "COUNT": 1,
                            "OUTPUT": str(tmp_path / "s2.gpkg")})
    assert abs(res["TOP_LON"] - 0.7) < 0.2
    # exclusion over the blob, latitude band below it, a DEM too steep west of lon 1
    zones = QgsVectorLayer("Polygon?crs=proj4:+proj=longlat +R=3396190 +no_defs", "z", "memory")
    from qgis.core import QgsFeature, QgsGeometry

    feat = QgsFeature()
    feat.setGeometry(QgsGeometry.fromWkt("POLYGON((1.6 0.6,2.4 0.6,2.4 1.4,1.6 1.4,1.6 0.6))"))
    zones.dataProvider().addFeatures([feat])
    px = 0.01
    lon = np.arange(0, 3, px) + px / 2
    z = np.where(lon[None, :] < 1.0, (lon[None, :] * 59270.0), 0.0).repeat(200, 0)
    from rasterio.transform import from_origin
    dem = write_raster(tmp_path / "dem.tif", z.astype(np.float32),
                       crs="+proj=longlat +R=3396190 +no_defs",
                       transform=from_origin(0.0, 2.0, px, px))
    out = tmp_path / "s3.gpkg"
    res = run("ranksites", {"SCORES": str(scores), "EXCLUDE": zones, "LATITUDE_MAX": 1.5,
                            "DEM": str(dem), "MAX_SLOPE": 5, "COUNT": 4, "OUTPUT": str(out)})
    sites = QgsVectorLayer(f"{out}|layername=sites", "sites", "ogr")
    zone = feat.geometry()
    for s in sites.getFeatures():
        g = s.geometry()
        assert not g.intersects(zone)
        assert g.boundingBox().yMaximum() <= 1.5 + 1e-9
        assert g.boundingBox().xMinimum() >= 1.0 - 0.02  # never on the steep western part
        assert s["max_slope"] <= 5
        assert s["mean_elevation"] == pytest.approx(0.0, abs=1.0)
    assert [s["rank"] for s in sites.getFeatures()] == [1, 2, 3, 4]
    assert any(t == "sites" and d == 1 for t, d, _ in layer_styles(out))


def test_rank_sites_bad_field_is_clear(provider: Any, tmp_path: Path) -> None:
    scores = _scores_layer(tmp_path)
    with pytest.raises(QgsProcessingException, match="SCORE_FIELD 'nope'"):
        run("ranksites", {"SCORES": str(scores), "SCORE_FIELD": "nope",
                          "OUTPUT": str(tmp_path / "s.gpkg")})
    assert not (tmp_path / "s.gpkg").exists()


@pytest.mark.parametrize("cancel_after", [1, 3, 6])
def test_cancel_classify_and_rank_sites_keep_existing_output(
        three_class_library: Path, models: dict[str, Path], tmp_path: Path,
        cancel_after: int) -> None:
    """Cancel at several points: the old file stays byte for byte, no temporary file is left."""
    import processing

    from tests.qgis.conftest import MARS_TIF, RecordingFeedback

    for alg, params in (
        ("classifylandforms", {"INPUT": str(MARS_TIF), "LIBRARY": str(three_class_library),
                               "MODEL": str(models["mean"]), "TILE_SIZE": T,
                               "BATCH_SIZE": 8, "SMOOTH": "mrf"}),
        ("ranksites", {"SCORES": str(_scores_layer(tmp_path)), "COUNT": 3}),
    ):
        folder = tmp_path / alg
        folder.mkdir()
        out = folder / "out.gpkg"
        out.write_bytes(b"keep me")
        with pytest.raises(QgsProcessingException, match="(?i)cancel"):
            processing.run(f"analog:{alg}", {**params, "OUTPUT": str(out)},
                           feedback=RecordingFeedback(cancel_after=cancel_after))
        assert out.read_bytes() == b"keep me"
        assert sorted(p.name for p in folder.iterdir()) == ["out.gpkg"]

"""The command line and the Processing algorithm are two doors to the same engine: the same
inputs give the same GeoPackage (features, geometries, style), and the same parameter errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from osgeo import ogr

from analog_plugin.core import cli
from tests.qgis.conftest import MARS_TIF


def _features(path: Path) -> list[tuple[Any, ...]]:
    ds = ogr.Open(str(path))
    lyr = ds.GetLayerByName("scores")
    rows = [
        (f.GetField("tile_id"), f.GetField("row"), f.GetField("col"),
         round(f.GetField("score"), 9), f.GetField("best_class"), f.GetField("best_exemplar"),
         round(f.GetField("valid_frac"), 9), f.GetGeometryRef().ExportToWkt())
        for f in lyr
    ]
    styles = ds.ExecuteSQL("SELECT styleQML FROM layer_styles WHERE useAsDefault = 1")
    qml = styles.GetNextFeature().GetField(0)
    ds.ReleaseResultSet(styles)
    ds = None
    return [*rows, qml]


def test_cli_and_processing_write_the_same_geopackage(
        tmp_path: Path, library: Path, models: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    import processing

    params = {"INPUT": str(MARS_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"]),
              "TILE_SIZE": 64, "OVERLAP": 25, "MIN_VALID": 0.4, "DEVICE": "cpu",
              "BATCH_SIZE": 7}
    via_qgis = tmp_path / "qgis.gpkg"
    processing.run("analog:scoretiles", {**params, "OUTPUT": str(via_qgis)})
    via_cli = tmp_path / "cli.gpkg"
    argv = ["-q", "score"]
    for key, value in params.items():
        argv += ["--" + key.lower().replace("_", "-"), str(value)]
    assert cli.main([*argv, "--output", str(via_cli)]) == 0
    summary = json.loads(capsys.readouterr().out)
    a, b = _features(via_qgis), _features(via_cli)
    assert len(a) == summary["n_scored"] + 1 > 10
    assert a == b


@pytest.mark.parametrize(("flag", "value", "word"), [
    ("--overlap", "120", "OVERLAP"), ("--batch-size", "0", "BATCH_SIZE"),
    ("--tile-units", "furlongs", "TILE_UNITS"), ("--min-valid", "2", "MIN_VALID"),
])
def test_cli_rejects_what_processing_rejects_with_the_same_words(
        tmp_path: Path, library: Path, models: dict[str, Path], flag: str, value: str,
        word: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["score", "--input", str(MARS_TIF), "--library", str(library), "--model",
                   str(models["mean"]), "--output", str(tmp_path / "o.gpkg"), flag, value])
    assert rc == 1
    err = capsys.readouterr().err
    assert word in err and value in err
    assert not list(tmp_path.iterdir())


def _rows(path: Path, layer: str, fields: tuple[str, ...]) -> list[tuple[Any, ...]]:
    ds = ogr.Open(str(path))
    rows = [tuple(f.GetField(k) for k in fields) + (f.GetGeometryRef().ExportToWkt(),)
            for f in ds.GetLayerByName(layer)]
    ds = None
    return rows


def _argv(command: str, params: dict[str, Any]) -> list[str]:
    argv = ["-q", command]
    for key, value in params.items():
        argv += ["--" + key.lower().replace("_", "-"), str(value)]
    return argv


def test_cli_and_processing_classify_and_rank_the_same(
        tmp_path: Path, library: Path, models: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    import processing

    from tests.qgis.test_workflow import _scores_layer

    params = {"INPUT": str(MARS_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"]),
              "TILE_SIZE": 64, "K": 2, "SMOOTH": "majority", "MIN_VALID": 0.4}
    processing.run("analog:classifylandforms", {**params, "OUTPUT": str(tmp_path / "q.gpkg")})
    assert cli.main(_argv("classify", {**params, "OUTPUT": str(tmp_path / "c.gpkg")})) == 0
    fields = ("tile_id", "landform", "confidence", "second_landform", "valid_frac")
    a, b = _rows(tmp_path / "q.gpkg", "landforms", fields), _rows(tmp_path / "c.gpkg",
                                                                   "landforms", fields)
    assert len(a) > 10 and a == b
    capsys.readouterr()
    scores = _scores_layer(tmp_path)
    sites = {"SCORES": str(scores), "ELLIPSE_MAJOR_KM": 15, "ELLIPSE_MINOR_KM": 5, "AZIMUTH": 30,
             "COUNT": 3, "LATITUDE_MIN": 0.3}
    processing.run("analog:ranksites", {**sites, "OUTPUT": str(tmp_path / "qs.gpkg")})
    assert cli.main(_argv("rank-sites", {**sites, "OUTPUT": str(tmp_path / "cs.gpkg")})) == 0
    summary = json.loads(capsys.readouterr().out)
    fields = ("rank", "mean_score", "frac_above", "lat", "lon")
    a, b = _rows(tmp_path / "qs.gpkg", "sites", fields), _rows(tmp_path / "cs.gpkg", "sites",
                                                               fields)
    assert len(a) == summary["n_sites"] == 3 and a == b

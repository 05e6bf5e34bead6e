"""Library GeoPackage roundtrip/mismatch; scores writer; atomic writes; layer_styles."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from osgeo import ogr

from analog_plugin.core.atomic import atomic_output, validate_output_path
from analog_plugin.core.errors import (
    AnalogCancelled,
    LibraryError,
    LibraryModelMismatchError,
    OutputError,
)
from analog_plugin.core.feedback import Feedback, NullFeedback
from analog_plugin.core.gpkg_io import resolve_style
from analog_plugin.core.library import Exemplar, load_library, write_library
from analog_plugin.core.score_writer import ScoreWriter
from analog_plugin.core.tiling import Tile
from tests.core.conftest import MARS_TIF

SHA_A = "a" * 64


@dataclass(frozen=True)
class ScoreRecord:
    """A scored unit tile at column ``col`` (footprint x in [col, col+1], y in [0, 1])."""

    tile_id: int
    col: int
    score: float
    best_class: str
    best_exemplar: str
    valid_frac: float


def write_scores(path: Path, records: list[ScoreRecord], crs_wkt: str,
                 qml: Path | None = None, fb: Feedback | None = None) -> Path:
    """Write records through the streaming ScoreWriter, one batch each (transform: x = col,
    y = row, so tile (0, c) covers [c, c+1] x [0, 1])."""
    with ScoreWriter(path, crs_wkt, (1, 0, 0, 0, 1, 0), {}, qml, fb or NullFeedback()) as w:
        for r in records:
            tile = Tile(r.tile_id, 0, r.col, r.col, 0, 1, 1)
            w.write_tiles([tile], np.array([r.score]), [r.best_class], [r.best_exemplar],
                          np.array([r.valid_frac]))
        w.finish()
    return path.absolute()
SHA_B = "b" * 64


def _exemplars() -> list[Exemplar]:
    poly = ogr.CreateGeometryFromWkt("POLYGON((0 0,1 0,1 1,0 1,0 0))").ExportToWkb()
    return [
        Exemplar("dunes#3_0", "dunes", "r.tif#3", np.array([0.6, 0.8], np.float32), bytes(poly)),
        Exemplar("ice/img1", "ice", "/x/ice/img1.png", np.array([1.0, 0.0], np.float32), None),
    ]


def _mars_wkt() -> str:
    with rasterio.open(MARS_TIF) as ds:
        return ds.crs.to_wkt()


def test_library_roundtrip(tmp_path: Path) -> None:
    out = write_library(tmp_path / "lib.gpkg", _exemplars(), crs_wkt=_mars_wkt(),
                        model_sha256=SHA_A, model_version="1.0", input_size=32)
    lib = load_library(out, expected_sha256=SHA_A)
    assert lib.exemplar_ids == ("dunes#3_0", "ice/img1")
    assert lib.classes == ("dunes", "ice") and lib.class_names == ("dunes", "ice")
    assert lib.sources == ("r.tif#3", "/x/ice/img1.png")
    np.testing.assert_array_equal(lib.embeddings, np.array([[0.6, 0.8], [1.0, 0.0]], np.float32))
    assert lib.embeddings.dtype == np.float32
    assert lib.meta["n_exemplars"] == "2" and lib.meta["embedding_dim"] == "2"
    assert lib.meta["classes"] == '["dunes", "ice"]' and lib.meta["input_size"] == "32"
    ds = ogr.Open(str(out))
    lyr = ds.GetLayerByName("exemplars")
    assert lyr.GetSpatialRef().GetSemiMajor() == 3396190.0
    feats = list(lyr)
    assert feats[0].GetGeometryRef() is not None and feats[1].GetGeometryRef() is None


def test_library_mismatch_names_both_hashes(tmp_path: Path) -> None:
    out = write_library(tmp_path / "lib.gpkg", _exemplars(), crs_wkt="",
                        model_sha256=SHA_A, model_version="1.0", input_size=32)
    with pytest.raises(LibraryModelMismatchError) as ei:
        load_library(out, expected_sha256=SHA_B, model_label="model 'new.onnx'")
    msg = str(ei.value)
    assert SHA_A in msg and SHA_B in msg and "rebuild" in msg and "buildlibrary" in msg


def test_library_errors(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="not found"):
        load_library(tmp_path / "none.gpkg")
    bad = tmp_path / "bad.gpkg"
    bad.write_bytes(b"garbage")
    with pytest.raises(LibraryError):
        load_library(bad)
    with pytest.raises(LibraryError, match="no exemplar"):
        write_library(tmp_path / "e.gpkg", [], crs_wkt="", model_sha256=SHA_A,
                      model_version="1", input_size=32)
    # a scores file is not a library
    rec = ScoreRecord(0, 0, 0.5, "c", "e", 1.0)
    s = write_scores(tmp_path / "s.gpkg", [rec], "")
    with pytest.raises(LibraryError, match="not an analogue library"):
        load_library(s)


def _records(n: int = 3) -> list[ScoreRecord]:
    return [
        ScoreRecord(i, i, 0.25 * i, "dunes", f"dunes#1_{i}", 1.0 - 0.1 * i)
        for i in range(n)
    ]


def test_scores_written_in_mars_crs_with_default_style(tmp_path: Path) -> None:
    qml = tmp_path / "s.qml"
    qml.write_text("<qgis><renderer-v2 type='graduatedSymbol' attr='score'/></qgis>")
    out = write_scores(tmp_path / "scores.gpkg", _records(), _mars_wkt(), qml)
    ds = ogr.Open(str(out))
    lyr = ds.GetLayerByName("scores")
    srs = lyr.GetSpatialRef()
    assert srs.GetSemiMajor() == 3396190.0 and srs.IsGeographic()
    feats = list(lyr)
    assert [f.GetField("tile_id") for f in feats] == [0, 1, 2]
    assert feats[2].GetField("score") == 0.5 and feats[2].GetField("best_exemplar") == "dunes#1_2"
    assert feats[1].GetField("valid_frac") == pytest.approx(0.9)
    assert feats[1].GetGeometryRef().GetEnvelope() == (1.0, 2.0, 0.0, 1.0)
    ds = None
    con = sqlite3.connect(out)
    cols = [r[1] for r in con.execute("PRAGMA table_info(layer_styles)")]
    assert cols == ["id", "f_table_catalog", "f_table_schema", "f_table_name",
                    "f_geometry_column", "styleName", "styleQML", "styleSLD", "useAsDefault",
                    "description", "owner", "ui", "update_time"]
    row = con.execute("SELECT f_table_name, f_geometry_column, styleQML, useAsDefault "
                      "FROM layer_styles").fetchone()
    assert row == ("scores", "geom", qml.read_text(), 1)
    con.close()


def test_bundled_default_style_or_graceful_absence(tmp_path: Path) -> None:
    from analog_plugin.core.feedback import RecordingFeedback

    default = resolve_style(None, "scores.qml")
    fb = RecordingFeedback()
    out = write_scores(tmp_path / "s.gpkg", _records(1), "", default, fb)
    con = sqlite3.connect(out)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    if default is None:
        assert "layer_styles" not in tables and fb.warnings
    else:
        assert "layer_styles" in tables and not fb.warnings
    assert resolve_style(None, "no-such-style.qml") is None
    with pytest.raises(OutputError, match="not found"):
        resolve_style(tmp_path / "missing.qml", "scores.qml")


def test_validate_output_path(tmp_path: Path) -> None:
    assert validate_output_path(tmp_path / "a.GPKG") == (tmp_path / "a.GPKG").absolute()
    with pytest.raises(OutputError, match=r"ending in '\.gpkg'"):
        validate_output_path(tmp_path / "a.shp")
    with pytest.raises(OutputError, match="does not exist"):
        validate_output_path(tmp_path / "nodir" / "a.gpkg")
    (tmp_path / "d.gpkg").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        validate_output_path(tmp_path / "d.gpkg")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_unwritable_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot write"):
            validate_output_path(ro / "a.gpkg")
    finally:
        ro.chmod(0o700)


def test_unwritable_folder_via_mkstemp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def deny(*a: object, **k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", deny)
    with pytest.raises(OutputError, match="cannot write in the output folder"):
        validate_output_path(tmp_path / "a.gpkg")


def _only(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("exc", [RuntimeError("boom"), AnalogCancelled("cancel"),
                                 KeyboardInterrupt()])
def test_atomic_failure_leaves_existing_output_untouched(tmp_path: Path,
                                                         exc: BaseException) -> None:
    target = write_scores(tmp_path / "out.gpkg", _records(2), "")
    before = target.read_bytes()
    with pytest.raises(type(exc)), atomic_output(target) as tmp:
        write_scores(tmp, _records(5), "")  # a complete file, then a failure
        assert tmp.exists() and tmp.parent == tmp_path
        raise exc
    assert target.read_bytes() == before
    assert _only(tmp_path) == ["out.gpkg"]


def test_atomic_success_replaces(tmp_path: Path) -> None:
    target = write_scores(tmp_path / "out.gpkg", _records(2), "")
    write_scores(target, _records(4), "")
    ds = ogr.Open(str(target))
    assert ds.GetLayer(0).GetFeatureCount() == 4
    ds = None
    assert _only(tmp_path) == ["out.gpkg"]

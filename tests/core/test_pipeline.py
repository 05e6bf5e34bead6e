"""End-to-end build_library / score_raster with analytic models: exact scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr

from analog_plugin.core.errors import (
    AnalogCancelled,
    DeviceUnavailableError,
    LibraryError,
    LibraryModelMismatchError,
    ModelContractError,
    NoValidTilesError,
    OutputError,
    TilingError,
)
from analog_plugin.core.feedback import RecordingFeedback
from analog_plugin.core.library import load_library
from analog_plugin.core.pipeline import ExemplarPolygon, build_library, score_raster
from tests.core.conftest import MARS_TIF, RGB_TIF, MakeRaster
from tests.onnx_models import expected_mean_embedding, make_broken_model, make_mean_model

X0, Y0, PX = 500000.0, 4000000.0, 10.0  # conftest raster origin and pixel size


def _rect(c0: float, r0: float, c1: float, r1: float) -> bytes:
    """Polygon from pixel coords of the conftest UTM rasters, as WKB."""
    x0, x1 = X0 + c0 * PX, X0 + c1 * PX
    y0, y1 = Y0 - r1 * PX, Y0 - r0 * PX
    g = ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))")
    return bytes(g.ExportToWkb())


def _scores(path: Path) -> dict[int, dict]:  # type: ignore[type-arg]
    ds = ogr.Open(str(path))
    return {f.GetField("tile_id"): f.items() for f in ds.GetLayerByName("scores")}


@pytest.fixture
def library(tmp_path: Path, three_band_raster: Path, mean_model: Path) -> Path:
    out = tmp_path / "lib.gpkg"
    build_library(
        model_path=mean_model, output_path=out, raster_path=three_band_raster,
        polygons=[ExemplarPolygon(_rect(34, 2, 62, 30), "mid", "blocks#7"),
                  ExemplarPolygon(_rect(64, 0, 96, 32), "high", "blocks#8")],
    )
    return out


def test_build_library_from_polygons(library: Path, mean_model: Path) -> None:
    lib = load_library(library)
    # small polygon (28 px) -> one tile-sized window centred on it: exactly the middle block
    assert lib.exemplar_ids == ("mid#7_0", "high#8_0")
    assert lib.sources == ("blocks#7", "blocks#8")
    np.testing.assert_allclose(lib.embeddings[0], expected_mean_embedding(0.5), atol=1e-6)
    np.testing.assert_allclose(lib.embeddings[1], expected_mean_embedding(1.0), atol=1e-6)


def test_score_exact(tmp_path: Path, three_band_raster: Path, library: Path,
                     mean_model: Path) -> None:
    fb = RecordingFeedback()
    out = tmp_path / "scores.gpkg"
    s = score_raster(raster_path=three_band_raster, library_path=library, model_path=mean_model,
                     output_path=out, feedback=fb, batch_size=2)
    assert (s.n_tiles, s.n_scored, s.n_skipped) == (3, 3, 0)
    assert s.provider == "CPUExecutionProvider" and s.output_path == out
    rows = _scores(out)
    e_mid, e_high = expected_mean_embedding(0.5), expected_mean_embedding(1.0)
    cos0 = float(expected_mean_embedding(0.0) @ e_mid)  # 1/sqrt(1.25) beats 1/sqrt(2)
    assert rows[0]["best_class"] == "mid" and rows[0]["best_exemplar"] == "mid#7_0"
    assert rows[0]["score"] == pytest.approx((1 + cos0) / 2, abs=1e-6)
    assert rows[0]["score"] == pytest.approx((1 + 1 / math.sqrt(1.25)) / 2, abs=1e-6)
    assert rows[1]["best_class"] == "mid" and rows[1]["score"] == pytest.approx(1.0, abs=1e-6)
    assert rows[2]["best_class"] == "high" and rows[2]["score"] == pytest.approx(1.0, abs=1e-6)
    assert float(e_mid @ e_high) < 1
    assert [rows[i]["col"] for i in range(3)] == [0, 1, 2]
    assert all(r["valid_frac"] == 1.0 for r in rows.values())
    assert fb.progress[-1] == 100.0 and fb.progress == sorted(fb.progress)
    ds = ogr.Open(str(out))  # keep ds/feature referenced: OGR children die with their parent
    feat = ds.GetLayer("scores").GetFeature(3)  # FIDs start at 1: tile_id 2
    env = feat.GetGeometryRef().GetEnvelope()
    assert env == (X0 + 640, X0 + 960, Y0 - 320, Y0)


def test_normalisation_metadata_is_applied(tmp_path: Path, three_band_raster: Path) -> None:
    # mean=0.5, std=0.25: model input = (x - 0.5) / 0.25 -> tile means -2, 0, 2
    m = make_mean_model(tmp_path / "n.onnx", mean=[0.5], std=[0.25])
    lib = tmp_path / "lib.gpkg"
    build_library(model_path=m, output_path=lib, raster_path=three_band_raster,
                  polygons=[ExemplarPolygon(_rect(0, 0, 32, 32), "low", "b#1")])
    np.testing.assert_allclose(load_library(lib).embeddings[0], expected_mean_embedding(-2.0),
                               atol=1e-6)
    out = tmp_path / "s.gpkg"
    score_raster(raster_path=three_band_raster, library_path=lib, model_path=m, output_path=out)
    cos = float(expected_mean_embedding(2.0) @ expected_mean_embedding(-2.0))
    assert _scores(out)[2]["score"] == pytest.approx((1 + cos) / 2, abs=1e-6)


def test_edge_tiles_padding_and_min_valid(tmp_path: Path, make_raster: MakeRaster,
                                          library: Path, mean_model: Path) -> None:
    r = make_raster(np.full((40, 70), 50, np.uint16))  # 3 x 2 tiles of 32 (padding)
    out = tmp_path / "s.gpkg"
    s = score_raster(raster_path=r, library_path=library, model_path=mean_model,
                     output_path=out, min_valid=0.2)
    assert s.n_tiles == 6
    rows = _scores(out)
    # col 2 covers 64..96 -> 6 of 32 px inside; row 1 covers 32..64 -> 8 of 32 rows inside
    assert rows[0]["valid_frac"] == 1.0
    assert rows[1]["valid_frac"] == 1.0
    assert rows[3]["valid_frac"] == pytest.approx(8 / 32)
    assert 2 not in rows and 5 not in rows  # 6/32 = 0.1875 and 6*8/1024 < 0.2: skipped
    assert s.n_skipped == 2


def test_overlap_extent_mask_and_nodata(tmp_path: Path, make_raster: MakeRaster,
                                        library: Path, mean_model: Path) -> None:
    a = np.full((64, 128), 50, np.uint16)
    a[:, 96:] = 0  # nodata right quarter
    r = make_raster(a, nodata=0)
    out = tmp_path / "s.gpkg"
    s = score_raster(raster_path=r, library_path=library, model_path=mean_model,
                     output_path=out, overlap=50)
    assert s.n_tiles == 7 * 3  # ceil((128-32)/16)+1, ceil((64-32)/16)+1
    rows = _scores(out)
    assert rows[5]["valid_frac"] == 0.5 and 6 not in rows
    # extent: pixels 32..96 x 0..32 -> 2 x 1 tiles (no overlap), row/col from the extent
    s2 = score_raster(raster_path=r, library_path=library, model_path=mean_model,
                      output_path=out, extent=(X0 + 320, Y0 - 320, X0 + 960, Y0))
    assert (s2.n_tiles, s2.n_scored) == (2, 2)
    rows = _scores(out)
    assert rows[1]["col"] == 1 and rows[1]["row"] == 0
    # mask: only the left 40 px -> tile 0 full, tile 1 8/32 inside -> skipped
    s3 = score_raster(raster_path=r, library_path=library, model_path=mean_model,
                      output_path=out, mask_wkb=[_rect(0, 0, 40, 64)])
    assert (s3.n_tiles, s3.n_scored) == (8, 2)
    assert sorted(_scores(out)) == [0, 4]
    with pytest.raises(TilingError, match="mask polygons do not overlap"):
        score_raster(raster_path=r, library_path=library, model_path=mean_model,
                     output_path=out, mask_wkb=[_rect(500, 500, 600, 600)])


def test_all_nodata_raises(tmp_path: Path, make_raster: MakeRaster, library: Path,
                           mean_model: Path) -> None:
    r = make_raster(np.zeros((64, 64), np.float32), nodata=0.0)
    with pytest.raises(NoValidTilesError, match="all 4 tiles"):
        score_raster(raster_path=r, library_path=library, model_path=mean_model,
                     output_path=tmp_path / "s.gpkg")
    assert not (tmp_path / "s.gpkg").exists()


def test_float_nan_raster(tmp_path: Path, make_raster: MakeRaster, library: Path,
                          mean_model: Path) -> None:
    a = np.full((32, 64), 100.0, np.float32)
    a[:, :16] = np.nan
    a[0, 40] = 50.0
    out = tmp_path / "s.gpkg"
    s = score_raster(raster_path=make_raster(a), library_path=library, model_path=mean_model,
                     output_path=out, min_valid=0.6)
    assert (s.n_scored, s.n_skipped) == (1, 1)
    assert _scores(out)[1]["valid_frac"] == 1.0


def test_mismatch_device_and_output_validated_first(tmp_path: Path, three_band_raster: Path,
                                                    library: Path, mean_model: Path) -> None:
    other = make_mean_model(tmp_path / "other.onnx", const=2.0)
    kw = dict(raster_path=three_band_raster, library_path=library,
              output_path=tmp_path / "s.gpkg")
    with pytest.raises(LibraryModelMismatchError, match="rebuild"):
        score_raster(model_path=other, **kw)  # type: ignore[arg-type]
    with pytest.raises(ModelContractError):
        score_raster(model_path=make_broken_model(tmp_path / "b.onnx", "not_normalised"),
                     **kw)  # type: ignore[arg-type]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(DeviceUnavailableError):
            score_raster(model_path=mean_model, device="cuda", **kw)  # type: ignore[arg-type]
    with pytest.raises(OutputError):
        score_raster(model_path=tmp_path / "missing.onnx", raster_path=three_band_raster,
                     library_path=library, output_path=tmp_path / "nodir" / "s.gpkg")
    with pytest.raises(TilingError, match="(?i)overlap"):
        score_raster(model_path=mean_model, overlap=99, **kw)  # type: ignore[arg-type]
    with pytest.raises(TilingError, match="smaller than one tile"):
        score_raster(model_path=mean_model, tile_size=64, **kw)  # type: ignore[arg-type]


def test_cancel_leaves_existing_output(tmp_path: Path, make_raster: MakeRaster,
                                       library: Path, mean_model: Path) -> None:
    r = make_raster(np.full((128, 128), 50, np.uint16))
    out = tmp_path / "s.gpkg"
    score_raster(raster_path=r, library_path=library, model_path=mean_model, output_path=out,
                 tile_size=64)
    before = out.read_bytes()
    names = sorted(p.name for p in tmp_path.iterdir())
    fb = RecordingFeedback(cancel_after=5)
    with pytest.raises(AnalogCancelled):
        score_raster(raster_path=r, library_path=library, model_path=mean_model,
                     output_path=out, batch_size=4, feedback=fb)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_mars_metres_rgb_luma_end_to_end(tmp_path: Path) -> None:
    model = make_mean_model(tmp_path / "m.onnx")
    lib = tmp_path / "lib.gpkg"
    poly = ogr.CreateGeometryFromWkt("POLYGON((0 0,20 0,20 20,0 20,0 0))").ExportToWkb()
    summary = build_library(model_path=model, output_path=lib, raster_path=MARS_TIF,
                            polygons=[ExemplarPolygon(bytes(poly), "crater", "craters#1")])
    assert summary.classes == ("crater",) and summary.n_exemplars >= 1
    px_m = 0.3515625 * math.pi / 180 * 3396190
    out = tmp_path / "mars.gpkg"
    s = score_raster(raster_path=MARS_TIF, library_path=lib, model_path=model,
                     output_path=out, tile_size=64 * px_m, tile_units="metres")
    assert s.n_tiles == 16 * 8
    ds = ogr.Open(str(out))
    assert ds.GetLayer("scores").GetSpatialRef().GetSemiMajor() == 3396190.0
    # 3-band Earth RGB on a 1-channel model -> luma; edge tiles padded
    out2 = tmp_path / "rgb.gpkg"
    s2 = score_raster(raster_path=RGB_TIF, library_path=lib, model_path=model,
                      output_path=out2, tile_size=100)
    assert s2.n_tiles == 5 * 4 and s2.n_scored > 0


def test_bands_mismatch_with_model(tmp_path: Path, library: Path, mean_model: Path) -> None:
    with pytest.raises(TilingError, match="BANDS"):
        score_raster(raster_path=RGB_TIF, library_path=library, model_path=mean_model,
                     output_path=tmp_path / "s.gpkg", bands=[1, 2])


def test_build_library_from_image_folder(tmp_path: Path, mean_model: Path) -> None:
    import warnings

    import rasterio

    root = tmp_path / "exemplars"
    for cls, vals in (("dunes", (10, 20)), ("ice", (30,))):
        (root / cls).mkdir(parents=True)
        for i, v in enumerate(vals):
            a = np.full((1, 40, 40), v, np.uint8)
            a[0, :, :20] = v + 100  # stretch: left half 1, right half 0 -> mean 0.5
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.open(root / cls / f"img{i}.png", "w", driver="PNG", width=40,
                                   height=40, count=1, dtype="uint8") as ds:
                    ds.write(a)
    (root / "loose.tif").write_bytes(b"not an image")  # unreadable: warned and skipped
    fb = RecordingFeedback()
    out = tmp_path / "lib.gpkg"
    s = build_library(model_path=mean_model, output_path=out, image_folder=root, feedback=fb)
    assert s.n_exemplars == 3 and s.classes == ("dunes", "ice")
    lib = load_library(out)
    assert lib.exemplar_ids == ("dunes/img0", "dunes/img1", "ice/img0")
    np.testing.assert_allclose(lib.embeddings, [expected_mean_embedding(0.5)] * 3, atol=1e-6)
    assert any("loose.tif" in w for w in fb.warnings)


def test_build_library_argument_errors(tmp_path: Path, mean_model: Path,
                                       three_band_raster: Path) -> None:
    out = tmp_path / "lib.gpkg"
    with pytest.raises(LibraryError, match="nothing to build"):
        build_library(model_path=mean_model, output_path=out)
    with pytest.raises(LibraryError, match="without a raster"):
        build_library(model_path=mean_model, output_path=out,
                      polygons=[ExemplarPolygon(_rect(0, 0, 5, 5), "a", "s")])
    with pytest.raises(TilingError, match="outside the raster"):
        build_library(model_path=mean_model, output_path=out, raster_path=three_band_raster,
                      polygons=[ExemplarPolygon(_rect(500, 500, 510, 510), "a", "s#1")])
    with pytest.raises(LibraryError, match="does not exist"):
        build_library(model_path=mean_model, output_path=out, image_folder=tmp_path / "none")
    with pytest.raises(AnalogCancelled):
        build_library(model_path=mean_model, output_path=out, raster_path=three_band_raster,
                      polygons=[ExemplarPolygon(_rect(0, 0, 96, 32), "a", "s#1")],
                      feedback=RecordingFeedback(cancel_after=0))
    assert not out.exists()


def test_large_polygon_is_tiled(tmp_path: Path, mean_model: Path, make_raster: MakeRaster) -> None:
    r = make_raster(np.tile(np.arange(128, dtype=np.uint16), (64, 1)))
    out = tmp_path / "lib.gpkg"
    # an L-shaped polygon: only tiles at least half inside become exemplars
    wkt_l = (f"POLYGON(({X0} {Y0}, {X0 + 1280} {Y0}, {X0 + 1280} {Y0 - 320}, {X0 + 320} "
             f"{Y0 - 320}, {X0 + 320} {Y0 - 640}, {X0} {Y0 - 640}, {X0} {Y0}))")
    g = bytes(ogr.CreateGeometryFromWkt(wkt_l).ExportToWkb())
    s = build_library(model_path=mean_model, output_path=out, raster_path=r,
                      polygons=[ExemplarPolygon(g, "ell", "lyr#4")])
    lib = load_library(out)
    assert s.n_exemplars == 5  # top row 4 tiles + bottom-left 1
    assert lib.exemplar_ids == tuple(f"ell#4_{k}" for k in range(5))

"""Hardening (second part): hand-edited libraries, unsupported models, vector inputs in other CRSs
or on other bodies, degenerate polygons, output equal to an input, read-only and full disks.

Every case checks three things: the error is one of ours and names what was wrong, an existing
output is left byte for byte, and no temporary file is left behind.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import rasterio
from osgeo import ogr, osr
from rasterio.transform import Affine

from analog_plugin.core.cli import main
from analog_plugin.core.errors import (
    AnalogError,
    LibraryError,
    ModelLoadError,
    OutputError,
    TilingError,
)
from analog_plugin.core.library import load_library
from analog_plugin.core.library_job import build_library
from analog_plugin.core.score_job import score_raster
from analog_plugin.core.vector_io import read_polygons
from tests.onnx_models import make_mean_model

MARS_EQC = ('PROJCS["Mars eqc",GEOGCS["Mars 2000",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG"'
            ',3396190,0]],PRIMEM["Reference_Meridian",0],UNIT["Degree",0.0174532925199433]],'
            'PROJECTION["Equirectangular"],PARAMETER["standard_parallel_1",0],'
            'PARAMETER["central_meridian",0],PARAMETER["false_easting",0],'
            'PARAMETER["false_northing",0],UNIT["metre",1]]')
MOON_GEO = ('GEOGCS["Moon 2000",DATUM["D_Moon_2000",SPHEROID["Moon_2000_IAU_IAG",1737400,0]],'
            'PRIMEM["Reference_Meridian",0],UNIT["Degree",0.0174532925199433]]')
UTM = "EPSG:32633"
OLD = b"old output"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from PIL import Image

    d = tmp_path_factory.mktemp("faults")
    model = make_mean_model(d / "m.onnx", input_size=32, channels=1)
    (d / "ex" / "dune").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(
            d / "ex" / "dune" / f"x{i}.png")
    lib = d / "lib.gpkg"
    build_library(model_path=model, output_path=lib, image_folder=d / "ex")
    arr = (rng.random((128, 128)) * 200 + 20).astype(np.uint8)
    ras = d / "utm.tif"
    with rasterio.open(ras, "w", driver="GTiff", width=128, height=128, count=1, dtype="uint8",
                       crs=UTM, transform=Affine(10, 0, 500000, 0, -10, 4000000)) as ds:
        ds.write(arr, 1)
    return {"dir": d, "model": model, "lib": lib, "raster": ras}


def keep(env: dict[str, Path], name: str) -> Path:
    out = env["dir"] / name
    out.write_bytes(OLD)
    return out


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp-" in p.name]


def run_score(env: dict[str, Path], out: Path, lib: Path | None = None, **kw: Any) -> Any:
    raster = kw.pop("raster", env["raster"])
    args: dict[str, Any] = {"tile_size": 32, "min_valid": 0.0, **kw}
    return score_raster(raster_path=raster, library_path=lib or env["lib"],
                        output_path=out, model_path=env["model"], **args)


# ---- libraries edited by hand -----------------------------------------------------------------

def edited_library(env: dict[str, Path], name: str, *sql: str) -> Path:
    """A copy of the library with ``sql`` run on it through OGR (whose SQLite connection has the
    GeoPackage functions the R-tree triggers call)."""
    lib = env["dir"] / name
    shutil.copy(env["lib"], lib)
    ds = ogr.Open(str(lib), 1)
    for statement in sql:
        ds.ExecuteSQL(statement)
    ds = None
    return lib


LIBRARY_EDITS: dict[str, tuple[tuple[str, ...], str]] = {
    "embedding cut short": (
        ("UPDATE exemplars SET embedding = substr(embedding, 1, 4) WHERE fid = 1",),
        r"has 1 embedding values, expected embedding_dim 2"),
    "NULL embedding": (("UPDATE exemplars SET embedding = NULL WHERE fid = 2",),
                       r"has 0 embedding values"),
    "NaN embedding": (
        ("UPDATE exemplars SET embedding = zeroblob(length(embedding)) WHERE fid = 1",),
        r"NaN, infinite or all-zero embedding"),
    "NULL class": (("UPDATE exemplars SET class = NULL WHERE fid = 3",),
                   r"has no class \(NULL or blank\)"),
    "blank class": (("UPDATE exemplars SET class = '  ' WHERE fid = 1",), r"has no class"),
    "embedding field dropped": (("ALTER TABLE exemplars DROP COLUMN embedding",),
                                r"lacks the field\(s\) \['embedding'\]"),
    "class field dropped": (("ALTER TABLE exemplars DROP COLUMN class",),
                            r"lacks the field\(s\) \['class'\]"),
    "embedding_dim edited": (
        ("UPDATE library_meta SET value = 'seven' WHERE key = 'embedding_dim'",),
        r"bad embedding_dim 'seven'"),
    "metadata table emptied": (("DELETE FROM library_meta",),
                               r"lacks model_sha256/embedding_dim metadata"),
    "every exemplar deleted": (("DELETE FROM exemplars",), r"has no exemplars"),
}


@pytest.mark.parametrize("case", sorted(LIBRARY_EDITS))
def test_hand_edited_library_is_refused_and_loses_nothing(env: dict[str, Path], case: str) -> None:
    sql, message = LIBRARY_EDITS[case]
    slug = "".join(c if c.isalnum() else "_" for c in case)
    lib = edited_library(env, f"edit_{slug}.gpkg", *sql)
    out = keep(env, f"edit_out_{slug}.gpkg")
    with pytest.raises(LibraryError, match=message):
        run_score(env, out, lib)
    assert out.read_bytes() == OLD
    assert no_temp_files(env["dir"])


def test_library_that_is_not_a_geopackage(env: dict[str, Path]) -> None:
    lib = env["dir"] / "text.gpkg"
    lib.write_text("not a database")
    with pytest.raises(LibraryError, match="cannot open library .* as a GeoPackage"):
        load_library(lib)


def test_embedding_scaled_by_hand_is_renormalised(env: dict[str, Path]) -> None:
    lib = env["dir"] / "scaled.gpkg"
    shutil.copy(env["lib"], lib)
    ref = load_library(env["lib"]).embeddings
    ds = ogr.Open(str(lib), 1)
    lyr = ds.GetLayerByName("exemplars")
    feat = lyr.GetFeature(1)
    vec = np.frombuffer(feat.GetFieldAsBinary("embedding"), dtype="<f4") * 3.0
    feat.SetFieldBinaryFromHexString("embedding", vec.astype("<f4").tobytes().hex())
    lyr.SetFeature(feat)
    feat = lyr = ds = None
    got = load_library(lib).embeddings
    np.testing.assert_allclose(got, ref, atol=1e-6)


# ---- models -----------------------------------------------------------------------------------

def test_unsupported_opset_is_a_clear_model_error(env: dict[str, Path]) -> None:
    model = onnx.load(str(env["model"]))
    model.opset_import[0].version = 99  # no runtime implements it
    path = env["dir"] / "opset99.onnx"
    onnx.save(model, str(path))
    out = keep(env, "opset_out.gpkg")
    with pytest.raises(ModelLoadError, match=r"opset99\.onnx.*needs ONNX opset 99.*re-export"):
        score_raster(raster_path=env["raster"], library_path=env["lib"], output_path=out,
                     model_path=path, tile_size=32)
    assert out.read_bytes() == OLD


def test_truncated_onnx_is_a_clear_model_error(env: dict[str, Path]) -> None:
    path = env["dir"] / "half.onnx"
    data = env["model"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = keep(env, "half_out.gpkg")
    with pytest.raises(ModelLoadError, match=r"half\.onnx"):
        score_raster(raster_path=env["raster"], library_path=env["lib"], output_path=out,
                     model_path=path, tile_size=32)
    assert out.read_bytes() == OLD


# ---- vector inputs: other CRS, other body, degenerate polygons -------------------------------

def polygon_file(path: Path, wkt_crs: str, rings: list[list[tuple[float, float]]]) -> Path:
    srs = osr.SpatialReference()
    if wkt_crs.startswith("EPSG:"):
        srs.ImportFromEPSG(int(wkt_crs[5:]))
    else:
        srs.ImportFromWkt(wkt_crs)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("zones", srs, ogr.wkbPolygon)
    for ring in rings:
        r = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in ring:
            r.AddPoint_2D(x, y)
        poly = ogr.Geometry(ogr.wkbPolygon)
        poly.AddGeometry(r)
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetGeometry(poly)
        lyr.CreateFeature(feat)
    feat = lyr = ds = None
    return path


def raster_wkt(path: Path) -> str:
    with rasterio.open(path) as ds:
        return str(ds.crs.to_wkt())


def test_mask_in_another_crs_is_reprojected(env: dict[str, Path]) -> None:
    """A lon/lat (EPSG:4326) square over the raster's top-left 64 x 64 px selects the same tiles
    as the square drawn in the raster's own UTM coordinates."""
    from pyproj import Transformer

    to_geo = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    x0, y0, x1, y1 = 500000, 4000000 - 640, 500640, 4000000
    utm_ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    geo_ring = [to_geo.transform(x, y) for x, y in utm_ring]
    wkt = raster_wkt(env["raster"])
    utm_rows, _ = read_polygons(str(polygon_file(env["dir"] / "m_utm.gpkg", UTM, [utm_ring])), wkt)
    geo_rows, _ = read_polygons(str(polygon_file(env["dir"] / "m_geo.gpkg", "EPSG:4326",
                                                 [geo_ring])), wkt)
    a = ogr.CreateGeometryFromWkb(utm_rows[0][0])
    b = ogr.CreateGeometryFromWkb(geo_rows[0][0])
    assert b.SymDifference(a).GetArea() < 1e-3 * a.GetArea()  # within a metre of the edges
    summary = run_score(env, env["dir"] / "masked_geo.gpkg", mask_wkb=[geo_rows[0][0]],
                        min_valid=0.9)
    assert summary.n_scored == 4  # the 2 x 2 tiles of 32 px inside the 64 px square


def test_polygons_on_another_body_are_refused(env: dict[str, Path]) -> None:
    moon = polygon_file(env["dir"] / "moon.gpkg", MOON_GEO,
                        [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]])
    with pytest.raises(TilingError, match="different celestial bodies"):
        read_polygons(str(moon), MARS_EQC)


def test_mask_that_misses_the_raster(env: dict[str, Path]) -> None:
    far = polygon_file(env["dir"] / "far.gpkg", UTM,
                       [[(0, 0), (100, 0), (100, 100), (0, 100), (0, 0)]])
    rows, _ = read_polygons(str(far), raster_wkt(env["raster"]))
    out = keep(env, "miss_out.gpkg")
    with pytest.raises(AnalogError, match="(?i)mask"):
        run_score(env, out, mask_wkb=[rows[0][0]])
    assert out.read_bytes() == OLD


def test_zero_area_and_self_intersecting_polygons(env: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A bow-tie is repaired (MakeValid: two triangles), a zero-area sliver selects no tile
    and is said to, clearly; neither crashes."""
    x0, y1 = 500000, 4000000
    bowtie = [(x0, y1 - 640), (x0 + 640, y1), (x0 + 640, y1 - 640), (x0, y1), (x0, y1 - 640)]
    sliver = [(x0, y1), (x0 + 640, y1), (x0 + 320, y1), (x0, y1)]
    wkt = raster_wkt(env["raster"])
    rows, _ = read_polygons(str(polygon_file(env["dir"] / "bow.gpkg", UTM, [bowtie])), wkt)
    geom = ogr.CreateGeometryFromWkb(rows[0][0])
    assert geom.IsValid() and geom.GetArea() == pytest.approx(640 * 640 / 2, rel=1e-6)
    summary = run_score(env, env["dir"] / "bow_out.gpkg", mask_wkb=[rows[0][0]], min_valid=0.01)
    assert summary.n_scored > 0
    rows, _ = read_polygons(str(polygon_file(env["dir"] / "sliver.gpkg", UTM, [sliver])), wkt)
    assert rows == []  # repaired into lines: no area, not a polygon (the CLI then says so)
    out = keep(env, "sliver_out.gpkg")
    rc = main(["score", "--input", str(env["raster"]), "--library", str(env["lib"]),
               "--model", str(env["model"]), "--tile-size", "32",
               "--mask", str(env["dir"] / "sliver.gpkg"), "--output", str(out)])
    assert rc == 1
    assert "MASK has no polygon" in capsys.readouterr().err
    assert out.read_bytes() == OLD


# ---- outputs: equal to an input, read-only place, full disk ------------------------------------

def test_output_equal_to_an_input_is_refused(env: dict[str, Path]) -> None:
    lib_copy = env["dir"] / "lib_same.gpkg"
    shutil.copy(env["lib"], lib_copy)
    before = lib_copy.read_bytes()
    with pytest.raises(OutputError, match="(?i)same file|input"):
        run_score(env, lib_copy, lib_copy)
    assert lib_copy.read_bytes() == before


@pytest.fixture()
def small_mount(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mount(options)``: a 1 MB tmpfs (root only; the CI machine runs as root)."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): needs root")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_full_disk_keeps_the_old_output(env: dict[str, Path],
                                        small_mount: Callable[[str], Path]) -> None:
    """A 1 MB disk with the old output on it: the new GeoPackage (about 1.3 MB for this many
    tiles) does not fit; the run fails with an OutputError naming the disk, the old file stays,
    the partial temp file is removed."""
    point = small_mount("size=1m")
    out = point / "scores.gpkg"
    out.write_bytes(OLD)
    big = env["dir"] / "big.tif"
    arr = (np.random.default_rng(5).random((1024, 1024)) * 200).astype(np.uint8)
    with rasterio.open(big, "w", driver="GTiff", width=1024, height=1024, count=1, dtype="uint8",
                       crs=UTM, transform=Affine(10, 0, 500000, 0, -10, 4000000)) as ds:
        ds.write(arr, 1)
    with pytest.raises(OutputError, match="(?i)no space|disk|full|write"):
        run_score(env, out, raster=big, tile_size=8)
    assert out.read_bytes() == OLD
    assert no_temp_files(point)


def test_read_only_place_is_refused_before_any_work(env: dict[str, Path],
                                                    small_mount: Callable[[str], Path]) -> None:
    point = small_mount("size=1m,ro")
    with pytest.raises(OutputError, match="cannot write in the output folder"):
        run_score(env, point / "scores.gpkg")


def test_cli_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import analog_plugin.core.cli as cli_module

    def boom(*_a: Any) -> None:
        raise RuntimeError("GDAL said no")

    monkeypatch.setattr(cli_module, "run", boom)
    monkeypatch.delenv("ANALOG_DEBUG", raising=False)
    assert main(["compare", "--image-a", "a.png", "--image-b", "b.png"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unexpected RuntimeError: GDAL said no (a bug: please report it with "
                   "the command line; ANALOG_DEBUG=1 shows the traceback)"]

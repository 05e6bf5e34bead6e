"""Hardening (first part): every GDAL data type, rotated geotransforms, rasters without CRS, and
every numeric parameter at, below and above its range, plus a fuzz of parameter parsing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine

from analog_plugin.core import params as P
from analog_plugin.core.errors import AnalogError, ParameterError, RasterReadError, TilingError
from analog_plugin.core.library_job import build_library
from analog_plugin.core.score_job import score_raster
from tests.onnx_models import make_mean_model


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from PIL import Image

    d = tmp_path_factory.mktemp("robust")
    model = make_mean_model(d / "m.onnx", input_size=32, channels=1)
    (d / "ex" / "a").mkdir(parents=True)
    Image.fromarray((np.arange(1024).reshape(32, 32) % 256).astype(np.uint8)).save(
        d / "ex" / "a" / "x.png")
    lib = d / "lib.gpkg"
    build_library(model_path=model, output_path=lib, image_folder=d / "ex")
    return {"dir": d, "model": model, "lib": lib}


UTM_10M = Affine(10, 0, 0, 0, -10, 0)


def raster(path: Path, arr: np.ndarray, transform: Affine = UTM_10M,
           crs: str | None = "EPSG:32633") -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0],
                       count=1, dtype=arr.dtype, crs=crs, transform=transform) as ds:
        ds.write(arr, 1)
    return path


def score(env: dict[str, Path], path: Path, **kw: Any) -> Any:
    out = env["dir"] / f"{path.stem}_{kw.get('tile_units', 'px')}.gpkg"
    args = {"tile_size": 32, "min_valid": 0.0, **kw}
    return score_raster(raster_path=path, library_path=env["lib"], output_path=out,
                        model_path=env["model"], **args)


RNG = np.random.default_rng(0)
REAL = {"uint8": RNG.integers(0, 255, (64, 64)), "int8": RNG.integers(-100, 100, (64, 64)),
        "uint16": RNG.integers(0, 60000, (64, 64)), "int16": RNG.integers(-3000, 3000, (64, 64)),
        "uint32": RNG.integers(0, 2**31, (64, 64)), "int32": RNG.integers(-2**30, 2**30, (64, 64)),
        "float32": RNG.random((64, 64)) * 100, "float64": RNG.random((64, 64)) * 1e6}


@pytest.mark.parametrize("dtype", sorted(REAL))
def test_every_real_gdal_type_is_scored(env: dict[str, Path], dtype: str) -> None:
    arr = REAL[dtype].astype(dtype)
    res = score(env, raster(env["dir"] / f"{dtype}.tif", arr))
    assert res.n_scored == 4


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_types_are_refused_clearly(env: dict[str, Path], dtype: str) -> None:
    arr = (RNG.random((64, 64)) + 1j * RNG.random((64, 64))).astype(dtype)
    path = raster(env["dir"] / f"{dtype}.tif", arr)
    with pytest.raises(RasterReadError, match=r"complex.*abs\(\)"):
        score(env, path)
    assert not (env["dir"] / f"{path.stem}_px.gpkg").exists()


def test_complex_integer_rasters_are_refused_clearly(env: dict[str, Path]) -> None:
    """GDAL's CInt16 (rasterio: 'complex_int16', a type numpy does not know) gets the same
    clear refusal, not a numpy TypeError."""
    from osgeo import gdal

    path = env["dir"] / "cint16.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 64, 64, 1, gdal.GDT_CInt16)
    ds.GetRasterBand(1).SetNoDataValue(0)
    ds = None
    with pytest.raises(RasterReadError, match=r"complex_int16.*abs\(\)"):
        score(env, path)


def test_rotated_geotransform_gives_rotated_tiles_and_metres(env: dict[str, Path]) -> None:
    """45 deg rotation, 10 m pixel diagonal steps of 7.07 m x 7.07 m: a 32 px tile is 320 m."""
    from osgeo import ogr

    c = 10 / math.sqrt(2)
    arr = (RNG.random((64, 64)) * 100).astype(np.float32)
    path = raster(env["dir"] / "rot.tif", arr, Affine(c, c, 500000, c, -c, 4000000))
    res = score(env, path, tile_size=320, tile_units="metres")
    assert res.n_scored == 4
    ds = ogr.Open(str(res.output_path))
    feat = ds.GetLayer(0).GetNextFeature()  # keep the feature: the geometry belongs to it
    g = feat.GetGeometryRef()
    assert g.GetArea() == pytest.approx(320 * 320, rel=1e-6)  # a rotated square, 320 m sides
    ring = g.GetGeometryRef(0)
    dx, dy = ring.GetX(1) - ring.GetX(0), ring.GetY(1) - ring.GetY(0)
    assert math.degrees(math.atan2(dy, dx)) == pytest.approx(45, abs=1e-6)


def test_no_crs_works_in_pixels_and_refuses_metres(env: dict[str, Path]) -> None:
    arr = (RNG.random((64, 64)) * 100).astype(np.float32)
    path = raster(env["dir"] / "nocrs.tif", arr, crs=None)
    assert score(env, path).n_scored == 4
    with pytest.raises(TilingError, match="no CRS.*pixels"):
        score(env, path, tile_size=320, tile_units="metres")


NUMERIC = [p for p in vars(P).values() if isinstance(p, P.Param) and p.kind in ("number",
                                                                                "integer")]


@pytest.mark.parametrize("param", NUMERIC, ids=lambda p: p.name)
def test_numeric_parameters_at_below_and_above_their_range(param: P.Param) -> None:
    step = 1 if param.kind == "integer" else 1e-6
    if param.minimum is not None:
        if param.exclusive_min:
            with pytest.raises(ParameterError, match=param.name):
                param.validate(param.minimum)
        else:
            assert param.validate(param.minimum) == param.minimum
        with pytest.raises(ParameterError, match=param.name):
            param.validate(param.minimum - step)
    if param.maximum is not None:
        assert param.validate(param.maximum) == param.maximum
        with pytest.raises(ParameterError, match=param.name):
            param.validate(param.maximum + step)
    for bad in ("abc", "nan", "inf", [1]):
        with pytest.raises(ParameterError, match=param.name):
            param.validate(bad)
    if param.kind == "integer":
        with pytest.raises(ParameterError, match="whole number"):
            param.validate((param.minimum or 0) + 1.5)


ALL = [p for p in vars(P).values() if isinstance(p, P.Param)]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL), st.one_of(st.text(max_size=12), st.floats(allow_nan=True),
                                       st.integers(), st.none(), st.lists(st.text(max_size=4),
                                                                          max_size=3)))
def test_parameter_parsing_fuzz_raises_only_our_errors(param: P.Param, value: Any) -> None:
    try:
        param.validate(value)
    except AnalogError:
        pass


def _keep(env: dict[str, Path], name: str) -> Path:
    out = env["dir"] / name
    out.write_bytes(b"old output")
    return out


def _run_keeping(env: dict[str, Path], path: Path, out: Path, model: Path) -> None:
    score_raster(raster_path=path, library_path=env["lib"], output_path=out, model_path=model,
                 tile_size=32, min_valid=0.0)


def test_truncated_geotiff_names_the_window_and_keeps_the_old_output(
        env: dict[str, Path]) -> None:
    path = env["dir"] / "trunc.tif"
    arr = (RNG.random((512, 512)) * 200).astype(np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=512, height=512, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=UTM_10M, tiled=True, blockxsize=128,
                       blockysize=128) as ds:
        ds.write(arr, 1)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    out = _keep(env, "trunc_out.gpkg")
    with pytest.raises(RasterReadError, match=r"cannot read window PixelWindow\(.*trunc.tif"):
        _run_keeping(env, path, out, env["model"])
    assert out.read_bytes() == b"old output"
    assert not [p for p in env["dir"].iterdir() if ".tmp-" in p.name]


def test_model_returning_bad_embeddings_at_run_time_is_caught(env: dict[str, Path]) -> None:
    """A model that is fine on most tiles but returns a zero vector on a flat black tile (its
    embedding is normalize([mean, 0]) = 0/0): the run stops with the contract error, and the
    old output stays."""
    from analog_plugin.core.errors import ModelContractError
    from analog_plugin.core.library_job import build_library as build

    bad = make_mean_model(env["dir"] / "zero_on_black.onnx", input_size=32, channels=1,
                          const=0.0)
    lib = env["dir"] / "lib_bad.gpkg"
    build(model_path=bad, output_path=lib, image_folder=env["dir"] / "ex")
    arr = (RNG.random((64, 64)) * 100).astype(np.float32)
    arr[:32, :32] = 0.0  # one tile stretches to all zeros
    path = raster(env["dir"] / "black_tile.tif", arr)
    out = _keep(env, "bad_model_out.gpkg")
    with pytest.raises(ModelContractError, match="not L2-normalised"):
        score_raster(raster_path=path, library_path=lib, output_path=out, model_path=bad,
                     tile_size=32, min_valid=0.0)
    assert out.read_bytes() == b"old output"

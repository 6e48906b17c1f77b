"""GeoTIFF adapter on the shipped ETOPO5 DEM and on multi-band fixtures made from it."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
import xarray as xr
from affine import Affine

import sciSR
from sciSR.data import sample_path
from sciSR.io import geotiff

DEM = "etopo5_alps.tif"
FAST = {"device": "cpu", "precision": "fp32"}


def bicubic_ref(a: np.ndarray, s: int) -> np.ndarray:
    """Reference bicubic (align_corners=False) of ``(C, H, W)`` float data."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]
    return F.interpolate(t, scale_factor=s, mode="bicubic", align_corners=False)[0].numpy()


def up_mask(m: np.ndarray, s: int) -> np.ndarray:
    return np.repeat(np.repeat(m, s, axis=-2), s, axis=-1)


@pytest.fixture
def dem_path():
    return sample_path(DEM)


@pytest.fixture
def multiband(tmp_path, dem_path):
    """3-band int16 GeoTIFF from the DEM: nodata holes, per-band tags, scales and offsets."""
    with rasterio.open(dem_path) as src:
        elev = src.read(1).astype(np.int32)
        profile = src.profile
    nodata = -32768
    b2 = np.clip((elev - 10) * 2, -30000, 30000)  # stored with scale 0.5, offset 10 → metres again
    b3 = np.abs(np.gradient(elev.astype(float))[0]).astype(np.int32)
    data = np.stack([elev, b2, b3]).astype(np.int16)
    mask = np.zeros_like(data, dtype=bool)
    mask[:, 10:20, 30:50] = True  # a hole in every band
    mask[1][elev < -1000] = True  # deep sea missing in band 2 only
    data[mask] = nodata
    profile.update(count=3, nodata=nodata)
    path = tmp_path / "multi.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, (d, t) in enumerate(
            [
                ("elevation", {"kind": "dem"}),
                ("elevation_packed", {"kind": "packed"}),
                ("slope", {"kind": "slope", "units": "m/cell"}),
            ],
            start=1,
        ):
            dst.set_band_description(i, d)
            dst.update_tags(i, **t)
        dst.update_tags(1, STATISTICS_MAXIMUM="3902")  # stale after SR: must not be copied
        dst.scales = (1.0, 0.5, 1.0)
        dst.offsets = (0.0, 10.0, 0.0)
        dst.update_tags(site="alps", AREA_OR_POINT="Area")
    return path, data, mask


def test_sample_is_north_up_and_correctly_georeferenced(dem_path):
    with rasterio.open(dem_path) as f:
        assert f.crs.to_epsg() == 4326
        assert f.transform == Affine(1 / 12, 0, 5 - 1 / 24, 0, -1 / 12, 40 + 95 / 12 + 1 / 24)
        elev = f.read(1)
        corsica, ligurian, adriatic = (f.index(9.1, 42.2), f.index(8.0, 43.5), f.index(13.0, 45.5))
    assert elev[corsica] > 500 and elev[ligurian] < -2000 and -100 < elev[adriatic] < 0
    ds = sciSR.open(dem_path)
    assert ds.attrs["scisr_format"] == "geotiff"
    assert ds.band_data.dtype == np.float32 and ds.band_data.shape == (1, 96, 128)
    np.testing.assert_allclose(ds.y.values[[0, -1]], [40 + 95 / 12, 40.0])


def test_roundtrip_bicubic_exact_transform_and_metadata(tmp_path, dem_path):
    out = tmp_path / "dem_x4.tif"
    res = sciSR.downscale(dem_path, model="bicubic", scale=4, out=out)
    with rasterio.open(dem_path) as src, rasterio.open(out) as hr:
        assert hr.transform == src.transform @ Affine.scale(1 / 4)  # exact, not recomputed from coords
        assert hr.bounds == src.bounds
        assert hr.crs == src.crs
        assert (hr.width, hr.height) == (4 * src.width, 4 * src.height)
        assert hr.dtypes == ("float32",) and hr.nodata is None
        assert hr.descriptions == ("elevation",) and hr.units == ("m",)
        assert hr.tags(1)["long_name"] == "Relief Of the Surface of the Earth"
        tags = hr.tags()
        for k in ("source", "crop", "AREA_OR_POINT"):
            assert tags[k] == src.tags()[k]
        assert "sciSR" in tags["history"] and "scale=4" in tags["history"]
        assert hr.profile["tiled"] and hr.profile["compress"] == "deflate"
        assert hr.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        np.testing.assert_allclose(
            hr.read(), bicubic_ref(src.read().astype(np.float32), 4), rtol=0, atol=1e-3
        )
    # returned coordinates follow the CF sub-cell rule c_i + (k - (s-1)/2) d/s
    x0 = sciSR.open(dem_path).x.values
    want = (x0[:, None] + (np.arange(4) - 1.5) * (x0[1] - x0[0]) / 4).ravel()
    np.testing.assert_allclose(res.x.values, want, rtol=0, atol=1e-9)
    gt = res.spatial_ref.attrs["GeoTransform"].split()
    assert Affine.from_gdal(*map(float, gt)) == src.transform @ Affine.scale(1 / 4)


def test_source_dtype_rounds_and_clips(tmp_path, dem_path):
    f32 = sciSR.downscale(dem_path, model="bicubic", scale=2)
    i16 = sciSR.downscale(dem_path, model="bicubic", scale=2, dtype="source", out=tmp_path / "i.tif")
    assert i16.band_data.dtype == np.int16
    np.testing.assert_array_equal(i16.band_data.values, np.clip(np.rint(f32.band_data.values), -32768, 32767))
    with rasterio.open(tmp_path / "i.tif") as f:
        assert f.dtypes == ("int16",)
        assert f.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        np.testing.assert_array_equal(f.read(), i16.band_data.values)


def test_multiband_nodata_scales_tags(tmp_path, multiband):
    path, raw, mask = multiband
    out = tmp_path / "m_x2.tif"
    res = sciSR.downscale(path, model="bicubic", scale=2, out=out)
    phys = raw.astype(np.float32)
    phys[1] = phys[1] * 0.5 + 10
    with rasterio.open(path) as src, rasterio.open(out) as hr:
        assert hr.count == 3 and hr.nodata == -32768 and hr.dtypes == ("float32",) * 3
        assert hr.transform == src.transform @ Affine.scale(1 / 2)
        data = hr.read()
        np.testing.assert_array_equal(data == -32768, up_mask(mask, 2))  # exactly the upsampled mask
        assert hr.scales == (1.0, 1.0, 1.0) and hr.offsets == (0.0, 0.0, 0.0)  # float = physical values
        assert hr.descriptions == src.descriptions
        assert [hr.tags(i)["kind"] for i in (1, 2, 3)] == ["dem", "packed", "slope"]
        assert "STATISTICS_MAXIMUM" not in hr.tags(1)
        assert hr.units == (None, None, "m/cell") or hr.units == ("", "", "m/cell")
        assert hr.tags()["site"] == "alps"
        # band 2 holds metres (scale applied once): same magnitude as band 1 away from the holes
        ok = ~up_mask(mask, 2).any(axis=0)
        assert abs(np.median(data[1][ok] - data[0][ok])) < 1.0
    # each band on its own: the value of a valid cell far from holes is bicubic of the filled band
    ref = bicubic_ref(np.where(mask, 0, phys)[2:3], 2)[0]
    np.testing.assert_allclose(res.band_data.values[2][100:140, 150:200], ref[100:140, 150:200], atol=1e-3)

    back = sciSR.downscale(path, model="bicubic", scale=2, dtype="source", out=tmp_path / "src.tif")
    with rasterio.open(tmp_path / "src.tif") as hr:
        assert hr.dtypes == ("int16",) * 3 and hr.nodata == -32768
        assert hr.scales == (1.0, 0.5, 1.0) and hr.offsets == (0.0, 10.0, 0.0)
        data = hr.read()
        np.testing.assert_array_equal(data == -32768, up_mask(mask, 2))
        f = res.band_data.values
        valid = ~np.isnan(f[1])
        np.testing.assert_array_equal(
            data[1][valid], np.clip(np.rint((f[1][valid] - 10) / 0.5), -32768, 32767)
        )
        masked = hr.read(masked=True)
    np.testing.assert_array_equal(masked.mask, up_mask(mask, 2))
    assert back.band_data.dtype == np.int16


def test_multichannel_model_gets_bands_as_channels(tmp_path, multiband):
    path, _, _ = multiband
    torch.manual_seed(0)
    model = sciSR.create_model("espcn", scale=2, in_channels=3, pretrained=False, channels=(8, 4))
    ds = sciSR.open(path).fillna(0.0)
    res = sciSR.downscale(ds, model=model, scale=2, **FAST)
    want = sciSR.downscale(ds.band_data.values, model=model, scale=2, **FAST)
    np.testing.assert_allclose(res.band_data.values, want, rtol=1e-5, atol=1e-4)
    two = sciSR.create_model("espcn", scale=2, in_channels=2, pretrained=False, channels=(8, 4))
    with pytest.raises(ValueError, match="takes 2 channels"):
        sciSR.downscale(ds, model=two, scale=2, **FAST)


def test_cog_output(tmp_path, dem_path):
    out = tmp_path / "dem.cog.tif"
    sciSR.downscale(dem_path, model="bicubic", scale=2, out=out)
    ds = sciSR.open(dem_path)
    sciSR.write(ds, tmp_path / "plain_named.tif", cog=True)
    for p in (out, tmp_path / "plain_named.tif"):
        with rasterio.open(p) as f:
            assert f.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert f.crs.to_epsg() == 4326
    with rasterio.open(dem_path) as src, rasterio.open(out) as f:
        assert f.transform == src.transform @ Affine.scale(1 / 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dem.cog.tif", "plain_named.tif"]


def test_open_write_and_cross_format(tmp_path, dem_path):
    ds = sciSR.open(dem_path)
    sciSR.write(ds, tmp_path / "copy.tif")
    with rasterio.open(dem_path) as a, rasterio.open(tmp_path / "copy.tif") as b:
        assert b.transform == a.transform and b.crs == a.crs and b.descriptions == a.descriptions
        np.testing.assert_array_equal(b.read(), a.read().astype(np.float32))
    sciSR.write(ds, tmp_path / "dem.nc")
    nc = sciSR.open(tmp_path / "dem.nc")
    np.testing.assert_array_equal(nc.band_data.values, ds.band_data.values)
    np.testing.assert_allclose(nc.y.values, ds.y.values)


@pytest.mark.parametrize("via", ["nc", "zarr"])
def test_crs_survives_a_cf_round_trip_back_to_geotiff(tmp_path, dem_path, via):
    # reopened CF files hold spatial_ref as a data variable, not a coordinate
    sciSR.write(sciSR.open(dem_path), tmp_path / f"dem.{via}")
    sciSR.write(sciSR.open(tmp_path / f"dem.{via}"), tmp_path / "back.tif")
    sciSR.downscale(tmp_path / f"dem.{via}", model="bicubic", scale=2, out=tmp_path / "x2.tif")
    with rasterio.open(dem_path) as a, rasterio.open(tmp_path / "back.tif") as b:
        assert b.crs == a.crs and b.transform.almost_equals(a.transform)
    with rasterio.open(dem_path) as a, rasterio.open(tmp_path / "x2.tif") as b:
        assert b.crs == a.crs and b.transform.almost_equals(a.transform @ Affine.scale(0.5))


def test_xarray_input_rewrites_stale_geotransform(tmp_path, dem_path):
    ds = sciSR.open(dem_path)
    res = sciSR.downscale(ds, model="bicubic", scale=2)
    t = geotiff.dataset_transform(ds)
    assert geotiff.dataset_transform(res) == t @ Affine.scale(1 / 2)
    # a GeoTransform left stale by other tools loses against the coordinates
    stale = res.copy()
    stale["spatial_ref"].attrs["GeoTransform"] = ds.spatial_ref.attrs["GeoTransform"]
    sciSR.write(stale, tmp_path / "s.tif")
    with rasterio.open(tmp_path / "s.tif") as f:
        np.testing.assert_allclose(tuple(f.transform), tuple(t @ Affine.scale(1 / 2)), rtol=1e-12)


def test_global_raster_wraps_longitude():
    lon = np.arange(36) * 10 + 5.0
    field = np.sin(np.deg2rad(lon))[None, None, :].repeat(6, axis=1).astype(np.float32)
    ds = geotiff._build_dataset(
        field,
        np.ones_like(field, bool),
        dict(
            transform=Affine(10, 0, 0, 0, -10, 30),
            crs=rasterio.crs.CRS.from_epsg(4326),
            nodata=None,
            dtype=np.dtype("float32"),
            descriptions=[None],
            tags={},
            band_tags=[{}],
            units=[None],
            scales=[1.0],
            offsets=[0.0],
        ),
    )
    ds.attrs["scisr_format"] = "geotiff"
    res = sciSR.downscale(ds, model="bicubic", scale=2).band_data.values[0, 0]
    wrapped = bicubic_ref(np.concatenate([field[..., -4:], field, field[..., :4]], axis=-1), 2)[0, 0, 8:-8]
    np.testing.assert_allclose(res, wrapped, atol=1e-5)


def test_photo_like_tiff_is_an_image(tmp_path):
    from PIL import Image

    p = tmp_path / "photo.tif"
    Image.open(sample_path("ladybird_crop.png")).crop((0, 0, 64, 48)).save(p)
    ds = sciSR.open(p)
    assert ds.attrs["scisr_format"] == "image"
    sciSR.downscale(p, model="bicubic", scale=2, out=tmp_path / "photo_x2.tif")
    with Image.open(tmp_path / "photo_x2.tif") as im:
        assert im.mode == "RGB" and im.size == (128, 96)


# ---------------------------------------------------------------------- bad input
def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_truncated_and_garbage_files(tmp_path, dem_path):
    trunc = tmp_path / "trunc.tif"
    trunc.write_bytes(dem_path.read_bytes()[:6000])
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff at all" * 10)
    for p in (trunc, garbage):
        with pytest.raises(ValueError) as e:
            sciSR.downscale(p, model="bicubic", scale=2, out=tmp_path / "o.tif")
        assert str(p) in one_line(e)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["garbage.tif", "trunc.tif"]


def test_output_paths(tmp_path, dem_path):
    local = tmp_path / "dem.tif"
    local.write_bytes(dem_path.read_bytes())
    before = local.read_bytes()
    with pytest.raises(ValueError) as e:
        sciSR.downscale(local, model="bicubic", scale=2, out=local)
    assert "input" in one_line(e)
    assert local.read_bytes() == before
    with pytest.raises(FileNotFoundError) as e:
        sciSR.downscale(local, model="bicubic", scale=2, out=tmp_path / "missing" / "o.tif")
    one_line(e)
    with pytest.raises(FileNotFoundError):
        sciSR.downscale(local, model="bicubic", scale=2, out=local / "o.tif")  # parent is a file
    assert sorted(x.name for x in tmp_path.iterdir()) == ["dem.tif"]


def test_failed_conversion_leaves_nothing(tmp_path, dem_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("COG conversion failed")

    out = tmp_path / "x.cog.tif"
    out.write_bytes(b"old")
    monkeypatch.setattr(geotiff, "_to_cog", boom)
    with pytest.raises(RuntimeError, match="COG conversion failed"):
        sciSR.downscale(dem_path, model="bicubic", scale=2, out=out)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.cog.tif"]


def test_integer_output_never_turns_valid_cells_into_nodata(tmp_path, dem_path):
    with rasterio.open(dem_path) as src:
        elev = src.read(1).astype(float)
        profile = src.profile
    data = np.where(elev < 0, 1, np.clip(elev / 16, 2, 255)).astype(np.uint8)  # dark sea next to bright land
    data[5:15, 5:25] = 0
    profile.update(dtype="uint8", nodata=0)
    p = tmp_path / "u8.tif"
    with rasterio.open(p, "w", **profile) as dst:
        dst.write(data, 1)
    f32 = sciSR.downscale(p, model="bicubic", scale=2).band_data.values[0]
    assert (np.rint(f32[~np.isnan(f32)]) <= 0).any()  # bicubic undershoots onto the nodata value...
    sciSR.downscale(p, model="bicubic", scale=2, dtype="source", out=tmp_path / "u8_x2.tif")
    with rasterio.open(tmp_path / "u8_x2.tif") as f:
        out = f.read(1)
    np.testing.assert_array_equal(out == 0, up_mask(data == 0, 2))  # ...but the mask stays exact


@pytest.mark.parametrize("via_downscale", [False, True])
def test_south_up_array_written_north_up_with_exact_origin(tmp_path, via_downscale):
    """Ascending y (south-up rows, as ETOPO/CF grids store them) is written north-up: the
    transform's origin is the north edge and row 0 of the file is the northernmost row."""
    y = 10.5 + np.arange(3)  # cell centres, south to north, 1 unit cells: extent 10..13
    x = 100.5 + np.arange(4)
    vals = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    ds = xr.Dataset(
        {"band_data": (("band", "y", "x"), vals)},
        coords={
            "band": [1],
            "y": ("y", y, {"units": "degrees_north"}),
            "x": ("x", x, {"units": "degrees_east"}),
        },
    )
    expect = vals
    if via_downscale:
        ds = sciSR.downscale(ds, model="nearest", scale=2)
        expect = np.repeat(np.repeat(vals, 2, axis=1), 2, axis=2)
        assert np.all(np.diff(ds.y.values) > 0)  # still south-up in memory
    sciSR.write(ds, tmp_path / "s.tif")
    with rasterio.open(tmp_path / "s.tif") as f:
        d = 0.5 if via_downscale else 1.0
        assert tuple(f.transform)[:6] == (d, 0.0, 100.0, 0.0, -d, 13.0)
        assert f.crs == rasterio.crs.CRS.from_epsg(4326)
        got = f.read()
    np.testing.assert_array_equal(got, expect[:, ::-1, :])
    # reading it back gives north-up coordinates with the same cells
    back = sciSR.open(tmp_path / "s.tif")
    np.testing.assert_allclose(back.y.values, np.sort(ds.y.values)[::-1])
    np.testing.assert_array_equal(back.band_data.values, expect[:, ::-1, :])


def test_open_is_lazy_and_windows_read_exactly(dem_path):
    with rasterio.open(dem_path) as f:
        full = f.read(masked=True).astype(np.float32).filled(np.nan)
    ds = sciSR.open(dem_path)
    assert not isinstance(ds.band_data.variable._data, np.ndarray)  # nothing read yet
    for sel in (
        {"y": slice(3, 17), "x": slice(5, 40)},
        {"y": slice(None, None, 3), "x": slice(30, 2, -4)},
        {"y": 7, "x": slice(1, 9)},
    ):
        got = ds.band_data.isel(sel).values
        np.testing.assert_array_equal(got, full[(slice(None), sel["y"], sel["x"])])


# ---------------------------------------------------------------------------------- output dtype and packing
def test_float_output_drops_the_packing_and_is_not_copied():
    y = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    enc = {"scales": (0.5,), "offsets": (1.0,), "_FillValue": -9999, "other": 1}
    out, new = geotiff._cast(y, np.dtype("int16"), None, -9999, enc, 0)
    assert out is y  # already float32: no copy of a large raster
    assert new == {"dtype": np.dtype("float32"), "_FillValue": -9999, "other": 1}
    assert enc == {"scales": (0.5,), "offsets": (1.0,), "_FillValue": -9999, "other": 1}  # input untouched
    out64, new64 = geotiff._cast(y, np.dtype("int16"), "float64", None, {}, None)
    assert out64.dtype == np.float64 and new64 == {"dtype": np.dtype("float64")}


def test_integer_output_is_packed_per_band_or_with_one_shared_packing():
    y = np.array([[[10.0, 12.0]], [[-4.0, 0.0]]])  # physical values of two bands, (band, y, x)
    enc = {"scales": (0.5, 2.0), "offsets": (10.0, -4.0)}
    out, new = geotiff._cast(y, np.dtype("int16"), "source", None, enc, 0)
    np.testing.assert_array_equal(out, [[[0, 4]], [[0, 2]]])  # (value - offset) / scale, per band
    assert out.dtype == np.int16 and new["dtype"] == np.int16 and new["scales"] == (0.5, 2.0)
    shared = {"scales": (0.5, 0.5), "offsets": (1.0, 1.0)}
    out, _ = geotiff._cast(np.array([[3.0, 5.0]]), np.dtype("int16"), "source", None, shared, None)
    np.testing.assert_array_equal(out, [[4, 8]])
    mixed = {"scales": (1.0, 2.0), "offsets": (5.0, 5.0)}  # per-band packing without a band axis: raw values
    out, _ = geotiff._cast(np.array([[3.0, 5.0]]), np.dtype("int16"), "source", None, mixed, None)
    np.testing.assert_array_equal(out, [[3, 5]])
    for band_axis in (None, 0):  # no packing at all
        out, _ = geotiff._cast(np.array([[3.4, 5.6]]), np.dtype("int16"), "source", None, {}, band_axis)
        np.testing.assert_array_equal(out, [[3, 6]])


def test_integer_output_nodata_at_the_top_of_the_range():
    y = np.array([[np.nan, 254.9, 100.0]])
    out, _ = geotiff._cast(y, np.dtype("uint8"), "source", 255, {}, None)
    np.testing.assert_array_equal(out, [[255, 254, 100]])  # a valid 255 moves one step down
    with pytest.raises(ValueError) as err:
        geotiff._cast(y, np.dtype("int16"), "source", None, {}, None)
    assert str(err.value) == (
        "the output has nodata (NaN) cells that int16 cannot mark: the source has no usable nodata "
        "value (None); keep the float32 default"
    )
    with pytest.raises(
        TypeError, match=r"^cannot write raster values as bool; use a float or integer dtype$"
    ):
        geotiff._cast(y, np.dtype("uint8"), "bool", 255, {}, None)


def test_a_valid_value_on_the_nodata_value_moves_one_step_up():
    y = np.array([[np.nan, -9999.2, 5.0]])
    out, _ = geotiff._cast(y, np.dtype("int16"), "source", -9999, {}, None)
    np.testing.assert_array_equal(out, [[-9999, -9998, 5]])


def _grid_ds(**variables) -> xr.Dataset:
    return xr.Dataset(
        variables,
        coords={
            "y": ("y", [15.0, 5.0], {"units": "m"}),
            "x": ("x", [5.0, 15.0, 25.0], {"units": "m"}),
        },
    )


@pytest.mark.parametrize(
    ("attrs", "scale", "offset"),
    [
        ({"scale_factor": 0.1, "add_offset": 100.0}, 0.1, 100.0),
        ({"scale_factor": 0.5}, 0.5, 0.0),
        ({"add_offset": -3.0}, 1.0, -3.0),
    ],
)
def test_cf_packed_integers_are_written_with_band_scales(tmp_path, attrs, scale, offset):
    raw = np.array([[1, 2, 3], [4, 5, 6]], np.int16)
    ds = _grid_ds(t=(("y", "x"), raw, dict(attrs, units="K")))
    sciSR.write(ds, tmp_path / "p.tif")
    with rasterio.open(tmp_path / "p.tif") as f:
        assert f.dtypes[0] == "int16" and f.scales == (scale,) and f.offsets == (offset,)
        np.testing.assert_array_equal(f.read(1), raw)
    back = sciSR.open(tmp_path / "p.tif").band_data.values[0]
    np.testing.assert_allclose(back, raw * scale + offset, rtol=1e-6)
    # next to a float variable the packed one is written as physical values
    mixed = ds.assign(f=(("y", "x"), np.zeros((2, 3), np.float32)))
    sciSR.write(mixed, tmp_path / "m.tif")
    with rasterio.open(tmp_path / "m.tif") as f:
        assert f.dtypes[0] == "float32" and f.scales == (1.0, 1.0) and f.offsets == (0.0, 0.0)
        np.testing.assert_allclose(f.read(1), raw * scale + offset, rtol=1e-6)
        assert f.descriptions == ("t", "f")


def test_band_descriptions_and_the_one_band_dim_rule(tmp_path):
    one = _grid_ds(band_data=(("y", "x"), np.ones((2, 3), np.float32)))
    sciSR.write(one, tmp_path / "one.tif")
    with rasterio.open(tmp_path / "one.tif") as f:
        assert f.descriptions == (None,)  # a single unnamed raster: no description
    two = _grid_ds(
        band_data=(("y", "x"), np.ones((2, 3), np.float32)),
        slope=(("y", "x"), np.ones((2, 3), np.float32), {"long_name": "terrain slope"}),
    )
    sciSR.write(two, tmp_path / "two.tif")
    with rasterio.open(tmp_path / "two.tif") as f:
        assert f.descriptions == ("band_data", "terrain slope")
    cube = _grid_ds(v=(("t", "z", "y", "x"), np.zeros((2, 3, 2, 3), np.float32)))
    with pytest.raises(ValueError) as err:
        geotiff._collect_bands(cube, geotiff.GeoTiffAdapter())
    assert str(err.value) == (
        "'v' has 2 non-spatial dims ['t', 'z']; a GeoTIFF holds one band dim: select the others first "
        "(e.g. ds.isel(t=0))"
    )
    with pytest.raises(
        ValueError, match=r"nothing to write as GeoTIFF: no variable has spatial dims \(variables: \['s'\]\)"
    ):
        geotiff._collect_bands(xr.Dataset({"s": ((), 1.0)}), geotiff.GeoTiffAdapter())


def test_written_nodata_comes_from_the_encoding_the_attrs_or_nan(tmp_path):
    vals = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], np.float32)
    for where, expect in (("attrs", -1.0), ("encoding", -2.0), (None, None)):
        ds = _grid_ds(v=(("y", "x"), vals, {"_FillValue": -1.0} if where == "attrs" else {}))
        if where == "encoding":
            ds["v"].encoding["_FillValue"] = -2.0
        sciSR.write(ds, tmp_path / f"{where}.tif")
        with rasterio.open(tmp_path / f"{where}.tif") as f:
            got = f.read(1)
            if expect is None:  # NaN cells and no nodata value given: NaN is the nodata value
                assert np.isnan(f.nodata) and np.isnan(got[0, 1])
            else:
                assert f.nodata == expect and got[0, 1] == expect
            assert got[0, 0] == 1.0 and got[1, 2] == 6.0


# ------------------------------------------------------------------------------ transform from coordinates
def test_transform_from_coordinates_stored_geotransform_or_index_grid():
    ds = _grid_ds(v=(("y", "x"), np.zeros((2, 3))))
    assert geotiff.dataset_transform(ds) == Affine(10.0, 0.0, 0.0, 0.0, -10.0, 20.0)  # default dims y/x
    bare = xr.Dataset({"v": (("y", "x"), np.zeros((2, 3)))})
    assert geotiff.dataset_transform(bare) == Affine.identity()  # a plain pixel grid
    half = bare.assign_coords(y=("y", [15.0, 5.0]))  # y located, x only an index: not a georeferenced grid
    assert geotiff.dataset_transform(half) == Affine.identity()
    with pytest.raises(
        ValueError, match=r"^no georeferencing found: expected 1-D 'lat'/'lon' coords or spatial_ref"
    ):
        geotiff.dataset_transform(bare, "lat", "lon")
    # one row: its height comes from the stored GeoTransform
    row = xr.Dataset(
        {"v": (("y", "x"), np.zeros((1, 3)))},
        coords={"y": ("y", [17.5]), "x": ("x", [5.0, 15.0, 25.0])},
    )
    row = row.assign_coords(spatial_ref=((), 0, {"GeoTransform": "0 10 0 20 0 -5"}))
    assert geotiff.dataset_transform(row) == Affine(10.0, 0.0, 0.0, 0.0, -5.0, 20.0)
    col = row.isel(x=[1]).assign_coords(spatial_ref=((), 0, {"GeoTransform": "10 10 0 20 0 -5"}))
    assert geotiff.dataset_transform(col) == Affine(10.0, 0.0, 10.0, 0.0, -5.0, 20.0)
    with pytest.raises(
        ValueError, match=r"^cannot infer the cell size of 'y' from a single coordinate; set spatial_ref"
    ):
        geotiff.dataset_transform(row.drop_vars("spatial_ref"))


def test_physical_values_apply_scales_offsets_and_mask_non_finite():
    raw = np.array([[[1, 2]], [[3, 4]], [[5, 6]]], np.int16)
    valid = np.array([[[True, False]], [[True, True]], [[True, True]]])
    got = geotiff._physical(raw, valid, [2.0, 1.0, 1.0], [0.0, 1.0, 0.0])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[[2.0, np.nan]], [[4.0, 5.0]], [[5.0, 6.0]]])
    f64 = np.array([[[1.0, np.inf, -np.inf, np.nan]]])
    out = geotiff._physical(f64, np.ones_like(f64, bool), [1.0], [0.0])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(out), [[[False, True, True, True]]])


@pytest.mark.parametrize("nodata", [-9999.0, 1e20])
def test_a_valid_float_equal_to_nodata_is_nudged_off_it(tmp_path, nodata):
    vals = np.array([[nodata, np.nan, 3.0], [4.0, 5.0, 6.0]], np.float32)
    ds = _grid_ds(v=(("y", "x"), vals))
    ds["v"].encoding["_FillValue"] = nodata
    sciSR.write(ds, tmp_path / "n.tif")
    with rasterio.open(tmp_path / "n.tif") as f:
        got = f.read(1)
        assert f.nodata == np.float32(nodata)
    nd = np.float32(nodata)
    toward_zero = np.nextafter(nd, np.float32(np.inf) if nd < 0 else np.float32(-np.inf))
    assert got[0, 0] == toward_zero and got[0, 1] == nd  # the valid cell stays valid, the NaN is nodata
    np.testing.assert_array_equal(got[1], [4.0, 5.0, 6.0])

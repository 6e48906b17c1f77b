"""sciSR.grid: spatial-dim detection and the refined grid of DESIGN §4."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sciSR.grid import (
    Grid,
    find_spatial_dims,
    gauss_legendre,
    gaussian_edges,
    refine_linear,
    regular_fit,
    split_bounds,
)


def _da(dims, coords=None, shape=None):
    shape = shape or tuple(3 + i for i in range(len(dims)))
    return xr.DataArray(np.zeros(shape), dims=dims, coords=coords or {})


@pytest.mark.parametrize(
    ("dims", "coords", "expected"),
    [
        (("time", "lat", "lon"), None, ("lat", "lon")),
        (("latitude", "longitude"), None, ("latitude", "longitude")),
        (("band", "y", "x"), None, ("y", "x")),
        (("rlat", "rlon"), None, ("rlat", "rlon")),
        (("lon", "lat"), None, ("lat", "lon")),  # x before y: order by role, not position
        (
            ("a", "b"),
            {"a": ("a", [0.0, 1, 2], {"axis": "Y"}), "b": ("b", [0.0, 1, 2, 3], {"axis": "X"})},
            ("a", "b"),
        ),
        (
            ("p", "q"),
            {
                "p": ("p", [0.0, 1, 2], {"standard_name": "projection_y_coordinate"}),
                "q": ("q", [0.0, 1, 2, 3], {"standard_name": "projection_x_coordinate"}),
            },
            ("p", "q"),
        ),
        (
            ("COADSY", "COADSX"),
            {
                "COADSY": ("COADSY", [0.0, 1, 2], {"units": "degrees_north"}),
                "COADSX": ("COADSX", [0.0, 1, 2, 3], {"units": "degrees_east"}),
            },
            ("COADSY", "COADSX"),
        ),
        (("time", "dim_0", "dim_1"), None, None),
        (("time", "lat"), None, None),
    ],
)
def test_find_spatial_dims(dims, coords, expected):
    assert find_spatial_dims(_da(dims, coords)) == expected


def test_curvilinear_dims_found_from_2d_coords():
    lat = xr.DataArray(np.zeros((3, 4)), dims=("nj", "nk"), attrs={"standard_name": "latitude"})
    da = xr.DataArray(np.zeros((2, 3, 4)), dims=("t", "nj", "nk"), coords={"nav_lat": lat})
    assert find_spatial_dims(da) == ("nj", "nk")


def _grid(lat, lon, **extra):
    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((len(lat), len(lon))))},
        coords={"lat": ("lat", lat), "lon": ("lon", lon)},
    )
    for k, v in extra.items():
        ds[k] = v
    return Grid(ds, "lat", "lon")


@pytest.mark.parametrize("s", [2, 3, 4])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_refine_regular_exact_formula(s, sign):
    lat = sign * (10.0 + 0.5 * np.arange(6))
    g = _grid(lat, np.arange(5.0))
    new = g.refine(s)["lat"].values
    d = lat[1] - lat[0]
    expect = (lat[:, None] + (np.arange(s) - (s - 1) / 2) * d / s).ravel()
    np.testing.assert_array_equal(new, expect)
    np.testing.assert_allclose(new.reshape(-1, s).mean(axis=1), lat, atol=1e-12)
    # outer edges fixed
    assert new[0] - d / (2 * s) == pytest.approx(lat[0] - d / 2)
    assert new[-1] + d / (2 * s) == pytest.approx(lat[-1] + d / 2)


def test_float32_rounding_is_tolerated():
    lon = (0.1 * np.arange(3600)).astype(np.float32)
    assert _grid(np.arange(3.0), lon).x.spacing == pytest.approx(0.1, rel=1e-6)


def test_irregular_without_bounds_raises():
    g = _grid(np.array([0.0, 1.0, 2.5, 3.0]), np.arange(4.0))
    with pytest.raises(ValueError, match=r"irregularly spaced.*bounds"):
        g.refine(2)


def test_irregular_with_bounds_splits_each_cell():
    lat = np.array([-60.0, -25.0, 0.0, 30.0])
    edges = np.array([-80.0, -40.0, -10.0, 12.0, 50.0])
    bnds = np.stack([edges[:-1], edges[1:]], axis=1)
    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((4, 3)))},
        coords={"lat": ("lat", lat, {"bounds": "lat_bnds"}), "lon": ("lon", [0.0, 1, 2])},
    )
    ds["lat_bnds"] = (("lat", "nv"), bnds)
    ref = Grid(ds, "lat", "lon").refine(2)
    nb = ref["lat_bnds"].values
    assert nb[0, 0] == -80.0 and nb[-1, 1] == 50.0
    np.testing.assert_array_equal(nb[1:, 0], nb[:-1, 1])  # contiguous sub-cells
    np.testing.assert_allclose(nb[:, 1] - nb[:, 0], np.repeat(np.diff(edges) / 2, 2))
    # every sub-cell centre is the middle of its bounds (the old centres are not mid-cell here)
    np.testing.assert_allclose(ref["lat"].values, [-70, -50, -32.5, -17.5, -4.5, 6.5, 21.5, 40.5])


def test_split_bounds_descending_keeps_orientation():
    b = np.array([[10.0, 8.0], [8.0, 6.0]])  # descending axis, pairs stored (upper, lower)
    out = split_bounds(b, -1.0, 2)
    np.testing.assert_array_equal(out, [[10, 9], [9, 8], [8, 7], [7, 6]])
    b2 = np.array([[8.0, 10.0], [6.0, 8.0]])  # descending axis, pairs stored (lower, upper)
    np.testing.assert_array_equal(split_bounds(b2, -1.0, 2), [[9, 10], [8, 9], [7, 8], [6, 7]])


def test_non_monotonic_coordinate_raises():
    with pytest.raises(ValueError, match=r"not strictly monotonic.*sortby"):
        _grid(np.array([0.0, 2.0, 1.0]), np.arange(3.0))


def test_refine_linear_matches_formula_and_extrapolates_edges():
    a = 3.0 + 2.0 * np.arange(5)
    out = refine_linear(a, 4, axis=0)
    expect = (a[:, None] + (np.arange(4) - 1.5) * 2.0 / 4).ravel()
    np.testing.assert_allclose(out, expect)


@pytest.mark.parametrize(
    ("lon", "periodic"),
    [
        (np.arange(0.0, 360.0, 2.5), True),
        (np.arange(-180.0, 180.0, 1.0) + 0.5, True),
        (np.arange(0.0, 350.0, 2.5), False),
    ],
)
def test_periodic_detection(lon, periodic):
    assert _grid(np.arange(3.0), lon).periodic_x is periodic


def test_periodic_needs_longitude():
    ds = xr.Dataset({"v": (("y", "x"), np.zeros((2, 360)))}, coords={"y": [0.0, 1.0], "x": np.arange(360.0)})
    assert Grid(ds, "y", "x").periodic_x is False


def test_geotransform_rescaled_on_grid_mapping():
    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, 3)), {"grid_mapping": "crs"})},
        coords={"y": [15.0, 5.0], "x": [5.0, 15.0, 25.0]},
    )
    ds["crs"] = ((), 0, {"GeoTransform": "0 10 0 20 0 -10", "grid_mapping_name": "latitude_longitude"})
    ref = Grid(ds, "y", "x").refine(2)
    assert [float(t) for t in ref["crs"].attrs["GeoTransform"].split()] == [0, 5, 0, 20, 0, -5]


def test_lambert_conformal_km_coords_recomputed():
    from pyproj import CRS, Transformer

    gm = {
        "grid_mapping_name": "lambert_conformal_conic",
        "standard_parallel": [30.0, 60.0],
        "longitude_of_central_meridian": 10.0,
        "latitude_of_projection_origin": 45.0,
    }
    y = np.array([-100.0, -50.0, 0.0])
    x = np.array([-75.0, -25.0, 25.0, 75.0])
    crs = CRS.from_cf(gm)
    to_geo = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    xx, yy = np.meshgrid(x * 1000, y * 1000)
    lon, lat = to_geo.transform(xx, yy)
    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((3, 4)), {"grid_mapping": "lcc"}), "lcc": ((), 0, gm)},
        coords={
            "y": ("y", y, {"units": "km", "standard_name": "projection_y_coordinate"}),
            "x": ("x", x, {"units": "km", "standard_name": "projection_x_coordinate"}),
            "lat": (("y", "x"), lat, {"standard_name": "latitude"}),
            "lon": (("y", "x"), lon, {"standard_name": "longitude"}),
        },
    )
    ref = Grid(ds, "y", "x").refine(2)
    xx2, yy2 = np.meshgrid(ref["x"].values * 1000, ref["y"].values * 1000)
    lon2, lat2 = to_geo.transform(xx2, yy2)
    np.testing.assert_allclose(ref["lat"].values, lat2, atol=1e-9)
    np.testing.assert_allclose(ref["lon"].values, lon2, atol=1e-9)
    # not the same as interpolating: the projection is curved
    assert np.abs(ref["lat"].values - refine_linear(refine_linear(lat, 2, 0), 2, 1)).max() > 1e-6


# ---- coordinates regular to float32 precision (EURO-CORDEX) ------------------------------------
def _eur11(promote: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """EUR-11 rotated-pole centres (0.11°, 412 × 424) rounded to float32 as CORDEX files store them."""
    rlat = (-23.375 + 0.11 * np.arange(412)).astype(np.float32)
    rlon = (-28.375 + 0.11 * np.arange(424)).astype(np.float32)
    return (rlat.astype(np.float64), rlon.astype(np.float64)) if promote else (rlat, rlon)


@pytest.mark.parametrize("promote", [True, False])
def test_float32_rounded_rotated_pole_axis_is_regular(promote):
    rlat, rlon = _eur11(promote)
    d = np.diff(rlon.astype(np.float64))
    assert d.min() < 0.11 - 1e-6 and d.max() > 0.11 + 5e-7  # the jitter the files really have
    ds = xr.Dataset(
        {"v": (("rlat", "rlon"), np.zeros((rlat.size, rlon.size), np.float32))},
        coords={"rlat": ("rlat", rlat), "rlon": ("rlon", rlon)},
    )
    g = Grid(ds, "rlat", "rlon")
    assert g.x.spacing == pytest.approx(0.11, abs=1e-8) and g.y.spacing == pytest.approx(0.11, abs=1e-8)
    new = g.refine(2)["rlon"].values.astype(np.float64)
    # the refined axis lies on the regular 0.055° grid within float32 rounding of the source
    ideal = -28.375 - 0.0275 + 0.055 * np.arange(848)
    assert np.max(np.abs(new - ideal)) < 4e-6
    if promote:  # float64 output: regular to float64 rounding, so it refines again exactly
        fit = regular_fit(new)
        assert fit is not None and fit.exact


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_step_one_percent_off_is_still_refused(dtype):
    _, rlon = _eur11()
    bad = rlon.copy()
    bad[200:] += 0.0011  # one step 1% too long
    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((3, bad.size)))}, coords={"y": [0.0, 1, 2], "x": bad.astype(dtype)}
    )
    g = Grid(ds, "y", "x")
    assert g.x.spacing is None
    with pytest.raises(ValueError, match=r"'x' is irregularly spaced .*off the nearest regular grid"):
        g.refine(2)


def test_float64_values_get_no_float32_allowance():
    x = -28.375 + 0.11 * np.arange(424)
    x[100] += 3e-6  # a float32 ulp here, but these values are not float32 numbers
    assert regular_fit(x) is None
    assert regular_fit(np.float32(x).astype(np.float64)) is not None


# ---- Gaussian grids ----------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 7, 48, 96, 320])
def test_gauss_legendre_matches_numpy(n):
    x, w = gauss_legendre(n)
    xr_, wr = np.polynomial.legendre.leggauss(n)
    np.testing.assert_allclose(x, xr_, atol=1e-14)
    np.testing.assert_allclose(w, wr, rtol=1e-10, atol=1e-13)
    assert w.sum() == pytest.approx(2.0, abs=1e-13)


def test_gaussian_edges_follow_the_quadrature_weights():
    xn, wn = np.polynomial.legendre.leggauss(96)
    lat = np.degrees(np.arcsin(xn))
    n, edges = gaussian_edges(lat)
    assert n == 96 and edges[0] == -90.0 and edges[-1] == 90.0
    # each cell's area fraction (difference of sin of its edges) is its Gauss weight
    np.testing.assert_allclose(np.diff(np.sin(np.radians(edges))), wn, atol=1e-12)
    assert np.all((edges[:-1] < lat) & (lat < edges[1:]))
    # descending and a regional band of the same grid: the same edges, in the axis order
    n2, band = gaussian_edges(lat[60:20:-1])
    assert n2 == 96
    np.testing.assert_allclose(band, edges[61:20:-1], atol=1e-12)


def test_gaussian_detection_rejects_other_irregular_axes():
    lat = np.degrees(np.arcsin(np.polynomial.legendre.leggauss(96)[0]))
    assert gaussian_edges(lat + 0.05) is None  # shifted
    assert gaussian_edges(np.array([-60.0, -25.0, 0.0, 30.0])) is None
    assert gaussian_edges(np.linspace(-88.5, 88.5, 96)) is None  # regular lat is not Gaussian


def test_gaussian_latitudes_without_bounds_are_refined_within_their_cells():
    xn, _ = np.polynomial.legendre.leggauss(48)
    lat = np.degrees(np.arcsin(xn))[::-1]  # north to south, as ECHAM writes it
    g = _grid(lat, np.arange(0.0, 360.0, 3.75))
    assert g.y.gaussian == 48 and g.y.spacing is None
    ref = g.refine(3)
    assert ref["lat"].attrs["bounds"] == "lat_bnds"
    nb = ref["lat_bnds"].values
    assert nb.shape == (144, 2) and nb[0, 0] == 90.0 and nb[-1, 1] == -90.0
    np.testing.assert_array_equal(nb[1:, 0], nb[:-1, 1])
    np.testing.assert_allclose(ref["lat"].values, nb.mean(axis=1))
    assert np.all(np.diff(ref["lat"].values) < 0)  # never flipped
    _, edges = gaussian_edges(lat)
    np.testing.assert_allclose(nb[::3, 0], edges[:-1])  # old edges kept


def test_pole_row_centres_sit_mid_cell():
    lat = np.array([-88.5, -86.0, -83.0])
    bnds = np.array([[-90.0, -87.25], [-87.25, -84.5], [-84.5, -81.5]])
    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((3, 2)))},
        coords={"lat": ("lat", lat, {"bounds": "lat_bnds"}), "lon": ("lon", [0.0, 1.0])},
    )
    ds["lat_bnds"] = (("lat", "nv"), bnds)
    ref = Grid(ds, "lat", "lon").refine(2)
    np.testing.assert_allclose(ref["lat"].values, ref["lat_bnds"].values.mean(axis=1))
    assert ref["lat"].values[0] == pytest.approx(-89.3125)

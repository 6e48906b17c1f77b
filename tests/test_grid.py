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


# ---- coordinate roles ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "attrs", "lat", "lon"),
    [
        ("lat", {}, True, False),
        ("LAT", {}, True, False),
        ("nav_lat", {}, True, False),
        ("lon", {}, False, True),
        ("Glamt", {}, False, True),
        ("y", {}, False, False),
        ("v", {"standard_name": "Latitude"}, True, False),
        ("v", {"standard_name": "LONGITUDE"}, False, True),
        ("v", {"standard_name": "latitude", "units": "m"}, True, False),
        ("v", {"standard_name": "longitude", "units": "m"}, False, True),
        (
            "rlat",
            {"standard_name": "grid_latitude", "units": "degrees"},
            False,
            False,
        ),  # rotated: not geographic
        ("rlon", {"standard_name": "grid_longitude", "units": "degrees"}, False, True),
        ("v", {"standard_name": "projection_y_coordinate", "units": "m"}, False, False),
        ("v", {"units": "degrees_north"}, True, False),
        ("v", {"units": "Degree N"}, True, False),
        ("v", {"units": "degrees_east"}, False, True),
        ("v", {"units": "degree E"}, False, True),
        ("v", {"units": "m"}, False, False),
    ],
)
def test_latitude_and_longitude_roles(name, attrs, lat, lon):
    from sciSR.grid import is_latitude, is_longitude

    assert is_latitude(name, attrs) is lat
    assert is_longitude(name, attrs) is lon


def test_no_spatial_dims_error_suggests_the_last_two_dims():
    from sciSR.grid import no_spatial_dims_error

    msg = str(no_spatial_dims_error("v", ("time", "a", "b")))
    assert msg.startswith("no spatial dims found in 'v' (dims ('time', 'a', 'b')): sciSR looks for")
    assert "ds.rename({'a': 'y', 'b': 'x'})" in msg and "spatial_dims=('a', 'b')" in msg
    two = str(no_spatial_dims_error("w", ("p", "q")))
    assert "spatial_dims=('p', 'q')" in two
    one = str(no_spatial_dims_error("u", ("t",)))
    assert "(dims ('t',))" in one and "spatial_dims=('y_dim', 'x_dim')" in one


# ---- description -----------------------------------------------------------------------------
def test_summary_reports_each_axis_periodicity_mapping_and_aux():
    lat = np.array([40.0, 30.0, 20.0, 10.0])
    lon = np.arange(0.0, 360.0, 2.5)
    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((4, 144)), {"grid_mapping": "crs"})},
        coords={
            "lat": ("lat", lat, {"units": "degrees_north", "bounds": "lat_bnds"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
            "area": (("lat", "lon"), np.ones((4, 144)), {"units": "m2"}),
        },
    )
    ds["lat_bnds"] = (("lat", "nv"), np.stack([lat + 6.0, lat - 4.0], axis=1))  # uneven edges
    ds["crs"] = ((), 0, {"grid_mapping_name": "latitude_longitude"})
    assert Grid(ds, "lat", "lon").summary() == {
        "axes": {
            "y": {
                "dim": "lat",
                "size": 4,
                "spacing": -10.0,
                "extent": (6.0, 46.0),
                "order": "descending",
                "units": "degrees_north",
                "bounds": "lat_bnds",
            },
            "x": {
                "dim": "lon",
                "size": 144,
                "spacing": 2.5,
                "extent": (-1.25, 358.75),
                "order": "ascending",
                "units": "degrees_east",
            },
        },
        "periodic_x": True,
        "grid_mapping": "crs",
        "aux_coords": ["area"],
    }


def test_summary_of_index_and_gaussian_axes():
    xn, _ = np.polynomial.legendre.leggauss(48)
    lat = np.degrees(np.arcsin(xn))
    ds = xr.Dataset({"v": (("lat", "x"), np.zeros((48, 5)))}, coords={"lat": ("lat", lat)})
    axes = Grid(ds, "lat", "x").summary()["axes"]
    assert axes["x"] == {"dim": "x", "size": 5, "coords": "none (index grid)"}
    y = axes["y"]
    assert y["spacing"] == "irregular" and y["gaussian"] == 48 and y["order"] == "ascending"
    assert y["extent"] == (-90.0, 90.0) and y["units"] == "" and "bounds" not in y
    irregular = xr.Dataset({"v": (("y", "x"), np.zeros((3, 2)))}, coords={"y": [0.0, 1.0, 3.0]})
    iy = Grid(irregular, "y", "x").summary()["axes"]["y"]
    assert iy["extent"] == (0.0, 3.0) and "gaussian" not in iy  # no bounds: the outer centres


# ---- bounds names, CRS, Gaussian edge cases -----------------------------------------------------
def test_new_bounds_avoid_taken_names_and_reuse_a_two_long_dim():
    xn, _ = np.polynomial.legendre.leggauss(8)
    lat = np.degrees(np.arcsin(xn))
    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((8, 2))), "lat_bnds": ("other", np.zeros(3))},
        coords={"lat": ("lat", lat), "lon": ("lon", [0.0, 1.0])},
    )
    ds["junk"] = ("bnds", np.zeros(3))  # a 'bnds' dim of another length
    ref = Grid(ds, "lat", "lon").refine(2)
    assert ref["lat"].attrs["bounds"] == "lat_bnds_"
    assert ref["lat_bnds_"].dims == ("lat", "bnds_")
    ds2 = ds.drop_vars(["junk", "lat_bnds"]).assign(pair=("bnds", [0.0, 1.0]))
    ref2 = Grid(ds2, "lat", "lon").refine(2)
    assert ref2["lat_bnds"].dims == ("lat", "bnds")  # an existing 2-long 'bnds' dim is the CF one


def test_crs_from_wkt_spatial_ref_or_cf_and_a_warning_when_not_understood():
    from pyproj import CRS

    ds = xr.Dataset({"v": (("y", "x"), np.zeros((2, 2)), {"grid_mapping": "gm"})})
    utm, laea = CRS.from_epsg(32633), CRS.from_epsg(3035)
    for attrs, want in (
        ({"crs_wkt": utm.to_wkt()}, utm),
        ({"spatial_ref": utm.to_wkt()}, utm),
        ({"crs_wkt": laea.to_wkt(), "spatial_ref": utm.to_wkt()}, laea),
        (
            {"grid_mapping_name": "latitude_longitude"},
            CRS.from_cf({"grid_mapping_name": "latitude_longitude"}),
        ),
    ):
        g = Grid(ds.assign(gm=((), 0, attrs)), "y", "x")
        assert g.crs() == want
    bad = Grid(ds.assign(gm=((), 0, {"grid_mapping_name": "no_such_projection"})), "y", "x")
    with pytest.warns(
        UserWarning, match=r"^grid mapping 'gm' not understood by pyproj \(.+\); 2-D coordinates"
    ):
        assert bad.crs() is None
    assert Grid(ds, "y", "x").crs() is None


def test_gaussian_edges_need_three_finite_latitudes_inside_the_poles():
    xn, _ = np.polynomial.legendre.leggauss(32)
    lat = np.degrees(np.arcsin(xn))
    n, edges = gaussian_edges(lat[10:13])  # three rows of a band are enough
    assert n == 32 and edges.shape == (4,)
    n, down = gaussian_edges(lat[12:9:-1])
    np.testing.assert_array_equal(down, edges[::-1])
    assert gaussian_edges(lat[10:12]) is None
    bad = lat.copy()
    bad[5] = np.nan
    assert gaussian_edges(bad) is None
    assert gaussian_edges(np.concatenate([lat, [90.0]])) is None
    assert gaussian_edges(np.array([-90.0, 0.0, 90.0])) is None
    # the full grid: edges start and end at the poles exactly, every cell's area is its weight
    n, full = gaussian_edges(lat)
    assert n == 32 and full[0] == -90.0 and full[-1] == 90.0 and np.all(np.diff(full) > 0)


@pytest.mark.parametrize("n", [3, 64, 95, 200])
def test_gaussian_grids_of_any_size_are_found_from_a_band(n):
    xn, wn = np.polynomial.legendre.leggauss(n)
    lat = np.degrees(np.arcsin(xn))
    k = max(0, n // 2 - 3)
    found = gaussian_edges(lat[k : k + min(n, 5)])
    assert found is not None and found[0] == n
    e = found[1]
    np.testing.assert_allclose(np.diff(np.sin(np.radians(e))), wn[k : k + min(n, 5)], atol=1e-12)


# ---- 2-D auxiliary coordinates -------------------------------------------------------------------
def _laea_dataset(lon_convention: str = "0-360", shift: float = 0.0, dtype=np.float32):
    """A 4 × 5 EPSG:3035 (northing-first axis order) grid near 4°W 47°N with 2-D lat/lon in
    several spellings: CF names, units only, a bare NEMO name."""
    from pyproj import CRS, Transformer

    crs = CRS.from_epsg(3035)
    y = 3.2e6 + 50e3 * np.arange(4)
    x = 3.3e6 + 50e3 * np.arange(5)  # west of Greenwich: 0–360 longitudes differ from pyproj by 360
    to_geo = Transformer.from_crs(crs, "EPSG:4258", always_xy=True)
    lon, lat = to_geo.transform(*np.meshgrid(x, y))
    lon = np.mod(lon, 360.0) if lon_convention == "0-360" else lon
    coords = {
        "y": ("y", y, {"standard_name": "projection_y_coordinate", "units": "m"}),
        "x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m"}),
        "lat": (
            ("y", "x"),
            (lat + shift).astype(dtype),
            {"standard_name": "latitude", "units": "degrees_north"},
        ),
        "lon": (("y", "x"), lon.astype(dtype), {"standard_name": "longitude", "units": "degrees_east"}),
        "glat": (("y", "x"), lat.astype(dtype), {"units": "degrees_north"}),
        "nav_lon": (("y", "x"), lon.astype(dtype)),
        "area": (("y", "x"), np.full((4, 5), 2.5e9, dtype), {"units": "m2"}),
    }
    ds = xr.Dataset({"v": (("y", "x"), np.zeros((4, 5)), {"grid_mapping": "laea"})}, coords=coords)
    return ds.assign(laea=((), 0, {"crs_wkt": crs.to_wkt()})), to_geo


def test_2d_coords_of_a_projected_grid_are_recomputed_in_their_convention_and_dtype():
    import warnings

    ds, to_geo = _laea_dataset("0-360")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the 0–360 longitudes agree with the mapping: no fallback
        ref = Grid(ds, "y", "x").refine(3)
    lon, lat = to_geo.transform(*np.meshgrid(ref["x"].values, ref["y"].values))
    for name, want in (
        ("lat", lat),
        ("glat", lat),
        ("lon", np.mod(lon, 360.0)),
        ("nav_lon", np.mod(lon, 360.0)),
    ):
        got = ref[name]
        assert got.dtype == np.float32 and got.dims == ("y", "x") and got.shape == (12, 15), name
        np.testing.assert_allclose(got.values, want, atol=2e-5, err_msg=name)
        assert got.attrs == ds[name].attrs and got.encoding == {"_FillValue": None}
    assert float(ref["lon"].min()) > 0 and float(ref["lon"].max()) < 360  # [0, 360) kept
    # a non-geographic 2-D coordinate is interpolated, keeping its dtype and attrs
    assert ref["area"].dtype == np.float32 and np.allclose(ref["area"].values, 2.5e9)
    assert ref["area"].attrs == {"units": "m2"} and ref["area"].encoding == {"_FillValue": None}


def test_2d_coords_that_disagree_with_the_mapping_are_interpolated_with_a_warning():
    ds, _ = _laea_dataset("pm180", shift=0.01)
    with pytest.warns(
        UserWarning, match=r"^'lat' does not match grid mapping 'laea' \(max error 0\.01°\); interp"
    ):
        ref = Grid(ds, "y", "x").refine(2)
    lat = ds["lat"].values.astype(np.float64)
    np.testing.assert_allclose(ref["lat"].values, refine_linear(refine_linear(lat, 2, 0), 2, 1), rtol=1e-6)


def test_2d_coords_without_a_refinable_axis_pair_are_interpolated():
    ds, _ = _laea_dataset("pm180")
    ds = ds.drop_vars("x")  # x is now an index dim: no projection coordinates to transform
    ref = Grid(ds, "y", "x").refine(2)
    lat = ds["lat"].values.astype(np.float64)
    np.testing.assert_allclose(ref["lat"].values, refine_linear(refine_linear(lat, 2, 0), 2, 1), rtol=1e-6)


@pytest.mark.parametrize(("convention", "start"), [("pm180", 170.0), ("0-360", 350.0)])
def test_interpolated_longitudes_cross_the_antimeridian_without_a_seam(convention, start):
    """No grid mapping: 2-D longitudes are unwrapped along both axes, interpolated, wrapped back."""

    def field(iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        return start + 4.0 * ix[None, :] + 3.0 * iy[:, None]  # crosses the wrap along both axes

    def wrapped(lon: np.ndarray) -> np.ndarray:
        return (lon + 180.0) % 360.0 - 180.0 if convention == "pm180" else np.mod(lon, 360.0)

    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((5, 6)))},
        coords={
            "lon": (
                ("y", "x"),
                wrapped(field(np.arange(5.0), np.arange(6.0))).astype(np.float32),
                {"units": "degrees_east"},
            ),
            "cell": (("y", "x"), np.arange(30, dtype=np.int32).reshape(5, 6)),
        },
    )
    ds = ds.assign_coords(nav_lon=(("y", "x"), ds["lon"].values))  # a longitude known by its name only
    ref = Grid(ds, "y", "x").refine(2)
    p = lambda n: (np.arange(2 * n) + 0.5) / 2 - 0.5  # noqa: E731 - sub-cell centres in index space
    want = wrapped(field(p(5), p(6)))  # the field is linear in index space: interpolation is exact
    got = ref["lon"].values.astype(np.float64)
    diff = np.abs(got - want)
    np.testing.assert_array_less(np.minimum(diff, 360.0 - diff), 1e-4)
    if convention == "pm180":
        assert got.min() >= -180 and got.max() < 180
    else:
        assert got.min() >= 0 and got.max() < 360
    assert ref["lon"].dtype == np.float32 and ref["lon"].attrs == {"units": "degrees_east"}
    np.testing.assert_array_equal(ref["nav_lon"].values, ref["lon"].values)
    assert ref["cell"].dtype == np.float64  # integer coordinates become float when interpolated
    np.testing.assert_allclose(
        ref["cell"].values[::2, ::2][1:, 1:], np.arange(30).reshape(5, 6)[1:, 1:] - 1.75
    )


def test_projected_coordinates_without_units_are_metres():
    ds, to_geo = _laea_dataset("pm180", dtype=np.float64)
    for d in ("x", "y"):
        ds[d].attrs.pop("units")
    ref = Grid(ds, "y", "x").refine(2)
    lon, lat = to_geo.transform(*np.meshgrid(ref["x"].values, ref["y"].values))
    np.testing.assert_allclose(ref["lat"].values, lat, atol=1e-9)
    np.testing.assert_allclose(ref["lon"].values, lon, atol=1e-9)


def test_rotated_geotransform_terms_are_rescaled_too():
    ds = xr.Dataset({"v": (("y", "x"), np.zeros((2, 3)), {"grid_mapping": "crs"})})
    ds["crs"] = ((), 0, {"GeoTransform": "100 10 2 200 3 -10"})
    out = Grid(ds, "y", "x").refine(2)["crs"].attrs["GeoTransform"]
    assert [float(t) for t in out.split()] == [100.0, 5.0, 1.0, 200.0, 1.5, -5.0]
    ds["crs"].attrs["GeoTransform"] = "1 2 3"  # not a GeoTransform: left as it is
    assert Grid(ds, "y", "x").refine(2)["crs"].attrs["GeoTransform"] == "1 2 3"


def test_irregular_message_gives_the_steps_the_offset_and_the_storage_tolerance():
    from sciSR.grid import STORAGE_ULPS, irregular_message

    v = np.array([0.0, 1.0, 2.0, 3.5, 4.0]) + 0.1  # not float32 numbers
    i = np.arange(5.0)
    coef = np.linalg.lstsq(np.stack([i, np.ones(5)], axis=1), v, rcond=None)[0]
    off = np.abs(v - (coef[0] * i + coef[1])).max()
    tol64, tol32 = STORAGE_ULPS * np.spacing(4.1), STORAGE_ULPS * float(np.spacing(np.float32(4.1)))
    msg64 = irregular_message("x", v)
    assert msg64.startswith("coordinate 'x' is irregularly spaced (steps from 0.5 to 1.5, values up to ")
    assert f"up to {off:.2g} off the nearest regular grid where rounding allows {tol64:.2g})" in msg64
    msg32 = irregular_message("x", v, np.float32)
    assert f"rounding allows {tol32:.2g})" in msg32 and tol32 > 1e6 * tol64
    ds = xr.Dataset({"v": (("y", "x"), np.zeros((2, 5)))}, coords={"x": ("x", v), "y": [0.0, 1.0]})
    ds["x"].encoding["dtype"] = np.dtype("float32")
    with pytest.raises(ValueError) as err:
        Grid(ds, "y", "x").refine(2)
    assert msg32 in str(err.value)


def test_storage_ulp_follows_the_stored_precision():
    from sciSR.grid import storage_ulp

    v = np.array([0.1, -100.3, 7.0])  # not float32 numbers
    assert storage_ulp(v) == np.spacing(100.3)
    assert storage_ulp(v, np.float32) == float(np.spacing(np.float32(100.3)))
    assert storage_ulp(v, "float16") == float(np.spacing(np.float16(100.3)))
    assert storage_ulp(v, np.int16) == np.spacing(100.3)  # integers on disk: the values' own precision
    assert storage_ulp(v, np.float64) == np.spacing(100.3)
    exact32 = np.float32(v).astype(np.float64)
    assert storage_ulp(exact32) == float(np.spacing(np.float32(100.3)))  # promoted float32 values
    assert storage_ulp(np.array([])) == np.spacing(0.0)


@pytest.mark.parametrize("axis", [0, 1])
def test_refine_linear_repeats_a_single_cell_and_interpolates_two(axis):
    one = np.array([[1.0, 2.0, 3.0]]) if axis == 0 else np.array([[1.0], [2.0]])
    got = refine_linear(one, 3, axis)
    np.testing.assert_array_equal(got, np.repeat(one, 3, axis=axis))
    two = np.array([[0.0, 10.0], [4.0, 6.0]])
    got = refine_linear(two, 2, axis)
    lo, hi = np.take(two, 0, axis), np.take(two, 1, axis)
    expect = np.stack(
        [lo - (hi - lo) / 4, lo + (hi - lo) / 4, hi - (hi - lo) / 4, hi + (hi - lo) / 4], axis=axis
    )
    np.testing.assert_allclose(got, expect)


def test_refined_coordinates_keep_attrs_and_dtype_and_never_get_a_fill_value():
    x = np.array([100.0, 110.0, 120.0], np.float32)
    ds = xr.Dataset(
        {"v": (("y", "x", "z"), np.zeros((2, 3, 4)))},
        coords={
            "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate", "bounds": "x_bnds"}),
            "z": ("z", np.arange(4, dtype=np.int32), {"axis": "X"}),
        },
    )
    ds["x_bnds"] = (("x", "nv"), np.stack([x - 5, x + 5], axis=1).astype(np.float32), {"units": "m"})
    ref = Grid(ds, "y", "x").refine(2)  # y has no coordinate: an index axis, skipped
    assert "y" not in ref
    assert ref["x"].dtype == np.float32 and ref["x"].attrs == ds["x"].attrs
    assert ref["x"].encoding == {"_FillValue": None}
    assert ref["x_bnds"].dtype == np.float32 and ref["x_bnds"].attrs == {"units": "m"}
    assert ref["x_bnds"].encoding == {"_FillValue": None}
    np.testing.assert_array_equal(ref["x_bnds"].values[:2], [[95.0, 100.0], [100.0, 105.0]])
    ints = Grid(ds, "y", "z").refine(2)["z"]  # integer coordinates refine to float64
    assert ints.dtype == np.float64 and ints.attrs == {"axis": "X"} and ints.encoding == {"_FillValue": None}
    np.testing.assert_array_equal(ints.values, np.arange(8) / 2 - 0.25)
    ib = ds.assign(x_bnds=ds["x_bnds"].astype(np.int64))
    assert Grid(ib, "y", "x").refine(2)["x_bnds"].dtype == np.float64


@pytest.mark.parametrize(
    ("x", "bnds", "want"),
    [
        ([5.0], [[0.0, 10.0]], [[0.0, 5.0], [5.0, 10.0]]),  # a single cell: its bounds give the spacing
        ([5.0], [[10.0, 0.0]], [[5.0, 0.0], [10.0, 5.0]]),  # pairs keep their own orientation
        ([5.0, 15.0], [[0.0, 10.0], [10.0, 20.0]], [[0, 5], [5, 10], [10, 15], [15, 20]]),
        ([15.0, 5.0], [[20.0, 10.0], [10.0, 0.0]], [[20, 15], [15, 10], [10, 5], [5, 0]]),
    ],
)
def test_bounds_of_one_and_two_cell_axes_are_split_along_the_axis(x, bnds, want):
    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, len(x))))},
        coords={"x": ("x", x, {"bounds": "x_bnds"}), "y": [0.0, 1.0]},
    )
    ds["x_bnds"] = (("x", "nv"), np.array(bnds))
    ref = Grid(ds, "y", "x").refine(2)
    np.testing.assert_array_equal(ref["x_bnds"].values, np.array(want, float))
    np.testing.assert_array_equal(ref["x"].values, np.array(want, float).mean(axis=1))


def test_single_cell_without_bounds_is_refused_with_the_fix():
    ds = xr.Dataset({"v": (("y", "x"), np.zeros((2, 1)))}, coords={"x": [5.0], "y": [0.0, 1.0]})
    with pytest.raises(
        ValueError, match=r"^axis 'x' has a single cell and no bounds: its spacing is unknown, so"
    ):
        Grid(ds, "y", "x").refine(2)
    two = xr.Dataset({"v": (("y", "x"), np.zeros((2, 2)))}, coords={"x": [5.0, 7.0], "y": [0.0, 1.0]})
    np.testing.assert_array_equal(Grid(two, "y", "x").refine(2)["x"].values, [4.5, 5.5, 6.5, 7.5])


@pytest.mark.parametrize("shape", ["1-D", "other dims"])
def test_malformed_bounds_are_ignored_with_a_warning(shape):
    x = np.array([0.0, 1.0, 2.0])
    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, 3)))}, coords={"x": ("x", x, {"bounds": "xb"}), "y": [0.0, 1.0]}
    )
    ds["xb"] = ("x", x) if shape == "1-D" else (("nv", "w"), np.zeros((2, 3)))
    with pytest.warns(UserWarning, match=r"^bounds variable 'xb' does not have shape \(x, 2\); ignored$"):
        ref = Grid(ds, "y", "x").refine(2)
    np.testing.assert_allclose(ref["x"].values, np.arange(6) / 2 - 0.25)


def test_cf_bounds_win_over_gaussian_quadrature_edges():
    xn, _ = np.polynomial.legendre.leggauss(8)
    lat = np.degrees(np.arcsin(xn))
    edges = np.concatenate([[-90.0], (lat[:-1] + lat[1:]) / 2, [90.0]])  # midpoints: not the quadrature
    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((8, 2)))},
        coords={"lat": ("lat", lat, {"bounds": "lat_bnds"}), "lon": ("lon", [0.0, 1.0])},
    )
    ds["lat_bnds"] = (("lat", "nv"), np.stack([edges[:-1], edges[1:]], axis=1))
    g = Grid(ds, "lat", "lon")
    assert g.y.gaussian == 8
    np.testing.assert_array_equal(g.cell_bounds(g.y), ds["lat_bnds"].values)
    np.testing.assert_array_equal(g.refine(2)["lat_bnds"].values[::2, 0], edges[:-1])


def test_regular_fit_origin_and_the_stored_precision():
    fit = regular_fit(np.array([5.0, 7.0, 9.0]))
    assert fit == regular_fit(np.array([5.0, 7.0, 9.0])) and (fit.step, fit.origin, fit.exact) == (
        2.0,
        5.0,
        True,
    )
    x = -28.375 + 0.11 * np.arange(424)
    x[100] += 3e-6  # a float32 ulp here, and the file says the axis is stored as float32
    f32 = regular_fit(x, np.float32)
    assert f32 is not None and not f32.exact and f32.step == pytest.approx(0.11, abs=1e-8)
    assert f32.origin == pytest.approx(-28.375, abs=1e-6)
    from sciSR.grid import Axis

    irregular = Axis("x", 3, "x", np.array([0.0, 1.0, 3.0]), {}, None, None)
    assert irregular.regular_values() is None


def test_gaussian_latitudes_rounded_within_the_tolerance_are_still_gaussian():
    xn, _ = np.polynomial.legendre.leggauss(96)
    lat = np.degrees(np.arcsin(xn))
    found = gaussian_edges(lat + 0.001)  # printed with three decimals: within 1e-3 of a cell (1.9°)
    assert found is not None and found[0] == 96
    assert gaussian_edges(lat + 0.01) is None


def test_bounds_stored_vertex_first_are_read_along_the_axis():
    x = np.array([0.0, 1.0, 3.0])
    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, 3)))}, coords={"x": ("x", x, {"bounds": "xb"}), "y": [0.0, 1.0]}
    )
    ds["xb"] = (("nv", "x"), np.array([[-0.5, 0.5, 2.0], [0.5, 2.0, 4.0]]))  # (2, n) on disk
    ref = Grid(ds, "y", "x").refine(2)
    np.testing.assert_array_equal(ref["xb"].values[:, 0], [-0.5, 0.0, 0.5, 1.25, 2.0, 3.0])
    assert ref["xb"].dims == ("x", "nv")

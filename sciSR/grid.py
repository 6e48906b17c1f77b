"""Spatial geometry of CF/xarray grids: which dims are spatial, and the refined grid (DESIGN §4).

Spatial dims are recognized from CF metadata (``axis``, ``standard_name``, units) and the usual
names, including dims without coordinate variables. Refining by an integer ``s`` keeps the outer
edges fixed and splits every cell into ``s`` sub-cells::

    new centres of cell i = c_i + (arange(s) - (s-1)/2) * d/s

for ascending or descending coordinates alike; bounds variables are split into ``s``
sub-intervals; 2-D auxiliary latitude/longitude are recomputed from the CF grid mapping with
pyproj (interpolated in index space only when no projection is known). Nothing is sorted or
flipped.

Regularity is judged at the precision a coordinate was stored with: values that sit on a
regular grid to float32 precision (EURO-CORDEX rotated-pole coordinates, often promoted to
float64) count as regular, and their refined centres are laid on the least-squares regular grid
through them. Irregular axes are refined inside their cell edges: CF bounds, or, for latitudes of
a Gaussian grid without bounds, the edges of the Gauss–Legendre quadrature (``sin`` of an edge is
the cumulative sum of the weights minus 1). Sub-cell centres of an irregular axis are the
midpoints of the split edges, so centres and bounds stay consistent (at a Gaussian pole row the
old centre is not the middle of its cell, so the sub-cell centres do not average to it).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

#: standard_name → axis
_STANDARD_NAMES = {
    "latitude": "Y",
    "projection_y_coordinate": "Y",
    "grid_latitude": "Y",
    "projection_y_angular_coordinate": "Y",
    "longitude": "X",
    "projection_x_coordinate": "X",
    "grid_longitude": "X",
    "projection_x_angular_coordinate": "X",
}
_UNITS = {
    "degrees_north": "Y",
    "degree_north": "Y",
    "degrees_n": "Y",
    "degree_n": "Y",
    "degreesn": "Y",
    "degreen": "Y",
    "degrees_east": "X",
    "degree_east": "X",
    "degrees_e": "X",
    "degree_e": "X",
    "degreese": "X",
    "degreee": "X",
}
_NAMES = {
    **dict.fromkeys(
        (
            "y",
            "lat",
            "lats",
            "latitude",
            "rlat",
            "grid_latitude",
            "nav_lat",
            "yc",
            "y_c",
            "south_north",
            "northing",
            "row",
            "rows",
            "ny",
            "j",
            "nj",
        ),
        "Y",
    ),
    **dict.fromkeys(
        (
            "x",
            "lon",
            "lons",
            "longitude",
            "rlon",
            "grid_longitude",
            "nav_lon",
            "xc",
            "x_c",
            "west_east",
            "easting",
            "col",
            "cols",
            "columns",
            "nx",
            "i",
            "ni",
        ),
        "X",
    ),
}
_LON_NAMES = {"lon", "lons", "longitude", "nav_lon", "glamt"}
_LAT_NAMES = {"lat", "lats", "latitude", "nav_lat", "gphit"}
#: projection coordinate units → metres
_LENGTH_UNITS = {
    "m": 1.0,
    "meter": 1.0,
    "meters": 1.0,
    "metre": 1.0,
    "metres": 1.0,
    "km": 1000.0,
    "kilometer": 1000.0,
    "kilometers": 1000.0,
    "kilometre": 1000.0,
    "kilometres": 1000.0,
}


def axis_of(name: Hashable, attrs: Mapping[str, Any]) -> tuple[str, int] | None:
    """Classify a coordinate as ``"Y"`` or ``"X"`` with a strength.

    Strength: 4 ``axis``, 3 ``standard_name``, 2 units, 1 name.
    """
    axis = str(attrs.get("axis", "")).upper()
    if axis in ("X", "Y"):
        return axis, 4
    sn = str(attrs.get("standard_name", "")).lower()
    if sn in _STANDARD_NAMES:
        return _STANDARD_NAMES[sn], 3
    units = str(attrs.get("units", "")).lower().replace(" ", "")
    if units in _UNITS:
        return _UNITS[units], 2
    key = str(name).lower()
    if key in _NAMES:
        return _NAMES[key], 1
    return None


def is_longitude(name: Hashable, attrs: Mapping[str, Any]) -> bool:
    """True for a geographic (or rotated) longitude coordinate."""
    sn = str(attrs.get("standard_name", "")).lower()
    units = str(attrs.get("units", "")).lower().replace(" ", "")
    return (
        sn in ("longitude", "grid_longitude") or _UNITS.get(units) == "X" or str(name).lower() in _LON_NAMES
    )


def is_latitude(name: Hashable, attrs: Mapping[str, Any]) -> bool:
    """True for a geographic latitude coordinate (not a rotated or projected ``y``)."""
    sn = str(attrs.get("standard_name", "")).lower()
    units = str(attrs.get("units", "")).lower().replace(" ", "")
    return sn == "latitude" or _UNITS.get(units) == "Y" or str(name).lower() in _LAT_NAMES


def find_spatial_dims(da: xr.DataArray) -> tuple[str, str] | None:
    """``(y_dim, x_dim)`` of ``da`` from CF metadata and names, or ``None`` without a complete pair.

    Evidence per dim: its 1-D coordinate's ``axis``, ``standard_name`` or units, else the dim's
    name (``y/x``, ``lat/lon``, ``rlat/rlon``...); dims spanned by 2-D latitude/longitude
    auxiliary coordinates count as spatial too (curvilinear grids).
    """
    best: dict[str, tuple[float, int, str]] = {}

    def offer(axis: str, score: float, dim: Hashable) -> None:
        pos = da.dims.index(dim)
        cand = (score, pos, str(dim))
        if axis not in best or cand[:2] > best[axis][:2]:
            best[axis] = cand

    for dim in da.dims:
        c = da.coords.get(dim)
        kind = axis_of(dim, c.attrs if c is not None else {})
        if kind is not None:
            offer(kind[0], kind[1], dim)
    for name, c in da.coords.items():
        if c.ndim == 2 and set(c.dims) <= set(da.dims):
            kind = axis_of(name, c.attrs)
            if kind is not None and kind[1] >= 1:
                offer("Y", 0.5, c.dims[0])
                offer("X", 0.5, c.dims[1])
    if "Y" in best and "X" in best and best["Y"][2] != best["X"][2]:
        return best["Y"][2], best["X"][2]
    return None


def no_spatial_dims_error(name: Hashable, dims: tuple[Hashable, ...]) -> ValueError:
    """The one-line error for a variable whose spatial dims cannot be found."""
    a, b = (str(d) for d in (dims[-2:] if len(dims) >= 2 else ("y_dim", "x_dim")))
    return ValueError(
        f"no spatial dims found in {name!r} (dims {tuple(str(d) for d in dims)}): "
        f"sciSR looks for CF axis='Y'/'X', "
        f"standard_name latitude/longitude/projection_*_coordinate, units degrees_north/east, or dims named "
        f"y/x, lat/lon, latitude/longitude, rlat/rlon; rename them (ds.rename({{'{a}': 'y', '{b}': 'x'}})) "
        f"or pass spatial_dims=('{a}', '{b}')"
    )


#: ulps of float64 rounding tolerated between the steps of a regular axis
_F64_ULPS = 16
#: ulps of the storage precision a value may be off the regular grid fitted through an axis
STORAGE_ULPS = 2
#: a Gaussian latitude may differ from the Gauss–Legendre node by this fraction of a cell
_GAUSS_TOL = 1e-3


def storage_ulp(values: np.ndarray, stored: Any = None) -> float:
    """Spacing of representable numbers at the largest ``|value|`` in the precision of storage.

    The precision is that of ``stored`` (the on-disk dtype) when it is a float type narrower than
    float64, else float32 when every value is exactly a float32 number (float32 coordinates
    promoted to float64), else float64.
    """
    v = np.asarray(values, dtype=np.float64)
    m = float(np.max(np.abs(v))) if v.size else 0.0
    dt = np.dtype(stored) if stored is not None else None
    if dt is not None and dt.kind == "f" and dt.itemsize < 8:
        return float(np.spacing(dt.type(m)))
    if v.size and np.array_equal(v.astype(np.float32).astype(np.float64), v):
        return float(np.spacing(np.float32(m)))
    return float(np.spacing(m))


@dataclass(frozen=True)
class RegularFit:
    """A 1-D coordinate that lies on a regular grid ``origin + i * step``.

    Attributes:
        step: Signed spacing.
        origin: First centre of the fitted grid.
        exact: True when the stored values are regular to float64 rounding; False when they are
            regular only to the precision they were stored with (float32 rounding), so the
            fitted grid, not the stored values, defines the centres.
    """

    step: float
    origin: float
    exact: bool


def regular_fit(values: np.ndarray, stored: Any = None) -> RegularFit | None:
    """The regular grid through ``values``, or ``None`` when they are not regularly spaced.

    Regular to float64 rounding: every step within ``16`` float64 ulps (of the largest
    ``|value|``) of the mean step. Regular to storage precision: every value within
    :data:`STORAGE_ULPS` ulps of the storage precision (:func:`storage_ulp`) of the
    least-squares line. One correctly rounded value is at most half an ulp off; coordinates
    computed in float32 with two roundings (``i * step + start``) reach one ulp. A grid with one
    step 1% off fails both tests; so does float32 accumulation (``cumsum``), which drifts by tens
    of ulps.

    Args:
        values: Coordinate values (at least 2, monotonic).
        stored: On-disk dtype of the coordinate, when known.
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if n < 2:
        return None
    d = np.diff(v)
    mean = (v[-1] - v[0]) / (n - 1)
    m = float(np.max(np.abs(v)))
    if np.max(np.abs(d - mean)) <= _F64_ULPS * float(np.spacing(m)):
        return RegularFit(float(mean), float(v[0]), True)
    ulp = storage_ulp(v, stored)
    i = np.arange(n, dtype=np.float64)
    ic = i - i.mean()
    step = float(np.dot(ic, v - v.mean()) / np.dot(ic, ic))
    origin = float(v.mean() - step * i.mean())
    if step != 0 and np.max(np.abs(v - (origin + step * i))) <= STORAGE_ULPS * ulp:
        return RegularFit(step, origin, False)
    return None


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (ascending, in ``(-1, 1)``) and weights (summing to 2) of ``n``-point Gauss–Legendre.

    Newton iteration on the Legendre recurrence (``O(n²)``), accurate to float64 rounding.

    Shape:
        ``() -> ((n,), (n,))``.
    """
    i = np.arange(n)
    x = np.cos(np.pi * (i + 0.75) / (n + 0.5))

    def legendre(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p0, p1 = np.ones_like(x), x.copy()
        for k in range(2, n + 1):
            p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
        return p1, n * (x * p1 - p0) / (x * x - 1)  # P_n and its derivative

    for _ in range(100):
        p, dp = legendre(x)
        dx = p / dp
        x = x - dx
        if np.max(np.abs(dx)) < 1e-15:
            break
    _, dp = legendre(x)
    w = 2.0 / ((1.0 - x) * (1.0 + x) * dp * dp)
    return x[::-1].copy(), w[::-1].copy()


def gaussian_edges(lat: np.ndarray) -> tuple[int, np.ndarray] | None:
    """Cell edges of latitudes that belong to a Gaussian grid, or ``None``.

    ``lat`` (degrees, ascending or descending, possibly a contiguous band of the grid) matches
    the ``N``-point Gaussian latitudes ``asin(x_j)`` when every value is within
    ``1e-3`` of a cell of a node. The edges are where the cumulative weights match:
    ``sin(edge_k) = sum(w_j, j < k) - 1`` (so each cell's area is its quadrature weight).

    Returns:
        ``(N, edges)`` with ``edges`` of shape ``(n + 1,)`` in the order of ``lat``.
    """
    v = np.asarray(lat, dtype=np.float64)
    n = v.size
    if n < 3 or not np.all(np.isfinite(v)) or np.max(np.abs(v)) >= 90.0:
        return None
    desc = v[-1] < v[0]
    asc = v[::-1] if desc else v
    step = float(np.median(np.diff(asc)))
    if step <= 0:
        return None
    guess = round(180.0 / step)
    for big_n in sorted(range(max(n, guess - 3), guess + 4), key=lambda k: abs(k - guess)):
        x, w = gauss_legendre(big_n)
        glat = np.degrees(np.arcsin(x))
        k = int(np.argmin(np.abs(glat - asc[0])))
        if k + n > big_n or np.max(np.abs(glat[k : k + n] - asc)) > _GAUSS_TOL * step:
            continue
        sin_edges = np.clip(np.concatenate([[0.0], np.cumsum(w)]) - 1.0, -1.0, 1.0)
        edges = np.degrees(np.arcsin(sin_edges))
        edges[0], edges[-1] = -90.0, 90.0
        e = edges[k : k + n + 1]
        return big_n, (e[::-1] if desc else e).copy()
    return None


@dataclass
class Axis:
    """One spatial axis: its dim and, when present, its 1-D coordinate and bounds.

    Attributes:
        dim: Dimension name.
        size: Number of cells.
        coord: Name of the 1-D coordinate variable along ``dim`` (``None`` for an index grid).
        values: Coordinate values (float64), or ``None``.
        attrs: Coordinate attributes.
        bounds: Name of the bounds variable (``(dim, 2)``), or ``None``.
        spacing: Regular spacing (signed), or ``None`` when irregular or without coordinate.
        origin: First centre of the regular grid fitted through values that are regular only to
            their storage precision (see :func:`regular_fit`); ``None`` when the values are
            regular to float64 rounding (or irregular).
        gaussian: ``N`` when the values are latitudes of an ``N``-point Gaussian grid (irregular
            axes only).
        stored_dtype: On-disk dtype of the coordinate (its encoding), else its dtype.
    """

    dim: str
    size: int
    coord: str | None
    values: np.ndarray | None
    attrs: dict[str, Any]
    bounds: str | None
    spacing: float | None
    origin: float | None = None
    gaussian: int | None = None
    stored_dtype: Any = None

    def regular_values(self) -> np.ndarray | None:
        """Centres of a regular axis: the stored values, or the fitted grid (storage-precision case)."""
        if self.values is None or self.spacing is None:
            return None
        if self.origin is None:
            return self.values
        return self.origin + self.spacing * np.arange(self.size, dtype=np.float64)

    @property
    def ascending(self) -> bool | None:
        if self.values is None or self.size < 2:
            return None
        return bool(self.values[-1] > self.values[0])


class Grid:
    """Geometry of the spatial dims ``(y_dim, x_dim)`` of a Dataset.

    Args:
        ds: Dataset holding the coordinates, bounds and grid-mapping variables.
        y_dim, x_dim: The spatial dims (see :func:`find_spatial_dims`).
        grid_mapping: Name of the CF grid-mapping variable (default: from variables' attrs).

    Raises:
        ValueError: A spatial coordinate is not monotonic.
    """

    def __init__(self, ds: xr.Dataset, y_dim: str, x_dim: str, grid_mapping: str | None = None) -> None:
        self.ds = ds
        self.y = self._axis(y_dim)
        self.x = self._axis(x_dim)
        self.grid_mapping = grid_mapping or self._find_grid_mapping()
        self.aux = [
            str(n)
            for n, v in ds.variables.items()
            if v.ndim == 2 and set(v.dims) == {y_dim, x_dim} and n in ds.coords
        ]

    # ---- discovery -------------------------------------------------------------------------
    def _axis(self, dim: str) -> Axis:
        n = int(self.ds.sizes[dim])
        if dim not in self.ds.variables or self.ds.variables[dim].ndim != 1:
            return Axis(dim, n, None, None, {}, None, None)
        var = self.ds.variables[dim]
        if var.dtype.kind not in "fiu":
            raise ValueError(f"coordinate {dim!r} has dtype {var.dtype}; spatial coordinates must be numeric")
        v = np.asarray(var.values, dtype=np.float64)
        bounds = var.attrs.get("bounds") or var.encoding.get("bounds")
        if bounds is not None and bounds not in self.ds.variables:
            bounds = None
        d = np.diff(v)
        if n > 1 and not (np.all(d > 0) or np.all(d < 0)):
            raise ValueError(
                f"coordinate {dim!r} is not strictly monotonic; sort the data with ds.sortby({dim!r}) "
                f"(sciSR never reorders silently)"
            )
        stored = np.dtype(var.encoding.get("dtype", var.dtype))
        fit = regular_fit(v, stored) if n > 1 else None
        if fit is not None:
            origin = None if fit.exact else fit.origin
            return Axis(dim, n, dim, v, dict(var.attrs), bounds, fit.step, origin, None, stored)
        gauss = None
        if is_latitude(dim, var.attrs):
            found = gaussian_edges(v)
            gauss = found[0] if found is not None else None
        return Axis(dim, n, dim, v, dict(var.attrs), bounds, None, None, gauss, stored)

    def _find_grid_mapping(self) -> str | None:
        for v in self.ds.variables.values():
            if self.y.dim in v.dims and self.x.dim in v.dims:
                gm = v.attrs.get("grid_mapping") or v.encoding.get("grid_mapping")
                if gm:
                    name = str(gm).split(":")[0].split()[0]
                    if name in self.ds.variables:
                        return name
        return None

    @property
    def periodic_x(self) -> bool:
        """True for a global longitude axis (``|spacing| × n ≈ 360``): the x axis must wrap."""
        x = self.x
        if x.spacing is None or not is_longitude(x.dim, x.attrs):
            return False
        return abs(abs(x.spacing) * x.size - 360.0) <= 1e-3 * abs(x.spacing)

    @property
    def dims(self) -> tuple[str, str]:
        return self.y.dim, self.x.dim

    def crs(self) -> Any:
        """pyproj CRS from the CF grid mapping, or ``None`` (none, or not understood: warns)."""
        if self.grid_mapping is None:
            return None
        from pyproj import CRS

        attrs = dict(self.ds.variables[self.grid_mapping].attrs)
        try:
            if "crs_wkt" in attrs or "spatial_ref" in attrs:
                return CRS.from_wkt(str(attrs.get("crs_wkt") or attrs["spatial_ref"]))
            return CRS.from_cf(attrs)
        except Exception as exc:
            warnings.warn(
                f"grid mapping {self.grid_mapping!r} not understood by pyproj ({exc}); "
                f"2-D coordinates will be interpolated",
                stacklevel=3,
            )
            return None

    # ---- refinement ------------------------------------------------------------------------
    def refine(self, scale: int) -> dict[str, xr.Variable]:
        """Every coordinate-like variable of the refined grid, by name.

        Returns:
            1-D spatial coordinates, their bounds, 2-D auxiliary coordinates and an updated grid
            mapping (a GDAL ``GeoTransform`` attribute rescaled) where present.

        Raises:
            ValueError: Irregular spacing without bounds, or a single-cell axis without bounds.
        """
        s = int(scale)
        out: dict[str, xr.Variable] = {}
        new_vals: dict[str, np.ndarray | None] = {}
        for ax in (self.y, self.x):
            new_vals[ax.dim] = None
            if ax.values is None:
                continue
            bnds = self.cell_bounds(ax)
            centres = refine_centres(ax, s, bnds)
            new_vals[ax.dim] = centres
            src = self.ds.variables[ax.dim]
            dtype = src.dtype if src.dtype.kind == "f" else np.float64
            attrs = dict(src.attrs)
            if bnds is None:
                out[ax.dim] = xr.Variable(ax.dim, centres.astype(dtype), attrs, {"_FillValue": None})
                continue
            nb = split_bounds(bnds, np.sign(ax.values[-1] - ax.values[0]) if ax.size > 1 else 1.0, s)
            if ax.bounds is not None:
                bsrc = self.ds.variables[ax.bounds]
                name, nv_dim = ax.bounds, next(d for d in bsrc.dims if d != ax.dim)
                battrs, bdtype = bsrc.attrs, (bsrc.dtype if bsrc.dtype.kind == "f" else np.float64)
            else:  # Gaussian edges computed here: the refined grid carries them as CF bounds
                name, nv_dim = self._free_name(f"{ax.dim}_bnds"), self._free_dim("bnds")
                battrs, bdtype = {}, dtype
                attrs["bounds"] = name
            out[ax.dim] = xr.Variable(ax.dim, centres.astype(dtype), attrs, {"_FillValue": None})
            out[name] = xr.Variable((ax.dim, nv_dim), nb.astype(bdtype), battrs, {"_FillValue": None})
        if self.aux:
            out.update(self._refine_aux(s, new_vals))
        if self.grid_mapping is not None:
            gm = self.ds.variables[self.grid_mapping]
            if "GeoTransform" in gm.attrs:
                gm = gm.copy()
                gm.attrs["GeoTransform"] = _scale_geotransform(str(gm.attrs["GeoTransform"]), s)
                out[self.grid_mapping] = gm
        return out

    def cell_bounds(self, ax: Axis) -> np.ndarray | None:
        """Cell edges of ``ax`` as ``(n, 2)``: its CF bounds variable, else Gaussian-grid edges
        (irregular latitudes of a Gaussian grid), else ``None``."""
        bnds = self._bounds_array(ax)
        if bnds is not None or ax.gaussian is None or ax.values is None:
            return bnds
        found = gaussian_edges(ax.values)
        if found is None:
            return None
        e = found[1]
        return np.stack([e[:-1], e[1:]], axis=1)

    def _free_name(self, name: str) -> str:
        while name in self.ds.variables:
            name = f"{name}_"
        return name

    def _free_dim(self, dim: str) -> str:
        while dim in self.ds.dims and self.ds.sizes[dim] != 2:
            dim = f"{dim}_"
        return dim

    def _bounds_array(self, ax: Axis) -> np.ndarray | None:
        if ax.bounds is None:
            return None
        b = self.ds.variables[ax.bounds]
        if b.ndim != 2 or ax.dim not in b.dims or b.sizes[ax.dim] != ax.size:
            warnings.warn(
                f"bounds variable {ax.bounds!r} does not have shape ({ax.dim}, 2); ignored", stacklevel=4
            )
            return None
        return np.asarray(b.transpose(ax.dim, ...).values, dtype=np.float64)

    def _refine_aux(self, s: int, new_vals: dict[str, np.ndarray | None]) -> dict[str, xr.Variable]:
        out: dict[str, xr.Variable] = {}
        projected = self._aux_from_projection(s, new_vals)
        for name in self.aux:
            var = self.ds.variables[name]
            if name in projected:
                out[name] = projected[name]
                continue
            vals = np.asarray(var.transpose(self.y.dim, self.x.dim).values, dtype=np.float64)
            lon = is_longitude(name, var.attrs)
            if lon:
                vals = np.unwrap(np.unwrap(vals, period=360.0, axis=1), period=360.0, axis=0)
            ref = refine_linear(refine_linear(vals, s, axis=0), s, axis=1)
            if lon:
                ref = _wrap_like(ref, np.asarray(var.values, dtype=np.float64))
            ref_var = xr.Variable(
                (self.y.dim, self.x.dim),
                ref.astype(var.dtype if var.dtype.kind == "f" else np.float64),
                var.attrs,
                {"_FillValue": None},
            )
            out[name] = ref_var.transpose(*var.dims)
        return out

    def _aux_from_projection(self, s: int, new_vals: dict[str, np.ndarray | None]) -> dict[str, xr.Variable]:
        """2-D lat/lon recomputed with pyproj at the refined projection coordinates (verified first)."""
        ny, nx = new_vals.get(self.y.dim), new_vals.get(self.x.dim)
        if ny is None or nx is None:
            return {}
        kinds: dict[str, str] = {}
        for name in self.aux:
            attrs = self.ds.variables[name].attrs
            kind = axis_of(name, attrs)
            if kind is not None and (kind[1] >= 2 or str(name).lower() in _NAMES):
                kinds[name] = "lon" if kind[0] == "X" else "lat"
        if not kinds:
            return {}
        crs = self.crs()
        if crs is None:
            return {}
        from pyproj import Transformer

        fy = _length_factor(self.y.attrs, crs)
        fx = _length_factor(self.x.attrs, crs)
        to_geo = Transformer.from_crs(crs, _geographic_of(crs), always_xy=True)

        def lonlat(yv: np.ndarray, xv: np.ndarray) -> dict[str, np.ndarray]:
            xx, yy = np.meshgrid(xv * fx, yv * fy)
            lon, lat = to_geo.transform(xx, yy)
            return {"lon": np.asarray(lon), "lat": np.asarray(lat)}

        assert self.y.values is not None and self.x.values is not None
        check = lonlat(self.y.values, self.x.values)
        for name, kind in kinds.items():
            have = np.asarray(
                self.ds.variables[name].transpose(self.y.dim, self.x.dim).values, dtype=np.float64
            )
            err = np.abs(have - check[kind])
            if kind == "lon":
                err = np.minimum(err % 360.0, 360.0 - err % 360.0)
            if np.nanmax(err) > 1e-3:
                warnings.warn(
                    f"{name!r} does not match grid mapping {self.grid_mapping!r} "
                    f"(max error {np.nanmax(err):.3g}°); "
                    f"interpolating the 2-D coordinates instead",
                    stacklevel=4,
                )
                return {}
        new = lonlat(ny, nx)
        out = {}
        for name, kind in kinds.items():
            var = self.ds.variables[name]
            vals = new[kind]
            if kind == "lon":
                vals = _wrap_like(vals, np.asarray(var.values, dtype=np.float64))
            v = xr.Variable(
                (self.y.dim, self.x.dim),
                vals.astype(var.dtype if var.dtype.kind == "f" else np.float64),
                var.attrs,
                {"_FillValue": None},
            )
            out[name] = v.transpose(*var.dims)
        return out

    # ---- description ----------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Plain facts for ``scisr info``: per-axis size, spacing, extent, order; periodicity; CRS."""
        axes = {}
        for ax in (self.y, self.x):
            info: dict[str, Any] = {"dim": ax.dim, "size": ax.size}
            if ax.values is None:
                info["coords"] = "none (index grid)"
            else:
                info["spacing"] = ax.spacing if ax.spacing is not None else "irregular"
                if ax.gaussian is not None:
                    info["gaussian"] = ax.gaussian
                bnds = self.cell_bounds(ax)
                if bnds is not None:
                    lo, hi = float(bnds.min()), float(bnds.max())
                else:
                    half = abs(ax.spacing) / 2 if ax.spacing is not None else 0.0
                    lo, hi = float(np.min(ax.values)) - half, float(np.max(ax.values)) + half
                info["extent"] = (lo, hi)
                info["order"] = "ascending" if ax.ascending else "descending"
                info["units"] = ax.attrs.get("units", "")
                if ax.bounds:
                    info["bounds"] = ax.bounds
            axes["y" if ax is self.y else "x"] = info
        return {
            "axes": axes,
            "periodic_x": self.periodic_x,
            "grid_mapping": self.grid_mapping,
            "aux_coords": list(self.aux),
        }


def refine_centres(ax: Axis, s: int, bounds: np.ndarray | None = None) -> np.ndarray:
    """Sub-cell centres of a 1-D axis.

    Regular axis with spacing ``d``: ``c_i + (arange(s) - (s-1)/2) * d/s``, with ``c_i`` the stored
    centres (or the fitted regular grid when the values are regular only to their storage
    precision). Irregular axis with cell edges ``bounds``: the midpoints of the ``s`` equal
    sub-intervals of each cell, so every centre sits in the middle of its new bounds.

    Shape:
        ``(n,) -> (n·s,)``.

    Raises:
        ValueError: Irregular spacing without bounds, or one cell without bounds.
    """
    v = ax.values
    assert v is not None
    if ax.spacing is not None:
        base = ax.regular_values()
        assert base is not None
        offsets = (np.arange(s) - (s - 1) / 2.0) / s
        return (base[:, None] + offsets[None, :] * ax.spacing).reshape(-1)
    if bounds is not None:
        direction = np.sign(v[-1] - v[0]) if ax.size > 1 else 1.0
        return split_bounds(bounds, direction, s).mean(axis=1)
    if ax.size < 2:
        raise ValueError(
            f"axis {ax.dim!r} has a single cell and no bounds: its spacing is unknown, so it "
            f"cannot be refined; add a bounds variable or downscale a larger region"
        )
    raise ValueError(irregular_message(ax.dim, v, ax.stored_dtype))


def irregular_figures(dim: str, v: np.ndarray, stored: Any = None) -> str:
    """``coordinate 'x' is irregularly spaced (steps ..., values up to ... off a regular grid ...)``."""
    d = np.diff(v)
    i = np.arange(v.size, dtype=np.float64)
    line = np.polyval(np.polyfit(i, v, 1), i)
    off = float(np.max(np.abs(v - line)))
    tol = STORAGE_ULPS * storage_ulp(v, stored)
    return (
        f"coordinate {dim!r} is irregularly spaced (steps from {d.min():.7g} to {d.max():.7g}, values up to "
        f"{off:.2g} off the nearest regular grid where rounding allows {tol:.2g})"
    )


def irregular_message(dim: str, v: np.ndarray, stored: Any = None) -> str:
    """The one-line refusal of an irregular axis without cell edges, with the figures that show it."""
    return (
        f"{irregular_figures(dim, v, stored)}: cells cannot be split into equal sub-cells without knowing "
        f"their edges; add CF cell bounds ('bounds' attribute; downscale the Dataset rather than a "
        f"DataArray so that they come along) or regrid to a regular grid first"
    )


def split_bounds(bounds: np.ndarray, direction: float, s: int) -> np.ndarray:
    """Split each cell ``[b0, b1]`` into ``s`` equal sub-intervals ordered along the axis.

    Each pair keeps the source's orientation (``b0 < b1`` or ``b0 > b1``).

    Shape:
        ``(n, 2) -> (n·s, 2)``.
    """
    b0, b1 = bounds[:, 0], bounds[:, 1]
    start = np.where(direction > 0, np.minimum(b0, b1), np.maximum(b0, b1))
    end = np.where(direction > 0, np.maximum(b0, b1), np.minimum(b0, b1))
    k = np.arange(s + 1) / s
    edges = start[:, None] + (end - start)[:, None] * k[None, :]
    edges[:, -1] = end  # exact: neighbouring cells share their edge bit for bit
    lo, hi = edges[:, :-1], edges[:, 1:]
    same = (np.sign(b1 - b0) == direction)[:, None]
    first = np.where(same, lo, hi)
    second = np.where(same, hi, lo)
    return np.stack([first.reshape(-1), second.reshape(-1)], axis=-1)


def refine_linear(a: np.ndarray, s: int, axis: int) -> np.ndarray:
    """Linear interpolation onto sub-cell centres in index space (align-corners-False), extrapolating
    linearly at the edges so that regular coordinates refine exactly as :func:`refine_centres`.

    Shape:
        ``(..., n, ...) -> (..., n·s, ...)`` along ``axis``.
    """
    a = np.moveaxis(a, axis, 0)
    n = a.shape[0]
    if n == 1:
        return np.moveaxis(np.repeat(a, s, axis=0), 0, axis)
    p = (np.arange(n * s) + 0.5) / s - 0.5
    i0 = np.clip(np.floor(p).astype(int), 0, n - 2)
    t = (p - i0).reshape((-1,) + (1,) * (a.ndim - 1))
    out = a[i0] * (1 - t) + a[i0 + 1] * t
    return np.moveaxis(out, 0, axis)


def _wrap_like(lon: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Put longitudes in the same convention as ``ref`` ([0, 360) or [-180, 180))."""
    if np.nanmin(ref) >= 0 and np.nanmax(ref) > 180:
        return np.mod(lon, 360.0)
    if np.nanmin(ref) >= -180 and np.nanmax(ref) <= 180:
        return (lon + 180.0) % 360.0 - 180.0
    return lon


def _geographic_of(crs: Any) -> Any:
    """Plain geographic CRS on ``crs``'s ellipsoid (pyproj returns a rotated pole's own derived CRS
    as its ``geodetic_crs``, which would make the transformation an identity)."""
    from pyproj import CRS

    geo = crs.geodetic_crs
    if geo is None or geo.is_derived or geo == crs:
        ell = crs.ellipsoid
        geo = CRS.from_proj4(
            f"+proj=longlat +a={ell.semi_major_metre!r} +b={ell.semi_minor_metre!r} +no_defs"
        )
    return geo


def _length_factor(attrs: Mapping[str, Any], crs: Any) -> float:
    units = str(attrs.get("units", "")).strip().lower()
    if crs.is_geographic or units.startswith("deg"):
        return 1.0
    return _LENGTH_UNITS.get(units, 1.0)


def _scale_geotransform(gt: str, s: int) -> str:
    """GDAL ``GeoTransform`` ``"x0 dx rx y0 ry dy"`` for cells ``s`` times smaller (origin fixed)."""
    p = [float(t) for t in gt.split()]
    if len(p) != 6:
        return gt
    x0, dx, rx, y0, ry, dy = p
    return " ".join(repr(v) for v in (x0, dx / s, rx / s, y0, ry / s, dy / s))

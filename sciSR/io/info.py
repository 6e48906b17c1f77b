"""``scisr info``: what sciSR sees in a file or Dataset (format, variables, grid, CRS, masks).

Files are opened lazily by every built-in adapter, so a description reads metadata and
coordinates only; the valid fraction is computed for variables of at most :data:`MAX_SCAN` values
(reported as "not scanned" above that), so a small file that declares a huge grid costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..grid import Grid

#: arrays larger than this (values) are not scanned for the valid fraction
MAX_SCAN = 1 << 24
#: attribute names that hold a georeferencing transform or affine
_TRANSFORM_KEYS = ("GeoTransform", "transform", "affine", "sform", "qform")


def describe(ds: xr.Dataset | xr.DataArray | str | Path) -> str:
    """Multi-line summary: format, variables (dims, shape, dtype, spatial dims, valid fraction),
    grid per spatial-dim pair (spacing, extent, order, periodicity), CRS/grid mapping, transforms.

    Args:
        ds: A Dataset/DataArray, or a path opened with :func:`sciSR.io.open_dataset`.
    """
    from .base import adapter_for_dataset, open_dataset

    if isinstance(ds, (str, Path)):
        ds = open_dataset(ds)
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "data")
    lines = [f"format: {ds.attrs.get('scisr_format', 'xarray')}"]
    if ds.encoding.get("source"):
        lines.append(f"source: {ds.encoding['source']}")
    lines.append("variables:")
    grids: dict[tuple[str, str], list[str]] = {}
    adapter = adapter_for_dataset(ds)
    for name, var in ds.data_vars.items():
        shape = ", ".join(f"{d}: {n}" for d, n in var.sizes.items())
        dims = adapter.spatial_dims(var) if var.ndim >= 2 else None
        text = f"  {name} ({shape}) {var.dtype}"
        if "scisr_source_dtype" in var.encoding or "dtype" in var.encoding:
            disk = np.dtype(var.encoding.get("scisr_source_dtype", var.encoding.get("dtype")))
            if disk != var.dtype and disk.kind in "fiu" and var.dtype.kind in "fiu":
                text += f" (stored as {disk})"
        if dims:
            grids.setdefault(dims, []).append(str(name))
            text += f"  spatial dims ({dims[0]}, {dims[1]})  valid {_valid_fraction(var)}"
        lines.append(text)
    for dims, names in grids.items():
        lines.extend(_grid_lines(ds, dims, names))
    if not grids:
        lines.append(
            "grid: no variable with recognizable spatial dims (pass spatial_dims= or rename dims to y/x)"
        )
    lines.extend(_transform_lines(ds))
    return "\n".join(lines)


def _valid_fraction(var: xr.DataArray) -> str:
    if var.size > MAX_SCAN or var.dtype.kind not in "fiu":
        return "not scanned"
    finite = np.isfinite(var.data).sum()
    frac = float(finite.compute() if hasattr(finite, "compute") else finite) / var.size
    return f"{100 * frac:.1f}%"


def _grid_lines(ds: xr.Dataset, dims: tuple[str, str], names: list[str]) -> list[str]:
    try:
        grid = Grid(ds, *dims)
    except ValueError as exc:
        return [f"grid ({dims[0]}, {dims[1]}): {exc}"]
    info = grid.summary()
    lines = [f"grid ({dims[0]}, {dims[1]}) of {', '.join(names)}:"]
    for key in ("y", "x"):
        ax = info["axes"][key]
        if "spacing" not in ax:
            lines.append(f"  {key} {ax['dim']}: {ax['size']} cells, {ax['coords']}")
            continue
        sp = ax["spacing"]
        sp_txt = f"spacing {sp:.6g} {ax['units']}" if isinstance(sp, float) else f"spacing {sp}"
        if ax.get("gaussian"):
            sp_txt = f"Gaussian latitudes (N={ax['gaussian']}; cell edges from the quadrature weights)"
        lo, hi = ax["extent"]
        extra = f", bounds {ax['bounds']}" if "bounds" in ax else ""
        lines.append(
            f"  {key} {ax['dim']}: {ax['size']} cells, {sp_txt}, "
            f"extent [{lo:.6g}, {hi:.6g}], {ax['order']}{extra}"
        )
    if info["periodic_x"]:
        lines.append("  x is periodic (global longitude): wrapped halo, no seam")
    if info["aux_coords"]:
        lines.append(f"  2-D coordinates: {', '.join(info['aux_coords'])}")
    if info["grid_mapping"]:
        crs = grid.crs()
        name = crs.name if crs is not None else "not understood by pyproj"
        gm = ds.variables[info["grid_mapping"]].attrs.get("grid_mapping_name", "")
        lines.append(f"  grid mapping: {info['grid_mapping']} ({gm}) → CRS {name}")
    return lines


def _transform_lines(ds: xr.Dataset) -> list[str]:
    out = []
    for owner, attrs in [("dataset", ds.attrs), *((str(n), v.attrs) for n, v in ds.variables.items())]:
        for key in _TRANSFORM_KEYS:
            if key in attrs:
                val: Any = attrs[key]
                text = np.array2string(np.asarray(val), precision=6) if not isinstance(val, str) else val
                out.append(f"{key} ({owner}): {' '.join(text.split())}")
    return out

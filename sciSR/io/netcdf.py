"""NetCDF/CF adapter (netCDF4 engine): CF decoding on read, fresh float encodings on write."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .base import Adapter, register_adapter


@register_adapter
class NetCDFAdapter(Adapter):
    """NetCDF-3/4 files with CF metadata.

    Opening decodes CF conventions (``mask_and_scale``: fill values become NaN, packed integers
    are unpacked); calendars that cannot be decoded (Ferret's year-0 climatologies) fall back to
    ``decode_times=False`` with a warning. Writing produces NetCDF-4 with compressed float data.
    """

    name = "netcdf"
    extensions = (".nc", ".nc4", ".cdf", ".netcdf")

    def open(self, path: Path, **kw: Any) -> xr.Dataset:
        kw.setdefault("engine", "netcdf4")
        kw.setdefault("mask_and_scale", True)
        ds = open_with_time_fallback(xr.open_dataset, path, kw)
        check_readable(ds, path)
        ds.attrs["scisr_format"] = self.name
        ds.encoding["source"] = str(path)
        return ds

    def write(self, ds: xr.Dataset, path: Path, **kw: Any) -> None:
        ds = clean_for_write(ds, netcdf_attrs=True)
        bad = {str(n): str(v.dtype) for n, v in ds.variables.items() if v.dtype == np.float16}
        if bad:
            raise ValueError(
                f"NetCDF cannot store float16 ({bad}); downscale with dtype='float32' or write Zarr"
            )
        fmt = kw.pop("format", "NETCDF4")
        encoding = kw.pop("encoding", {})
        if fmt == "NETCDF4":
            for name, var in ds.data_vars.items():
                if var.ndim >= 2 and var.dtype.kind in "fiu" and "zlib" not in var.encoding:
                    encoding.setdefault(name, {"zlib": True, "complevel": 4})
        ds.to_netcdf(path, engine="netcdf4", format=fmt, encoding=encoding, **kw)


def open_with_time_fallback(opener: Callable[..., xr.Dataset], path: Path, kw: dict[str, Any]) -> xr.Dataset:
    """``opener(path, **kw)``, retried with ``decode_times=False`` (and a warning) when times cannot be
    decoded (Ferret climatologies with year 0, unknown calendars)."""
    try:
        return opener(path, **kw)
    except (ValueError, OverflowError) as exc:
        if "decode_times" in kw or not _is_time_error(exc):
            raise
        ds = opener(path, decode_times=False, **kw)
        warnings.warn(f"{path}: times left undecoded ({' '.join(str(exc).split())[:200]})", stacklevel=4)
        return ds


def _is_time_error(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return any(k in msg for k in ("decode", "calendar", "time", "date", "year"))


def check_readable(ds: xr.Dataset, path: Path) -> None:
    """Fail on open, not mid-computation, for truncated files.

    NetCDF-3 readers silently return fill values past the end of a truncated file, so the file
    size is compared with the bytes its variables need; for other formats one value at the end
    of every array is read.

    Raises:
        ValueError: The file is shorter than its contents or a variable is unreadable (names
            the file and the variable).
    """
    _check_classic_size(path)
    for name, var in ds.variables.items():
        if var.size == 0 or var.chunks is not None:
            continue
        try:
            np.asarray(var[tuple(slice(-1, None) for _ in var.dims)].values)
        except Exception as exc:
            raise ValueError(
                f"cannot read {path}: variable {name!r} is unreadable ({' '.join(str(exc).split())}); "
                f"the file may be truncated"
            ) from exc


def _check_classic_size(path: Path) -> None:
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        if not nc.data_model.startswith("NETCDF3"):
            return
        need = 0
        for var in nc.variables.values():
            need += int(np.prod(var.shape, dtype=np.int64)) * var.dtype.itemsize
    size = Path(path).stat().st_size
    if size < need:
        raise ValueError(
            f"cannot read {path}: the file has {size} bytes but its variables need at least {need}; "
            f"it is truncated"
        )


def clean_for_write(ds: xr.Dataset, netcdf_attrs: bool = False) -> xr.Dataset:
    """Copy of ``ds`` without sciSR's bookkeeping attrs and with storable attribute values.

    With ``netcdf_attrs`` booleans become ints, dicts JSON strings and ``None`` values are dropped
    (netCDF attributes hold only numbers, strings and arrays).
    """
    out = ds.copy(deep=False)
    out.attrs = _clean_attrs(ds.attrs, netcdf_attrs)
    out.attrs.pop("scisr_format", None)
    for name in out.variables:
        v = out.variables[name]
        v.attrs = _clean_attrs(v.attrs, netcdf_attrs)
        v.encoding = {k: e for k, e in v.encoding.items() if k not in ("source", "original_shape")}
    out.encoding = {k: e for k, e in ds.encoding.items() if k == "unlimited_dims"}
    return out


def _clean_attrs(attrs: dict[str, Any], netcdf: bool) -> dict[str, Any]:
    if not netcdf:
        return dict(attrs)
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            v = int(v)
        elif isinstance(v, dict):
            v = json.dumps(v, default=str)
        elif (
            isinstance(v, (list, tuple)) and v and not all(isinstance(t, (int, float, np.number)) for t in v)
        ):
            v = json.dumps(list(v), default=str) if not all(isinstance(t, str) for t in v) else ", ".join(v)
        out[k] = v
    return out

"""NetCDF/CF adapter (netCDF4 engine): CF decoding on read, fresh float encodings on write.

Every access to the netCDF-C/HDF5 libraries (open, the truncation check, lazy reads of the
opened variables, writes) holds :data:`sciSR.io.locks.NETCDF_LOCK`, so concurrent jobs in
threads (``scisr batch``) never enter the libraries at the same time.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .base import Adapter, register_adapter
from .locks import NETCDF_LOCK
from .streaming import counting_blocks, storage_chunks
from .write_errors import disk_full_as_oserror


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
        """Open lazily: metadata, and one value per variable to detect truncation; variables are
        read on first access.

        Args:
            path: The file.
            **kw: Passed to ``xr.open_dataset`` (``chunks=`` for dask-backed variables...).
        """
        kw.setdefault("engine", "netcdf4")
        kw.setdefault("mask_and_scale", True)
        if kw["engine"] == "netcdf4":
            kw.setdefault("lock", NETCDF_LOCK)
        with NETCDF_LOCK:
            ds = open_with_time_fallback(xr.open_dataset, path, kw)
            check_readable(ds, path)
        ds.attrs["scisr_format"] = self.name
        ds.encoding["source"] = str(path)
        return ds

    def check_writable(
        self, ds: xr.Dataset, variables: Any = None, dtype: Any = None, scale: int = 1
    ) -> None:
        """Refuse, before any computation, output NetCDF cannot store (float16)."""
        from .capability import planned_outputs

        bad = {p.name: str(p.dtype) for p in planned_outputs(ds, variables, dtype) if p.dtype == np.float16}
        if bad:
            raise ValueError(f"NetCDF cannot store float16 ({bad}); use dtype='float32' or write Zarr")

    def write(self, ds: xr.Dataset, path: Path, **kw: Any) -> None:
        """Write NetCDF-4 (compressed 2-D+ numeric variables) under the netCDF lock.

        Dask-backed variables are computed chunk by chunk in the writing thread.

        Raises:
            ValueError: float16 variables (NetCDF has no such type).
            OSError: The disk is full (``ENOSPC``; the libraries only say "HDF error").
        """
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
                numeric = var.dtype.kind in "fiu"
                if numeric and var.chunks is not None and var.ndim >= 2 and "chunksizes" not in var.encoding:
                    # HDF5 chunks = the computed blocks (streaming.storage_chunks): each block fills
                    # whole compressed chunks, so no partly written chunk is evicted, compressed,
                    # re-read and rewritten
                    enc = encoding.setdefault(name, {})
                    enc.setdefault("chunksizes", storage_chunks(var.chunks))
        kw.pop("compute", None)
        lazy = any(v.chunks is not None for v in ds.data_vars.values())
        with (
            disk_full_as_oserror(path),
            NETCDF_LOCK,
            _chunk_cache(WRITE_CHUNK_CACHE if lazy else None),
            counting_blocks(ds, f"sciSR write {path.name}"),
        ):
            delayed = ds.to_netcdf(path, engine="netcdf4", format=fmt, encoding=encoding, compute=False, **kw)
            # one block after the other, in this thread (other threads never hold the lock meanwhile)
            delayed.compute(scheduler="synchronous")


#: HDF5 chunk cache (bytes per variable) of a file written from lazy blocks: written chunks wait in
#: it until evicted, so netCDF-C's 64 MiB default would add that much to a streamed call's peak.
WRITE_CHUNK_CACHE = 16 << 20


@contextlib.contextmanager
def _chunk_cache(nbytes: int | None) -> Iterator[None]:
    """netCDF-C's default chunk cache set to ``nbytes`` for the files opened meanwhile (call it
    holding :data:`NETCDF_LOCK`; ``None``: unchanged)."""
    if nbytes is None:
        yield
        return
    import netCDF4

    size, nelems, preemption = netCDF4.get_chunk_cache()
    netCDF4.set_chunk_cache(int(nbytes), nelems, preemption)
    try:
        yield
    finally:
        netCDF4.set_chunk_cache(size, nelems, preemption)


class UndecodedTimesWarning(UserWarning):
    """Times that cannot be decoded to dates are kept as raw numbers (with their units attribute)."""


def open_with_time_fallback(opener: Callable[..., xr.Dataset], path: Path, kw: dict[str, Any]) -> xr.Dataset:
    """``opener(path, **kw)``, retried with ``decode_times=False`` when times cannot be decoded.

    One :class:`UndecodedTimesWarning` says which variables keep raw numbers and why (year 0 in a
    calendar without it, as in Ferret climatologies; an unknown calendar or unit).
    """
    try:
        return opener(path, **kw)
    except (ValueError, OverflowError) as exc:
        if "decode_times" in kw or not _is_time_error(exc):
            raise
        ds = opener(path, decode_times=False, **kw)
        warnings.warn(f"{path}: {undecoded_times_reason(ds, exc)}", UndecodedTimesWarning, stacklevel=4)
        return ds


def _is_time_error(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return any(k in msg for k in ("decode", "calendar", "time", "date", "year"))


_SINCE = re.compile(r"^\s*\w+\s+since\s+([+-]?\d+)-", re.IGNORECASE)
#: calendars without a year 0 (CF: the mixed Julian/Gregorian calendar and its aliases, and Julian)
_NO_YEAR_ZERO = ("standard", "gregorian", "julian", "")


def undecoded_times_reason(ds: xr.Dataset, exc: BaseException) -> str:
    """One line naming the time variables kept as raw numbers and what stops their decoding."""
    names: list[Hashable] = []
    year0: list[tuple[Hashable, str, str]] = []
    for name, var in ds.variables.items():
        units = str(var.attrs.get("units", ""))
        m = _SINCE.match(units)
        if m is None:
            continue
        names.append(name)
        cal = str(var.attrs.get("calendar", "")).strip().lower()
        if int(m.group(1)) == 0 and cal in _NO_YEAR_ZERO:
            year0.append((name, units, cal or "standard"))
    if year0 and len(year0) == len(names):
        which = ", ".join(repr(str(n)) for n, _, _ in year0)
        name, units, cal = year0[0]
        given = ds.variables[name].attrs.get("calendar")
        cal_txt = f"the {cal} calendar" if given else "the standard calendar (CF default: no calendar given)"
        return (
            f"times {which} kept as raw numbers: units {units!r} start in year 0, which {cal_txt} "
            f"does not have"
        )
    which = ", ".join(repr(str(n)) for n in names) or "of the file"
    return f"times {which} kept as raw numbers: they cannot be decoded ({' '.join(str(exc).split())[:160]})"


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

    with NETCDF_LOCK, netCDF4.Dataset(path) as nc:
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


def read_source_variables(source: str | Path, names: list[str]) -> dict[str, xr.Variable]:
    """Variables ``names`` (those present) of the NetCDF or Zarr file ``source``, loaded.

    Used to reach the parent Dataset of a DataArray (its coordinate bounds). Returns an empty
    dict when the file cannot be read.
    """
    p = Path(source)
    try:
        if p.is_dir():
            with xr.open_zarr(p, decode_times=False, consolidated=None) as f:
                return {n: f.variables[n].load().copy() for n in names if n in f.variables}
        with NETCDF_LOCK, xr.open_dataset(p, engine="netcdf4", decode_times=False, lock=NETCDF_LOCK) as f:
            return {n: f.variables[n].load().copy() for n in names if n in f.variables}
    except Exception:  # the parent is unreachable: the caller goes on without it
        return {}

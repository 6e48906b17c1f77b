"""Read-on-access arrays for the array adapters (GeoTIFF, NIfTI): opening reads metadata only.

A variable built by :func:`lazy_variable` reads from its file when its values are first needed,
only the requested window (``ds.isel(y=slice(...))`` reads just those rows), and checks the memory
the read needs before reading (:func:`sciSR.io.memory.check_read`). So ``scisr info`` and
``sciSR.open`` of a file that declares a huge grid cost nothing, and a subset of a large raster
can be downscaled without reading the rest.

Readers are picklable objects (path and metadata), so lazy datasets travel to dask workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from . import memory

#: the key a reader receives: one int or step-1-or-more slice per dim
Key = tuple[Any, ...]


class LazyArray(BackendArray):
    """A file-backed array read through ``reader(key)`` with basic (int/slice) indexing.

    Args:
        shape: Full shape.
        dtype: dtype of the values the reader returns.
        reader: ``reader(key) -> ndarray`` for a tuple of ints/slices (one per dim); ints drop
            their dim.
        what: Description for the memory refusal (``"/path/x.tif (band, y, x)"``).
        bytes_per_value: Memory per value while reading (on-disk value, working copy, mask).
        fix: What to do instead when the read does not fit in memory.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: Any,
        reader: Callable[[Key], np.ndarray],
        what: str,
        bytes_per_value: float,
        fix: str,
    ) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.reader = reader
        self.what = what
        self.bytes_per_value = float(bytes_per_value)
        self.fix = fix

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._read)

    def _read(self, key: Key) -> np.ndarray:
        count = 1
        for k, n in zip(key, self.shape):
            count *= 1 if isinstance(k, (int, np.integer)) else len(range(n)[k])
        shape = "×".join(str(n) for n in self.shape)
        memory.check_read(count * self.bytes_per_value, f"{self.what} ({shape})", self.fix)
        return np.asarray(self.reader(key), dtype=self.dtype)


def lazy_variable(
    dims: tuple[str, ...],
    shape: tuple[int, ...],
    dtype: Any,
    reader: Callable[[Key], np.ndarray],
    *,
    what: str,
    bytes_per_value: float,
    fix: str,
    attrs: dict[str, Any] | None = None,
) -> xr.Variable:
    """An ``xr.Variable`` whose values are read on access (see :class:`LazyArray`)."""
    arr = LazyArray(shape, dtype, reader, what, bytes_per_value, fix)
    return xr.Variable(dims, indexing.LazilyIndexedArray(arr), attrs or {})


def key_ranges(key: Key, shape: tuple[int, ...]) -> list[range | int]:
    """The index range (or int) each entry of a basic ``key`` selects.

    Shape:
        one entry per dim of ``shape``.
    """
    out: list[range | int] = []
    for k, n in zip(key, shape):
        if isinstance(k, (int, np.integer)):
            out.append(int(k) % n if n else int(k))
        else:
            out.append(range(n)[k])
    return out


def covering_slice(r: range | int) -> tuple[slice, Any]:
    """``(contiguous slice that covers r, index into that slice giving r)``.

    Ints give a one-element slice and index ``0`` (which drops the dim); ranges with a step give
    the covering window and a step slice.
    """
    if isinstance(r, int):
        return slice(r, r + 1), 0
    if len(r) == 0:
        return slice(0, 0), slice(None)
    lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
    return slice(lo, hi), slice(None, None, r.step)

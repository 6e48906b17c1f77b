"""CF packed integers (``scale_factor``/``add_offset``/``_FillValue``) for ``dtype="source"``.

A packed NetCDF variable (``short`` with ``scale_factor``/``add_offset``) is unpacked to floats on
open; its encoding remembers the packing. With ``dtype="source"`` the result is packed again the
same way: ``raw = round((value - add_offset) / scale_factor)`` clipped to the integer range, NaN
cells set to ``_FillValue``, and a valid cell that would land on ``_FillValue`` moved one step
away from it (so the output mask stays the nearest-upsampled input mask). The packed variable is
returned undecoded, as ``xr.open_dataset(mask_and_scale=False)`` shows it: integer values with
``scale_factor``, ``add_offset`` and ``_FillValue`` attributes, which NetCDF and Zarr writers store
as they are and readers decode again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Packing:
    """How a source variable was stored.

    Attributes:
        dtype: On-disk integer dtype.
        scale: ``scale_factor`` (``None`` when absent).
        offset: ``add_offset`` (``None`` when absent).
        fill: ``_FillValue`` (or ``missing_value``) in the packed domain, or ``None``.
    """

    dtype: np.dtype
    scale: Any = None
    offset: Any = None
    fill: Any = None

    def attrs(self) -> dict[str, Any]:
        """The attributes of the packed output variable (types as in the source)."""
        out: dict[str, Any] = {}
        if self.scale is not None:
            out["scale_factor"] = self.scale
        if self.offset is not None:
            out["add_offset"] = self.offset
        if self.fill is not None:
            out["_FillValue"] = self.dtype.type(self.fill)
        return out


def source_packing(encoding: dict[str, Any], dtype: np.dtype) -> Packing | None:
    """The packing of a decoded variable (from its encoding), or ``None`` when it is not an
    integer stored as floats (plain integer data keep their dtype in memory)."""
    disk = encoding.get("dtype")
    if disk is None or np.dtype(disk).kind not in "iu" or np.dtype(dtype).kind != "f":
        return None
    disk = np.dtype(disk)
    if str(encoding.get("_Unsigned", "")).lower() == "true" and disk.kind == "i":
        disk = np.dtype(f"u{disk.itemsize}")
    fill = encoding.get("_FillValue", encoding.get("missing_value"))
    if fill is not None:
        fill = np.ravel(fill)[0]
    return Packing(disk, encoding.get("scale_factor"), encoding.get("add_offset"), fill)


def pack(y: np.ndarray, p: Packing) -> np.ndarray:
    """Pack physical values ``y`` (NaN = invalid) into ``p.dtype``: rounded, clipped, NaN → fill.

    Shape:
        same as ``y``.

    Raises:
        ValueError: NaN cells and no ``_FillValue`` to mark them.
    """
    raw = np.asarray(y, dtype=np.float64)
    if p.offset is not None:
        raw = raw - float(p.offset)
    if p.scale is not None:
        raw = raw / float(p.scale)
    invalid = ~np.isfinite(raw)
    if invalid.any() and p.fill is None:
        raise ValueError(
            f"the output has invalid (NaN) cells but the packed source has no _FillValue to mark them in "
            f"{p.dtype}; keep the float32 default"
        )
    info = np.iinfo(p.dtype)
    out = np.clip(np.rint(np.where(invalid, 0.0, raw)), info.min, info.max).astype(p.dtype)
    if p.fill is not None and info.min <= p.fill <= info.max:
        fill = p.dtype.type(p.fill)
        clash = ~invalid & (out == fill)
        out[clash] = fill + 1 if fill < info.max else fill - 1
        out[invalid] = fill
    return out


def pack_dtype(encoding: dict[str, Any], dtype: np.dtype, requested: Any) -> Packing | None:
    """The packing to apply for the output ``requested`` dtype (``"source"`` only), or ``None``."""
    if not (isinstance(requested, str) and requested in ("source", "input")):
        return None
    return source_packing(encoding, dtype)

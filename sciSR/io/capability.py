"""What a downscale call will produce, known from metadata before the model runs.

Output formats refuse what they cannot store (an integer type PNG cannot hold, a time series
into a single-band image, a grid NIfTI cannot georeference) in :meth:`Adapter.check_writable`,
before any data are read or any model runs, using the plan made here: the variables the input
adapter will downscale, their dims and their output dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from .packing import source_packing


@dataclass(frozen=True)
class PlannedVariable:
    """One output variable of a planned call.

    Attributes:
        name: Variable name.
        dims: Its dims (same order as the input).
        spatial: ``(y_dim, x_dim)``.
        dtype: Output dtype.
        sizes: Input size of every dim.
    """

    name: str
    dims: tuple[str, ...]
    spatial: tuple[str, str]
    dtype: np.dtype
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def lead(self) -> list[str]:
        """The non-spatial dims (loop dims, bands, channels)."""
        return [d for d in self.dims if d not in self.spatial]


def planned_dtype(var: xr.DataArray, dtype: Any) -> np.dtype:
    """Output dtype of ``var`` for the requested ``dtype`` (``None`` float32, ``"source"``, a dtype)."""
    from .xarray_core import output_dtype

    if isinstance(dtype, str) and dtype in ("source", "input"):
        enc = var.encoding
        if "scisr_source_dtype" in enc:
            return np.dtype(enc["scisr_source_dtype"])
        packing = source_packing(enc, var.dtype)
        return packing.dtype if packing is not None else np.dtype(var.dtype)
    return output_dtype(np.dtype(var.dtype), dtype)


def planned_outputs(ds: xr.Dataset, variables: Any = None, dtype: Any = None) -> list[PlannedVariable]:
    """The variables a downscale of ``ds`` will produce, from metadata only.

    The input adapter (``ds.attrs["scisr_format"]``) decides the spatial dims. Returns an empty
    list when the selection itself fails: the call then reports that error.
    """
    from .base import adapter_for_dataset
    from .xarray_core import select_variables

    try:
        adapter = adapter_for_dataset(ds)
        selected = select_variables(ds, variables, adapter.spatial_dims)
    except (ValueError, TypeError):
        return []
    out = []
    for name, dims in selected.items():
        var = ds[name]
        try:
            dt = planned_dtype(var, dtype)
        except TypeError:
            return []
        out.append(
            PlannedVariable(
                str(name), tuple(str(d) for d in var.dims), (str(dims[0]), str(dims[1])), dt, dict(var.sizes)
            )
        )
    return out


def single_output(
    ds: xr.Dataset, variables: Any, dtype: Any, holds: str, fix: str
) -> list[PlannedVariable]:
    """:func:`planned_outputs` for a format that stores one variable per file.

    Args:
        ds: Dataset to downscale.
        variables: The ``variables=`` selection.
        dtype: The requested output dtype.
        holds: What one file of the format holds (``"a NIfTI file holds one volume"``).
        fix: The alternative to suggest besides ``variables=``.

    Raises:
        ValueError: More than one variable would be written.
    """
    plans = planned_outputs(ds, variables, dtype)
    if len(plans) > 1:
        raise ValueError(
            f"{holds} but {[p.name for p in plans]} would be downscaled; "
            f"pass variables='{plans[0].name}' or {fix}"
        )
    return plans

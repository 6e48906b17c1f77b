"""Format adapters: files and xarray objects in and out of sciSR with metadata intact.

Importing :mod:`sciSR.io` loads only the registry; each format module (NetCDF, Zarr, GeoTIFF,
NIfTI, images) and its dependencies load on first use of the registry.
"""

from __future__ import annotations

from typing import Any

from .base import (
    Adapter,
    OutputError,
    adapter_for_dataset,
    adapter_for_path,
    atomic_path,
    check_output_path,
    downscale_path,
    downscale_xarray,
    list_adapters,
    open_dataset,
    register_adapter,
    write,
)

__all__ = [
    "Adapter",
    "OutputError",
    "adapter_for_dataset",
    "adapter_for_path",
    "atomic_path",
    "check_output_path",
    "describe",
    "downscale_path",
    "downscale_xarray",
    "list_adapters",
    "open_dataset",
    "register_adapter",
    "write",
]


def describe(ds: Any) -> str:
    """Human-readable summary of what sciSR sees in a dataset or file (``scisr info``)."""
    from .info import describe as _describe

    return _describe(ds)

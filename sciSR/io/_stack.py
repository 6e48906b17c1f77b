"""Small helpers shared by the array-stack adapters (GeoTIFF, NIfTI, images).

These adapters hold whole rasters/volumes in memory and call the :class:`~sciSR.pipeline.Pipeline`
on ``(B, C, H, W)`` blocks themselves, because their geometry and value conventions (band
nodata and packing, voxel affines, YCbCr) are format specific.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..normalize import Normalizer

if TYPE_CHECKING:
    from ..pipeline import Pipeline


def run_block(
    pipe: Pipeline,
    x: np.ndarray,
    fit_valid: np.ndarray | None = None,
    *,
    periodic_x: bool = False,
    normalizers: list[Normalizer] | None = None,
    desc: str = "sciSR",
) -> tuple[np.ndarray, list[Normalizer]]:
    """Fit one normalizer per channel on all of ``x`` (unless given) and super-resolve it.

    Args:
        pipe: Built pipeline.
        x: Block; NaN marks invalid cells.
        fit_valid: Cells the statistics are computed on (default: the finite ones).
        periodic_x: Wrap the last axis (global longitude).
        normalizers: Fixed normalizers (skip fitting).
        desc: Progress label.

    Returns:
        ``(hr, normalizers)``; ``hr`` is float32 with NaN on invalid cells.

    Shape:
        ``(B, C, H, W) -> (B, C_out, s·H, s·W)``.
    """
    if normalizers is None:
        valid = np.isfinite(x)
        if fit_valid is not None:
            valid &= fit_valid
        if not valid.any():
            raise ValueError("no valid values to downscale: every cell is nodata/NaN (or masked)")
        normalizers = pipe.fit(x, valid)
    return pipe.run(x, normalizers, periodic_x=periodic_x, desc=desc), normalizers


def sr_attrs(
    attrs: dict[str, Any], pipe: Pipeline, scale: int, normalizers: list[Normalizer]
) -> dict[str, Any]:
    """Variable attrs of a result, as the generic path makes them.

    Attributes the refinement invalidates (``actual_range``, ``valid_*``, resolutions, GDAL
    ``STATISTICS_*``) are dropped; model, scale, weights (file, tag, sha256), the reason for the
    model and normalization are recorded.
    """
    from .xarray_core import INVALIDATED_ATTRS, norm_attrs, pipeline_model_name, weights_attrs

    out = {
        k: v
        for k, v in attrs.items()
        if not INVALIDATED_ATTRS.match(str(k).lower()) and not str(k).startswith("STATISTICS_")
    }
    out.update({"scisr_model": pipeline_model_name(pipe), "scisr_scale": int(scale)})
    out.update(weights_attrs(pipe))
    out.update(norm_attrs(normalizers))
    return out


def dataset_attrs(
    attrs: dict[str, Any], pipe: Pipeline, scale: int, names: list[str], fmt: str
) -> dict[str, Any]:
    """Dataset attrs of a result: invalidated ones dropped, one ``history`` line, ``scisr_format``."""
    from .xarray_core import history_line, output_attrs, pipeline_model_name

    out = output_attrs(attrs, history_line(pipeline_model_name(pipe), scale, list(names)))
    out["scisr_format"] = fmt
    return out

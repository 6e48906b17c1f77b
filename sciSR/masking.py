"""Valid-mask helpers: fill invalid cells before the model, carry the mask to the HR grid."""

from __future__ import annotations

import numpy as np


def fill_invalid(x: np.ndarray, valid: np.ndarray, reach: int | None = None) -> np.ndarray:
    """Replace invalid cells of a 2-D field by their nearest valid neighbour (Euclidean).

    Nearest filling keeps gradients small at mask edges (coasts, nodata holes) so the network
    does not see artificial steps; an all-invalid field becomes zeros. With ``reach``, cells
    farther than ``reach`` from every valid cell become 0 instead: the fill of any cell then
    depends only on the valid cells within ``reach`` of it, so a block read with a margin of
    ``reach`` is filled exactly as the whole field is (region-by-region inference).

    Args:
        x: The field.
        valid: Its validity mask.
        reach: Largest distance (cells) filled from a valid neighbour; ``None``: unbounded.

    Shape:
        ``(H, W) -> (H, W)``.
    """
    if valid.all():
        return x
    if not valid.any():
        return np.zeros_like(x)
    from scipy.ndimage import distance_transform_edt

    if reach is None:
        idx = distance_transform_edt(~valid, return_distances=False, return_indices=True)
        return x[tuple(idx)]
    dist, idx = distance_transform_edt(~valid, return_distances=True, return_indices=True)
    out = x[tuple(idx)]
    out[dist > reach] = 0
    return out


def upsample_mask(valid: np.ndarray, scale: int) -> np.ndarray:
    """Nearest (block-replicating) upsampling of a boolean mask over the last two axes.

    Shape:
        ``(..., H, W) -> (..., s·H, s·W)``.
    """
    return np.repeat(np.repeat(valid, scale, axis=-2), scale, axis=-1)

"""Valid-mask helpers: fill invalid cells before the model, carry the mask to the HR grid."""

from __future__ import annotations

import numpy as np


def fill_invalid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid cells of a 2-D field by their nearest valid neighbour (Euclidean).

    Nearest filling keeps gradients small at mask edges (coasts, nodata holes) so the network
    does not see artificial steps; an all-invalid field becomes zeros.

    Shape:
        ``(H, W) -> (H, W)``.
    """
    if valid.all():
        return x
    if not valid.any():
        return np.zeros_like(x)
    from scipy.ndimage import distance_transform_edt

    idx = distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return x[tuple(idx)]


def upsample_mask(valid: np.ndarray, scale: int) -> np.ndarray:
    """Nearest (block-replicating) upsampling of a boolean mask over the last two axes.

    Shape:
        ``(..., H, W) -> (..., s·H, s·W)``.
    """
    return np.repeat(np.repeat(valid, scale, axis=-2), scale, axis=-1)

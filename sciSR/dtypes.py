"""Input validation and output dtypes shared by the API and the format adapters.

These helpers sit below both :mod:`sciSR.api` and :mod:`sciSR.io` so the data flow reads one way
(api → io → pipeline → engine/tiling → models).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_dtype(dtype: Any) -> None:
    """Reject an unusable output ``dtype`` before any work is done.

    Raises:
        TypeError: ``dtype`` is not ``None``, ``"source"``/``"input"`` or a numeric numpy dtype.
    """
    if dtype is None or (isinstance(dtype, str) and dtype in ("source", "input")):
        return
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        kind = None
    if kind not in ("f", "i", "u"):
        raise TypeError(
            f"unknown output dtype {dtype!r}: use None (float32), 'source' (the input's dtype) "
            f"or a numeric dtype such as 'float32', 'int16' or 'uint8'"
        )


def as_float_array(data: Any) -> tuple[np.ndarray, np.dtype, Any]:
    """Validate array-like input and convert it to float32 (float64 kept as float64).

    Returns:
        ``(array, source dtype, torch device or None)``.
    """
    torch_device = None
    if type(data).__module__.startswith("torch"):
        torch_device = data.device
        data = data.detach().cpu().numpy()
    if not isinstance(data, np.ndarray):
        if hasattr(data, "__array__") or isinstance(data, (list, tuple)):
            data = np.asarray(data)
        else:
            raise TypeError(
                f"cannot downscale a {type(data).__name__}; pass a numpy array, torch tensor, "
                f"xarray object or a file path"
            )
    src = data.dtype
    if src.kind not in "fiu":
        raise TypeError(
            f"data of dtype {src} cannot be super-resolved; convert it to a float or integer array"
        )
    if data.ndim < 2:
        raise ValueError(f"expected an array with at least 2 dims (..., H, W), got shape {data.shape}")
    if data.size == 0 or min(data.shape[-2:]) < 1:
        raise ValueError(f"the array is empty (shape {data.shape}); nothing to downscale")
    arr = data.astype(np.float64 if src == np.float64 else np.float32, copy=False)
    return arr, src, torch_device


def cast_output(y: np.ndarray, src: np.dtype, dtype: Any) -> np.ndarray:
    """Apply the requested output dtype: float32 by default, ``"source"`` or a dtype (ints round and clip)."""
    if dtype is None:
        return y.astype(np.float32, copy=False)
    target = src if (isinstance(dtype, str) and dtype in ("source", "input")) else np.dtype(dtype)
    if target.kind in "iu":
        info = np.iinfo(target)
        if np.isnan(y).any():
            raise ValueError(
                f"output has invalid (NaN) cells that {target} cannot hold; keep the float32 default "
                f"or fill them first"
            )
        return np.clip(np.rint(y), info.min, info.max).astype(target)
    return y.astype(target, copy=False)

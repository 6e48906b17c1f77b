"""Fitting sparse-coding dictionaries (Yang et al. 2010) on the training fields of ``sciSR.train``.

:func:`fit_dictionary` is the dictionary counterpart of the neural training loop: it takes the same
training fields (2-D arrays, or ``(C, H, W)`` arrays whose channels are fields), samples random HR
crops from them (area-weighted, so large photos or grids do not have to fit in memory as patch
matrices), and calls :meth:`sciSR.models.sparse_coding.SparseCodingSR.fit` (K-SVD/OMP coupled
dictionaries). The returned record holds the dictionary size, the number of training patches, the
time taken and the training PSNR of the fitted model against bicubic interpolation on a few of the
training crops.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

#: Degradations the dictionaries can be fitted with: the training-pipeline name -> sparse_coding's.
_DEGRADATIONS: dict[str, str] = {"bicubic": "bicubic", "area": "area", "matlab": "bicubic"}


def _fields(fields: Any) -> list[np.ndarray]:
    """2-D float64 arrays from a sequence of 2-D or ``(C, H, W)`` arrays/tensors."""
    if isinstance(fields, (np.ndarray, torch.Tensor)):
        fields = [fields]
    out: list[np.ndarray] = []
    for i, f in enumerate(fields):
        a = f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
        if a.ndim == 2:
            out.append(a.astype(np.float64))
        elif a.ndim == 3:
            out.extend(c.astype(np.float64) for c in a)
        else:
            raise ValueError(f"training field {i} has shape {a.shape}; give 2-D (H, W) or (C, H, W) arrays")
    if not out:
        raise ValueError("no training fields to fit the dictionaries on")
    return out


def _crops(fields: list[np.ndarray], side: int, count: int, scale: int, min_side: int, patch: int,
           rng: np.random.Generator) -> list[np.ndarray]:
    """Up to ``count`` random finite crops, at most ``side`` pixels, multiples of ``scale`` (the
    whole fields when they hold no more windows than the crops would)."""
    usable = [f for f in fields if min(f.shape) >= min_side]
    if not usable:
        raise ValueError(
            f"every training field is smaller than {min_side}×{min_side} pixels, the least a ×{scale} "
            f"dictionary needs; give larger fields"
        )
    windows = sum((f.shape[0] - patch + 1) * (f.shape[1] - patch + 1) for f in usable)
    if windows <= count * (side - patch + 1) ** 2:  # the crops would cover the fields: take them whole
        whole = [f[: f.shape[0] // scale * scale, : f.shape[1] // scale * scale] for f in usable]
        return _finite(whole)
    area = np.array([f.size for f in usable], dtype=np.float64)
    crops: list[np.ndarray] = []
    for _ in range(count * 4):  # crops with non-finite cells are redrawn
        if len(crops) == count:
            break
        f = usable[int(rng.choice(len(usable), p=area / area.sum()))]
        ch = min(side, f.shape[0]) // scale * scale
        cw = min(side, f.shape[1]) // scale * scale
        y = int(rng.integers(0, f.shape[0] - ch + 1))
        x = int(rng.integers(0, f.shape[1] - cw + 1))
        c = f[y : y + ch, x : x + cw]
        if np.isfinite(c).all():
            crops.append(c)
    if not crops:
        raise ValueError("no training crop is free of NaN/inf cells; fill or mask the fields first")
    return _finite(crops)


def _finite(crops: list[np.ndarray]) -> list[np.ndarray]:
    kept = [c for c in crops if np.isfinite(c).all()]
    if not kept:
        raise ValueError("no training crop is free of NaN/inf cells; fill or mask the fields first")
    return kept


def _candidate_count(model: Any, crops: list[torch.Tensor], prune: float) -> int:
    """Training pairs that :meth:`SparseCodingSR.fit` keeps before subsampling (same rule)."""
    norms = []
    for c in crops:
        feats, _ = model._pairs(c[None, None], model.degradation, 1)
        norms.append(feats.norm(dim=1))
    fnorm = torch.cat(norms)
    keep = fnorm > 0
    if prune > 0 and keep.any():
        keep &= fnorm >= torch.quantile(fnorm[keep], float(prune))
    return int(keep.sum())


def _psnr_vs_bicubic(model: Any, crops: list[torch.Tensor], scale: int) -> tuple[float, float]:
    """Model and bicubic PSNR (dB, range of the HR crops, ``scale`` border cells shaved)."""
    from ..metrics import psnr
    from ..models.base import upsample_bicubic

    sr_all, bic_all, hr_all = [], [], []
    with torch.no_grad():
        for c in crops:
            hr = c[None, None]
            lr = model._down(hr, model.degradation)
            sr = model(lr)
            bic = upsample_bicubic(lr, scale, model.upsampler)
            b = scale
            sr_all.append(sr[0, 0, b:-b, b:-b].numpy().ravel())
            bic_all.append(bic[0, 0, b:-b, b:-b].numpy().ravel())
            hr_all.append(hr[0, 0, b:-b, b:-b].numpy().ravel())
    ref = np.concatenate(hr_all)
    return psnr(np.concatenate(sr_all), ref), psnr(np.concatenate(bic_all), ref)


def fit_dictionary(
    model: Any,
    fields: Sequence[Any],
    *,
    scale: int,
    degradation: str = "bicubic",
    patches: int = 20_000,
    seed: int = 0,
    progress: bool = True,
    n_iter: int = 20,
    crop: int = 64,
    prune: float = 0.1,
    eval_crops: int = 4,
) -> dict[str, Any]:
    """Fit a sparse-coding model's coupled dictionaries on training fields.

    Random HR crops of ``crop × crop`` pixels (whole fields when smaller) are drawn with
    probability proportional to each field's area, enough for about twice ``patches`` training
    windows; crops with non-finite cells are skipped. When the fields hold no more windows than
    that, each field is used once, whole. :meth:`SparseCodingSR.fit` then degrades them,
    drops the smoothest ``prune`` fraction of the windows, samples ``patches`` of the rest and
    learns the dictionaries by K-SVD.

    Args:
        model: A :class:`~sciSR.models.sparse_coding.SparseCodingSR` (its atoms, patch size and
            sparsity are kept).
        fields: Training fields: 2-D arrays, or ``(C, H, W)`` arrays (each channel a field), in the
            normalized units the model will see.
        scale: Upscaling factor; must equal the model's.
        degradation: ``"bicubic"`` (antialiased), ``"area"`` (block mean), or ``"matlab"`` (MATLAB
            ``imresize``; needs a model built with ``upsampler="matlab"``).
        patches: Training windows sampled at most.
        seed: Seed of the crop and patch sampling and of the dictionary initialization.
        progress: Show a progress bar over the three stages (crops, K-SVD, evaluation); the
            environment variable ``SCISR_NO_PROGRESS`` turns it off.
        n_iter: K-SVD iterations.
        crop: Side of the HR crops in pixels.
        prune: Fraction of the smoothest windows dropped.
        eval_crops: Training crops the training PSNR is measured on.

    Returns:
        ``{"model", "scale", "degradation", "atoms", "patch", "sparsity", "patches", "crops",
        "seconds", "psnr", "psnr_bicubic", "seed"}``: ``patches`` is the number of training
        windows K-SVD saw, ``psnr``/``psnr_bicubic`` the training PSNR (dB) of the model and of
        bicubic interpolation on the first ``eval_crops`` crops.

    Raises:
        TypeError: ``model`` is not a sparse-coding model.
        ValueError: A scale other than the model's, an unsupported degradation, no usable field,
            too few patches for the dictionary size, or non-positive settings.
    """
    from tqdm.auto import tqdm

    from ..models.sparse_coding import SparseCodingSR

    if not isinstance(model, SparseCodingSR):
        raise TypeError(f"fit_dictionary fits sparse_coding models, got {type(model).__name__}")
    if int(scale) != model.scale:
        raise ValueError(f"the model was built for ×{model.scale}, not ×{scale}; build it with scale={scale}")
    if degradation not in _DEGRADATIONS:
        raise ValueError(
            f"sparse_coding dictionaries are fitted with degradation 'bicubic', 'area' or 'matlab', not "
            f"{degradation!r}; pick one of those"
        )
    if degradation == "matlab" and model.upsampler != "matlab":
        raise ValueError("degradation='matlab' needs a sparse_coding model built with upsampler='matlab'")
    for name, value in (("patches", patches), ("n_iter", n_iter), ("crop", crop), ("eval_crops", eval_crops)):
        if int(value) < 1:
            raise ValueError(f"{name} must be ≥ 1, got {value!r}")
    if not 0 <= prune < 1:
        raise ValueError(f"prune must be in [0, 1), got {prune!r}")
    s, p = model.scale, model.patch
    min_side = max(p, 4 * s)
    side = max(int(crop), min_side) // s * s
    windows = (side - p + 1) ** 2
    n_crops = max(int(eval_crops), math.ceil(2 * int(patches) / ((1 - prune) * windows)))
    t0 = time.perf_counter()
    quiet = not progress or bool(os.environ.get("SCISR_NO_PROGRESS"))
    bar = tqdm(total=3, desc=f"sparse_coding ×{s}", disable=quiet, leave=False)
    try:
        rng = np.random.default_rng(int(seed))
        crops = [torch.from_numpy(c.astype(np.float32)) for c in
                 _crops(_fields(fields), side, n_crops, s, min_side, p, rng)]
        bar.update(1)
        model.fit(crops, scale=s, degradation=_DEGRADATIONS[degradation], n_iter=int(n_iter),
                  max_patches=int(patches), prune=float(prune), seed=int(seed))
        bar.update(1)
        used = min(_candidate_count(model, crops, prune), int(patches))
        seconds = time.perf_counter() - t0
        model.eval()
        sr_db, bic_db = _psnr_vs_bicubic(model, crops[: int(eval_crops)], s)
        bar.update(1)
    finally:
        bar.close()
    return {
        "model": "sparse_coding",
        "scale": s,
        "degradation": degradation,
        "atoms": model.n_atoms,
        "patch": p,
        "sparsity": model.sparsity,
        "patches": used,
        "crops": len(crops),
        "seconds": round(seconds, 3),
        "psnr": sr_db,
        "psnr_bicubic": bic_db,
        "seed": int(seed),
    }

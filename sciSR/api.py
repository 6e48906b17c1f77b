"""``sciSR.downscale``: one call from data to super-resolved data of the same kind.

Arrays and tensors are handled here; xarray objects and file paths are handed to the format
adapters in :mod:`sciSR.io`, which use the same :class:`~sciSR.pipeline.Pipeline`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .dtypes import as_float_array, cast_output, check_dtype
from .models.base import check_scale
from .normalize import Normalizer
from .pipeline import PIPELINE_OPTS, Pipeline, infer_in_channels

__all__ = [
    "as_float_array",
    "cast_output",
    "check_dtype",
    "downscale",
    "downscale_array",
    "infer_in_channels",
]


def downscale(
    data: Any,
    model: str | nn.Module = "auto",
    scale: int = 4,
    *,
    weights: str | Path | None = None,
    variables: str | list[str] | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    norm: str | Normalizer | None = "auto",
    precision: str | None = "auto",
    device: str | None = "auto",
    batch_size: int | None = None,
    progress: bool | None = None,
    out: str | Path | None = None,
    dtype: Any = None,
    blend: str | None = None,
    clip: bool | str | None = "auto",
    constraint: Any = None,
    constraint_degradation: str | None = None,
    covariates: Any = None,
    ensemble: Any = None,
    augment: Any = None,
    ensemble_method: str | None = None,
    **model_kwargs: Any,
) -> Any:
    """Super-resolve ``data`` by an integer ``scale`` and return the same kind of object.

    Args:
        data: numpy array or torch tensor ``(..., H, W)`` (the last two axes are spatial; leading
            axes are looped, or axis -3 holds channels for a multi-channel model), an
            ``xr.DataArray``/``xr.Dataset``, or a path (NetCDF, Zarr, GeoTIFF, NIfTI, image).
        model: Registry name (see :func:`sciSR.list_models`), a ``torch.nn.Module``, or
            ``"auto"`` (default): the best shipped model for the data at hand, by this rule:
            (a) weights fine-tuned on the data's kind, when the data are recognised (NIfTI →
            ``"mri"``; CF ``standard_name``, variable name, long name or units → ``"precip"``,
            ``"temperature"`` or ``"dem"``; metres on a single-band GeoTIFF → ``"dem"``) and such
            weights exist for this scale and channel count; else (b) the natural-photo weights
            with the largest held-out PSNR gain over bicubic on their card for this scale and
            channel count (RGB weights collapse to any channel count; perceptual GAN weights are
            never picked); else (c) ``bicubic``, with a warning. The choice and its reason are
            logged at INFO and recorded in the output attrs (``scisr_model``,
            ``scisr_model_reason``). See ``docs/weights.md``.
        scale: Integer upscaling factor.
        weights: Weight file (safetensors or a plain state dict), or the tag of shipped weights
            (``"dem"``, ``"precip"``, ``"mri"``, ``"temperature"``, ``"realesrgan"``: a lower-case
            word that is not an existing file; see :func:`sciSR.list_weights`); default: the
            model's shipped natural-photo weights. Outputs record the weights used
            (``scisr_weights``, ``scisr_weights_tag``, ``scisr_weights_sha256``); a randomly
            initialised model (``pretrained=False``) warns once per model and scale and is
            recorded as ``"random (untrained)"``.
        variables: Data variables of a Dataset to downscale (default: all with spatial dims).
        tile: Core tile size in LR pixels; ``None`` picks it from a memory budget, ``0`` disables tiling.
        overlap: LR halo per tile side; default the model's receptive field (or 16 for
            networks with an unbounded one, which are blended).
        norm: ``"auto"``, ``"zscore"``, ``"minmax"``, ``"log1p"``, ``"percentile"`` or ``None``.
        precision: ``"auto"`` (bf16 where the hardware is fast at it), ``"fp32"``, ``"bf16"``, ``"fp16"``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        batch_size: Tiles per forward call.
        progress: Show a tqdm bar on stderr (``None``: when stderr is a terminal).
        out: Output path (paths and xarray input); written atomically.
        dtype: Output dtype; default float32. ``"source"`` restores an integer input dtype
            (rounded and clipped to its range).
        blend: ``"crop"``, ``"hann"`` or ``"gaussian"``; default crop for equivariant networks.
        clip: Clip each output channel to the range of the valid input values (removes the
            over- and undershoot of sharp edges). ``"auto"``: on for NIfTI (MRI magnitude
            images), off elsewhere.
        constraint: Consistency constraint applied to the output in data units so that coarsening it
            returns the input (Harder et al. 2023; see :mod:`sciSR.constraints` and
            ``docs/constraints.md``): ``"add"`` (any field), ``"mult"`` or ``"softmax"``
            (non-negative fields: precipitation), a :class:`sciSR.constraints.Constraint`, or
            ``"none"``. ``None``: the constraint recorded with the weights, else none. Area weights
            (``cos φ`` or cell areas) are used on latitude/longitude grids. Recorded in the output
            attrs (``scisr_constraint``).
        constraint_degradation: The coarsening the constraint reproduces: ``"area"`` (block mean, the
            default unless the weights record another) or, for ``"add"``, a linear operator of
            :mod:`sciSR.train.degrade` (``"gaussian"``, ``"slice"``, ``"bicubic"``...: least-norm
            projection on whole fields).
        covariates: Static high-resolution inputs ``{name: field}`` (topography, land–sea mask, another
            MRI contrast) on the output grid (``scale`` × the input's; xarray fields with the refined
            coordinates), for weights trained with them (:mod:`sciSR.covariates`,
            ``docs/covariates.md``): normalized, pixel-unshuffled onto the input grid and fed as extra
            channels. Weights trained with covariates need the same names in the same order.
        ensemble: Ensemble of outputs along a CF ``realization`` dimension (xarray, paths) or a new
            leading axis (arrays), one ``downscale`` call per member (:mod:`sciSR.ensemble`,
            ``docs/uncertainty.md``): a number of members (test-time augmentation, or MC dropout
            with ``ensemble_method="mc_dropout"``) or a list of weight files/tags (weights ensemble).
        augment: Test-time augmentations (``"flip_x"``, ``"flip_y"``, ``"rot180"``, ``"rot90"``,
            ``"rot270"``, ``"transpose"``, ``"antitranspose"``; default ``"auto"``: all valid for
            the grid: flips need uniform spacing, rotations square cells).
        ensemble_method: ``"tta"``, ``"mc_dropout"`` or ``"weights"`` (default from ``ensemble``).
        **model_kwargs: Architecture options (``in_channels``, ``pretrained=False``, sizes...).

    Returns:
        Same type as ``data`` on the refined grid (for a path: the result as an ``xr.Dataset``).

    Raises:
        ValueError: Bad shapes, empty or all-NaN data, unknown model, unsupported scale,
            channel mismatch, or missing weights.
        TypeError: Unsupported input type or dtype.
    """
    if ensemble is not None or augment is not None or ensemble_method is not None:
        kw = {k: v for k, v in locals().items() if k not in ("data", "model", "scale", "model_kwargs")}
        if covariates is None:
            kw.pop("covariates")
        from .ensemble import downscale_ensemble

        return downscale_ensemble(data, model, scale, **kw, **model_kwargs)
    scale = check_scale(model if isinstance(model, str) else type(model).__name__, scale, ())
    check_dtype(dtype)
    opts = dict(
        weights=weights,
        tile=tile,
        overlap=overlap,
        norm=norm,
        precision=precision,
        device=device,
        batch_size=batch_size,
        progress=progress,
        blend=blend,
        clip=clip,
    )
    if constraint is not None or constraint_degradation is not None:
        opts.update(constraint=constraint, constraint_degradation=constraint_degradation)
    if covariates is not None:
        opts["covariates"] = covariates
    if isinstance(data, (str, Path)):
        from .io import downscale_path

        return downscale_path(
            data, model, scale, variables=variables, out=out, dtype=dtype, **opts, **model_kwargs
        )
    if _is_xarray(data):
        from .io import downscale_xarray

        result = downscale_xarray(
            data, model, scale, variables=variables, dtype=dtype, **opts, **model_kwargs
        )
        if out is not None:
            from .io import write

            write(result, out)
        return result
    if out is not None:
        raise ValueError(
            "out= is for xarray objects and paths; save arrays yourself (np.save) or wrap them in xarray"
        )
    if variables is not None:
        raise ValueError("variables= selects Dataset variables; it does not apply to arrays")
    return downscale_array(data, model, scale, dtype=dtype, **opts, **model_kwargs)



def _is_xarray(obj: Any) -> bool:
    mod = type(obj).__module__
    return mod.startswith("xarray") and type(obj).__name__ in ("Dataset", "DataArray")





def downscale_array(
    data: Any, model: str | nn.Module = "auto", scale: int = 4, *, dtype: Any = None, **kwargs: Any
) -> Any:
    """:func:`downscale` for numpy arrays and torch tensors ``(..., H, W)``.

    Shape:
        ``(..., H, W) -> (..., s·H, s·W)`` (``(..., C, H, W) -> (..., C_out, s·H, s·W)`` for a
        multi-channel model).
    """
    arr, src, torch_device = as_float_array(data)
    model_kwargs = {k: v for k, v in kwargs.items() if k not in PIPELINE_OPTS}
    opts = {k: v for k, v in kwargs.items() if k in PIPELINE_OPTS}
    c = infer_in_channels(model, model_kwargs)
    if isinstance(model, nn.Module) and opts.get("covariates") is not None:
        c -= len(opts["covariates"]) * scale**2  # a module's input channels include the covariates'
    model_kwargs["in_channels"] = c
    if isinstance(model, nn.Module):
        model_kwargs.pop("in_channels")
    if c > 1 and (arr.ndim < 3 or arr.shape[-3] != c):
        raise ValueError(
            f"the model takes {c} channels on axis -3 but the data have shape {arr.shape}; "
            f"stack bands as (..., {c}, H, W) or use a 1-channel model"
        )
    if not np.isfinite(arr).any():
        raise ValueError("the data are all NaN/inf: nothing valid to downscale")
    pipe = Pipeline.build(model, scale, **opts, **model_kwargs)
    lead = arr.shape[:-3] if c > 1 else arr.shape[:-2]
    h, w = arr.shape[-2:]
    block = arr.reshape(-1, c, h, w)
    if pipe.covariates is not None:
        from .covariates import stack_for_shape

        pipe = pipe.with_covariates(stack_for_shape(pipe.covariates, scale, (h, w)))
    y = pipe.run(block, pipe.fit(block))
    c_out = y.shape[1]
    y = y.reshape(*lead, *((c_out,) if c > 1 or c_out != c else ()), h * scale, w * scale)
    y = cast_output(y, src, dtype)
    if torch_device is not None:
        import torch

        return torch.from_numpy(np.ascontiguousarray(y)).to(torch_device)
    return y

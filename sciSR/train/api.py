"""Public training entry points: :func:`train` (from scratch) and :func:`finetune` (from shipped weights).

Both take a registry name (or a network) and data in any form
:func:`~sciSR.train.datasets.load_training_data` reads: DIV2K/Flickr2K folders, image folders,
xarray objects, NetCDF/Zarr/GeoTIFF/NIfTI paths, numpy arrays. The returned network carries the
normalization it was trained with (``scisr_metadata``), so ``sciSR.downscale(x, model=m)`` feeds it
data scaled exactly as in training, and the weight file written to ``out`` records the same.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch import nn

from .trainer import TrainConfig, check_config, fit

log = logging.getLogger(__name__)

#: Patch side (HR pixels) by scale when none is given: 48 LR pixels as in EDSR/RCAN, at most 192.
_DEFAULT_LR_PATCH = 48


def _config(scale: int, overrides: dict[str, Any], **defaults: Any) -> TrainConfig:
    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown training option(s) {unknown}; see sciSR.train.TrainConfig for the options")
    values = {**defaults, **{k: v for k, v in overrides.items() if v is not None}}
    values.setdefault("patch", min(_DEFAULT_LR_PATCH * scale, 192))
    cfg = TrainConfig(**values)
    check_config(cfg)
    return cfg


def _build(model: str | nn.Module, scale: int, n_in: int, pretrained: Any, **kw: Any) -> nn.Module:
    if isinstance(model, nn.Module):
        got = getattr(model, "scale", None)
        if got is not None and int(got) != scale:
            raise ValueError(
                f"the network upsamples ×{got}, not ×{scale}; pass scale={got} or another network"
            )
        return model
    from ..models.registry import create_model

    return create_model(model, scale=scale, in_channels=n_in, pretrained=pretrained, **kw)


def _covariate_input(covariates: Any, net: nn.Module, scale: int, channels: int) -> Any:
    """``covariates=`` as a :class:`sciSR.covariates.CovariateInput`, with ``net`` given the ``k·s²``
    extra input channels (zero-initialised, :func:`sciSR.covariates.expand_input_channels`) unless it
    already takes them."""
    if covariates is None:
        return None
    from .. import covariates as cov
    from ..pipeline import model_in_channels

    given = cov.as_input(covariates)
    extra = given.channels(scale)
    n_in = model_in_channels(net)
    if n_in == channels:
        cov.expand_input_channels(net, extra)
    elif n_in != channels + extra:
        raise ValueError(
            f"the network takes {n_in} input channels; with {len(given.names)} covariate(s) at scale "
            f"{scale} it needs {channels} (expanded here) or {channels + extra}"
        )
    return given


def _is_dictionary_model(model: nn.Module) -> bool:
    from ..models.sparse_coding import SparseCodingSR

    return isinstance(model, SparseCodingSR)


def _run(
    net: nn.Module,
    data: Any,
    scale: int,
    cfg: TrainConfig,
    *,
    channels: int,
    variables: Any,
    axis: int | None,
    val_fraction: float,
    norm: str,
    max_side: int | None,
    out: str | Path | None,
    checkpoint: str | Path | None,
    resume: bool,
    progress: bool | None,
    extra_meta: dict[str, Any],
    covariates: Any = None,
) -> nn.Module:
    from ..models.weights_io import save_weights
    from .datasets import TrainingData, load_training_data

    if out is not None:
        _check_out(Path(out))
    if covariates is not None:
        import dataclasses

        from .. import covariates as cov

        td, recs = cov.training_data(
            data,
            covariates,
            scale=scale,
            channels=channels,
            variables=variables,
            axis=axis,
            val_fraction=val_fraction,
            norm=norm,
            seed=cfg.seed,
        )
        extra_meta = {**extra_meta, **cov.metadata_for(recs)}
        cfg = dataclasses.replace(cfg, covariates=len(covariates.names))
        data = td
    td = (
        data
        if isinstance(data, TrainingData)
        else load_training_data(
            data,
            scale=scale,
            channels=channels,
            variables=variables,
            axis=axis,
            val_fraction=val_fraction,
            max_side=max_side,
            norm=norm,
            seed=cfg.seed,
        )
    )
    if td.channels - cfg.covariates != channels:
        raise ValueError(
            f"the data has {td.channels} channel(s) but the network takes {channels}; "
            f"pass channels={td.channels}"
        )
    meta = {**td.weight_metadata(), "training_data": td.source, **extra_meta}
    if _is_dictionary_model(net):
        from .dictionary import fit_dictionary

        record = fit_dictionary(net, td.train, scale=scale, degradation=cfg.degradation, seed=cfg.seed)
        if out is not None:
            save_weights(net, out, {**meta, "training": record})
        _attach(net, meta, record)
        return net
    record = fit(
        net,
        td.train,
        cfg,
        val_images=td.val,
        out=out,
        metadata=meta,
        lr_images=td.train_lr,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
    )
    final: nn.Module = record.pop("model")
    _attach(final, meta, record)
    last = record["history"][-1] if record["history"] else {}
    if "psnr" in last:
        log.info(
            "trained %s: validation PSNR %.2f dB (bicubic %.2f dB)",
            type(final).__name__,
            last["psnr"],
            last["psnr_bicubic"],
        )
    return final


def _check_out(out: Path) -> None:
    """Refuse an output path that cannot take a weight file, before any data is read."""
    import os

    if out.suffix != ".safetensors":
        raise ValueError(f"out={str(out)!r}: weights are written as safetensors; use a .safetensors name")
    if out.is_dir():
        raise ValueError(f"out={str(out)!r} is a directory; name a .safetensors file inside it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"the folder of out={str(out)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"cannot write into {parent} (permission denied); choose another out= folder")


def _attach(net: nn.Module, meta: dict[str, Any], record: dict[str, Any]) -> None:
    """Give the trained network its normalization metadata (read by ``downscale``) and its record."""
    text = {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in meta.items()}
    net.scisr_metadata = text
    net._weights_metadata = text  # what Pipeline.build reads for norm="auto", as for a loaded file
    net.training_record = record


def train(
    model: str | nn.Module,
    data: Any,
    scale: int = 4,
    *,
    steps: int = 10000,
    channels: int | None = None,
    out: str | Path | None = None,
    degradation: str = "bicubic",
    variables: str | list[str] | None = None,
    axis: int | None = None,
    val_fraction: float = 0.1,
    norm: str = "global",
    max_side: int | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    model_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    covariates: dict[str, Any] | None = None,
    **options: Any,
) -> nn.Module:
    """Train a network from random initialisation and return it (EMA weights when ``ema`` > 0).

    Args:
        model: Registry name (``"edsr_baseline"``, ``"rcan"``, ``"sparse_coding"``...) or a network.
        data: DIV2K/Flickr2K folder (``*_HR`` with ``*_LR_bicubic/X{s}`` used when present), image
            folder or list of images, xarray object, NetCDF/Zarr/GeoTIFF/NIfTI path, numpy array, or
            a :class:`~sciSR.train.datasets.TrainingData`.
        scale: Integer SR factor.
        steps: Optimizer steps.
        channels: Input channels (default: 1, or the network's ``in_channels``).
        out: Safetensors path for the weights (with normalization statistics and the training record).
        degradation: LR maker (``"bicubic"``, ``"matlab"``, ``"area"``, ``"gaussian"``, ``"kspace"``...).
        variables: Dataset variables to train on.
        axis: NIfTI slicing axis.
        val_fraction: Share of fields held out for validation.
        norm: ``"global"`` (one min/max over all training values, stored with the weights) or
            ``"per_field"`` (each field scaled by its own range, as ``downscale`` does by default).
        max_side: Shrink photos so their longer side is at most this (hides JPEG blocking).
        checkpoint: Resumable checkpoint path; ``resume=True`` continues from it.
        resume: Continue from ``checkpoint``.
        progress: tqdm bar on stderr (``None``: when stderr is a terminal).
        model_kwargs: Architecture options for a registry name (``n_resgroups``...).
        metadata: Extra strings stored in the weight file's metadata (provenance, tags).
        covariates: Static HR fields ``{name: (H, W) field}`` on the grid of the training fields
            (topography, land–sea mask): extra input channels (:mod:`sciSR.covariates`), recorded
            with the weights; ``downscale`` then needs the same covariates.
        **options: :class:`~sciSR.train.TrainConfig` fields (``batch_size``, ``patch``, ``lr``,
            ``ema``, ``loss``, ``gan``, ``vgg_weights``, ``precision``, ``device``, ``workers``, ``seed``...).

    Returns:
        The trained network; ``net.scisr_metadata`` holds the normalization it expects and
        ``net.training_record`` the log.

    Raises:
        ValueError: Bad options or data, before any long work starts.
        TypeError: Unknown option names.
    """
    cfg = _config(scale, options, steps=steps, degradation=degradation, lr=2e-4, ema=0.999)
    ch = channels or int(getattr(model, "in_channels", 0) or 1)
    net = _build(model, scale, ch, False, **(model_kwargs or {}))
    given = _covariate_input(covariates, net, scale, ch)
    return _run(
        net,
        data,
        scale,
        cfg,
        channels=ch,
        variables=variables,
        axis=axis,
        val_fraction=val_fraction,
        norm=norm,
        max_side=max_side,
        out=out,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        extra_meta={"scisr_recipe": "train", **(metadata or {})},
        covariates=given,
    )


def finetune(
    model: str | nn.Module,
    data: Any,
    scale: int = 4,
    *,
    weights: str | Path | None = None,
    steps: int = 2000,
    degradation: str = "area",
    channels: int | None = None,
    out: str | Path | None = None,
    variables: str | list[str] | None = None,
    axis: int | None = None,
    val_fraction: float = 0.1,
    norm: str = "global",
    augment: bool = True,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    metadata: dict[str, Any] | None = None,
    covariates: dict[str, Any] | None = None,
    **options: Any,
) -> nn.Module:
    """Fine-tune a network from its shipped natural-image weights (or ``weights``) on domain data.

    Defaults follow domain practice: block-mean (``"area"``) degradation, which conserves cell
    averages; one min/max normalization over the training data, stored with the weights; a
    learning rate of 1e-4 (half the from-scratch rate of :func:`train`) with a cosine decay.

    Args:
        model: Registry name with shipped weights, or a network (already holding its weights).
        data: As for :func:`train` (e.g. a DEM ``xr.DataArray``, Stage IV NetCDF, a NIfTI path).
        scale: Integer SR factor.
        weights: Starting weights: a shipped tag (``"dem"``...) or a file; default the shipped
            natural-image weights for this scale and channel count.
        steps: Optimizer steps.
        degradation: LR maker.
        channels: Input channels (default 1).
        out: Safetensors path for the fine-tuned weights.
        variables: Dataset variables.
        axis: NIfTI slicing axis.
        val_fraction: Share of fields held out for validation (a single field is split in halves).
        norm: ``"global"`` or ``"per_field"`` (see :func:`train`).
        augment: Flips and 90° rotations (turn off for oriented or anisotropic data).
        checkpoint: Resumable checkpoint path.
        resume: Continue from ``checkpoint``.
        progress: tqdm bar on stderr.
        metadata: Extra strings stored in the weight file's metadata (provenance, tags).
        covariates: Static HR fields ``{name: (H, W) field}`` on the grid of the training fields:
            extra input channels (:mod:`sciSR.covariates`) whose first-layer weights start at zero,
            so training starts from the pretrained network; recorded with the weights.
        **options: Further :class:`~sciSR.train.TrainConfig` fields.

    Returns:
        The fine-tuned network (``scisr_metadata`` and ``training_record`` attached).

    Raises:
        ValueError: No shipped weights for this model, scale and channel count (train it or pass
            ``weights=``), bad options or data.
    """
    cfg = _config(
        scale, options, steps=steps, degradation=degradation, lr=1e-4, augment=augment, ema=0.999, min_std=0.0
    )
    ch = channels or int(getattr(model, "in_channels", 0) or 1)
    net = _build(model, scale, ch, True if weights is None else weights)
    given = _covariate_input(covariates, net, scale, ch)
    return _run(
        net,
        data,
        scale,
        cfg,
        channels=ch,
        variables=variables,
        axis=axis,
        val_fraction=val_fraction,
        norm=norm,
        max_side=None,
        out=out,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        extra_meta={
            "scisr_recipe": "finetune",
            "scisr_finetuned_from": str(weights or "shipped"),
            **(metadata or {}),
        },
        covariates=given,
    )

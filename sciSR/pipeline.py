"""The array core of :func:`sciSR.downscale`: model resolution, normalization, tiling, masks.

:class:`Pipeline` is built once per call and then applied to ``(B, C, H, W)`` numpy blocks;
the format adapters and the dask path call :meth:`Pipeline.run` on every variable or chunk
with normalizers fitted once on the whole variable (never per tile or per chunk).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .engine import Engine, auto_tile_size, default_budget
from .masking import fill_invalid, upsample_mask
from .models.base import check_scale
from .models.registry import create_model, get_entry
from .normalize import Normalizer, get_normalizer
from .tiling import Tiler

#: Keyword options of :meth:`Pipeline.build` that are not the model's own hyper-parameters.
PIPELINE_OPTS = (
    "weights",
    "tile",
    "overlap",
    "norm",
    "precision",
    "device",
    "batch_size",
    "progress",
    "blend",
    "clip",
    "constraint",
    "constraint_degradation",
    "covariates",
)


def resolve_model(
    model: str | nn.Module,
    scale: int,
    in_channels: int = 1,
    weights: str | Path | None = None,
    **model_kwargs: Any,
) -> nn.Module:
    """Turn ``model`` (registry name or module) into a ready module for ``scale``.

    ``weights`` is a file, or a tag of shipped weights (``"dem"``); without it a learned registry
    model needs shipped natural-photo weights (unless ``pretrained=False`` is passed).

    Raises:
        ValueError: Unknown name, unsupported scale, no weights for a learned model (the message
            lists what is shipped), an unknown tag, or a module built for another scale.
    """
    from .models import catalog

    if isinstance(model, nn.Module):
        check_module_scale(model, scale)
        if catalog.is_tag(weights):
            raise ValueError(
                f"weights={weights!r} names shipped weights of a registry model; pass a registry name "
                f"(model='rcan', weights={weights!r}) or a weight file for your module"
            )
        model = copy.deepcopy(model)  # the caller's module is never moved, converted or re-weighted
        if weights is not None:
            from .models.weights_io import load_weights_into

            load_weights_into(model, weights)
        return model.eval()
    if not isinstance(model, str):
        raise TypeError(f"model must be a registry name or a torch.nn.Module, got {type(model).__name__}")
    entry = get_entry(model)
    pretrained = model_kwargs.pop("pretrained", None)
    if weights is not None:
        pretrained = weights
    if entry.trainable and pretrained is None:
        pretrained = True  # downscale never runs a random network unless asked (pretrained=False)
    return create_model(
        entry.name, scale=scale, in_channels=in_channels, pretrained=pretrained, **model_kwargs
    )


def weights_record_of(model: nn.Module, weights: str | Path | None = None) -> Any:
    """What a module's weights are (``catalog.WeightsRecord``), for the output attrs.

    A weight file loaded into it is recorded as that file. A module built by
    :func:`~sciSR.models.registry.create_model` and unchanged since keeps the record made there
    (a random one stays "random (untrained)"); registry models prepared by a call keep theirs;
    any other module with parameters, or one trained since, is a "user module".
    """
    from .models import catalog
    from .models.registry import weights_record

    if weights is not None:
        return catalog.WeightsRecord.for_file(weights)
    rec = weights_record(model)
    if rec is not None:
        return rec
    if not any(True for _ in model.parameters()):
        return catalog.WeightsRecord(catalog.PARAMETER_FREE)
    return catalog.WeightsRecord(catalog.USER_MODULE)


def _registry_record(net: nn.Module) -> Any:
    """The record ``create_model`` attached to a registry model this call built (or reused)."""
    from .models import catalog

    attached = getattr(net, "_scisr_weights", None)
    return attached[0] if attached is not None else catalog.WeightsRecord(catalog.USER_MODULE)


def resolve_auto(
    scale: int,
    in_channels: int,
    weights: str | Path | None,
    data_domain: tuple[str | None, str] | None,
    model_kwargs: dict[str, Any],
) -> tuple[str, str | Path | None, str]:
    """``model="auto"``: the registry name, weights (tag or file) and reason for this call.

    With a weight file, the model is the one the file's sciSR metadata names; otherwise
    :func:`sciSR.models.catalog.choose_model` applies (bicubic with a warning when no shipped
    learned model fits). The choice is logged at INFO on the ``sciSR`` logger.

    Raises:
        ValueError: Model options given with ``"auto"``, a weight file without sciSR metadata, or a
            tag no shipped model has for this scale and channel count.
    """
    import logging

    from .models import catalog

    options = sorted(k for k in model_kwargs if k != "out_channels")
    if options:
        raise ValueError(
            f"model='auto' picks a shipped model and takes no model options ({', '.join(options)}); "
            f"name the model to set them (model='rcan', ...)"
        )
    if weights is not None and not catalog.is_tag(weights):
        from .models.weights_io import file_spec

        try:
            spec = file_spec(catalog.read_metadata(weights)) if Path(weights).is_file() else None
        except ValueError:
            spec = None
        if spec is None:
            raise ValueError(
                f"model='auto' with weights={str(weights)!r}: the file names no sciSR architecture in its "
                f"metadata; pass the model too (model='edsr', weights=...)"
            )
        return str(spec["name"]), weights, f"architecture named by the weight file {Path(weights).name}"
    kind, evidence = data_domain if data_domain is not None else (None, "array without metadata")
    choice = catalog.choose_model(scale, in_channels, kind, evidence, tag=weights)
    if choice.entry is None:
        warnings.warn(choice.reason, UserWarning, stacklevel=catalog.external_stacklevel())
    shown = f"{choice.model}" + (f" (weights '{choice.weights}')" if choice.weights else "")
    logging.getLogger("sciSR").info("model='auto' chose %s: %s", shown, choice.reason)
    return choice.model, choice.weights, choice.reason


def model_in_channels(model: nn.Module) -> int:
    """Input channels of a module (``in_channels`` attribute or first conv)."""
    c = getattr(model, "in_channels", None)
    if c is not None:
        return int(c)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 1


def infer_in_channels(model: str | nn.Module, model_kwargs: dict[str, Any]) -> int:
    """Channel count the model expects: explicit ``in_channels``, the module's, or 1."""
    if "in_channels" in model_kwargs:
        return int(model_kwargs["in_channels"])
    if isinstance(model, nn.Module):
        return model_in_channels(model)
    if isinstance(model, str) and model.strip().lower() == "auto":
        return 1
    get_entry(model)  # unknown names fail early, with suggestions
    return 1


def resolve_clip(clip: bool | str | None, default: bool = False) -> bool:
    """``clip=`` option → bool (``"auto"``/``None`` → the format's ``default``).

    Raises:
        ValueError: Anything else than a bool, ``"auto"`` or ``None``.
    """
    if clip is None or (isinstance(clip, str) and clip == "auto"):
        return bool(default)
    if isinstance(clip, (bool, np.bool_)):
        return bool(clip)
    raise ValueError(f"clip must be True, False or 'auto', got {clip!r}")


def valid_range(values: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float] | None:
    """``(min, max)`` of the finite (and ``valid``) entries of ``values``, or ``None`` if there are none."""
    ok = np.isfinite(values) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(values))
    if not ok.any():
        return None
    v = values[ok]
    return float(v.min()), float(v.max())


def _prepare_model(
    model: str | nn.Module,
    scale: int,
    in_channels: int,
    weights: str | Path | None,
    device: str | torch.device | None,
    precision: str | None,
    batch_size: int | None,
    progress: bool | None,
    model_kwargs: dict[str, Any],
) -> tuple[nn.Module, Engine, Any]:
    """The ready model, engine and weights record of one call, reusing an earlier call's prepared
    model when nothing it was made from changed (see :mod:`sciSR.model_cache`)."""
    from . import model_cache
    from .engine import resolve_device

    dev = resolve_device(device)

    def engine_for(net: nn.Module) -> Engine:
        return Engine.create(net, dev, precision, batch_size, progress, model_in_channels(net), scale)

    def prepare(net: nn.Module, engine: Engine) -> nn.Module:
        return engine.prepare(net, model_in_channels(net), scale)

    if isinstance(model, nn.Module):
        record = weights_record_of(model, weights)
        if weights is None:
            check_module_scale(model, scale)
            engine = engine_for(model)  # reads the caller's module, changes nothing
            setting = (str(engine.device), engine.precision, engine.channels_last, scale)
            net = model_cache.prepared_copy(model, setting, lambda c: prepare(c.eval(), engine))
            return net, engine, record
        net = resolve_model(model, scale, in_channels, weights, **dict(model_kwargs))
        engine = engine_for(net)
        return prepare(net, engine), engine, record
    wfile = weight_file(model, scale, in_channels, weights, model_kwargs)
    if wfile is not None:
        key = (model, scale, in_channels, repr(sorted(model_kwargs.items())), str(dev), str(precision))

        def build() -> nn.Module:
            net = resolve_model(model, scale, in_channels, weights, **dict(model_kwargs))
            return prepare(net, engine_for(net))

        net = model_cache.prepared_from_file(key, wfile, build)
        return net, engine_for(net), _registry_record(net)
    net = resolve_model(model, scale, in_channels, weights, **dict(model_kwargs))
    record = _registry_record(net)
    engine = engine_for(net)
    return prepare(net, engine), engine, record


def weight_file(
    model: str | nn.Module, scale: int, in_channels: int, weights: str | Path | None, kw: dict[str, Any]
) -> Path | None:
    """The weight file a registry model will be loaded from, or ``None`` (random, no weights, a module).

    ``weights`` may be a file or a tag of shipped weights; without it, the shipped natural-photo
    weights (when the architecture options, if any, are those the file was trained with).
    """
    from .models import catalog

    if not isinstance(model, str):
        return None
    pretrained = weights if weights is not None else kw.get("pretrained")
    if pretrained is False:
        return None
    tag = pretrained if catalog.is_tag(pretrained) else None
    if isinstance(pretrained, (str, Path)) and tag is None:
        return Path(pretrained) if Path(pretrained).is_file() else None
    try:
        entry = get_entry(model)
    except ValueError:
        return None
    if not entry.trainable:
        return None
    arch_kw = {k: v for k, v in kw.items() if k not in ("pretrained", "out_channels")}
    match = catalog.find_weights(entry.name, scale, in_channels, tag)
    if match is None or not catalog.compatible_kwargs(match.entry, arch_kw):
        return None
    return match.entry.path


def check_module_scale(model: nn.Module, scale: int) -> None:
    """Refuse a module built for another scale than the one asked for.

    Raises:
        ValueError: ``model.scale`` differs from ``scale``.
    """
    ms = getattr(model, "scale", None)
    if ms is not None and int(ms) != scale:
        raise ValueError(f"the model was built for scale {ms} but scale={scale} was asked; pass scale={ms}")


@dataclass
class Pipeline:
    """Model + engine + tiler + normalization settings for one ``downscale`` call.

    Use :meth:`Pipeline.build`; then :meth:`fit` normalizers on whole variables and
    :meth:`run` blocks of data.
    """

    model: nn.Module
    scale: int
    engine: Engine
    tile: int | None
    halo: int
    blend: str
    norm: str | Normalizer | None
    norm_params: dict[str, Any] = field(default_factory=dict)
    clip: bool = False
    weights: Any = None
    model_reason: str = "model given by the caller"
    constraint: Any = None
    area_weights: Any = None
    covariates: Any = None
    covariate_stack: Any = None
    #: cropped windows on the regular lattice of the tile (:class:`sciSR.tiling.Tiler`'s ``lattice``)
    lattice: bool = False
    _record_attrs: dict[str, str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        model: str | nn.Module = "auto",
        scale: int = 4,
        *,
        in_channels: int = 1,
        weights: str | Path | None = None,
        data_domain: tuple[str | None, str] | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        norm: str | Normalizer | None = "auto",
        precision: str | None = "auto",
        device: str | torch.device | None = "auto",
        batch_size: int | None = None,
        progress: bool | None = None,
        blend: str | None = None,
        clip: bool | str | None = "auto",
        default_norm: str | None = None,
        default_clip: bool = False,
        constraint: Any = None,
        constraint_degradation: str | None = None,
        covariates: Any = None,
        **model_kwargs: Any,
    ) -> Pipeline:
        """Resolve the model, engine and settings of one call.

        ``norm="auto"`` means: the normalization recorded in the weights' metadata, else
        ``default_norm`` (a format's preference, e.g. percentiles for MRI), else ``"minmax"``
        for learned models (pretrained on [0, 1] photos) and none for interpolation.
        ``clip="auto"`` means ``default_clip`` (a format's preference: on for MRI magnitude
        images, off elsewhere); ``clip=True`` clips each output channel to the range of the
        valid input values (no over/undershoot from ringing), ``False`` keeps values as computed.
        ``model="auto"`` picks the model by :func:`sciSR.models.catalog.choose_model` for the
        data's kind ``data_domain`` (``(kind or None, evidence)`` from
        :func:`sciSR.models.domains.detect_domain`; ``None`` for bare arrays).
        ``constraint`` (``"add"``, ``"mult"``, ``"softmax"``, a :class:`sciSR.constraints.Constraint`,
        ``"none"``; ``None``: the one recorded in the weights' metadata, else none) is applied to the
        output in data units so that coarsening it by ``constraint_degradation`` (default: the
        weights' record, else ``"area"``, the area-weighted block mean) returns the input.
        ``covariates`` (``{name: HR field}``, :mod:`sciSR.covariates`) add ``k·s²`` input channels after
        the ``in_channels`` data channels; attach their LR stack per grid with :meth:`with_covariates`.
        """
        clip = resolve_clip(clip, default_clip)
        scale = check_scale(model if isinstance(model, str) else type(model).__name__, scale, ())
        reason = "model given by the caller"
        cov_in, n_cov = _resolve_covariates(covariates, model, weights, scale)
        if n_cov and isinstance(model, str):
            model_kwargs.setdefault("out_channels", in_channels)  # covariates are inputs only
        in_channels = in_channels + n_cov
        if isinstance(model, str) and model.strip().lower() == "auto":
            model, weights, reason = resolve_auto(scale, in_channels, weights, data_domain, model_kwargs)
        net, engine, record = _prepare_model(
            model, scale, in_channels, weights, device, precision, batch_size, progress, model_kwargs
        )
        if record.random:
            from .models.catalog import warn_untrained

            warn_untrained(getattr(getattr(net, "spec", None), "name", None) or str(model), scale)
        spec = getattr(net, "spec", None)
        equivariant = bool(spec.equivariant) if spec is not None else False
        rf = spec.receptive_field if spec is not None else None
        default_halo = spec.halo if spec is not None else 16
        halo = default_halo if overlap is None else int(overlap)
        if overlap is not None and equivariant and rf is not None and halo < rf:
            warnings.warn(
                f"overlap={halo} is smaller than the receptive field ({rf} LR px): tile seams are likely; "
                f"leave overlap unset to use {rf}",
                stacklevel=3,
            )
        blend = blend or ("crop" if equivariant else "hann")
        if tile is not None and (not isinstance(tile, (int, np.integer)) or tile < 0):
            raise ValueError(
                f"tile must be a positive number of LR pixels (or 0 for no tiling), got {tile!r}"
            )
        meta = getattr(net, "_weights_metadata", None) or {}
        learned = any(True for _ in net.parameters())
        norm_params: dict[str, Any] = {}
        if isinstance(norm, str) and norm == "auto":
            if "scisr_norm" in meta:
                fixed = Normalizer.from_attrs(meta)
                norm = fixed.kind
                if meta.get("scisr_norm_fixed") == "1":  # weights trained on these exact statistics
                    norm_params = dict(fixed.params)
            elif default_norm is not None:
                norm = default_norm
            else:
                norm = "minmax" if learned else None
        cons = _resolve_constraint(constraint, constraint_degradation, meta)
        if n_cov and model_in_channels(net) <= n_cov:
            raise ValueError(
                f"the model takes {model_in_channels(net)} input channels, not more than the {n_cov} "
                f"covariate channels ({len(cov_in.names)}×{scale}²); build it with in_channels=C+{n_cov}"
            )
        return cls(
            net,
            scale,
            engine,
            tile,
            halo,
            blend,
            norm,
            norm_params,
            clip,
            record,
            reason,
            constraint=cons,
            covariates=cov_in,
        )

    def with_covariates(self, stack: Any) -> Pipeline:
        """This pipeline (same model object) with the LR covariate stack of one grid
        (:class:`sciSR.covariates.CovariateStack`, from :func:`sciSR.covariates.stack_for_grid`)."""
        if stack is self.covariate_stack:
            return self
        return dataclasses.replace(self, covariate_stack=stack)

    @property
    def covariate_channels(self) -> int:
        """Input channels taken by covariates (``k·s²``; 0 without covariates)."""
        return 0 if self.covariates is None else int(self.covariates.channels(self.scale))

    def _with_covariate_channels(
        self,
        z: np.ndarray,
        shape: tuple[int, int],
        rows: tuple[int, int],
        cols: list[tuple[int, int]] | tuple[tuple[int, int], ...],
    ) -> np.ndarray:
        """``z`` with the covariate channels of LR ``rows``/``cols`` appended (unchanged without covariates).

        ``shape`` is the whole LR array's ``(H, W)``, which the stack must match.

        Raises:
            ValueError: No stack attached, a stack of another grid, or a model that does not take
                the data channels plus the covariate channels.

        Shape:
            ``(B, C, h, w) -> (B, C + k·s², h, w)``.
        """
        if self.covariates is None:
            return z
        stack = self.covariate_stack
        if stack is None:
            raise ValueError(
                "covariates= were not matched to this input's grid; pass an array or an xarray object "
                "(covariates are not supported by this adapter's streamed path)"
            )
        if tuple(stack.shape) != tuple(shape):
            raise ValueError(
                f"the covariates lie on an LR grid of {stack.shape[0]}×{stack.shape[1]} (HR "
                f"{stack.scale * stack.shape[0]}×{stack.scale * stack.shape[1]}) but the data are "
                f"{shape[0]}×{shape[1]}; give covariates on the data's HR grid"
            )
        out = stack.append_to(z, rows, cols)
        n_model = model_in_channels(self.model)
        if out.shape[1] != n_model:
            raise ValueError(
                f"the model takes {n_model} input channels but the data ({z.shape[1]}) and covariates "
                f"({stack.lr.shape[0]} = {len(stack.names)}×{self.scale}²) give {out.shape[1]}; build the "
                f"model with in_channels={z.shape[1] + stack.lr.shape[0]}"
            )
        return out

    def with_area_weights(self, weights: Any) -> Pipeline:
        """This pipeline (same model object) with HR area weights of one field for the constraint.

        Args:
            weights: :class:`sciSR.constraints.AreaWeights` of the whole field, or ``None`` (uniform).
        """
        if weights is self.area_weights:
            return self
        return dataclasses.replace(self, area_weights=weights)

    def constraint_attrs(self) -> dict[str, str]:
        """``scisr_constraint`` for the output attrs (empty without a constraint)."""
        return {} if self.constraint is None else self.constraint.attrs(self.area_weights)

    def check_constraint(self, normalizers: list[Normalizer], name: Any = "the field") -> None:
        """Refuse negative data for ``mult``/``softmax`` (from the fitted value ranges of the whole field).

        Raises:
            ValueError: A negative valid value with a non-negative constraint (names ``add`` as the fix).
        """
        if self.constraint is None:
            return
        for nz in normalizers:
            rng = getattr(nz, "valid_range", None)
            self.constraint.check_input(None if rng is None else rng[0], f"{name!s}")

    def _constrain(
        self, out: np.ndarray, x: np.ndarray, hr_origin: tuple[int, int], y_model: np.ndarray
    ) -> np.ndarray:
        """Apply the constraint to an HR block ``out`` whose LR cells are ``x`` (data units).

        ``hr_origin`` is the HR (row, column) of the block's first cell in the whole field (for the
        area weights); ``y_model`` is the network output before inverse normalization (the logits of
        ``softmax`` with ``logits="output"``, the units the layer saw in training).

        Shape:
            ``(B, C, s·h, s·w), (B, C, h, w) -> (B, C, s·h, s·w)``.
        """
        cons = self.constraint
        if cons is None:
            return out
        if out.shape[1] != x.shape[1]:
            raise ValueError(
                f"constraint='{cons.kind}' needs as many output as input channels; the model maps "
                f"{x.shape[1]} to {out.shape[1]}"
            )
        r0, c0 = hr_origin
        w = None
        if self.area_weights is not None and cons.local:
            w = self.area_weights.block(r0, r0 + out.shape[-2], c0, c0 + out.shape[-1])
        logits = None
        if cons.kind == "softmax" and cons.logits == "output":
            logits = np.asarray(y_model, dtype=np.float64)
        return np.asarray(cons.apply(out, x, self.scale, w, logits), dtype=np.float32)

    def record_attrs(self) -> dict[str, str]:
        """Output attrs naming the weights (file, tag, sha256) and why the model was chosen.

        Returns:
            ``scisr_weights``, ``scisr_weights_tag``, ``scisr_weights_sha256``, ``scisr_model_reason``.
        """
        if self._record_attrs is None:
            from .models.catalog import WeightsRecord

            rec = self.weights if self.weights is not None else WeightsRecord("unknown")
            self._record_attrs = {**rec.attrs(), "scisr_model_reason": self.model_reason}
        return dict(self._record_attrs)

    @property
    def in_channels(self) -> int:
        """Data channels the model takes (its input channels less the covariate channels)."""
        return model_in_channels(self.model) - self.covariate_channels

    def tiler_for(self, h: int, w: int) -> Tiler:
        """Tiler for an ``h × w`` LR array (tile chosen from the memory budget when unset)."""
        tile = self.tile
        if tile is None:
            if not any(True for _ in self.model.parameters()):
                tile = max(h, w)
            else:
                budget = default_budget(self.engine.device)
                n_in = model_in_channels(self.model)
                tile = auto_tile_size(self.model, n_in, self.halo, budget, self.engine.precision, self.scale)
        elif tile == 0:
            tile = max(h, w)
        return Tiler(int(tile), self.halo, self.scale, self.blend, self.lattice)

    def make_normalizer(self) -> Normalizer:
        """A fresh (unfitted unless the weights fix its parameters) normalizer for one channel."""
        if isinstance(self.norm, Normalizer):
            return copy.deepcopy(self.norm)
        return get_normalizer(self.norm, **self.norm_params)

    def fit(self, values: np.ndarray, valid: np.ndarray | None = None) -> list[Normalizer]:
        """One normalizer per channel, fitted on all of ``values`` (``(B, C, H, W)``)."""
        out = []
        for c in range(values.shape[1]):
            nz = self.make_normalizer()
            vc = values[:, c]
            vm = None if valid is None else valid[:, c]
            if not self.norm_params:
                nz.fit(vc, vm)
            # the range clip= keeps is that of every valid value, not only those the statistics
            # were fitted on (MRI fits percentiles inside the head but keeps the 0 background)
            nz.valid_range = valid_range(vc)
            out.append(nz)
        return out

    def run(
        self, x: np.ndarray, normalizers: list[Normalizer], periodic_x: bool = False, desc: str = "sciSR"
    ) -> np.ndarray:
        """Super-resolve a block; invalid (non-finite) cells come back as NaN on the HR grid.

        Args:
            x: ``(B, C, H, W)`` float array; NaN marks invalid cells.
            normalizers: One fitted normalizer per channel (from :meth:`fit`).
            periodic_x: Wrap the last axis (global longitude) instead of treating its ends as borders.
            desc: Progress-bar label.

        Returns:
            ``(B, C_out, s·H, s·W)`` float32.

        Shape:
            ``(B, C, H, W) -> (B, C_out, s·H, s·W)``.
        """
        w = x.shape[-1]
        s = self.scale
        x_lr = x
        valid = np.isfinite(x)
        pad = 0
        if periodic_x:
            pad = min(self.halo, w)
            x = np.concatenate([x[..., w - pad :], x, x[..., :pad]], axis=-1)
        z, _ = self._normalized(x, normalizers)
        if self.covariates is not None:
            cols = [(w - pad, w), (0, w), (0, pad)] if pad else [(0, w)]
            cols = [c for c in cols if c[1] > c[0]]
            z = self._with_covariate_channels(z, (x.shape[-2], w), (0, x.shape[-2]), cols)
        tiler = self.tiler_for(x.shape[-2], z.shape[-1])
        y = self.engine.run(self.model, torch.from_numpy(np.ascontiguousarray(z)), tiler, desc=desc).numpy()
        if pad:
            y = y[..., pad * s : (pad + w) * s]
        if self.constraint is not None:
            self.check_constraint(normalizers)
            return self._constrain(self._finish(y, valid, normalizers), x_lr, (0, 0), y)
        return self._finish(y, valid, normalizers)

    @property
    def fill_reach(self) -> int:
        """LR cells over which invalid cells take their nearest valid value (farther ones get 0).

        The halo: a model whose receptive field is within the halo sees the same values as with an
        unbounded nearest fill, and a block read with this margin is filled as the whole array is.
        """
        return max(int(self.halo), 1)

    def stream_tiler(self, h: int, w: int) -> Tiler:
        """Tiler of an ``h × w`` array processed region by region (chunks, streamed files).

        The same as :meth:`tiler_for`, except that a model without parameters (interpolation),
        which :meth:`tiler_for` runs in one window, gets windows of :data:`STREAM_TILE` LR pixels
        (fewer at scales above 4, so an HR window stays near 2048² pixels):
        its receptive field is bounded, so cropped windows give the same values.
        """
        tiler = self.tiler_for(h, w)
        if self.tile is None and not any(True for _ in self.model.parameters()):
            edge = max(16, STREAM_TILE * 4 // max(1, int(self.scale)))  # HR windows of ~2048² px at most
            tiler = Tiler(min(tiler.tile, edge), self.halo, self.scale, self.blend, self.lattice)
        return tiler

    def plan_region(
        self, shape: tuple[int, int], region: tuple[int, int, int, int], periodic_x: bool = False
    ) -> RegionPlan:
        """What to read and run for the HR block of one LR ``region`` of an ``H × W`` array.

        The plan uses the whole array's tiling (:meth:`stream_tiler`), so :meth:`run_region` on
        every block of a partition gives the whole array's result (see
        :meth:`sciSR.engine.Engine.run_windows`).

        Args:
            shape: ``(H, W)`` of the whole LR array.
            region: ``(y0, y1, x0, x1)`` LR bounds of the block.
            periodic_x: The last axis wraps (as in :meth:`run`).

        Returns:
            The plan; ``plan.read`` lists the LR slices to read and concatenate along the last axis.
        """
        h, w = shape
        y0, y1, x0, x1 = region
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ValueError(f"region {region} is not inside the {h}×{w} array")
        pad = min(self.halo, w) if periodic_x else 0
        tiler = self.stream_tiler(h, w + 2 * pad)
        wins = tiler.touching(tiler.windows(h, w + 2 * pad), (y0, y1, x0 + pad, x1 + pad))
        m = self.fill_reach  # margin: invalid cells of the box are filled as in the whole array
        by0, by1 = max(min(v.y0 for v in wins) - m, 0), min(max(v.y1 for v in wins) + m, h)
        bx0, bx1 = max(min(v.x0 for v in wins) - m, 0), min(max(v.x1 for v in wins) + m, w + 2 * pad)
        cols: list[tuple[int, int]] = []  # padded columns bx0..bx1 -> source columns (wrapping)
        p = bx0
        while p < bx1:
            src = (p - pad) % w
            n = min(bx1 - p, w - src)
            cols.append((src, src + n))
            p += n
        return RegionPlan((h, w), region, pad, tiler, wins, (by0, by1, bx0, bx1), (by0, by1), tuple(cols))

    def run_region(
        self, x_box: np.ndarray, plan: RegionPlan, normalizers: list[Normalizer], desc: str = "sciSR"
    ) -> np.ndarray:
        """Super-resolve the block of ``plan`` from its LR box (see :meth:`plan_region`).

        Args:
            x_box: ``(B, C, bh, bw)``: the rows ``plan.rows`` of the LR array, columns ``plan.read``
                concatenated (wrapped columns included for a periodic axis); NaN marks invalid cells.
            plan: From :meth:`plan_region`.
            normalizers: Fitted on the whole variable (never on the box).
            desc: Progress-bar label.

        Returns:
            ``(B, C_out, s·(y1-y0), s·(x1-x0))`` float32, equal to that block of :meth:`run`
            (the box includes the margin :attr:`fill_reach`, so invalid cells are filled as in
            the whole array).

        Shape:
            ``(B, C, bh, bw) -> (B, C_out, s·(y1-y0), s·(x1-x0))``.
        """
        by0, by1, bx0, bx1 = plan.box
        if x_box.shape[-2:] != (by1 - by0, bx1 - bx0):
            raise ValueError(
                f"the LR box has shape {x_box.shape[-2:]}, the plan needs {(by1 - by0, bx1 - bx0)}"
            )
        y0, y1, x0, x1 = plan.region
        z, _valid = self._normalized(x_box, normalizers)
        z = self._with_covariate_channels(z, plan.shape, plan.rows, plan.read)
        y = self.engine.run_windows(
            self.model,
            torch.from_numpy(np.ascontiguousarray(z)),
            plan.tiler,
            list(plan.windows),
            (y0, y1, x0 + plan.pad, x1 + plan.pad),
            (by0, bx0),
            desc=desc,
        ).numpy()
        ky0, kx0 = y0 - by0, x0 + plan.pad - bx0
        x_lr = x_box[..., ky0 : ky0 + (y1 - y0), kx0 : kx0 + (x1 - x0)]
        valid = np.isfinite(x_lr)
        if self.constraint is not None:
            if not self.constraint.local:
                raise ValueError(
                    f"constraint degradation '{self.constraint.degradation}' is not local: its projection "
                    f"needs the whole field; process fields whole (one spatial chunk) or use 'area'"
                )
            self.check_constraint(normalizers)
            s = self.scale
            return self._constrain(self._finish(y, valid, normalizers), x_lr, (y0 * s, x0 * s), y)
        return self._finish(y, valid, normalizers)

    def _normalized(self, x: np.ndarray, normalizers: list[Normalizer]) -> tuple[np.ndarray, np.ndarray]:
        """Normalized float32 copy of ``x`` with invalid cells filled, and the validity mask.

        Shape:
            ``(B, C, H, W) -> (B, C, H, W), (B, C, H, W)``.
        """
        b, c, h, w = x.shape
        valid = np.isfinite(x)
        z = np.empty((b, c, h, w), dtype=np.float32)
        for ci, nz in enumerate(normalizers):
            zc = np.asarray(
                nz.forward(np.where(valid[:, ci], x[:, ci], 0).astype(np.float64)), dtype=np.float32
            )
            for bi in range(b):
                z[bi, ci] = fill_invalid(zc[bi], valid[bi, ci], self.fill_reach)
        return z, valid

    def _finish(self, y: np.ndarray, valid: np.ndarray, normalizers: list[Normalizer]) -> np.ndarray:
        """Model output back to data units: inverse normalization, clip, NaN where the input was invalid.

        Shape:
            ``(B, C_out, s·H, s·W)``, ``valid``: ``(B, C, H, W)`` -> ``(B, C_out, s·H, s·W)``.
        """
        s = self.scale
        c = valid.shape[1]
        c_out = y.shape[1]
        out = np.empty_like(y)
        for co in range(c_out):
            nz = normalizers[co] if c_out == c else normalizers[0]
            out[:, co] = np.asarray(nz.inverse(y[:, co]), dtype=np.float32)
            if self.clip:
                if nz.valid_range is None:
                    raise ValueError("clip=True needs the input's value range; fit the normalizers first")
                np.clip(out[:, co], *nz.valid_range, out=out[:, co])
        hr_valid = np.broadcast_to(
            upsample_mask(valid if c_out == c else valid.all(axis=1, keepdims=True), s), out.shape
        )
        bad = hr_valid & ~np.isfinite(out)
        if bad.any():
            raise ValueError(
                f"the model returned NaN/inf on {int(bad.sum())} of {int(hr_valid.sum())} valid output "
                f"cells: its weights are broken (check the weight file for NaN/inf) or the values "
                f"overflow (try precision='fp32' or another norm=)"
            )
        out = np.where(hr_valid, out, np.float32(np.nan))
        return out.astype(np.float32, copy=False)


def _resolve_covariates(covariates: Any, model: Any, weights: Any, scale: int) -> tuple[Any, int]:
    """The call's :class:`sciSR.covariates.CovariateInput` (with the weights' records) and its channel
    count, after checking that the weights and the covariates belong together."""
    from . import covariates as cov

    given = cov.as_input(covariates)
    auto = isinstance(model, str) and model.strip().lower() == "auto"
    if auto and given is not None and (weights is None or not Path(str(weights)).is_file()):
        raise ValueError(
            "covariates= need weights trained with them; name the model and its weight file "
            "(model='rcan', weights='trained.safetensors')"
        )
    recorded, known = cov.recorded_for_model(model, weights)
    cov.check_match(recorded, given, known)
    if given is None:
        return None, 0
    if recorded is not None:
        given = dataclasses.replace(given, records=tuple(recorded))
    return given, given.channels(scale)


def _resolve_constraint(constraint: Any, degradation: str | None, meta: dict[str, Any]) -> Any:
    """The call's :class:`sciSR.constraints.Constraint` (or ``None``): ``constraint`` when given,
    else the one recorded in the weights' metadata; ``degradation`` overrides the recorded operator."""
    from . import constraints

    if constraint is None:
        recorded = constraints.from_metadata(meta)
        if recorded is None or degradation is None:
            return recorded
        return constraints.get_constraint(recorded.kind, degradation)
    if degradation is None and isinstance(constraint, str) and meta.get("scisr_constraint_degradation"):
        degradation = str(meta["scisr_constraint_degradation"])
    cons = constraints.get_constraint(constraint, degradation)
    if isinstance(constraint, str) and cons is not None and cons.kind == "softmax":
        # weights trained with the layer output logits; others estimate the field (logits: its log)
        trained = meta.get("scisr_constraint") == "softmax"
        cons = dataclasses.replace(cons, logits="output" if trained else "log")
    return cons


#: LR window size of parameter-free models when an array is processed region by region.
STREAM_TILE = 512


@dataclass(frozen=True)
class RegionPlan:
    """How one block of a larger array is computed (see :meth:`Pipeline.plan_region`).

    Attributes:
        shape: ``(H, W)`` of the whole LR array.
        region: ``(y0, y1, x0, x1)``: the LR block whose HR values are computed.
        pad: Columns of periodic padding on each side (0 unless the last axis wraps).
        tiler: The whole array's tiler.
        windows: The whole array's windows that touch the block (padded coordinates), in order.
        box: ``(y0, y1, x0, x1)``: the LR box read (padded coordinates): the windows' extent plus
            :attr:`Pipeline.fill_reach` on each side, within the array.
        rows: LR rows to read (``box``'s rows).
        read: Column ranges ``(c0, c1)`` of the unpadded array to read and concatenate in order.
    """

    shape: tuple[int, int]
    region: tuple[int, int, int, int]
    pad: int
    tiler: Tiler
    windows: tuple[Any, ...] | list[Any]
    box: tuple[int, int, int, int]
    rows: tuple[int, int]
    read: tuple[tuple[int, int], ...]

    def read_box(self, read: Any) -> np.ndarray:
        """The LR box from ``read(y0, y1, x0, x1)`` (any array reader returning ``(..., rows, cols)``).

        Shape:
            ``-> (..., box rows, box cols)``.
        """
        y0, y1 = self.rows
        parts = [read(y0, y1, c0, c1) for c0, c1 in self.read]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

"""Static high-resolution covariates (topography, land–sea mask, another MRI contrast) as model inputs.

A covariate is a field on the *HR* grid of the data (``s·H × s·W`` for an ``H × W`` input at scale
``s``). It is normalized by its own normalizer (fitted on the whole covariate field, or the
parameters recorded with the weights) and then pixel-unshuffled (space-to-depth) onto the LR grid:
``(s·H, s·W) -> (s², H, W)``, channel ``i·s + j`` holding the sub-cell ``(i, j)`` of every LR cell.
The ``k·s²`` covariate channels follow the ``C`` data channels, so the network maps
``C + k·s²`` input channels to ``C`` output channels. Because covariates live on the LR grid as
ordinary channels, tiling, dask chunking and region-by-region streaming cut them exactly as the
data (:meth:`CovariateStack.box`); masks, inverse normalization and constraints use the data
channels only.

This follows the common practice of feeding static HR predictors to downscaling networks (e.g.
topography in CorrDiff and in Harder et al.'s climate SR work); pixel-unshuffle is our choice of
how to bring the HR field onto the LR tensor without losing resolution.

Weights trained with covariates record them in their metadata under ``scisr_covariates`` (names in
order, normalizer kind and parameters, scale); :func:`sciSR.downscale` refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Weight-metadata key of the covariate record (JSON list of ``{"name", "norm", "params"}``).
METADATA_KEY = "scisr_covariates"
#: Normalizer fitted on a covariate field when the weights record none.
DEFAULT_NORM = "zscore"


# --------------------------------------------------------------------------- space-to-depth


def unshuffle(field: np.ndarray, scale: int) -> np.ndarray:
    """Pixel-unshuffle (space-to-depth) the last two axes of ``field`` by ``scale``.

    Channel ``i·s + j`` of the result is ``field[..., i::s, j::s]`` (the ordering of
    ``torch.nn.functional.pixel_unshuffle``).

    Args:
        field: ``(..., s·H, s·W)`` array.
        scale: Integer factor ``s``.

    Returns:
        ``(..., s², H, W)`` array (a copy).

    Raises:
        ValueError: Spatial sides not multiples of ``scale``.

    Shape:
        ``(..., s·H, s·W) -> (..., s², H, W)``.
    """
    s = int(scale)
    hh, ww = field.shape[-2:]
    if hh % s or ww % s:
        raise ValueError(
            f"a covariate of {hh}×{ww} cells cannot be unshuffled by {s}: sides must be multiples"
        )
    lead = field.shape[:-2]
    a = field.reshape(*lead, hh // s, s, ww // s, s)
    nd = len(lead)
    a = a.transpose(*range(nd), nd + 1, nd + 3, nd, nd + 2)
    return np.ascontiguousarray(a.reshape(*lead, s * s, hh // s, ww // s))


def unshuffle_torch(field: Any, scale: int) -> Any:
    """:func:`unshuffle` for a torch tensor ``(N, k, s·h, s·w)`` (the same channel order).

    Shape:
        ``(N, k, s·h, s·w) -> (N, k·s², h, w)``.
    """
    import torch.nn.functional as F

    return F.pixel_unshuffle(field, int(scale))


# --------------------------------------------------------------------------- inputs and records


@dataclass(frozen=True)
class CovariateInput:
    """The covariates of one call as given: names in order and their HR fields.

    Attributes:
        names: Covariate names (the order of the channels).
        fields: HR fields: numpy arrays or ``xr.DataArray`` (2-D), in the order of ``names``.
        records: What the weights recorded for each covariate (``{"name", "norm", "params"}``), or
            ``None`` for weights without a record (a module given by the caller).
    """

    names: tuple[str, ...]
    fields: tuple[Any, ...]
    records: tuple[dict[str, Any], ...] | None = None

    def channels(self, scale: int) -> int:
        """Input channels the covariates add at ``scale`` (``k·s²``)."""
        return len(self.names) * int(scale) ** 2

    def __repr__(self) -> str:  # short and content-based: pipelines are tokenized by repr
        return f"CovariateInput({list(self.names)}, sha1={self.digest()})"

    def digest(self) -> str:
        h = hashlib.sha1()
        for name, f in zip(self.names, self.fields):
            a = np.ascontiguousarray(np.asarray(getattr(f, "values", f)))
            h.update(name.encode())
            h.update(str(a.shape).encode() + str(a.dtype).encode())
            h.update(a.tobytes())
        h.update(json.dumps(self.records, sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]


def as_input(covariates: Any) -> CovariateInput | None:
    """``covariates=`` of :func:`sciSR.downscale` as a :class:`CovariateInput` (``None`` stays ``None``).

    Raises:
        TypeError: Not a mapping of names to 2-D arrays/DataArrays.
        ValueError: An empty mapping, or a field that is not 2-D.
    """
    if covariates is None or isinstance(covariates, CovariateInput):
        return covariates
    if not isinstance(covariates, Mapping):
        raise TypeError(
            f"covariates must be a dict of name -> HR field (e.g. {{'orog': orog_hr}}), got "
            f"{type(covariates).__name__}"
        )
    if not covariates:
        raise ValueError("covariates is an empty dict; pass None for no covariates")
    names, fields = [], []
    for name, f in covariates.items():
        if not hasattr(f, "ndim"):
            f = np.asarray(f)
        if f.ndim != 2:
            raise ValueError(
                f"covariate {name!r} has {f.ndim} dims {tuple(getattr(f, 'dims', f.shape))}; a covariate is "
                f"one static 2-D field on the HR grid (select one time/band first)"
            )
        names.append(str(name))
        fields.append(f)
    return CovariateInput(tuple(names), tuple(fields))


def records_of(metadata: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """The covariate records stored in weight metadata, or ``None`` (weights without covariates)."""
    if not metadata or METADATA_KEY not in metadata:
        return None
    raw = metadata[METADATA_KEY]
    recs = json.loads(raw) if isinstance(raw, str) else raw
    return list(recs) or None


def metadata_for(records: list[dict[str, Any]]) -> dict[str, str]:
    """``{"scisr_covariates": JSON}`` for the weight file."""
    return {METADATA_KEY: json.dumps(records, sort_keys=True)}


def recorded_for_model(model: Any, weights: Any) -> tuple[list[dict[str, Any]] | None, bool]:
    """The covariate records of the weights a call will use, and whether the weights are known.

    Args:
        model: Registry name or module.
        weights: ``weights=`` of the call (file, tag or ``None``).

    Returns:
        ``(records or None, known)``; ``known`` is False for a module without sciSR metadata (its
        inputs are then checked by channel count only).
    """
    from torch import nn

    if weights is not None and not isinstance(weights, bool) and Path(str(weights)).is_file():
        from .models import catalog

        try:
            return records_of(catalog.read_metadata(weights)), True
        except (ValueError, OSError):
            return None, False
    if isinstance(model, nn.Module):
        meta = getattr(model, "_weights_metadata", None)
        return records_of(meta), meta is not None
    return None, True  # registry names with shipped weights: none were trained with covariates


def check_match(recorded: list[dict[str, Any]] | None, given: CovariateInput | None, known: bool) -> None:
    """Refuse weights and covariates that do not belong together.

    Raises:
        ValueError: Covariates for weights trained without them, none for weights trained with
            them, or other names/order than in training (one line naming the fix).
    """
    want = [r["name"] for r in recorded] if recorded else []
    if given is None:
        if want:
            shown = ", ".join(f"'{n}': <HR field>" for n in want)
            raise ValueError(
                f"the weights were trained with covariates {want}; pass covariates={{{shown}}} on the HR grid"
            )
        return
    if not want:
        if known:
            raise ValueError(
                f"covariates {list(given.names)} were given but the weights were trained without covariates; "
                f"drop covariates= or use weights trained with them (sciSR.finetune(..., covariates=...))"
            )
        return
    if list(given.names) != want:
        raise ValueError(
            f"covariates {list(given.names)} do not match those the weights were trained with, {want} "
            f"(same names, same order); pass covariates={{{', '.join(repr(n) + ': ...' for n in want)}}}"
        )


# --------------------------------------------------------------------------- normalization


def fit_normalizer(values: np.ndarray, record: Mapping[str, Any] | None = None) -> Any:
    """The normalizer of one covariate: the recorded kind and parameters, else ``zscore`` fitted on it."""
    from .normalize import get_normalizer

    if record is not None:
        return get_normalizer(str(record["norm"]), **dict(record.get("params", {})))
    nz = get_normalizer(DEFAULT_NORM)
    nz.fit(values)
    return nz


def record_for(name: str, normalizer: Any) -> dict[str, Any]:
    """The metadata record of one covariate (name, normalizer kind, parameters)."""
    return {
        "name": str(name),
        "norm": str(normalizer.kind),
        "params": {k: float(v) for k, v in normalizer.params.items()},
    }


def _finite_field(name: str, values: Any) -> np.ndarray:
    a = np.asarray(getattr(values, "values", values), dtype=np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(
            f"covariate {name!r} has {int(bad.sum())} NaN/inf cells of {a.size}; covariates must be complete "
            f"(fill them first, e.g. orog.fillna(0))"
        )
    return a


# --------------------------------------------------------------------------- the LR stack


@dataclass(frozen=True, repr=False)
class CovariateStack:
    """Normalized, unshuffled covariates of one LR grid: the extra input channels of the network.

    Attributes:
        names: Covariate names in channel order.
        lr: ``(k·s², H, W)`` float32.
        records: One metadata record per covariate (normalizer used).
        scale: ``s``.
    """

    names: tuple[str, ...]
    lr: np.ndarray
    records: tuple[dict[str, Any], ...]
    scale: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the LR grid."""
        return int(self.lr.shape[-2]), int(self.lr.shape[-1])

    def __repr__(self) -> str:  # content hash: pipelines are tokenized by repr
        h = hashlib.sha1(np.ascontiguousarray(self.lr).tobytes()).hexdigest()[:16]
        return f"CovariateStack({list(self.names)}, lr={self.lr.shape}, sha1={h})"

    def box(
        self, rows: tuple[int, int], cols: list[tuple[int, int]] | tuple[tuple[int, int], ...]
    ) -> np.ndarray:
        """Rows ``rows`` and the column ranges ``cols`` (concatenated in order) of the stack.

        Shape:
            ``-> (k·s², rows, Σ cols)``.
        """
        y0, y1 = rows
        parts = [self.lr[:, y0:y1, c0:c1] for c0, c1 in cols]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    def append_to(
        self, z: np.ndarray, rows: tuple[int, int], cols: list[tuple[int, int]] | tuple[tuple[int, int], ...]
    ) -> np.ndarray:
        """``z`` with the covariate channels of ``rows``/``cols`` appended (broadcast over the batch).

        Shape:
            ``(B, C, h, w) -> (B, C + k·s², h, w)``.
        """
        cov = self.box(rows, cols)
        if cov.shape[-2:] != z.shape[-2:]:
            raise ValueError(f"covariate box {cov.shape[-2:]} does not match the data box {z.shape[-2:]}")
        cov = np.broadcast_to(cov[None], (z.shape[0], *cov.shape))
        return np.concatenate([z, cov.astype(z.dtype, copy=False)], axis=1)


def build_stack(given: CovariateInput, scale: int, fields: list[np.ndarray]) -> CovariateStack:
    """Normalize (recorded parameters, else fitted on each field) and unshuffle HR ``fields``.

    Shape:
        ``k × (s·H, s·W) -> (k·s², H, W)``.
    """
    recs = given.records
    chans, used = [], []
    for i, (name, f) in enumerate(zip(given.names, fields)):
        nz = fit_normalizer(f, None if recs is None else recs[i])
        z = np.asarray(nz.forward(f), dtype=np.float32)
        chans.append(unshuffle(z, scale))
        used.append(record_for(name, nz))
    return CovariateStack(given.names, np.concatenate(chans, axis=0), tuple(used), int(scale))


def stack_for_shape(given: CovariateInput, scale: int, lr_shape: tuple[int, int]) -> CovariateStack:
    """The stack for an ``H × W`` array (numpy path): every covariate must be ``s·H × s·W``.

    Raises:
        ValueError: A covariate of another shape (both shapes named).
    """
    s = int(scale)
    want = (s * lr_shape[0], s * lr_shape[1])
    fields = []
    for name, f in zip(given.names, given.fields):
        if tuple(f.shape) != want:
            raise ValueError(
                f"covariate {name!r} has shape {tuple(f.shape)} but the HR grid of the "
                f"{lr_shape[0]}×{lr_shape[1]} input at scale {s} is {want[0]}×{want[1]}; regrid it"
            )
        fields.append(_finite_field(name, f))
    return build_stack(given, s, fields)


def _extent(v: np.ndarray) -> str:
    return f"{v.size} values {v[0]:.6g}…{v[-1]:.6g}" if v.size else "empty"


def stack_for_grid(given: CovariateInput, grid: Any, scale: int) -> CovariateStack:
    """The stack for an xarray grid: each covariate must lie on ``grid.refine(scale)``.

    A DataArray covariate needs the grid's spatial dims with coordinates equal to the refined
    centres (relative tolerance 1e-6 of the HR spacing); a numpy covariate needs the HR shape.

    Raises:
        ValueError: Other dims, shape or coordinates (both grids' shapes and extents named).
    """
    s = int(scale)
    y_dim, x_dim = grid.dims
    h, w = int(grid.ds.sizes[y_dim]), int(grid.ds.sizes[x_dim])
    if not all(hasattr(f, "dims") for f in given.fields):
        return stack_for_shape(
            CovariateInput(
                given.names, tuple(np.asarray(getattr(f, "values", f)) for f in given.fields), given.records
            ),
            s,
            (h, w),
        )
    refined = grid.refine(s)
    fields = []
    for name, f in zip(given.names, given.fields):
        if set(f.dims) != {y_dim, x_dim}:
            raise ValueError(
                f"covariate {name!r} has dims {tuple(f.dims)}; it must lie on the data's HR grid with dims "
                f"({y_dim!r}, {x_dim!r}) of sizes ({s * h}, {s * w})"
            )
        f = f.transpose(y_dim, x_dim)
        if f.shape != (s * h, s * w):
            raise ValueError(
                f"covariate {name!r} is {f.shape[0]}×{f.shape[1]} but the HR grid of the {h}×{w} input at "
                f"scale {s} is {s * h}×{s * w}; interpolate it onto that grid (orog.interp(...))"
            )
        for dim in (y_dim, x_dim):
            if dim not in refined or dim not in f.coords:
                continue
            want = np.asarray(refined[dim].values, dtype=np.float64)
            got = np.asarray(f[dim].values, dtype=np.float64)
            step = float(np.abs(np.diff(want)).min()) if want.size > 1 else 1.0
            if not np.allclose(got, want, rtol=0, atol=1e-6 * max(step, 1e-300) + 1e-9 * np.abs(want).max()):
                raise ValueError(
                    f"covariate {name!r} {dim!r} coordinates ({_extent(got)}) differ from the HR grid of the "
                    f"data ({_extent(want)}); interpolate the covariate onto that grid (docs/covariates.md)"
                )
        fields.append(_finite_field(name, f))
    return build_stack(given, s, fields)


def hr_coords(da: Any, scale: int) -> dict[str, np.ndarray]:
    """The refined 1-D spatial coordinates of a DataArray or Dataset at ``scale`` (for making covariates).

    Returns:
        ``{y_dim: centres, x_dim: centres}`` of :meth:`sciSR.grid.Grid.refine`.
    """
    import xarray as xr

    from .grid import Grid, find_spatial_dims

    ds = da.to_dataset(name="__v__") if isinstance(da, xr.DataArray) else da
    var = ds["__v__"] if isinstance(da, xr.DataArray) else next(iter(ds.data_vars.values()))
    dims = find_spatial_dims(var)
    if dims is None:
        raise ValueError(f"no spatial dims found in {tuple(var.dims)}")
    from .io.xarray_core import with_source_bounds

    grid = Grid(with_source_bounds(ds, set(dims)), *dims)
    ref = grid.refine(scale)
    return {d: np.asarray(ref[d].values) for d in dims if d in ref}


# --------------------------------------------------------------------------- networks and training


def expand_input_channels(net: Any, extra: int) -> Any:
    """Add ``extra`` zero-initialised input channels to the first convolution of ``net`` (in place).

    With zero weights on the new channels the network computes exactly what it did before, so
    fine-tuning with covariates starts from the pretrained model. ``net.in_channels`` and
    ``net.spec.in_channels`` are updated.

    Raises:
        ValueError: No convolution taking the network's input channels is found.
    """
    import dataclasses

    import torch
    from torch import nn

    c = int(getattr(net, "in_channels", 0) or 0)
    first = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or (c and first.in_channels != c) or first.groups != 1:
        raise ValueError(
            f"cannot add covariate channels to {type(net).__name__}: its first convolution does not take "
            f"the input channels; build it with in_channels=C+k·s² (sciSR.create_model)"
        )
    c = first.in_channels
    w = first.weight.data
    new_w = torch.zeros((w.shape[0], c + extra, *w.shape[2:]), dtype=w.dtype, device=w.device)
    new_w[:, :c] = w
    first.weight = nn.Parameter(new_w)
    first.in_channels = c + extra
    if hasattr(net, "in_channels"):
        net.in_channels = c + extra
    spec = getattr(net, "spec", None)
    if (
        spec is not None
        and spec.in_channels != c + extra
        and not isinstance(getattr(type(net), "spec", None), property)
    ):
        net.spec = dataclasses.replace(spec, in_channels=c + extra)
    return net


def split_batch(lr: Any, hr: Any, data_channels: int, scale: int) -> tuple[Any, Any]:
    """Training batch with covariates: LR data + unshuffled HR covariates, and the HR data target.

    The sampler cuts (and augments) data and covariate channels of the HR patch together and
    degrades all of them; the degraded covariate channels are dropped: covariates are never degraded.

    Shape:
        ``(N, C+k, h, w), (N, C+k, s·h, s·w) -> (N, C+k·s², h, w), (N, C, s·h, s·w)``.
    """
    import torch

    c = int(data_channels)
    cov = unshuffle_torch(hr[:, c:], scale).to(lr.dtype)
    return torch.cat([lr[:, :c], cov], dim=1), hr[:, :c].contiguous()


def evaluate(
    net: Any,
    images: list[np.ndarray],
    scale: int,
    data_channels: int,
    degradation: str,
    degrade_options: dict[str, Any] | None = None,
    crop: int | None = None,
    device: Any = "cpu",
    constraint: Any = None,
) -> dict[str, float]:
    """Validation PSNR/SSIM with covariates (as :func:`sciSR.train.trainer.evaluate`, data range 1).

    Each ``(C+k, H, W)`` field is centre-cropped, its data channels degraded and its covariate
    channels unshuffled; scores are over the data channels with ``scale`` pixels shaved.
    """
    import torch
    from torch import nn

    from .metrics import psnr, ssim
    from .train.degrade import degrade
    from .train.trainer import _centre_crop

    was = net.training
    net.eval()
    c = int(data_channels)
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "psnr_bicubic": [], "ssim_bicubic": []}
    with torch.inference_mode():
        for im in images:
            im = _centre_crop(im, crop or max(im.shape[-2:]), scale)
            hr_all = torch.from_numpy(np.ascontiguousarray(im)).float()[None]
            hr = hr_all[:, :c]
            lr = degrade(hr, scale, degradation, **dict(degrade_options or {}))
            x = torch.cat([lr, unshuffle_torch(hr_all[:, c:], scale)], dim=1)
            sr = net(x.to(device)).float()
            if constraint is not None:
                sr = constraint.apply(sr, lr.to(sr.device), scale)
            sr = sr.cpu()[0].numpy()
            bic = nn.functional.interpolate(
                lr, size=tuple(hr.shape[-2:]), mode="bicubic", align_corners=False
            )
            ref, bic = hr[0].numpy(), bic[0].numpy()
            b = scale
            for ci in range(c):
                r, s_, bb = ref[ci, b:-b, b:-b], sr[ci, b:-b, b:-b], bic[ci, b:-b, b:-b]
                scores["psnr"].append(psnr(s_, r, data_range=1.0))
                scores["ssim"].append(ssim(s_, r, data_range=1.0))
                scores["psnr_bicubic"].append(psnr(bb, r, data_range=1.0))
                scores["ssim_bicubic"].append(ssim(bb, r, data_range=1.0))
    net.train(was)
    return {k: float(np.mean(v)) for k, v in scores.items()}


def training_fields(
    fields: list[np.ndarray], given: CovariateInput, scale: int
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Training fields with the normalized HR covariates stacked after the data channels.

    Args:
        fields: Raw data fields ``(C, H, W)``, all on the covariates' grid.
        given: The covariates (HR fields of shape ``(H, W)``).
        scale: SR factor (for the record only).

    Returns:
        ``(C+k, H, W)`` fields and the covariate records (normalizer fitted on each covariate).

    Raises:
        ValueError: A field whose grid differs from the covariates' (shapes named).
    """
    covs, recs = [], []
    for name, f in zip(given.names, given.fields):
        a = _finite_field(name, f)
        nz = fit_normalizer(a, None if given.records is None else given.records[len(recs)])
        covs.append(np.asarray(nz.forward(a), dtype=np.float64))
        recs.append(record_for(name, nz))
    out = []
    for i, f in enumerate(fields):
        if f.shape[-2:] != covs[0].shape:
            raise ValueError(
                f"training field {i} is {f.shape[-2]}×{f.shape[-1]} but the covariates are "
                f"{covs[0].shape[0]}×{covs[0].shape[1]}; covariates must be on the HR training grid"
            )
        out.append(np.concatenate([np.asarray(f, dtype=np.float64), np.stack(covs)], axis=0))
    return out, recs


def training_data(
    data: Any,
    given: CovariateInput,
    *,
    scale: int,
    channels: int,
    variables: Any = None,
    axis: int | None = None,
    val_fraction: float = 0.1,
    norm: str = "global",
    seed: int = 0,
) -> tuple[Any, list[dict[str, Any]]]:
    """:func:`sciSR.train.datasets.load_training_data` for gridded data with HR covariates.

    The data fields are read as usual, the normalized covariates stacked after their channels
    (:func:`training_fields`), and cropping (all-valid rectangle, multiples of ``scale``) and the
    validation split applied to both together, so covariate and data cells stay aligned. The data
    channels are then normalized as ``norm`` says (``"global"``: one min/max over the training
    fields, stored with the weights; ``"per_field"``; ``"none"``); covariates keep their own
    normalization.

    Returns:
        The :class:`~sciSR.train.datasets.TrainingData` (``channels + k`` channels per field) and
        the covariate records for the weight metadata.

    Raises:
        ValueError: Photos or LR pairs (covariates need gridded data), fields not on the covariates'
            grid, or an unknown ``norm``.
    """
    import dataclasses as dc

    from .normalize import MinMax
    from .train import datasets as tds

    if norm not in ("global", "per_field", "none"):
        raise ValueError(f"unknown norm {norm!r}; choose one of global, per_field, none")
    raw = tds._read(data, int(scale), int(channels), variables, axis, None)
    if raw.photos or raw.lr is not None or raw.val is not None:
        raise ValueError("covariates need gridded data (xarray, NetCDF/Zarr/GeoTIFF, arrays), not photos")
    fields, recs = training_fields(raw.fields, given, scale)
    k = len(given.names)
    td = tds.load_training_data(
        fields, scale=scale, channels=channels + k, val_fraction=val_fraction, norm="none", seed=seed
    )
    c = int(channels)
    record: dict[str, Any] = {"kind": "none", "fixed": False, "params": {}}
    if norm == "global":
        lo = min(float(f[:c].min()) for f in td.train)
        hi = max(float(f[:c].max()) for f in td.train)
        nz = MinMax(min=lo, max=hi if hi > lo else lo + 1.0)
        record = {"kind": "minmax", "fixed": True, "params": dict(nz.params)}

        def scale_data(f: np.ndarray) -> np.ndarray:
            f = f.copy()
            f[:c] = nz.forward(f[:c])
            return f
    elif norm == "per_field":
        record = {"kind": "minmax", "fixed": False, "params": {}}

        def scale_data(f: np.ndarray) -> np.ndarray:
            f = f.copy()
            lo = f[:c].min(axis=(-2, -1), keepdims=True)
            span = f[:c].max(axis=(-2, -1), keepdims=True) - lo
            f[:c] = (f[:c] - lo) / np.where(span > 0, span, 1.0)
            return f
    else:

        def scale_data(f: np.ndarray) -> np.ndarray:
            return f

    names = ", ".join(given.names)
    return (
        dc.replace(
            td,
            train=[scale_data(f) for f in td.train],
            val=[scale_data(f) for f in td.val],
            norm=record,
            source=f"{raw.source}; covariates [{names}] stacked after the data channels; {td.source}",
        ),
        recs,
    )

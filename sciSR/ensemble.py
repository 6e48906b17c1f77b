"""Ensembles of super-resolved fields: a ``realization`` dimension from one ``downscale`` call.

``sciSR.downscale(x, model, scale, ensemble=N)`` calls :func:`sciSR.downscale` once per member
(so every format, tiling, chunking and constraint option applies unchanged) and stacks the members
along a CF ``realization`` coordinate (xarray input) or a new leading axis (numpy arrays, torch
tensors). Members come from a registry of generators (:data:`GENERATORS`):

- ``"tta"``: test-time augmentation. The LR input is flipped or rotated, super-resolved, and the
  output transformed back (Lim et al. 2017, "self-ensemble"). Only transforms valid for the data's
  grid are used (rule in :func:`valid_augmentations`).
- ``"mc_dropout"``: Monte-Carlo dropout (Gal & Ghahramani 2016): the model's dropout layers stay
  active at inference and each member uses its own random seed. Only for models with dropout.
- ``"weights"``: one member per weight file or shipped weights tag.

The spread of a TTA ensemble measures how much the network's answer depends on the orientation of
its input; for a network equivariant to the transforms it is zero. It is not a calibrated
predictive distribution: report :func:`sciSR.metrics.spread_skill_ratio` and
:func:`sciSR.metrics.crps_ensemble` against truth before reading it as one (``docs/uncertainty.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "AUGMENTATIONS",
    "GENERATORS",
    "SQUARE_TOLERANCE",
    "UNIFORM_TOLERANCE",
    "Augmentation",
    "downscale_ensemble",
    "has_dropout",
    "mean_and_spread",
    "valid_augmentations",
]

#: Largest relative departure from equal spacing along an axis that still counts as uniform.
UNIFORM_TOLERANCE = 0.01
#: Largest relative difference of a cell's two side lengths (on the ground for latitude/longitude
#: grids, where the zonal side is ``Δλ·cos φ``) that still counts as a square cell.
SQUARE_TOLERANCE = 0.1


# ----------------------------------------------------------------------------- augmentations
def _xp(a: Any) -> Any:
    """``torch`` for tensors, ``numpy`` otherwise."""
    if type(a).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _flip(a: Any, axes: tuple[int, ...]) -> Any:
    return a.flip(axes) if _xp(a) is not np else np.flip(a, axes)


def _rot(a: Any, k: int) -> Any:
    if _xp(a) is not np:
        import torch

        return torch.rot90(a, k, dims=(-2, -1))
    return np.rot90(a, k, axes=(-2, -1))


def _swap(a: Any) -> Any:
    return a.transpose(-2, -1) if _xp(a) is not np else np.swapaxes(a, -2, -1)


@dataclass(frozen=True)
class Augmentation:
    """One element of the symmetry group of the square acting on the last two (y, x) axes.

    Attributes:
        name: Registry name.
        forward: Applied to the LR input.
        inverse: Applied to the HR output (undoes ``forward``).
        needs: What the grid must have: ``"x"``/``"y"`` uniform spacing along that axis,
            ``"square"`` uniform spacing on both axes and square cells.
        description: For the ``realization`` coordinate's attrs.
    """

    name: str
    forward: Callable[[Any], Any]
    inverse: Callable[[Any], Any]
    needs: tuple[str, ...]
    description: str


def _aug(
    name: str, f: Callable[[Any], Any], inv: Callable[[Any], Any], needs: tuple[str, ...], d: str
) -> None:
    AUGMENTATIONS[name] = Augmentation(name, f, inv, needs, d)


#: Name → augmentation, in the order members are drawn (``identity`` is always member 0).
AUGMENTATIONS: dict[str, Augmentation] = {}
_aug("identity", lambda a: a, lambda a: a, (), "input as given")
_aug("flip_x", lambda a: _flip(a, (-1,)), lambda a: _flip(a, (-1,)), ("x",), "x axis reversed")
_aug("flip_y", lambda a: _flip(a, (-2,)), lambda a: _flip(a, (-2,)), ("y",), "y axis reversed")
_aug("rot180", lambda a: _flip(a, (-2, -1)), lambda a: _flip(a, (-2, -1)), ("x", "y"), "both axes reversed")
_aug("rot90", lambda a: _rot(a, 1), lambda a: _rot(a, -1), ("square",), "rotated 90 degrees")
_aug("rot270", lambda a: _rot(a, -1), lambda a: _rot(a, 1), ("square",), "rotated 270 degrees")
_aug("transpose", _swap, _swap, ("square",), "y and x axes exchanged")
_aug(
    "antitranspose",
    lambda a: _swap(_flip(a, (-2, -1))),
    lambda a: _flip(_swap(a), (-2, -1)),
    ("square",),
    "y and x axes exchanged and reversed",
)


@dataclass(frozen=True)
class GridFacts:
    """What the augmentation rule needs to know about a grid.

    Attributes:
        uniform_y, uniform_x: Spacing along the axis is uniform (or unknown: a bare index grid).
        square: Cells are square (see :data:`SQUARE_TOLERANCE`).
        why: Human-readable reason for the values above (used in error messages).
    """

    uniform_y: bool = True
    uniform_x: bool = True
    square: bool = True
    why: str = "an array without coordinates (square pixels assumed)"


def _uniform(v: np.ndarray | None) -> tuple[bool, float | None]:
    """Whether 1-D centres ``v`` are uniformly spaced, and the mean spacing."""
    if v is None or v.size < 2:
        return True, None
    d = np.diff(np.asarray(v, dtype=np.float64))
    step = float(d.mean())
    return bool(np.all(np.abs(d - step) <= UNIFORM_TOLERANCE * abs(step))), step


def grid_facts(ds: Any, y_dim: str, x_dim: str) -> GridFacts:
    """The facts of :class:`GridFacts` for the spatial dims of an xarray Dataset.

    Latitude/longitude grids (geographic or rotated pole, recognised by CF ``standard_name``,
    units or names) compare ``|Δλ|·cos φ`` with ``|Δφ|`` at the latitude of the grid farthest from
    the (rotated) equator; other grids compare ``|Δx|`` with ``|Δy|`` in their own units. 2-D
    curvilinear grids without 1-D coordinates count as uniform with square cells only if their
    dims have no coordinates at all.
    """
    from .grid import is_latitude, is_longitude

    def coord(dim: str) -> tuple[np.ndarray | None, dict[str, Any]]:
        if dim in ds.coords and ds[dim].ndim == 1:
            return np.asarray(ds[dim].values, dtype=np.float64), dict(ds[dim].attrs)
        return None, {}

    yv, ya = coord(y_dim)
    xv, xa = coord(x_dim)
    uy, dy = _uniform(yv)
    ux, dx = _uniform(xv)
    if dy is None or dx is None:
        return GridFacts(uy, ux, uy and ux, "a grid without 1-D spatial coordinates (square cells assumed)")
    angular = is_latitude(y_dim, ya) or str(ya.get("standard_name", "")).lower() == "grid_latitude"
    angular = angular and (is_longitude(x_dim, xa) or "lon" in str(x_dim).lower())
    if angular:
        phi = float(np.max(np.abs(yv)))
        side_x = abs(dx) * float(np.cos(np.deg2rad(min(phi, 90.0))))
        what = f"{abs(dy):.4g}° × {abs(dx):.4g}° latitude/longitude cells, up to |lat| {phi:.3g}°"
    else:
        side_x = abs(dx)
        what = f"{abs(dy):.4g} × {abs(dx):.4g} cells"
    side_y = abs(dy)
    square = uy and ux and abs(side_x - side_y) <= SQUARE_TOLERANCE * max(side_x, side_y)
    shape = "square" if square else "not square"
    return GridFacts(uy, ux, square, f"{what} ({shape}; y {'uniform' if uy else 'irregular'}, "
                     f"x {'uniform' if ux else 'irregular'})")


def _allowed(aug: Augmentation, facts: GridFacts) -> bool:
    ok = {"y": facts.uniform_y, "x": facts.uniform_x, "square": facts.square}
    return all(ok[n] for n in aug.needs)


def valid_augmentations(facts: GridFacts, augment: Any = "auto") -> list[str]:
    """The augmentations used for a grid (``identity`` first).

    Rule: a flip along an axis needs uniform spacing along that axis; a rotation by 90° or a
    transpose needs uniform spacing on both axes and square cells (on the ground for
    latitude/longitude grids: ``|Δλ|·cos φ`` within :data:`SQUARE_TOLERANCE` of ``|Δφ|`` at the
    latitude farthest from the equator). A bare array has square pixels. The spatial coordinates
    always travel with the data (a flipped xarray input has reversed coordinates), so outputs land
    back on the input's refined grid exactly.

    Args:
        facts: The grid's :class:`GridFacts`.
        augment: ``"auto"`` (every valid augmentation), or names from :data:`AUGMENTATIONS` (each
            must be valid for the grid; ``identity`` is always included).

    Returns:
        Names in :data:`AUGMENTATIONS` order.

    Raises:
        ValueError: An unknown name, or a name the grid does not allow (the message says why).
    """
    if augment is None or (isinstance(augment, str) and augment == "auto"):
        return [n for n, a in AUGMENTATIONS.items() if _allowed(a, facts)]
    names = [augment] if isinstance(augment, str) else list(augment)
    for n in names:
        if n not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {n!r}; choose from {', '.join(AUGMENTATIONS)} or 'auto'")
        if not _allowed(AUGMENTATIONS[n], facts):
            need = "square cells with uniform spacing" if "square" in AUGMENTATIONS[n].needs else (
                "uniform spacing along " + " and ".join(AUGMENTATIONS[n].needs))
            valid = [m for m, a in AUGMENTATIONS.items() if _allowed(a, facts) and m != "identity"]
            raise ValueError(
                f"augmentation {n!r} needs {need} but the data have {facts.why}; "
                f"use augment={tuple(valid)!r} (or 'auto')"
            )
    return [n for n in AUGMENTATIONS if n == "identity" or n in names]


# ----------------------------------------------------------------------------- members
@dataclass(frozen=True)
class Member:
    """One ensemble member: an augmentation plus per-call overrides of ``downscale`` options."""

    label: str
    augmentation: str = "identity"
    overrides: tuple[tuple[str, Any], ...] = ()
    seed: int | None = None


def _tta_members(n: int | None, ctx: dict[str, Any]) -> list[Member]:
    names = valid_augmentations(ctx["facts"], ctx["augment"])
    if n is None:
        n = len(names)
    if n > len(names) or n < 2:
        other = "" if n < 2 else (f"only {len(names)} augmentation(s) are valid here ({', '.join(names)}; "
                                  f"{ctx['facts'].why}); ")
        raise ValueError(
            f"ensemble={n} with test-time augmentation: {other}pass ensemble=<2..{len(names)}> "
            f"with augment='auto' or more transforms, ensemble=[weight files or tags] for a weights "
            f"ensemble, or ensemble_method='mc_dropout' for a model with dropout layers"
        )
    return [Member(name, augmentation=name) for name in names[:n]]


def _mc_members(n: int | None, ctx: dict[str, Any]) -> list[Member]:
    if n is None or n < 2:
        raise ValueError(f"ensemble_method='mc_dropout' needs ensemble=<number of members ≥ 2>, got {n!r}")
    return [Member(f"dropout seed {i}", seed=i) for i in range(n)]


def _weights_members(files: Sequence[Any], ctx: dict[str, Any]) -> list[Member]:
    if len(files) < 2:
        raise ValueError(f"a weights ensemble needs at least 2 weight files or tags, got {list(files)!r}")
    return [Member(Path(str(w)).name, overrides=(("weights", w),)) for w in files]


#: Generator name → ``fn(n_or_files, context) -> members``.
GENERATORS: dict[str, Callable[[Any, dict[str, Any]], list[Member]]] = {
    "tta": _tta_members,
    "mc_dropout": _mc_members,
    "weights": _weights_members,
}


# ----------------------------------------------------------------------------- MC dropout
def _dropout_layers(net: Any) -> list[Any]:
    from torch import nn

    out = []
    for m in net.modules():
        p = getattr(m, "p", None)
        kind = isinstance(m, nn.modules.dropout._DropoutNd) or type(m).__name__ == "DropPath"
        if kind and p is not None and float(p) > 0:
            out.append(m)
    return out


def has_dropout(net: Any) -> bool:
    """Whether a module has dropout layers (``torch.nn`` dropout or ``DropPath``) with ``p > 0``."""
    return bool(_dropout_layers(net))


_MC_CLASSES: dict[type, type] = {}
#: Seed of the MC-dropout member being computed (``None`` outside a member's call).
_MC_SEED: list[int | None] = [None]


def _mc_class(cls: type) -> type:
    """A subclass of ``cls`` whose dropout layers keep sampling in ``eval()`` mode.

    Each forward call reseeds torch's generators from the member's seed and the input's shape
    and sums, so a member's masks depend on the member and the tile, not on how many forward
    passes ran before (the engine's one-off profiling pass, earlier members).
    """
    if cls not in _MC_CLASSES:

        def train(self: Any, mode: bool = True) -> Any:
            cls.train(self, mode)
            for m in _dropout_layers(self):
                m.training = True
            return self

        def forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
            seed = _MC_SEED[0]
            if seed is not None:
                import torch

                xd = x.detach().double()
                key = hash((seed, tuple(x.shape), float(xd.sum()), float(xd.abs().sum())))
                torch.manual_seed(key % (2**63))
            return cls.forward(self, x, *args, **kwargs)

        _MC_CLASSES[cls] = type(f"MCDropout{cls.__name__}", (cls,), {"train": train, "forward": forward})
    return _MC_CLASSES[cls]


def _mc_module(model: Any, scale: int, weights: Any, model_kwargs: dict[str, Any]) -> Any:
    """A private copy of the model (weights loaded) whose dropout stays on at inference."""
    import copy

    from torch import nn

    from .pipeline import infer_in_channels, resolve_model

    if isinstance(model, str) and model.strip().lower() == "auto":
        raise ValueError("ensemble_method='mc_dropout' needs a named model with dropout layers, not 'auto'")
    kwargs = dict(model_kwargs)
    if isinstance(model, str):
        kwargs.setdefault("in_channels", infer_in_channels(model, kwargs))
        net = resolve_model(model, scale, weights=weights, **kwargs)
    else:
        net = resolve_model(model, scale, weights=weights)
    if not has_dropout(net):
        name = model if isinstance(model, str) else type(model).__name__
        raise ValueError(
            f"model {name!r} has no dropout layers, so MC dropout gives identical members; use ensemble=N "
            f"for test-time augmentation, ensemble=[weight files or tags] for a weights ensemble, or a "
            f"model with dropout"
        )
    net = copy.deepcopy(net)
    net.__class__ = _mc_class(type(net))
    assert isinstance(net, nn.Module)
    return net.eval()


# ----------------------------------------------------------------------------- xarray helpers
def _spatial_dims(obj: Any, spatial_dims: Any) -> tuple[str, str]:
    from .grid import find_spatial_dims, no_spatial_dims_error

    if spatial_dims is not None:
        y, x = spatial_dims
        return str(y), str(x)
    das = [obj] if not hasattr(obj, "data_vars") else list(obj.data_vars.values())
    for da in das:
        dims = find_spatial_dims(da)
        if dims is not None:
            return dims
    raise no_spatial_dims_error(getattr(obj, "name", "data"), tuple(obj.dims))


def _surrogate(obj: Any, aug: Augmentation, y: str, x: str) -> Any:
    """``obj`` with spatial values transformed by ``aug`` on a regular surrogate grid of the new shape.

    Rotations/transposes exchange the axes, so the input's coordinates cannot travel with the
    data; the surrogate keeps each axis's first centre and spacing with the exchanged lengths.
    Loads the transformed variables into memory.
    """
    import xarray as xr

    ny, nx = int(obj.sizes[y]), int(obj.sizes[x])
    drop = [n for n, c in obj.coords.items() if n not in (y, x) and (y in c.dims or x in c.dims)]
    base = obj.drop_vars(drop)

    def transformed(da: Any) -> Any:
        if y not in da.dims or x not in da.dims:
            return da
        order = da.dims
        t = da.transpose(..., y, x)
        vals = np.ascontiguousarray(aug.forward(np.asarray(t.values)))
        other = {d: t.coords[d] for d in t.dims[:-2] if d in t.coords}
        new = xr.DataArray(vals, dims=t.dims, coords=other, attrs=da.attrs, name=da.name)
        new.encoding = dict(da.encoding)
        return new.transpose(*order)

    def axis(dim: str, n: int) -> Any:
        if dim not in obj.coords:
            return None
        v = np.asarray(obj[dim].values, dtype=np.float64)
        step = (v[-1] - v[0]) / (v.size - 1) if v.size > 1 else 1.0
        return xr.DataArray(v[0] + step * np.arange(n), dims=dim, attrs=obj[dim].attrs)

    def strip(v: Any) -> Any:
        return v.drop_vars([d for d in (y, x) if d in v.coords])

    if hasattr(base, "data_vars"):
        new = xr.Dataset(
            {n: transformed(strip(v)) for n, v in base.data_vars.items()
             if (y in v.dims and x in v.dims) or not ({y, x} & set(v.dims))},
            attrs=base.attrs,
        )
    else:
        new = transformed(strip(base))
    coords = {}
    for dim, n in ((y, nx), (x, ny)):
        c = axis(dim, n)
        if c is not None:
            coords[dim] = c
    return new.assign_coords(coords)


def _reverse(obj: Any, dims: Sequence[str]) -> Any:
    return obj.isel({d: slice(None, None, -1) for d in dims})


def _flip_dims(aug: Augmentation, y: str, x: str) -> list[str] | None:
    return {"identity": [], "flip_x": [x], "flip_y": [y], "rot180": [y, x]}.get(aug.name)


def _back_xarray(out: Any, ref: Any, aug: Augmentation, y: str, x: str) -> Any:
    """Member output ``out`` mapped back onto the identity member's HR grid ``ref``."""
    flips = _flip_dims(aug, y, x)
    if flips is not None:
        back = _reverse(out, flips)
        for d in (y, x):
            if d in ref.coords and d in back.coords:
                a, b = np.asarray(ref[d].values, float), np.asarray(back[d].values, float)
                if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=1e-9 * max(1.0, np.abs(a).max())):
                    raise RuntimeError(f"augmented member {aug.name!r} came back on another {d!r} grid")
        return back

    def one(da_ref: Any, da: Any) -> Any:
        if y not in da_ref.dims or x not in da_ref.dims:
            return da_ref
        vals = aug.inverse(np.asarray(da.transpose(..., y, x).values))
        ref_t = da_ref.transpose(..., y, x)
        return ref_t.copy(data=np.ascontiguousarray(vals)).transpose(*da_ref.dims)

    if hasattr(ref, "data_vars"):
        return ref.copy(data={n: one(ref[n], out[n]).data for n in ref.data_vars})
    return one(ref, out)


# ----------------------------------------------------------------------------- public API
def _method_of(ensemble: Any, method: str | None) -> tuple[str, Any]:
    if isinstance(ensemble, bool):
        raise ValueError("ensemble= takes a number of members (ensemble=8) or a list of weight files/tags")
    if method is None:
        method = "weights" if isinstance(ensemble, (list, tuple)) else "tta"
    if method not in GENERATORS:
        raise ValueError(f"unknown ensemble_method {method!r}; choose from {', '.join(GENERATORS)}")
    if method == "weights":
        if not isinstance(ensemble, (list, tuple)):
            raise ValueError("ensemble_method='weights' needs ensemble=[weight files or tags]")
        return method, list(ensemble)
    if ensemble is not None and not isinstance(ensemble, (int, np.integer)):
        raise ValueError(
            f"ensemble= must be a number of members or a list of weight files/tags, got {ensemble!r}"
        )
    return method, None if ensemble is None else int(ensemble)


def downscale_ensemble(
    data: Any,
    model: Any = "auto",
    scale: int = 4,
    *,
    ensemble: Any = None,
    augment: Any = "auto",
    ensemble_method: str | None = None,
    out: str | Path | None = None,
    **kwargs: Any,
) -> Any:
    """:func:`sciSR.downscale` run once per ensemble member, members stacked along ``realization``.

    Args:
        data: As for :func:`sciSR.downscale` (a path is opened with :func:`sciSR.open` first).
        model: As for :func:`sciSR.downscale`.
        scale: Integer factor.
        ensemble: Number of members (``"tta"``, ``"mc_dropout"``; ``None`` with ``augment``: every
            valid augmentation), or a list of weight files/tags (``"weights"``).
        augment: ``"auto"`` or augmentation names (see :func:`valid_augmentations`); TTA only.
        ensemble_method: ``"tta"``, ``"mc_dropout"`` or ``"weights"``; default from ``ensemble``'s type.
        out: Output path for xarray and path input (written atomically by :func:`sciSR.write`).
        **kwargs: Every other :func:`sciSR.downscale` option, passed to each member's call.

    Returns:
        numpy/torch input: members on a new leading axis, ``(M, ...)``. xarray/path input: the same
        kind of object with a ``realization`` dimension (first) on every downscaled variable; the
        ``realization`` coordinate has ``standard_name="realization"``, ``units="1"`` and the members'
        descriptions in ``scisr_members``; the attrs record ``scisr_ensemble`` (method) and
        ``scisr_ensemble_members``.

    Raises:
        ValueError: No valid way to make the members (a deterministic model without augmentation,
            ``mc_dropout`` without dropout layers, an augmentation invalid for the grid), or any
            error of :func:`sciSR.downscale`.

    Shape:
        ``(..., H, W) -> (M, ..., s·H, s·W)`` for arrays.
    """
    from .api import downscale

    method, count = _method_of(ensemble, ensemble_method)
    if method != "tta" and augment not in ("auto", None):
        raise ValueError(f"augment= applies to test-time augmentation, not ensemble_method={method!r}")
    if method == "weights" and kwargs.get("weights") is not None:
        raise ValueError("pass the weights of a weights ensemble in ensemble=[...], not also in weights=")
    if method == "tta" and kwargs.get("covariates") is not None:
        raise ValueError(
            "test-time augmentation does not transform covariates= (HR static fields); use "
            "ensemble=[weight files or tags] or ensemble_method='mc_dropout' with covariates"
        )
    if isinstance(data, (str, Path)):
        from .io import open_dataset

        data = open_dataset(data)
    is_xr = type(data).__module__.startswith("xarray")
    if not is_xr and out is not None:
        raise ValueError("out= is for xarray objects and paths; save arrays yourself (np.save)")
    if not is_xr and kwargs.get("variables") is not None:
        raise ValueError("variables= selects Dataset variables; it does not apply to arrays")
    y = x = ""
    facts = GridFacts()
    if is_xr and method == "tta":
        y, x = _spatial_dims(data, kwargs.get("spatial_dims"))
        ds = data if hasattr(data, "data_vars") else data.to_dataset(name=data.name or "__v")
        facts = grid_facts(ds, y, x)
    members = GENERATORS[method](count, {"facts": facts, "augment": augment})
    if method == "mc_dropout":
        model = _mc_module(model, scale, kwargs.pop("weights", None),
                           {k: v for k, v in kwargs.items() if k not in _DOWNSCALE_OPTS})
    outs = [_run_member(downscale, data, model, scale, m, kwargs, is_xr, y, x) for m in members]
    if is_xr:
        result = _stack_xarray(outs, members, method, y, x)
        if out is not None:
            from .io import write

            write(result, out)
        return result
    if _xp(outs[0]) is not np:
        import torch

        return torch.stack(list(outs))
    return np.stack(outs)


#: ``downscale`` options that are not model options (for building an MC-dropout module).
_DOWNSCALE_OPTS = (
    "variables", "tile", "overlap", "norm", "precision", "device", "batch_size", "progress", "dtype",
    "blend", "clip", "constraint", "constraint_degradation", "spatial_dims", "periodic", "channel_dim",
)


def _run_member(
    downscale: Callable[..., Any], data: Any, model: Any, scale: int, m: Member, kwargs: dict[str, Any],
    is_xr: bool, y: str, x: str,
) -> Any:
    opts = dict(kwargs) | dict(m.overrides)
    aug = AUGMENTATIONS[m.augmentation]
    if is_xr:
        flips = _flip_dims(aug, y, x)
        inp = data if aug.name == "identity" else (
            _reverse(data, flips) if flips is not None else _surrogate(data, aug, y, x))
    else:
        inp = aug.forward(data)
        inp = np.ascontiguousarray(inp) if _xp(inp) is np else inp.contiguous()
    if m.seed is None:
        res = downscale(inp, model, scale, **opts)
    else:
        import torch

        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):
            _MC_SEED[0] = m.seed
            try:
                res = downscale(inp, model, scale, **opts)
            finally:
                _MC_SEED[0] = None
    if is_xr:
        return (res, aug)
    back = aug.inverse(res)
    return np.ascontiguousarray(back) if _xp(back) is np else back.contiguous()


def _stack_xarray(outs: list[Any], members: list[Member], method: str, y: str, x: str) -> Any:
    import xarray as xr

    ref = outs[0][0]
    mapped = [ref] + [_back_xarray(o, ref, aug, y, x) for o, aug in outs[1:]]
    labels = [m.label for m in members]
    real = xr.DataArray(
        np.arange(len(members), dtype=np.int32),
        dims="realization",
        attrs={
            "standard_name": "realization",
            "long_name": "ensemble member",
            "units": "1",
            "scisr_members": "; ".join(f"{i}: {lab}" for i, lab in enumerate(labels)),
        },
    )
    record = {
        "scisr_ensemble": method,
        "scisr_ensemble_members": ", ".join(labels),
    }
    line = f"sciSR ensemble: {len(members)} members ({method}: {', '.join(labels)})"

    def stack(das: list[Any]) -> Any:
        st = xr.concat(das, dim=real, coords="minimal", compat="override", join="override",
                       combine_attrs="override")
        st.attrs.update(record)
        return st

    if hasattr(ref, "data_vars"):
        hr_dims = set(ref[next(iter(ref.data_vars))].dims) if ref.data_vars else set()
        spatial = [n for n, v in ref.data_vars.items() if len(v.dims) >= 2 and set(v.dims) & hr_dims]
        spatial = [n for n in spatial if any(not mapped[0][n].identical(o[n]) for o in mapped[1:])] or spatial
        res = ref.drop_vars(spatial)
        for n in spatial:
            res[n] = stack([o[n] for o in mapped])
        res.attrs.update(record)
        res.attrs["history"] = (str(ref.attrs.get("history", "")) + "\n" + line).strip()
        return res.transpose("realization", ...)
    res = stack(mapped)
    res.attrs["history"] = (str(ref.attrs.get("history", "")) + "\n" + line).strip()
    return res


def mean_and_spread(ens: Any, dim: str = "realization", axis: int = 0) -> tuple[Any, Any]:
    """Ensemble mean and spread (member standard deviation, ``ddof=1``).

    Args:
        ens: Output of ``downscale(..., ensemble=...)``: xarray with a ``dim`` dimension, or an
            array/tensor with members on ``axis``.
        dim: Member dimension of xarray input.
        axis: Member axis of array input.

    Returns:
        ``(mean, spread)``, same kind as ``ens`` without the member dimension; xarray results keep
        coordinates and attrs and carry ``cell_methods`` ``"realization: mean"`` / ``"realization:
        standard_deviation"`` on their variables.

    Raises:
        ValueError: Fewer than 2 members, or no ``dim`` dimension.

    Shape:
        ``(M, ...) -> (...), (...)``.
    """
    if type(ens).__module__.startswith("xarray"):
        if dim not in ens.dims:
            raise ValueError(f"no {dim!r} dimension in the ensemble (dims {tuple(ens.dims)}); pass dim=")
        if ens.sizes[dim] < 2:
            raise ValueError(f"an ensemble needs at least 2 members along {dim!r}, got {ens.sizes[dim]}")
        if hasattr(ens, "data_vars"):
            names = [n for n, v in ens.data_vars.items() if dim in v.dims]
            rest = ens[[n for n in ens.data_vars if n not in names]]
            mean = ens[names].mean(dim, keep_attrs=True).assign(rest.data_vars)
            spread = ens[names].std(dim, ddof=1, keep_attrs=True).assign(rest.data_vars)
        else:
            mean = ens.mean(dim, keep_attrs=True)
            spread = ens.std(dim, ddof=1, keep_attrs=True)
        for obj, how in ((mean, "mean"), (spread, "standard_deviation")):
            das = [obj[n] for n in names] if hasattr(obj, "data_vars") else [obj]
            for da in das:
                da.attrs["cell_methods"] = (str(da.attrs.get("cell_methods", "")) + f" {dim}: {how}").strip()
        return mean, spread
    if ens.shape[axis] < 2:
        raise ValueError(f"an ensemble needs at least 2 members on axis {axis}, got {ens.shape[axis]}")
    if _xp(ens) is not np:
        return ens.mean(dim=axis), ens.std(dim=axis, correction=1)
    return np.mean(ens, axis=axis), np.std(ens, axis=axis, ddof=1)

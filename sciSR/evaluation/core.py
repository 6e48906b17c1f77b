"""Evaluate SR models against a baseline ladder on held-out HR data: ``sciSR.evaluate``.

The HR data are degraded with a registered operator (:mod:`sciSR.train.degrade`: ``"area"`` block
mean by default), their grid is coarsened consistently (block means of the cell centres, merged
cell bounds, coarsened GDAL GeoTransform), and every method sees the same LR input:

* the baseline ladder: ``nearest``, ``bilinear``, ``bicubic`` (through :func:`sciSR.downscale`)
  and ``block``, the conservative block replicate (each LR value copied to its ``s × s`` HR cells;
  on the cell-centred grid this equals ``nearest`` at an integer scale, computed here without the
  pipeline as a cross-check);
* the chosen models, through :func:`sciSR.downscale`.

All methods are scored by the same metrics (:data:`sciSR.metrics.METRICS`) on the same cells: those
finite in the truth and in every method's output and inside the user's ``mask``. The result is an
:class:`EvaluationReport` whose ``table`` holds one row per (variable, method) and whose
``save(folder)`` writes CSV, Markdown, JSON and PNG figures, atomically.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Baselines :func:`evaluate` runs by default, in ladder order.
BASELINES: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "block")
#: File that marks a folder as a sciSR report (``save`` replaces such a folder, never another one).
MARKER = "scisr_report.json"
_QQ_LEVELS = np.concatenate([[0.001, 0.005], np.linspace(0.01, 0.99, 99), [0.995, 0.999]])


@dataclass
class VariableResult:
    """What the figures of one variable need (first field of its stack) plus its spectra and quantiles."""

    units: str
    lr: np.ndarray
    truth: np.ndarray
    outputs: dict[str, np.ndarray]
    valid: np.ndarray
    spectra: dict[str, tuple[np.ndarray, np.ndarray]]
    quantiles: dict[str, np.ndarray]
    origin_lower: bool = False


@dataclass
class EvaluationReport:
    """Scores of every method on every variable, with the data for the figures.

    Attributes:
        table: ``pandas.DataFrame`` indexed by ``(variable, method)``, one column per metric.
        metrics: Metric names (columns), in order.
        roles: ``method -> "baseline" | "model"``.
        config: Scale, degradation, weights, masks, cropping: how the numbers were made.
        results: Per variable, the arrays behind the figures.
        notes: Metrics that could not be computed (NaN in the table) and why.
    """

    table: Any
    metrics: list[str]
    roles: dict[str, str]
    config: dict[str, Any]
    results: dict[str, VariableResult] = field(repr=False, default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """The report as Markdown: settings, one table per variable, notes, figure links."""
        from ..metrics import METRICS

        cfg = self.config
        lines = [
            "# sciSR evaluation report",
            "",
            f"- scale: ×{cfg['scale']}, degradation: `{cfg['degradation']}`"
            + (f" {cfg['degradation_options']}" if cfg.get("degradation_options") else ""),
            f"- LR: {cfg['lr_source']}",
            f"- weights: {cfg['weights']}",
            f"- reference baseline for detail fractions: `{cfg['reference']}`",
            f"- source: {cfg['source']}",
            "",
        ]
        for var in self.table.index.get_level_values(0).unique():
            res = self.results.get(var)
            units = res.units if res is not None else ""
            lines += [f"## {var}" + (f" ({units})" if units else ""), ""]
            head = ["method", "role"] + [
                f"{m} ({_unit_label(METRICS[m].units, units)})" if METRICS[m].units != "1" else m
                for m in self.metrics
            ]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            for method, row in self.table.loc[var].iterrows():
                cells = [str(method), self.roles.get(str(method), "")] + [_fmt(row[m]) for m in self.metrics]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
            if res is not None:
                for kind in ("panels", "errors", "spectra", "qq"):
                    lines.append(f"![{var} {kind}](figures/{_safe(var)}_{kind}.png)")
                lines.append("")
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        lines += ["## Metrics", ""]
        for m in self.metrics:
            e = METRICS[m]
            better = {True: "higher is better", False: "lower is better"}.get(
                e.higher_is_better, f"best at {e.target:g}"
            )
            lines.append(f"- `{m}`: {e.description} ({better})")
        return "\n".join(lines) + "\n"

    def save(self, folder: str | Path, figures: bool = True) -> Path:
        """Write ``metrics.csv``, ``report.md``, ``scisr_report.json`` and ``figures/*.png`` to ``folder``.

        The report is assembled in a temporary folder beside ``folder`` and renamed into place, so
        a failure leaves no partial report. An existing ``folder`` is replaced only when it is
        empty or an earlier sciSR report (it holds ``scisr_report.json``).

        Returns:
            The folder.

        Raises:
            FileExistsError: ``folder`` exists and is not an empty folder or a sciSR report.
        """
        target = Path(folder)
        check_report_folder(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            self.table.to_csv(tmp / "metrics.csv")
            (tmp / "report.md").write_text(self.to_markdown(), encoding="utf-8")
            meta = {"config": self.config, "metrics": self.metrics, "roles": self.roles, "notes": self.notes}
            (tmp / MARKER).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
            if figures:
                from .figures import write_figures

                (tmp / "figures").mkdir()
                for var, res in self.results.items():
                    write_figures(tmp / "figures", _safe(var), var, res, self.config)
            old = None
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.replace(target, old / "report")
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target


def check_report_folder(target: str | Path) -> None:
    """Refuse a report destination that exists and is neither empty nor an earlier sciSR report.

    Raises:
        FileExistsError: The destination is a file, or a folder with other content.
    """
    t = Path(target)
    if not t.exists():
        return
    if not t.is_dir():
        raise FileExistsError(f"{t} exists and is not a folder; choose another report folder")
    if any(t.iterdir()) and not (t / MARKER).is_file():
        raise FileExistsError(
            f"{t} exists and is not a sciSR report folder (no {MARKER}); choose a new folder or remove it"
        )


def _fmt(v: Any) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "nan" if math.isnan(x) else f"{x:.6g}"


def _unit_label(kind: str, units: str) -> str:
    return (units or "data units") if kind == "data" else kind


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name)) or "var"


# ----------------------------------------------------------------------------- inputs
def _as_dataset(obj: Any, what: str) -> Any:
    import xarray as xr

    if isinstance(obj, xr.Dataset):
        return obj
    if isinstance(obj, xr.DataArray):
        return obj.to_dataset(name=obj.name if obj.name is not None else "data")
    if isinstance(obj, (str, os.PathLike)):
        from ..io import open_dataset

        return open_dataset(obj)
    arr = np.asarray(obj)
    if arr.ndim < 2 or arr.dtype.kind not in "fiub":
        raise ValueError(
            f"{what} must be an xarray Dataset/DataArray, a path, or a numeric array (..., H, W); "
            f"got {type(obj).__name__} of shape {arr.shape}"
        )
    dims = (*tuple(f"dim_{i}" for i in range(arr.ndim - 2)), "y", "x")
    return xr.Dataset({"data": (dims, arr)})


def _spatial_vars(ds: Any, variables: str | Sequence[str] | None) -> dict[str, tuple[str, str]]:
    from ..grid import find_spatial_dims

    found = {}
    for name, da in ds.data_vars.items():
        dims = find_spatial_dims(da)
        if dims is not None and da.dtype.kind in "fiub":
            found[str(name)] = dims
    if variables is None:
        if not found:
            raise ValueError(f"no variable with spatial dims in {list(map(str, ds.data_vars))}")
        return found
    wanted = [variables] if isinstance(variables, str) else list(variables)
    missing = [v for v in wanted if v not in found]
    if missing:
        raise ValueError(
            f"variable(s) {', '.join(missing)} not found or without spatial dims; available: "
            f"{', '.join(found) or 'none'}"
        )
    return {v: found[v] for v in wanted}


def _block_mean(v: np.ndarray, s: int) -> np.ndarray:
    return v.reshape(-1, s).mean(axis=1)


def _coarse_geotransform(gt: str, s: int) -> str:
    vals = [float(t) for t in str(gt).split()]
    if len(vals) != 6:
        return gt
    vals[1], vals[2], vals[4], vals[5] = (vals[i] * s for i in (1, 2, 4, 5))
    return " ".join(repr(v) for v in vals)


def _coarsen_grid(ds: Any, var: str, ydim: str, xdim: str, s: int, lr_values: np.ndarray, da: Any) -> Any:
    """A Dataset holding ``var`` on the grid coarsened by ``s`` (centres: block means; bounds merged)."""
    import xarray as xr

    from ..grid import Grid

    grid = Grid(ds[[var]] if not _bounds_names(ds, (ydim, xdim)) else ds, ydim, xdim)
    coords: dict[str, Any] = {}
    for ax in (grid.y, grid.x):
        if ax.values is None:
            continue
        src = ds.variables[ax.dim]
        centres = _block_mean(np.asarray(ax.values, dtype=np.float64), s)
        coords[ax.dim] = xr.Variable(
            ax.dim, centres.astype(src.dtype if src.dtype.kind == "f" else np.float64), dict(src.attrs)
        )
        bnds = grid.cell_bounds(ax)
        if ax.bounds is not None and bnds is not None:
            b = ds.variables[ax.bounds]
            nv = next(d for d in b.dims if d != ax.dim)
            merged = np.stack([bnds[::s, 0], bnds[s - 1 :: s, 1]], axis=1)
            coords[ax.bounds] = xr.Variable((ax.dim, nv), merged.astype(b.dtype), dict(b.attrs))
    for name in grid.aux:
        c = ds.variables[name].transpose(ydim, xdim)
        a = np.asarray(c.values, dtype=np.float64)
        h, w = a.shape
        coarse = a.reshape(h // s, s, w // s, s).mean(axis=(1, 3))
        coords[name] = xr.Variable((ydim, xdim), coarse.astype(c.dtype), dict(c.attrs))
    other = {
        str(k): v
        for k, v in da.coords.items()
        if ydim not in v.dims and xdim not in v.dims and str(k) not in coords
    }
    for k, v in other.items():
        coords[k] = v.variable
        if "GeoTransform" in v.attrs:
            coords[k] = v.variable.copy()
            coords[k].attrs["GeoTransform"] = _coarse_geotransform(v.attrs["GeoTransform"], s)
    lr_da = xr.DataArray(lr_values, dims=da.dims, attrs=dict(da.attrs), name=var)
    out = xr.Dataset({var: lr_da}, attrs=dict(ds.attrs))
    bounds_vars = {
        k: v for k, v in coords.items() if k not in lr_da.dims and v.ndim == 2 and k in ds.data_vars
    }
    out = out.assign_coords({k: v for k, v in coords.items() if k not in bounds_vars})
    for k, v in bounds_vars.items():
        out[k] = v
    out[var].encoding = {k: v for k, v in da.encoding.items() if k in ("grid_mapping",)}
    return out


def _bounds_names(ds: Any, dims: tuple[str, str]) -> list[str]:
    names = []
    for d in dims:
        if d in ds.variables and ds.variables[d].attrs.get("bounds") in ds.variables:
            names.append(ds.variables[d].attrs["bounds"])
    return names


def check_nesting(hr: Any, lr: Any, scale: int, ydim: str, xdim: str) -> None:
    """Check that ``lr`` is the grid of ``hr`` coarsened by ``scale`` (HR cells nested in LR cells).

    Shapes: ``HR = scale × LR`` on both spatial axes, other dims equal. Coordinates, where both
    have them: the mean of each block of ``scale`` HR centres must be the LR centre to within a
    quarter of an HR cell (a regular grid refined by :meth:`sciSR.grid.Grid.refine` matches exactly).

    Raises:
        ValueError: One line naming both grids and the expected nesting.
    """
    s = int(scale)
    hs, ls = dict(hr.sizes), dict(lr.sizes)
    if set(hs) != set(ls):
        raise ValueError(f"HR dims {tuple(hr.dims)} and LR dims {tuple(lr.dims)} differ; pass matching data")
    H, W, h, w = hs[ydim], hs[xdim], ls[ydim], ls[xdim]
    others = {d: (hs[d], ls[d]) for d in hs if d not in (ydim, xdim) and hs[d] != ls[d]}
    if (s * h, s * w) != (H, W) or others:
        raise ValueError(
            f"HR grid {H}×{W} and LR grid {h}×{w} do not nest at scale {s}: evaluate expects HR shape = "
            f"{s} × LR shape ({s * h}×{s * w}), every LR cell split into {s}×{s} HR cells"
            + (f"; other dims differ: {others}" if others else "")
        )
    for d in (ydim, xdim):
        if d in hr.coords and d in lr.coords and hr[d].ndim == 1 and lr[d].ndim == 1:
            hv = np.asarray(hr[d].values, dtype=np.float64)
            lv = np.asarray(lr[d].values, dtype=np.float64)
            if hv.size < 2:
                continue
            step = float(np.min(np.abs(np.diff(hv))))
            off = np.abs(_block_mean(hv, s) - lv)
            if float(off.max()) > 0.25 * step:
                i = int(np.argmax(off))
                raise ValueError(
                    f"HR cells are not nested in LR cells along {d!r}: LR cell {i} is centred at "
                    f"{lv[i]:.6g} but "
                    f"its {s} HR cells ({s * i}…{s * i + s - 1}) average {_block_mean(hv, s)[i]:.6g} "
                    f"({off[i] / step:.2g} HR cells off); HR cells s·i…s·i+s−1 must tile LR cell i"
                )


def _resolve_weights(weights: Any, ds: Any, da: Any, ydim: str, shape: tuple[int, ...]) -> tuple[Any, str]:
    from ..grid import is_latitude
    from ..metrics import cell_area_weights, latitude_weights

    if weights is None or (isinstance(weights, str) and weights == "none"):
        return None, "uniform"
    if isinstance(weights, str):
        if weights not in ("auto", "area", "cos"):
            raise ValueError(f"weights must be 'auto', 'area', 'cos', 'none' or an array, got {weights!r}")
        c = ds.coords.get(ydim)
        lat_ok = c is not None and c.ndim == 1 and is_latitude(ydim, c.attrs)
        if not lat_ok:
            if weights == "auto":
                return None, "uniform"
            raise ValueError(
                f"weights={weights!r} needs a latitude coordinate on {ydim!r}; pass weights='none'"
            )
        bname = c.attrs.get("bounds")
        if weights in ("auto", "area") and bname in ds.variables:
            b = np.asarray(ds[bname].transpose(ydim, ...).values, dtype=np.float64)
            return cell_area_weights(b[: shape[-2]]), "cell areas from latitude bounds"
        return latitude_weights(np.asarray(c.values)[: shape[-2]]), "cos(latitude)"
    return np.asarray(weights, dtype=np.float64), "user weights"


def _mask_for(mask: Any, var: str, da: Any) -> np.ndarray | None:
    import xarray as xr

    if mask is None:
        return None
    if isinstance(mask, Mapping):
        mask = mask.get(var)
        if mask is None:
            return None
    if isinstance(mask, xr.DataArray):
        return np.asarray(mask.broadcast_like(da).transpose(*da.dims).values, dtype=bool)
    m = np.asarray(mask)
    if m.dtype != bool:
        raise ValueError(f"mask must be boolean (True = score this cell), got dtype {m.dtype}")
    return m


def _label(model: Any) -> tuple[str, Any, dict[str, Any]]:
    if isinstance(model, str):
        return model, model, {}
    if isinstance(model, tuple) and len(model) == 3 and isinstance(model[0], str):  # (label, model, kwargs)
        label, inner, kw = model
        return label, inner, dict(kw or {})
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], Mapping):
        name, kw = model
        tag = kw.get("weights")
        return (f"{name}[{tag}]" if isinstance(tag, str) and tag else str(name)), name, dict(kw)
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[0], str):  # (label, module)
        return model[0], model[1], {}
    return type(model).__name__, model, {}


# ----------------------------------------------------------------------------- main entry
def evaluate(
    hr: Any,
    scale: int = 4,
    models: Sequence[Any] = ("bicubic",),
    *,
    degradation: str = "area",
    degradation_options: Mapping[str, Any] | None = None,
    variables: str | Sequence[str] | None = None,
    mask: Any = None,
    weights: Any = "auto",
    lr: Any = None,
    baselines: Sequence[str] = BASELINES,
    metrics: Sequence[str] | None = None,
    reference: str = "bicubic",
    progress: bool | None = None,
    **downscale_kwargs: Any,
) -> EvaluationReport:
    """Score SR models and a baseline ladder on HR data degraded by a known operator.

    Args:
        hr: Truth: ``xr.Dataset``/``xr.DataArray``, a numpy array ``(..., H, W)`` or a path
            (opened with :func:`sciSR.open`). Leading dims (time, band, slice) are separate fields.
        scale: Integer factor.
        models: Models to score, each a registry name, ``(name, downscale_kwargs)`` (e.g.
            ``("rcan", {"weights": "precip"})``), a ``torch.nn.Module``, or with the label the
            report uses: ``(label, module_or_name)`` or ``(label, module_or_name, downscale_kwargs)``.
        degradation: Registered degradation making the LR (``"area"``, ``"bicubic"``,
            ``"gaussian"``, ``"kspace"``...; ``"slice"`` reduces one axis and is refused here).
        degradation_options: Its options (``{"sigma": 1.5}``...).
        variables: Variables to evaluate (default: all with spatial dims).
        mask: Cells to score (``True``): boolean array broadcastable to a variable, a
            ``DataArray``, or ``{variable: mask}``. Cells non-finite in the truth or any output
            are left out as well, for every method alike.
        weights: ``"auto"`` (cell areas from latitude bounds, else ``cos φ``, on latitude
            grids; uniform elsewhere), ``"area"``, ``"cos"``, ``"none"``, or an array.
        lr: The LR input, when it exists already (it must nest: HR shape = ``scale`` × LR shape,
            coordinates of HR blocks averaging to the LR centres); ``degradation`` then names the
            operator it was made with (for the consistency metric).
        baselines: Interpolation baselines (``nearest``, ``bilinear``, ``bicubic``, ``block``).
        metrics: Metric names (default :data:`sciSR.metrics.DEFAULT_METRICS`; deterministic only).
        reference: The baseline the detail fractions compare against (default ``bicubic``).
        progress: tqdm bar on stderr (``None``: when stderr is a terminal; never with
            ``SCISR_NO_PROGRESS`` set).
        **downscale_kwargs: Passed to every :func:`sciSR.downscale` call (``device``, ``tile``...).

    Returns:
        An :class:`EvaluationReport`.

    Raises:
        ValueError: Bad scale, unknown metric or degradation, grids that do not nest, a missing
            variable, a reference baseline not run.
    """
    import pandas as pd

    from .. import metrics as M
    from ..api import downscale
    from ..train.degrade import DEGRADATIONS, reduced_axes

    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    s = int(scale)
    opts = dict(degradation_options or {})
    if degradation not in DEGRADATIONS:
        raise ValueError(f"unknown degradation '{degradation}'; choose one of {DEGRADATIONS}")
    if reduced_axes(degradation, **opts) != (-2, -1):
        raise ValueError(
            f"degradation '{degradation}' reduces one axis only; evaluate compares ×{s} models on both axes"
        )
    names = list(metrics or M.DEFAULT_METRICS)
    for m in names:
        if m not in M.METRICS:
            raise ValueError(f"unknown metric {m!r}; choose from {', '.join(sorted(M.METRICS))}")
        if M.METRICS[m].kind != "deterministic":
            raise ValueError(f"metric {m!r} scores ensembles; evaluate scores deterministic outputs")
    for b in baselines:
        if b not in BASELINES:
            raise ValueError(f"unknown baseline {b!r}; choose from {', '.join(BASELINES)}")
    methods = [(b, b, {}) for b in baselines] + [_label(m) for m in models]
    labels = [m[0] for m in methods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"methods must have distinct names, got {labels}")
    needs_reference = any("baseline" in M.METRICS[m].needs for m in names)
    if needs_reference and reference not in labels:
        raise ValueError(f"reference baseline {reference!r} is not among the methods {labels}")
    roles = {lab: ("baseline" if i < len(baselines) else "model") for i, lab in enumerate(labels)}

    ds = _as_dataset(hr, "hr")
    lr_ds = _as_dataset(lr, "lr") if lr is not None else None
    var_dims = _spatial_vars(ds, variables)
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if progress is None else bool(progress)
    show = show and not os.environ.get("SCISR_NO_PROGRESS")
    bar = tqdm(total=len(var_dims) * len(methods), desc="evaluate", disable=not show, file=sys.stderr)
    rows, index, results, notes = [], [], {}, []
    cropped: dict[str, str] = {}
    try:
        for var, (ydim, xdim) in var_dims.items():
            da = ds[var]
            da = da.transpose(*[d for d in da.dims if d not in (ydim, xdim)], ydim, xdim)
            H, W = da.sizes[ydim], da.sizes[xdim]
            if lr_ds is None:
                hh, ww = H - H % s, W - W % s
                if (hh, ww) != (H, W):
                    cropped[var] = f"{H}×{W} → {hh}×{ww}"
                    warnings.warn(
                        f"{var}: HR {H}×{W} is not a multiple of {s}; scoring its first {hh}×{ww} cells",
                        stacklevel=2,
                    )
                    da = da.isel({ydim: slice(0, hh), xdim: slice(0, ww)})
                    ds_var = ds.isel({ydim: slice(0, hh), xdim: slice(0, ww)})
                else:
                    ds_var = ds
                truth = np.asarray(da.values, dtype=np.float64)
                lr_vals = M.coarsen(truth, s, degradation, **opts)
                lr_set = _coarsen_grid(ds_var, var, ydim, xdim, s, lr_vals, da)
                lr_src = f"HR degraded by '{degradation}'"
            else:
                if var not in lr_ds:
                    raise ValueError(f"variable {var!r} is in the HR data but not in lr=")
                lda = lr_ds[var]
                lda = lda.transpose(*[d for d in da.dims if d not in (ydim, xdim)], ydim, xdim)
                check_nesting(da, lda, s, ydim, xdim)
                truth = np.asarray(da.values, dtype=np.float64)
                lr_vals = np.asarray(lda.values, dtype=np.float64)
                lr_set = lr_ds
                lr_src = "given (lr=)"
            outputs: dict[str, np.ndarray] = {}
            for lab, model, kw in methods:
                bar.set_postfix_str(f"{var}: {lab}")
                if model == "block":
                    out = np.repeat(np.repeat(lr_vals, s, axis=-2), s, axis=-1)
                else:
                    res = downscale(
                        lr_set,
                        model=model,
                        scale=s,
                        variables=[var],
                        progress=False,
                        **{**downscale_kwargs, **kw},
                    )
                    o = res[var]
                    o = o.transpose(
                        *[d for d in da.dims if d in o.dims], *[d for d in o.dims if d not in da.dims]
                    )
                    out = np.asarray(o.values, dtype=np.float64)
                if out.shape != truth.shape:
                    raise ValueError(
                        f"{lab} returned shape {out.shape} for {var!r}; the truth has {truth.shape}"
                    )
                outputs[lab] = out
                bar.update(1)
            user_mask = _mask_for(mask, var, da)
            valid = np.isfinite(truth)
            for out in outputs.values():
                valid &= np.isfinite(out)
            if user_mask is not None:
                valid &= np.broadcast_to(user_mask, truth.shape)
            if not valid.any():
                raise ValueError(f"{var}: no cell is valid in the truth, every output and the mask")
            w, w_desc = _resolve_weights(weights, ds, da, ydim, truth.shape)
            ctx = {
                "lr": lr_vals,
                "scale": s,
                "degradation": degradation,
                "degradation_options": opts,
                "baseline": outputs.get(reference),
                "border": s,
            }
            for lab, out in outputs.items():
                row = []
                for m in names:
                    try:
                        row.append(M.compute(m, out, truth, mask=valid, weights=w, **ctx))
                    except ValueError as exc:
                        row.append(float("nan"))
                        note = f"{var}/{m}: {exc}"
                        if note not in notes:
                            notes.append(note)
                rows.append(row)
                index.append((var, lab))
            results[var] = _figure_data(
                da, ydim, truth, lr_vals, outputs, valid, str(da.attrs.get("units", ""))
            )
    finally:
        bar.close()
    table = pd.DataFrame(
        rows, index=pd.MultiIndex.from_tuples(index, names=["variable", "method"]), columns=names
    )
    config = {
        "scale": s,
        "degradation": degradation,
        "degradation_options": opts,
        "lr_source": lr_src,
        "weights": w_desc,
        "reference": reference,
        "mask": "user mask and non-finite cells" if mask is not None else "non-finite cells",
        "cropped": cropped,
        "source": str(hr) if isinstance(hr, (str, os.PathLike)) else type(hr).__name__,
        "methods": labels,
        "roles": roles,
    }
    return EvaluationReport(table, names, roles, config, results, notes)


def _figure_data(
    da: Any,
    ydim: str,
    truth: np.ndarray,
    lr_vals: np.ndarray,
    outputs: dict[str, np.ndarray],
    valid: np.ndarray,
    units: str,
) -> VariableResult:
    from ..metrics import radial_power_spectrum

    first = (0,) * (truth.ndim - 2)
    spectra, quant = {}, {}
    for lab, arr in [("truth", truth), *outputs.items()]:
        with contextlib.suppress(ValueError):
            spectra[lab] = radial_power_spectrum(arr, mask=valid)
        quant[lab] = np.quantile(arr[valid], _QQ_LEVELS)
    c = da.coords.get(ydim)
    lower = bool(c is not None and c.ndim == 1 and c.size > 1 and float(c[-1]) > float(c[0]))
    return VariableResult(
        units,
        lr_vals[first],
        truth[first],
        {k: v[first] for k, v in outputs.items()},
        valid[first],
        spectra,
        quant,
        lower,
    )

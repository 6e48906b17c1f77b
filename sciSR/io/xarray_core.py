"""The generic xarray path shared by every adapter: one variable at a time onto the refined grid.

For each selected data variable with both spatial dims: spatial dims go last, the other dims
(time, level, member, band) are flattened into the batch, normalizers are fitted once on the whole
variable (global statistics, DESIGN §6), the pipeline runs, and the result is rebuilt on the grid
refined by :class:`sciSR.grid.Grid`.

Dask-backed variables stay lazy. Statistics are dask reductions over the whole variable (never per
chunk). The model runs per chunk, keeping the input's chunks in space: the output has the loop
chunks of the input, the channel axis in one chunk and the spatial chunks ×scale. Each output block
is one task that assembles its LR box (:meth:`sciSR.pipeline.Pipeline.plan_region`: the whole
array's tiler windows touching the block, columns wrapped for a periodic x axis) from the input
chunks it overlaps and runs :meth:`~sciSR.pipeline.Pipeline.run_region`, so the result equals the
eager path's for any model (cropped or blended tiles) up to float rounding. A spatial chunk narrower
than the model's halo (except an axis' last chunk) makes that axis rechunked to
``max(4·halo, tile)`` pixels, with a warning (:func:`spatial_chunks`). A variable with invalid
(NaN/fill) cells has its spatial chunks merged into one per field, with a warning: the pipeline fills
gaps from the nearest valid cell of the array it is given, and a block's box is not the whole field
(filled values near large gaps, coasts for instance, would differ from eager inference).

The pipeline is one key of the graph (:class:`sciSR.workers.PipelineHandle`); block tasks depend on
it, so ``dask.distributed`` ships the model once per worker process, and each task sets torch's
thread count by the rule in :mod:`sciSR.workers`. The graph is built without calling the model
(no meta inference on empty arrays).

``_run_dask(a, pipe, scale, work, cast, out_dt, periodic_x, nlead, c, name)`` is the entry point
for adapters that open files as dask arrays. Inside a file-to-file call
(:data:`sciSR.io.streaming.STREAMED_CALL`, no covariates) each field larger than one streamed
block is computed region by region instead (:func:`sciSR.io.streaming.region_array`: independent
blocks, so the writer's peak memory is about one block); the output's spatial chunks are then those
blocks.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Hashable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..grid import Grid, no_spatial_dims_error
from .packing import Packing, pack, pack_dtype

if TYPE_CHECKING:
    from ..normalize import Normalizer
    from ..pipeline import Pipeline

SpatialDimsOf = Callable[[xr.DataArray], "tuple[str, str] | None"]

#: attributes that refinement makes wrong (matched against lower-case names)
INVALIDATED_ATTRS = re.compile(
    r"^(actual_range|valid_(min|max|range)|.*resolution.*|grid_spacing|d[xy]|cell_?size|pixel_?size"
    r"|scale_factor|add_offset|_fillvalue|missing_value|_unsigned|_chunksizes)$"
)
#: encoding keys describing storage layout, never carried to a new file
_LAYOUT_ENCODING = (
    "chunks",
    "chunksizes",
    "preferred_chunks",
    "source",
    "original_shape",
    "contiguous",
    "shards",
    "compressors",
    "filters",
    "serializer",
    "compressor",
)
#: encoding keys of a source variable that stay meaningful on the downscaled variable
_KEPT_ENCODING = ("grid_mapping", "coordinates", "cell_measures")
#: HR output bytes per eager batch (limits peak memory over long loop dims)
_EAGER_BATCH_BYTES = 1 << 28


def downscale_dataset(
    ds: xr.Dataset,
    pipe: Pipeline,
    scale: int,
    *,
    variables: str | list[str] | None = None,
    dtype: Any = None,
    spatial_dims_of: SpatialDimsOf,
    periodic: bool | None = None,
    channel_dim: str | None = None,
) -> xr.Dataset:
    """Downscale the selected variables of ``ds`` and rebuild the Dataset on the refined grid.

    Variables without spatial dims are copied unchanged; bounds and 2-D coordinates are refined;
    other variables that touch a spatial dim but are not downscaled are dropped with a warning.

    Raises:
        ValueError: A named variable is missing or has no spatial dims, no variable has spatial
            dims, irregular spacing without bounds, all-NaN data.
    """
    selected = select_variables(ds, variables, spatial_dims_of)
    ds = with_source_bounds(ds, {d for dims in selected.values() for d in dims})
    check_memory(ds, selected, pipe, scale, dtype)
    grids = {dims: Grid(ds, *dims) for dims in dict.fromkeys(selected.values())}
    refined: dict[Hashable, xr.Variable] = {}
    for grid in grids.values():
        refined.update(grid.refine(scale))
    spatial = {d for dims in grids for d in dims}
    model_name = pipeline_model_name(pipe)
    pipes = {dims: _with_area_weights(pipe, grid, scale) for dims, grid in grids.items()}
    pipes = {dims: _with_covariates(p, grids[dims], scale) for dims, p in pipes.items()}

    data_vars: dict[Hashable, xr.Variable] = {}
    dropped: list[str] = []
    for name, var in ds.data_vars.items():
        if name in selected:
            grid = grids[selected[name]]
            wrap = grid.periodic_x if periodic is None else bool(periodic)
            data_vars[name] = downscale_variable(
                var,
                pipes[selected[name]],
                scale,
                grid.dims,
                dtype=dtype,
                periodic_x=wrap,
                channel_dim=channel_dim,
                model_name=model_name,
            )
        elif name in refined:
            data_vars[name] = refined[name]
        elif not set(var.dims) & spatial:
            data_vars[name] = copy_variable(var.variable)
        else:
            dropped.append(str(name))
    for name, var in refined.items():  # bounds computed for the refined grid (Gaussian edges)
        if name not in ds.variables:
            data_vars[name] = var
    coords: dict[Hashable, xr.Variable] = {}
    for name, c in ds.coords.items():
        if name in refined:
            coords[name] = refined[name]
        elif not set(c.dims) & spatial:
            coords[name] = copy_variable(c.variable)
            if c.dims == (name,):  # CF: coordinate variables carry no fill value
                coords[name].encoding.setdefault("_FillValue", None)
        else:
            dropped.append(str(name))
    if dropped:
        warnings.warn(
            f"dropped {dropped}: they lie on the spatial grid but were not downscaled "
            f"(select them with variables= to downscale them too)",
            stacklevel=4,
        )
    line = history_line(model_name, scale, list(selected))
    out = xr.Dataset(data_vars, coords=coords, attrs=output_attrs(ds.attrs, line))
    source = ds.encoding.get("source") or ds.encoding.get("scisr_derived_from")
    if source:
        out.encoding["scisr_derived_from"] = source
    if "unlimited_dims" in ds.encoding:
        out.encoding["unlimited_dims"] = set(ds.encoding["unlimited_dims"]) - spatial
    return out


def _with_area_weights(pipe: Pipeline, grid: Grid, scale: int) -> Pipeline:
    """``pipe`` with the HR area weights of ``grid`` when it applies a block-mean constraint."""
    cons = getattr(pipe, "constraint", None)
    if cons is None or not cons.local:
        return pipe
    from ..constraints import area_weights_for_grid

    return pipe.with_area_weights(area_weights_for_grid(grid, scale))


def _with_covariates(pipe: Pipeline, grid: Grid, scale: int) -> Pipeline:
    """``pipe`` with the LR covariate stack of ``grid`` when the call has covariates (checked against
    the refined grid, :func:`sciSR.covariates.stack_for_grid`)."""
    given = getattr(pipe, "covariates", None)
    if given is None:
        return pipe
    from ..covariates import stack_for_grid

    return pipe.with_covariates(stack_for_grid(given, grid, scale))


def with_source_bounds(ds: xr.Dataset, dims: set[str]) -> xr.Dataset:
    """``ds`` with the CF bounds its spatial coordinates name but lack, read from the source file.

    A DataArray taken from a Dataset (``ds.tas``) keeps its coordinates' ``bounds`` attribute
    but not the bounds variable; when the file it was read from is reachable
    (``encoding["source"]``) and its coordinate values are found there, the bounds rows for them
    are taken from the file. Otherwise ``ds`` is returned unchanged.
    """
    from .netcdf import read_source_variables

    wanted: dict[str, str] = {}
    for d in dims:
        c = ds.variables.get(d)
        if c is None or c.ndim != 1:
            continue
        name = c.attrs.get("bounds") or c.encoding.get("bounds")
        if name and str(name) not in ds.variables:
            wanted[d] = str(name)
    if not wanted:
        return ds
    sources = [ds.encoding.get("source")] + [ds.variables[d].encoding.get("source") for d in wanted]
    source = next((src for src in sources if src), None)
    if source is None:
        return ds
    found = read_source_variables(source, [*wanted, *wanted.values()])
    extra = {}
    for d, name in wanted.items():
        if d not in found or name not in found or found[name].ndim != 2 or d not in found[name].dims:
            continue
        have = np.asarray(found[d].values, dtype=np.float64)
        want = np.asarray(ds.variables[d].values, dtype=np.float64)
        order = np.argsort(have)
        pos = np.clip(np.searchsorted(have[order], want), 0, have.size - 1)
        idx = order[pos]
        if not np.array_equal(have[idx], want):
            continue
        b = found[name].transpose(d, ...)
        extra[name] = xr.Variable(b.dims, np.asarray(b.values)[idx], b.attrs)
    return ds.assign(extra) if extra else ds


def check_memory(
    ds: xr.Dataset, selected: dict[Hashable, tuple[str, str]], pipe: Pipeline, scale: int, dtype: Any
) -> None:
    """Refuse (before reading) a call whose estimated peak memory exceeds what is available.

    Eager variables are read and kept whole (inputs and outputs add up); dask-backed ones are
    computed block by block, as many blocks at once as dask has workers, each holding its LR box
    (the block and the tiler windows around it, see :func:`_box_cells`) and its HR output.

    Raises:
        sciSR.io.memory.InsufficientMemoryError: The figures and the fixes in one line.
    """
    from . import memory

    c = max(1, int(pipe.in_channels))

    def plans_at(k: int) -> list[memory.VarPlan]:
        plans = []
        for name, dims in selected.items():
            var = ds[name]
            h, w = var.sizes[dims[0]], var.sizes[dims[1]]
            loop = [d for d in var.dims if d not in dims]
            out_size = output_dtype(var.dtype, dtype).itemsize
            work = 8 if var.dtype == np.float64 else 4
            if var.chunks is not None:
                chunk_items = int(np.prod([max(var.chunksizes[d]) for d in loop], dtype=np.int64))
                n_chunks = int(np.prod([len(var.chunksizes[d]) for d in loop], dtype=np.int64))
                shape = (h, w)
                yc, xc = spatial_chunks(pipe, var.chunksizes[dims[0]], var.chunksizes[dims[1]], shape)
                box = chunk_items * _box_cells(pipe, yc, xc, shape)
                block = chunk_items * max(yc) * max(xc)
                # VarPlan counts input and output over the same cells; a task holds its LR box
                # but only its block's HR output: the equivalent cell count gives the same bytes
                lr_b, hr_b = work + work + memory.LR_WORK_BYTES, k * k * (4 + out_size + memory.HR_WORK_BYTES)
                cells = int(np.ceil((box * lr_b + block * hr_b) / (lr_b + hr_b)))
                concurrent = min(n_chunks * len(yc) * len(xc), _dask_workers())
                plans.append(memory.VarPlan(cells, cells, work, out_size, work, True, concurrent))
                continue
            step = max(1, _EAGER_BATCH_BYTES // max(1, c * h * w * k * k * 4))
            items = int(var.size // max(1, h * w))
            batch = min(step * c, items) * h * w
            plans.append(memory.VarPlan(int(var.size), batch, var.dtype.itemsize, out_size, work))
        return plans

    fixes: list[str | None] = []
    for name, dims in selected.items():
        var = ds[name]
        loop = [str(d) for d in var.dims if d not in dims]
        if var.chunks is None and loop and int(np.prod([var.sizes[d] for d in loop])) > 1:
            d0 = loop[0]
            fixes.append(
                f"stream the {d0} steps: open with chunks={{'{d0}': 1}} (dask computes them one by one "
                f"into a NetCDF/Zarr output), or select fewer (ds.isel({d0}=slice(0, n)))"
            )
        fixes.append(f"downscale a spatial subset (ds.isel({dims[0]}=slice(...), {dims[1]}=slice(...)))")
    names = ", ".join(map(str, selected))
    memory.check_call(plans_at, pipe, scale, f"downscaling {names} ×{scale}", fixes)


def _box_cells(
    pipe: Pipeline, ychunks: tuple[int, ...], xchunks: tuple[int, ...], shape: tuple[int, int]
) -> int:
    """LR cells of the largest box an output block reads (:meth:`Pipeline.plan_region` of the
    block with the widest chunks, away from the borders where boxes are clipped)."""
    from .window_graph import _bounds

    yb, xb = _bounds(ychunks), _bounds(xchunks)
    iy = max(range(len(ychunks)), key=lambda i: (ychunks[i], -abs(i - len(ychunks) // 2)))
    ix = max(range(len(xchunks)), key=lambda i: (xchunks[i], -abs(i - len(xchunks) // 2)))
    plan = pipe.plan_region(shape, (yb[iy], yb[iy + 1], xb[ix], xb[ix + 1]))
    y0, y1, x0, x1 = plan.box
    return (y1 - y0) * (x1 - x0)


def _dask_workers() -> int:
    import os

    try:
        import dask

        n = dask.config.get("num_workers", None)
    except ImportError:  # pragma: no cover - dask is a dependency
        n = None
    return int(n or os.cpu_count() or 1)


def select_variables(
    ds: xr.Dataset, variables: str | list[str] | None, spatial_dims_of: SpatialDimsOf
) -> dict[Hashable, tuple[str, str]]:
    """Variables to downscale with their ``(y_dim, x_dim)``.

    Without ``variables``: every numeric data variable with both spatial dims, except bounds
    variables and grid mappings.

    Raises:
        ValueError: A named variable is missing (lists the variables) or has no spatial dims, or
            no variable at all has spatial dims (lists the dims found).
    """
    if isinstance(variables, str):
        variables = [variables]
    if variables is not None:
        missing = [v for v in variables if v not in ds.data_vars]
        if missing:
            raise ValueError(
                f"variable(s) {missing} not in the dataset; its data variables are {list(ds.data_vars)}"
            )
        out = {}
        for v in variables:
            dims = spatial_dims_of(ds[v])
            if dims is None:
                raise no_spatial_dims_error(v, ds[v].dims)
            out[v] = dims
        return out
    helpers = _helper_variables(ds)
    out = {}
    for name, var in ds.data_vars.items():
        if name in helpers or var.ndim < 2 or var.dtype.kind not in "fiu":
            continue
        dims = spatial_dims_of(var)
        if dims is not None:
            out[name] = dims
    if not out:
        candidates = [(n, v.dims) for n, v in ds.data_vars.items() if v.ndim >= 2]
        if not candidates:
            raise ValueError(
                f"no data variable with at least 2 dims to downscale; variables: "
                f"{ {str(n): tuple(map(str, v.dims)) for n, v in ds.data_vars.items()} }"
            )
        name, dims = max(candidates, key=lambda t: int(np.prod([ds.sizes[d] for d in t[1]])))
        raise no_spatial_dims_error(name, dims)
    return out


def _helper_variables(ds: xr.Dataset) -> set[Hashable]:
    """Bounds and grid-mapping variables named by others' attributes (never downscaled as data)."""
    names: set[Hashable] = set()
    for v in ds.variables.values():
        for key in ("bounds", "grid_mapping"):
            ref = v.attrs.get(key) or v.encoding.get(key)
            if ref:
                names.add(str(ref).split(":")[0].split()[0])
    return names


def pipeline_model_name(pipe: Pipeline) -> str:
    """Registry name of the pipeline's model (class name for foreign modules)."""
    spec = getattr(pipe.model, "spec", None)
    return str(getattr(spec, "name", None) or type(pipe.model).__name__)


def weights_attrs(pipe: Pipeline) -> dict[str, str]:
    """``scisr_weights``, ``scisr_weights_tag``, ``scisr_weights_sha256`` and ``scisr_model_reason``
    of the pipeline (empty for pipelines built without a weights record), and ``scisr_constraint``
    when it applies a consistency constraint."""
    record = getattr(pipe, "record_attrs", None)
    out = record() if callable(record) else {}
    constraint = getattr(pipe, "constraint_attrs", None)
    return {**out, **(constraint() if callable(constraint) else {})}


def history_line(model_name: str, scale: int, variables: list[Hashable]) -> str:
    """The one line sciSR appends to ``history``."""
    from .. import __version__

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    names = ", ".join(map(str, variables))
    return f"{now}: sciSR {__version__} downscale model={model_name} scale={scale} variables=[{names}]"


def append_history(attrs: dict[str, Any], line: str) -> dict[str, Any]:
    """Copy of ``attrs`` with ``line`` appended to ``history``."""
    out = dict(attrs)
    old = str(out.get("history", "")).rstrip("\n")
    out["history"] = f"{old}\n{line}" if old else line
    return out


def output_attrs(attrs: dict[str, Any], line: str) -> dict[str, Any]:
    """Dataset attrs minus what refinement invalidates, with the history line appended."""
    kept = {k: v for k, v in attrs.items() if not INVALIDATED_ATTRS.match(str(k).lower())}
    return append_history(kept, line)


def copy_variable(var: xr.Variable) -> xr.Variable:
    """Shallow copy with storage-layout encodings removed."""
    out = var.copy(deep=False)
    out.encoding = {k: v for k, v in var.encoding.items() if k not in _LAYOUT_ENCODING}
    return out


def output_dtype(src: np.dtype, dtype: Any) -> np.dtype:
    """The dtype :func:`sciSR.dtypes.cast_output` will produce."""
    if dtype is None:
        return np.dtype(np.float32)
    if isinstance(dtype, str) and dtype in ("source", "input"):
        return np.dtype(src)
    return np.dtype(dtype)


def norm_attrs(normalizers: list[Normalizer]) -> dict[str, str]:
    """``scisr_norm*`` attrs: one normalizer as is, several (channels) as a JSON list of params."""
    if len(normalizers) == 1:
        return normalizers[0].to_attrs()
    return {
        "scisr_norm": normalizers[0].kind,
        "scisr_norm_params": json.dumps([n.params for n in normalizers], sort_keys=True),
    }


def downscale_variable(
    var: xr.DataArray,
    pipe: Pipeline,
    scale: int,
    dims: tuple[str, str],
    *,
    dtype: Any = None,
    periodic_x: bool = False,
    channel_dim: str | None = None,
    model_name: str | None = None,
) -> xr.Variable:
    """Super-resolve one variable over its spatial ``dims``; other dims are loop dims.

    Returns:
        The refined ``xr.Variable`` in the source dim order, attrs updated and fresh encoding.

    Shape:
        ``(..., H, ..., W, ...) -> (..., s·H, ..., s·W, ...)`` (same dim order).

    Raises:
        ValueError: All-NaN data, a channel dim that does not match the model, integer output
            requested for data with invalid cells.
        TypeError: Non-numeric data.
    """
    y_dim, x_dim = dims
    if var.dtype.kind not in "fiu":
        raise TypeError(f"variable {var.name!r} has dtype {var.dtype}; only numeric data can be downscaled")
    c = pipe.in_channels
    loop = [d for d in var.dims if d not in dims]
    cdim = _channel_dim(var, loop, c, channel_dim) if c > 1 else None
    if cdim is not None:
        loop.remove(cdim)
    order = [*loop, *([cdim] if cdim else []), y_dim, x_dim]
    v = var.variable.transpose(*order)
    src = np.dtype(v.dtype)
    work = np.float64 if src == np.float64 else np.float32
    nlead = len(loop)
    packing = pack_dtype(var.encoding, src, dtype)
    cast = _caster(src, dtype, packing)
    out_dt = packing.dtype if packing is not None else output_dtype(src, dtype)
    if _is_dask(v.data):
        data, normalizers = _run_dask(v.data, pipe, scale, work, cast, out_dt, periodic_x, nlead, c, var.name)
    else:
        data, normalizers = _run_eager(
            np.asarray(v.values), pipe, scale, work, cast, periodic_x, nlead, c, var.name
        )
    attrs = {k: val for k, val in var.attrs.items() if not INVALIDATED_ATTRS.match(str(k).lower())}
    attrs.update({"scisr_model": model_name or pipeline_model_name(pipe), "scisr_scale": int(scale)})
    attrs.update(weights_attrs(pipe))
    attrs.update(norm_attrs(normalizers))
    encoding = {k: val for k, val in var.encoding.items() if k in _KEPT_ENCODING}
    if packing is not None:
        attrs.update(packing.attrs())
    elif np.dtype(data.dtype).kind == "f":
        encoding["_FillValue"] = np.dtype(data.dtype).type(np.nan)
    out = xr.Variable(order, data, attrs, encoding)
    return out.transpose(*var.dims)


def _channel_dim(var: xr.DataArray, loop: list[Hashable], c: int, channel_dim: str | None) -> Hashable:
    if channel_dim is not None:
        if channel_dim not in loop or var.sizes[channel_dim] != c:
            raise ValueError(
                f"channel_dim={channel_dim!r} must be a non-spatial dim of {var.name!r} of size {c} "
                f"(the model's input channels); dims: {dict(var.sizes)}"
            )
        return channel_dim
    fits = [d for d in loop if var.sizes[d] == c]
    named = [d for d in fits if str(d).lower() in ("band", "bands", "channel", "channels")]
    if len(named) == 1 or len(fits) == 1:
        return (named or fits)[0]
    raise ValueError(
        f"the model takes {c} channels but {var.name!r} has no unique dim of size {c} to use as "
        f"channels (dims {dict(var.sizes)}); pass channel_dim="
    )


def _is_dask(data: Any) -> bool:
    return type(data).__module__.startswith("dask")


def _to_block(a: np.ndarray, nlead: int, c: int) -> np.ndarray:
    h, w = a.shape[-2:]
    return a.reshape(-1, c, h, w)


def _from_block(y: np.ndarray, lead: tuple[int, ...], c: int) -> np.ndarray:
    c_out = y.shape[1]
    shape = (*lead, *((c_out,) if c > 1 else ()), *y.shape[-2:])
    if c == 1 and c_out != 1:
        raise ValueError(
            f"the model returned {c_out} channels for a 1-channel input; use a model with "
            f"out_channels=1 for gridded variables"
        )
    return y.reshape(shape)


def _caster(src: np.dtype, dtype: Any, packing: Packing | None) -> Callable[[np.ndarray], np.ndarray]:
    """The output cast: CF re-packing for ``dtype="source"`` of packed data, else ``cast_output``."""
    from ..dtypes import cast_output

    if packing is not None:
        return lambda y: pack(y, packing)
    return lambda y: cast_output(y, src, dtype)


def _run_eager(
    a: np.ndarray,
    pipe: Pipeline,
    scale: int,
    work: type,
    cast: Callable[[np.ndarray], np.ndarray],
    periodic_x: bool,
    nlead: int,
    c: int,
    name: Hashable,
) -> tuple[np.ndarray, list[Normalizer]]:
    a = a.astype(work, copy=False)
    block = _to_block(a, nlead, c)
    if not np.isfinite(block).any():
        raise ValueError(f"variable {name!r} is all NaN/fill: nothing valid to downscale")
    normalizers = pipe.fit(block)
    _check_constraint(pipe, normalizers, name)
    h, w = block.shape[-2:]
    per_item = max(1, c * h * w * scale * scale * 4)
    step = max(1, _EAGER_BATCH_BYTES // per_item)
    parts = [
        pipe.run(block[i : i + step], normalizers, periodic_x=periodic_x, desc=str(name))
        for i in range(0, block.shape[0], step)
    ]
    y = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    lead = a.shape[:nlead]
    return cast(_from_block(y, lead, c)), normalizers


def _run_dask(
    a: Any,
    pipe: Pipeline,
    scale: int,
    work: type,
    cast: Callable[[np.ndarray], np.ndarray],
    out_dt: np.dtype,
    periodic_x: bool,
    nlead: int,
    c: int,
    name: Hashable,
) -> tuple[Any, list[Normalizer]]:
    """Lazy super-resolution of a dask array, block by block in space (see the module docstring).

    Args:
        a: ``(*loop, [C,] H, W)`` dask array (any chunks).
        pipe: The call's pipeline.
        scale: Factor.
        work: Float working dtype.
        cast: Output cast applied to each HR block.
        out_dt: Dtype ``cast`` returns.
        periodic_x: The last axis wraps.
        nlead: Number of loop axes.
        c: Model input channels (``> 1``: axis ``nlead`` is the channel axis).
        name: Variable name (messages, progress, graph names).

    Returns:
        The lazy HR array (chunks: loop chunks, channels whole, spatial chunks ×scale) and the
        normalizers fitted on the whole variable.

    Shape:
        ``(*loop, [C,] H, W) -> (*loop, [C_out,] s·H, s·W)``.
    """
    a = a.astype(work)
    if c > 1:
        a = a.rechunk({nlead: -1})
    h, w = a.shape[-2:]
    fixed = spatial_chunks(pipe, a.chunks[-2], a.chunks[-1], (h, w))
    if fixed != (a.chunks[-2], a.chunks[-1]):
        warnings.warn(_rechunk_message(pipe, a.chunks[-2:], fixed, name), UserWarning, stacklevel=5)
        a = a.rechunk({a.ndim - 2: fixed[0], a.ndim - 1: fixed[1]})
    normalizers, _all_valid = _fit_dask(pipe, a, nlead, c, name)
    _check_constraint(pipe, normalizers, name)
    cons = getattr(pipe, "constraint", None)
    if cons is not None and not cons.local and (len(a.chunks[-2]) > 1 or len(a.chunks[-1]) > 1):
        warnings.warn(
            f"{name!r}: constraint degradation '{cons.degradation}' needs whole fields; spatial chunks "
            f"were merged (use constraint_degradation='area' to keep them)",
            UserWarning,
            stacklevel=5,
        )
        a = a.rechunk({a.ndim - 2: -1, a.ndim - 1: -1})
    from .streaming import STREAMED_CALL, region_layout

    c_out = _model_out_channels(pipe, c)
    if STREAMED_CALL.get() and getattr(pipe, "covariate_stack", None) is None:
        # a field of one block keeps the window graph: no nested read per field (1000 small fields
        # ran 1.4× faster), and its output chunk is one field all the same
        layout = region_layout(pipe, (h, w), periodic_x)
        if layout.blocks > 1:
            return _run_regions(a, layout, normalizers, cast, out_dt, c_out, nlead, c, name), normalizers
    from .window_graph import lazy_hr

    out = lazy_hr(
        a,
        pipe,
        normalizers,
        scale=scale,
        cast=cast,
        out_dtype=out_dt,
        c_out=c_out,
        nlead=nlead,
        c=c,
        periodic_x=periodic_x,
        name=name,
    )
    return out, normalizers


def _run_regions(
    a: Any,
    layout: Any,
    normalizers: list[Normalizer],
    cast: Callable[[np.ndarray], np.ndarray],
    out_dt: np.dtype,
    c_out: int,
    nlead: int,
    c: int,
    name: Hashable,
) -> Any:
    """:func:`_run_dask` for a file-to-file call: each 2-D item computed region by region.

    Every loop item becomes :func:`sciSR.io.streaming.region_array`'s independent blocks (each
    reads its own LR box and runs only its windows; ``layout``, planned once, is shared by the
    items), so a writer storing the blocks one after the
    other holds one block at a time, whatever the field size; the spatial output chunks are those
    blocks, not the input's chunks ×scale.

    Shape:
        ``(*loop, [C,] H, W) -> (*loop, [C_out,] s·H, s·W)``.
    """
    import dask.array as dsa

    from .streaming import region_array

    lead = a.shape[:nlead]
    items = []
    for idx in np.ndindex(*lead):
        x = a[idx] if c > 1 else a[idx][None]
        hr = region_array(
            x,
            layout.pipe,
            normalizers,
            cast=cast,
            out_dtype=out_dt,
            c_out=c_out,
            periodic_x=layout.periodic_x,
            desc=f"sciSR {name}",
            layout=layout,
        )
        items.append(hr if c > 1 else hr[0])
    return dsa.stack(items).reshape(*lead, *items[0].shape)


def _check_constraint(pipe: Pipeline, normalizers: list[Normalizer], name: Hashable) -> None:
    check = getattr(pipe, "check_constraint", None)
    if check is not None:
        check(normalizers, f"variable {name!r}")


def spatial_chunks(
    pipe: Pipeline, ychunks: tuple[int, ...], xchunks: tuple[int, ...], shape: tuple[int, int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The spatial chunks the dask path computes: ``(ychunks, xchunks)`` unless an axis has a chunk
    (other than its last) narrower than the pipeline's halo; such an axis is rechunked to
    ``min(length, max(4·halo, tile))`` LR pixels (one chunk for arrays smaller than that)."""
    halo = int(pipe.halo)
    out = []
    for chunks, n in zip((ychunks, xchunks), shape):
        inner = chunks[:-1] if len(chunks) > 1 else chunks
        if halo <= 0 or min(inner) >= halo:
            out.append(tuple(chunks))
            continue
        size = min(n, max(4 * halo, _stream_tile(pipe, shape)))
        out.append((size,) * (n // size) + ((n % size,) if n % size else ()))
    return out[0], out[1]


def _stream_tile(pipe: Pipeline, shape: tuple[int, int]) -> int:
    return int(pipe.stream_tiler(*shape).tile)


def _rechunk_message(
    pipe: Pipeline, old: tuple[tuple[int, ...], ...], new: tuple[tuple[int, ...], ...], name: Hashable
) -> str:
    def show(ch: tuple[int, ...]) -> str:
        return f"{len(ch)} chunks of {max(ch)}" if len(ch) > 1 else f"1 chunk of {ch[0]}"

    changed = [f"{show(o)} → {show(n)}" for o, n in zip(old, new) if tuple(o) != tuple(n)]
    return (
        f"{name!r}: spatial chunks narrower than the model's halo ({pipe.halo} LR px) were rechunked "
        f"({'; '.join(changed)}); chunk y/x by at least {max(4 * int(pipe.halo), 1)} pixels to avoid this"
    )


def _model_out_channels(pipe: Pipeline, c: int) -> int:
    spec = getattr(pipe.model, "spec", None)
    return int(getattr(spec, "out_channels", c) or c)


def fit_dask(pipe: Pipeline, a: Any, nlead: int, c: int, name: Hashable) -> list[Normalizer]:
    """Fit one normalizer per channel on a dask array with dask reductions (global statistics).

    Normalizers without a dask recipe are fitted on the loaded values (with a warning).

    Shape:
        ``a``: ``(*loop, [C,] H, W)``.
    """
    return _fit_dask(pipe, a, nlead, c, name)[0]


def _fit_dask(pipe: Pipeline, a: Any, nlead: int, c: int, name: Hashable) -> tuple[list[Normalizer], bool]:
    """:func:`fit_dask`, and whether every cell of ``a`` is valid (finite)."""
    import dask
    import dask.array as dsa

    chans = [a] if c == 1 else [a[(slice(None),) * nlead + (i,)] for i in range(c)]
    normalizers = [pipe.make_normalizer() for _ in range(c)]
    kind = normalizers[0].kind
    recipe = None if pipe.norm_params else _DASK_STATS.get(kind)
    if kind == "percentile" and not pipe.norm_params:  # exact streaming quantiles, nothing loaded whole
        from .stream_stats import fit_percentile

        fitted = [fit_percentile(nz, ch, name) for nz, ch in zip(normalizers, chans)]
        counts = dask.compute(*[dsa.isfinite(ch).sum() for ch in chans])
        return fitted, sum(int(n) for n in counts) == int(np.prod(a.shape, dtype=np.int64))
    if recipe is None and not pipe.norm_params:
        warnings.warn(f"norm={kind!r} has no dask recipe: loading {name!r} once to fit it", stacklevel=5)
        loaded = [np.asarray(ch) for ch in chans]
        fitted = [nz.fit(v) for nz, v in zip(normalizers, loaded)]
        return fitted, all(bool(np.isfinite(v).all()) for v in loaded)
    lazy = []
    for ch in chans:
        x = dsa.where(dsa.isfinite(ch), ch, np.nan).astype(np.float64)
        stats = recipe(x) if recipe is not None else {}
        lazy.append((dsa.isfinite(x).sum(), stats, dsa.nanmin(x), dsa.nanmax(x)))
    computed = dask.compute(*lazy)
    all_valid = sum(int(count) for count, *_ in computed) == int(np.prod(a.shape, dtype=np.int64))
    for nz, (count, stats, lo, hi) in zip(normalizers, computed):
        if int(count) == 0:
            raise ValueError(f"variable {name!r} is all NaN/fill: nothing valid to downscale")
        if recipe is not None:
            nz.params = _DASK_FINISH[kind]({k: float(v) for k, v in stats.items()})
        nz.valid_range = (float(lo), float(hi))  # for clip=True, as Pipeline.fit records it
    return normalizers, all_valid


def _zscore_stats(x: Any) -> dict[str, Any]:
    import dask.array as dsa

    return {"mean": dsa.nanmean(x), "std": dsa.nanstd(x)}


def _minmax_stats(x: Any) -> dict[str, Any]:
    import dask.array as dsa

    return {"min": dsa.nanmin(x), "max": dsa.nanmax(x)}


def _log1p_stats(x: Any) -> dict[str, Any]:
    import dask.array as dsa

    return {"min": dsa.nanmin(x), "scale": dsa.nanstd(dsa.log1p(x))}


def _finish_log1p(p: dict[str, float]) -> dict[str, float]:
    if p["min"] < 0:
        raise ValueError(
            f"norm='log1p' needs non-negative data but the minimum is {p['min']:.4g}; "
            f"use norm='zscore' for signed fields"
        )
    return {"scale": p["scale"] if p["scale"] > 0 else 1.0}


#: normalizer kind → lazy statistics of a float64 dask array (NaN = invalid)
_DASK_STATS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "none": lambda x: {},
    "zscore": _zscore_stats,
    "minmax": _minmax_stats,
    "log1p": _log1p_stats,
}
#: normalizer kind → params from the computed statistics (same rules as the eager ``_fit``)
_DASK_FINISH: dict[str, Callable[[dict[str, float]], dict[str, float]]] = {
    "none": lambda p: {},
    "zscore": lambda p: {"mean": p["mean"], "std": p["std"] if p["std"] > 0 else 1.0},
    "minmax": lambda p: {"min": p["min"], "max": p["max"] if p["max"] > p["min"] else p["min"] + 1.0},
    "log1p": _finish_log1p,
}

"""NIfTI adapter (nibabel): 3-D/4-D volumes, slice-wise 2-D SR, the DESIGN §4 affine rule.

Dataset layout returned by :meth:`NiftiAdapter.open`:

- one variable ``image`` with dims ``("i", "j", "k"[, "t", ...])`` (voxel index grid, no
  coordinates), float32 physical values (``scl_slope``/``scl_inter`` applied);
- ``ds.attrs``: ``sform``/``qform`` (row-major 4×4 as 16 floats),
  ``sform_code``/``qform_code``, ``nifti_zooms`` (all dims), ``descrip``;
- ``image.encoding``: ``scisr_source_dtype`` (on disk), ``scl_slope``/``scl_inter`` when the
  file was scaled; ``ds.encoding["nifti_header"]``: the source header, a template for the other fields.

Refinement of axes ``(a, b)`` by ``s``: ``A_new = A @ S`` for both sform and qform, with
``S[a, a] = 1/s`` and ``S[a, 3] = (1/s - 1)/2`` on each refined axis (so the centre of an old
voxel is the mean of its sub-voxel centres and the field of view is unchanged); codes are kept,
zooms divided, ``descrip`` set, and float32 data are written with ``scl_slope``/``scl_inter``
reset — never with the source's integer type and slope.

Writing data that did not come from NIfTI (a NetCDF grid, a GeoTIFF) is refused when they carry
spatial coordinates, 2-D latitude/longitude or a CRS and no NIfTI affine (``sform``/``qform``
attrs): a NIfTI file stores only a voxel-to-scanner affine, so the geometry would be lost
silently. Write NetCDF, Zarr or GeoTIFF instead, or drop the coordinates first to write a plain
voxel grid. NIfTI has no float16 type (use float32).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ._stack import dataset_attrs, run_block, sr_attrs
from .base import Adapter, register_adapter
from .xarray_core import output_dtype, pipeline_model_name

if TYPE_CHECKING:
    from ..pipeline import Pipeline

VAR = "image"
DIMS = ("i", "j", "k", "t", "u", "v", "w")


@register_adapter
class NiftiAdapter(Adapter):
    """NIfTI-1/2 volumes; a 2-D model runs over slices of the two finest axes."""

    name = "nifti"
    extensions = (".nii", ".nii.gz")
    default_norm = "percentile"
    default_clip = True  # magnitude images: no negative intensities or overshoot past the maximum

    def open(self, path: Path, **kw: Any) -> xr.Dataset:
        """Open the volume with its affines, codes and zooms; voxels are read on first access.

        Raises:
            ValueError: Not a NIfTI file, or fewer than 2 dims.
        """
        import nibabel as nib

        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise ValueError(f"{path} is a {type(img).__name__}, not NIfTI")
        shape = tuple(int(n) for n in img.shape)
        if len(shape) < 2:
            raise ValueError(f"{path} has shape {shape}; a 2-D slice or 3-D/4-D volume is needed")
        np.asarray(img.dataobj[(-1,) * len(shape)])  # a truncated file fails here, not later
        from .lazy import lazy_variable

        disk = np.dtype(img.get_data_dtype())
        var = lazy_variable(
            DIMS[: len(shape)],
            shape,
            np.float32,
            _NiftiReader(path),
            what=str(path),
            bytes_per_value=disk.itemsize + 8 + 4,  # on disk, nibabel's float64 scaling, float32
            fix="read a sub-volume (ds.isel(k=slice(...)))",
        )
        hdr = img.header
        slope, inter = img.dataobj.slope, img.dataobj.inter
        da = xr.DataArray(var)
        da.encoding["scisr_source_dtype"] = np.dtype(img.get_data_dtype())
        if (slope, inter) != (1.0, 0.0):
            da.encoding.update(scl_slope=float(slope), scl_inter=float(inter))
        _, qcode = hdr.get_qform(coded=True)
        _, scode = hdr.get_sform(coded=True)
        attrs = {
            "sform": _flat(hdr.get_sform()),
            "sform_code": int(scode),
            "qform": _flat(hdr.get_qform()),
            "qform_code": int(qcode),
            "nifti_zooms": [float(z) for z in hdr.get_zooms()],
            "descrip": hdr["descrip"].item().decode("latin-1").strip("\x00 "),
            "scisr_format": self.name,
        }
        ds = xr.Dataset({VAR: da}, attrs=attrs)
        ds.encoding.update(source=str(path), nifti_header=hdr.copy())
        return ds

    def spatial_dims(
        self, da: xr.DataArray, axes: Sequence[int] | None = None, **kw: Any
    ) -> tuple[str, str] | None:
        """The two refined dims: ``axes`` or the two finest voxel axes (ties → first)."""
        if not set(DIMS[:2]) <= set(da.dims):
            return super().spatial_dims(da, **kw)
        zooms = da.attrs.get("nifti_zooms") or [1.0] * da.ndim
        a, b = pick_axes(axes, zooms, da.ndim)
        return (DIMS[a], DIMS[b])

    def downscale(
        self,
        ds: xr.Dataset,
        pipe: Pipeline,
        scale: int,
        *,
        variables: str | list[str] | None = None,
        dtype: Any = None,
        axes: Sequence[int] | None = None,
        mask_background: bool = False,
        **kw: Any,
    ) -> xr.Dataset:
        """Super-resolve the volume in-plane, slice by slice, each volume with its own statistics.

        Args:
            ds: Dataset from :meth:`open`.
            pipe: Built pipeline (a 1-channel model, or C channels fed from a 4-D volume's last dim).
            scale: Integer factor.
            variables: The volume variable (default ``image``).
            dtype: ``None`` (float32), ``"source"`` (on-disk type, re-packed with its slope) or a dtype.
            axes: The two voxel axes to refine (default: the two finest).
            mask_background: Treat zero voxels as outside the object (kept exactly 0 on the
                nearest-upsampled mask); statistics always use the non-zero voxels.
            **kw: Ignored generic options.

        Returns:
            Dataset on the refined voxel grid with updated affines/zooms.

        Raises:
            ValueError: Bad ``axes``, channel mismatch, or a volume without valid voxels.
        """
        if not set(DIMS[:2]) <= set(ds.dims):
            return super().downscale(ds, pipe, scale, variables=variables, dtype=dtype, **kw)
        name = _select(ds, variables)
        da = ds[name].transpose(*[d for d in DIMS if d in ds[name].dims])
        zooms = list(ds.attrs.get("nifti_zooms") or [1.0] * da.ndim)
        a, b = pick_axes(axes, zooms, da.ndim)
        target = output_dtype(source_dtype(da), dtype)
        if _is_dask(da.data):  # streamed (path to path): slab by slab, statistics from streaming passes
            values, norms, enc = _stream_volume(da.data, pipe, (a, b), mask_background, target, da.encoding)
        else:
            _check_memory(da, pipe, scale, target, (a, b))
            hr, norms = _run_volume(da.values, pipe, (a, b), mask_background)
            values, enc = _cast(hr, target, da.encoding)
        out_da = xr.DataArray(values, dims=da.dims, attrs=sr_attrs(da.attrs, pipe, scale, norms))
        out_da.encoding.update(enc)
        attrs = dataset_attrs(ds.attrs, pipe, scale, [name], self.name)
        S = refine_matrix(scale, (a, b))
        for key in ("sform", "qform"):
            if key in attrs:
                attrs[key] = _flat(np.reshape(attrs[key], (4, 4)) @ S)
        for ax in (a, b):
            zooms[ax] = zooms[ax] / scale
        attrs["nifti_zooms"] = zooms
        tag = out_da.attrs.get("scisr_weights_tag")  # the header's 80 bytes hold model and weights tag
        model = pipeline_model_name(pipe) + (f"/{tag}" if tag else "")
        attrs["descrip"] = f"sciSR x{scale} {model} axes {a},{b}"[:79]
        out = xr.Dataset({name: out_da}, attrs=attrs)
        header = ds.encoding.get("nifti_header")
        if header is not None:
            out.encoding["nifti_header"] = _refined_header(header, (a, b))
        derived = ds.encoding.get("source") or ds.encoding.get("scisr_derived_from")
        if derived:
            out.encoding["scisr_derived_from"] = derived
        return out

    def check_writable(
        self, ds: xr.Dataset, variables: Any = None, dtype: Any = None, scale: int = 1
    ) -> None:
        """Refuse, before any computation, output NIfTI cannot hold: several volumes, float16,
        or a grid whose coordinates/CRS a voxel affine cannot carry.

        Raises:
            ValueError: One line naming the problem and the fix.
        """
        from .capability import single_output

        plans = single_output(ds, variables, dtype, "a NIfTI file holds one volume", "write NetCDF/Zarr")
        for plan in plans:
            _check_nifti_dtype(plan.dtype, plan.name)
            lost = geometry_lost(ds, plan.name)
            if lost:
                raise ValueError(_geometry_message(plan.name, lost))

    def write(self, ds: xr.Dataset, path: Path, **kw: Any) -> None:
        """Write the volume variable as NIfTI (``.nii`` or gzipped ``.nii.gz`` by the name).

        sform/qform and their codes come from ``ds.attrs`` (identity, code 0, when absent); other
        header fields from the source header when there is one. Float data are stored as float32
        with slope/intercept reset; integer data keep the encoding's ``scl_slope``/``scl_inter``.

        Raises:
            ValueError: No suitable variable, NaN cells in integer data, float16 data, or
                coordinates/CRS without a NIfTI affine (the geometry would be lost).
        """
        import nibabel as nib

        name = _select(ds, None)
        da = ds[name]
        lost = geometry_lost(ds, name)
        if lost:
            raise ValueError(_geometry_message(name, lost))
        _check_nifti_dtype(da.dtype, name)
        if _is_dask(da.data):
            _write_streamed(ds, da, Path(path))
            return
        data = np.asarray(da.values)
        if data.dtype.kind == "f":
            data = data.astype(np.float32, copy=False)
        elif data.dtype.kind == "b":
            data = data.astype(np.uint8)
        nib.save(_image(ds, da, data), str(path))


def _disk_dtype(dtype: Any) -> np.dtype:
    """The dtype a volume of ``dtype`` is stored as: float32 for floats, uint8 for booleans."""
    dt = np.dtype(dtype)
    return np.dtype(np.float32) if dt.kind == "f" else np.dtype(np.uint8) if dt.kind == "b" else dt


def _image(ds: xr.Dataset, da: xr.DataArray, data: Any) -> Any:
    """The nibabel image :meth:`NiftiAdapter.write` saves: ``data`` (an array, or a zero-strided
    stand-in of the output's shape and dtype for the streamed writer) with the header built from
    ``ds``'s attrs, the source header template and ``da``'s packing."""
    import nibabel as nib

    template = ds.encoding.get("nifti_header")
    big = max(data.shape) > 32767
    cls = nib.Nifti2Image if big or isinstance(template, nib.Nifti2Header) else nib.Nifti1Image
    hdr = cls.header_class.from_header(template) if template is not None else cls.header_class()
    img = cls(data, None, hdr)
    h = img.header
    h.set_data_dtype(data.dtype)
    sform = np.reshape(ds.attrs.get("sform", np.eye(4).ravel()), (4, 4))
    qform = np.reshape(ds.attrs.get("qform", sform.ravel()), (4, 4))
    img.set_sform(sform, code=int(ds.attrs.get("sform_code", 0)))
    img.set_qform(qform, code=int(ds.attrs.get("qform_code", 0)))
    zooms = ds.attrs.get("nifti_zooms")
    if zooms is not None and len(zooms) == data.ndim:
        h.set_zooms([float(z) for z in zooms])
    if data.dtype.kind == "f":
        h.set_slope_inter(np.nan, np.nan)
    else:
        slope = da.encoding.get("scl_slope", da.attrs.get("scale_factor", np.nan))  # CF packing too
        h.set_slope_inter(slope, da.encoding.get("scl_inter", da.attrs.get("add_offset", np.nan)))
    h["cal_min"], h["cal_max"] = 0.0, 0.0
    h["descrip"] = str(ds.attrs.get("descrip", ""))[:79].encode("latin-1", "replace")
    return img


def geometry_lost(ds: xr.Dataset, name: str) -> list[str]:
    """What of ``ds[name]``'s geometry a NIfTI file would drop: its spatial coordinates, 2-D
    coordinates and CRS/grid mapping; empty when ``ds`` carries a NIfTI affine or none of these."""
    if any(k in ds.attrs for k in ("sform", "qform")) or name not in ds.variables:
        return []
    from ..grid import axis_of, find_spatial_dims

    da = ds[name]
    lost: list[str] = []
    spatial = set(find_spatial_dims(da) or ())
    for cname, c in da.coords.items():
        on_grid = c.ndim == 1 and c.dims[0] in spatial and c.dtype.kind in "fiu"
        if on_grid or (c.ndim == 2 and axis_of(cname, c.attrs) is not None):
            lost.append(str(cname))
    gm = da.attrs.get("grid_mapping") or da.encoding.get("grid_mapping")
    if gm or "spatial_ref" in ds.variables:
        lost.append(f"CRS {gm or 'spatial_ref'}")
    return lost


def _geometry_message(name: str, lost: list[str]) -> str:
    return (
        f"NIfTI would lose the geometry of '{name}' ({', '.join(lost)}): a NIfTI file stores only a voxel "
        f"affine; write NetCDF, Zarr or GeoTIFF, or drop them first (ds.drop_vars(...)) to write a plain "
        f"voxel grid"
    )


def _check_nifti_dtype(dtype: Any, name: str) -> None:
    dt = np.dtype(dtype)
    if dt == np.float16 or dt.kind not in "fiub":
        raise ValueError(f"NIfTI cannot store '{name}' as {dt}; use dtype='float32' or an integer type")


class _NiftiReader:
    """Reads a block of a NIfTI volume as float32 physical values (slope/intercept applied)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __call__(self, key: tuple[Any, ...]) -> np.ndarray:
        import nibabel as nib

        return np.asarray(nib.load(self.path).dataobj[key], dtype=np.float32)


def _check_memory(
    da: xr.DataArray, pipe: Pipeline, scale: int, target: np.dtype, axes: tuple[int, int]
) -> None:
    """Refuse, before reading, a volume whose estimated memory exceeds what is available.

    The volume is read whole (float32, plus a transposed copy), each 3-D volume runs as one batch
    of slices, and the slices are stacked.
    """
    from . import memory

    vol = int(np.prod(da.shape[:3], dtype=np.int64))
    out_size = target.itemsize + 4 + (8 if target.kind in "iu" else 0)

    def plans_at(k: int) -> list[memory.VarPlan]:
        return [memory.VarPlan(int(da.size), vol, 4, out_size, 4)]

    fixes = []
    if da.ndim > 3:
        fixes.append(f"downscale fewer volumes (ds.isel({da.dims[3]}=[0]))")
    slab = next(d for i, d in enumerate(da.dims[:3]) if i not in axes) if da.ndim >= 3 else None
    if slab is not None:
        fixes.append(f"downscale fewer slices (ds.isel({slab}=slice(...)))")
    memory.check_call(plans_at, pipe, scale, f"downscaling {da.name} ×{scale}", fixes)


def pick_axes(axes: Sequence[int] | None, zooms: Sequence[float], ndim: int) -> tuple[int, int]:
    """The two voxel axes to refine: ``axes`` validated, or the two finest (ties → first).

    Raises:
        ValueError: Not two distinct spatial axes (0, 1 or 2).
    """
    n_sp = min(3, ndim)
    if axes is None:
        a, b = sorted(sorted(range(n_sp), key=lambda ax: (float(zooms[ax]), ax))[:2])
        return a, b
    ax = [int(v) + (n_sp if int(v) < 0 else 0) for v in axes]
    if len(ax) != 2 or ax[0] == ax[1] or not all(0 <= v < n_sp for v in ax):
        raise ValueError(f"axes={tuple(axes)} must name two different voxel axes among {tuple(range(n_sp))}")
    return min(ax), max(ax)


def refine_matrix(scale: int, axes: Sequence[int]) -> np.ndarray:
    """``S`` of DESIGN §4: ``diag(1/s)`` with translation ``(1/s - 1)/2`` on each refined axis.

    Shape:
        ``(4, 4)``.
    """
    S = np.eye(4)
    for ax in axes:
        S[ax, ax] = 1.0 / scale
        S[ax, 3] = (1.0 / scale - 1.0) / 2.0
    return S


def source_dtype(da: xr.DataArray) -> np.dtype:
    """On-disk dtype of the source volume (``dtype="source"``)."""
    return np.dtype(da.encoding.get("scisr_source_dtype", da.encoding.get("dtype", da.dtype)))


def _flat(m: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(m, dtype=np.float64).ravel()]


def _select(ds: xr.Dataset, variables: str | Sequence[str] | None) -> str:
    if variables is not None:
        names = [variables] if isinstance(variables, str) else list(variables)
        if len(names) != 1:
            raise ValueError(f"a NIfTI dataset holds one volume; pass one variable, got {names}")
        if names[0] not in ds.data_vars:
            raise ValueError(f"variable {names[0]!r} not in the dataset; available: {list(ds.data_vars)}")
        return str(names[0])
    if VAR in ds.data_vars:
        return VAR
    cands = [str(n) for n, v in ds.data_vars.items() if v.ndim >= 2]
    if len(cands) != 1:
        raise ValueError(
            f"cannot tell which variable is the volume among {cands or list(ds.data_vars)}; "
            f"name it '{VAR}' or pass variables="
        )
    return cands[0]


def _run_volume(
    arr: np.ndarray, pipe: Pipeline, axes: tuple[int, int], mask_background: bool
) -> tuple[np.ndarray, list]:
    """SR of every 2-D slice over ``axes``; statistics per volume (trailing dims ≥ 3).

    Shape:
        ``(I, J[, K[, T...]]) -> same with the two refined axes ×s``.
    """
    s = pipe.scale
    nd = arr.ndim
    a, b = axes
    c = pipe.in_channels
    slab = [d for d in range(min(3, nd)) if d not in axes]
    vols = list(range(3, nd))
    if c > 1:
        if nd != 4 or arr.shape[3] != c:
            raise ValueError(
                f"the model takes {c} channels; a NIfTI feeds channels from a 4-D volume's last dim "
                f"(shape {arr.shape}); use a 1-channel model"
            )
        perm = [*slab, 3, a, b]
    else:
        perm = [*vols, *slab, a, b]
    x = np.transpose(arr, perm).astype(np.float32, copy=False)
    h, w = x.shape[-2:]
    if c > 1:
        blocks = [x.reshape(-1, c, h, w)]
    else:
        blocks = list(x.reshape(-1, int(np.prod(x.shape[len(vols) : -2], dtype=int)), 1, h, w))
    out, norms = [], []
    for blk in blocks:
        nonzero = (blk != 0) & np.isfinite(blk)
        fit_valid = nonzero if nonzero.any() else None
        inp = np.where(blk == 0, np.float32(np.nan), blk) if mask_background else blk
        y, nz = run_block(pipe, inp, fit_valid, desc="sciSR nifti")
        if mask_background:
            bg = np.repeat(np.repeat(blk == 0, s, axis=-2), s, axis=-1)
            if y.shape[1] != blk.shape[1]:
                bg = bg.all(axis=1, keepdims=True)
            y[bg] = 0.0
        out.append(y)
        norms.extend(nz)
    y = np.concatenate(out) if c > 1 else np.stack(out)
    c_out = y.shape[-3]
    if c > 1:
        if c_out != c:
            raise ValueError(f"the model maps {c} channels to {c_out}; a NIfTI volume keeps its 4th dim")
        y = y.reshape(*[arr.shape[d] for d in slab], c, h * s, w * s)
    else:
        y = y.reshape(*[arr.shape[d] for d in vols], *[arr.shape[d] for d in slab], h * s, w * s)
    return np.transpose(y, np.argsort(perm)), norms


def _cast(y: np.ndarray, target: np.dtype, enc: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """float32 by default; integer output re-packed with the source slope/intercept (rounded, clipped)."""
    from ..dtypes import cast_output

    if target.kind == "f":
        return y.astype(target, copy=False), {"dtype": target}
    if target.kind not in "iu":
        raise TypeError(f"cannot store NIfTI voxels as {target}")
    slope, inter = enc.get("scl_slope"), enc.get("scl_inter", 0.0)
    new: dict[str, Any] = {"dtype": target, "scisr_source_dtype": target}
    raw = y.astype(np.float64)
    if slope is not None and target == np.dtype(enc.get("scisr_source_dtype", target)):
        raw = (raw - inter) / slope
        new.update(scl_slope=slope, scl_inter=inter)
    return cast_output(raw, target, target), new


def _refined_header(header: Any, axes: tuple[int, int]) -> Any:
    """Copy of ``header`` with slice timing reset when the slice axis is refined."""
    h = header.copy()
    freq, phase, slice_dim = h.get_dim_info()
    if slice_dim is not None and slice_dim in axes:
        h.set_dim_info(freq, phase, None)
        h["slice_code"], h["slice_start"], h["slice_end"], h["slice_duration"] = 0, 0, 0, 0.0
    return h


# ------------------------------------------------------------------------------------------ streaming
#: HR cells (float32) a streamed slab of slices aims at: 4 Mi cells = 16 MiB per output slab.
SLAB_HR_CELLS = 4 * 1024 * 1024
#: LR cells per chunk of the statistics passes (4 MiB of float32): each chunk of a pass returns a
#: 0.5 MiB count table per wanted rank (:mod:`sciSR.io.stream_stats`), so single-slice chunks would
#: cost more than the slices themselves.
FIT_LR_CELLS = 1024 * 1024


def _is_dask(data: Any) -> bool:
    return type(data).__module__.startswith("dask")


def _stream_volume(
    x: Any,
    pipe: Pipeline,
    axes: tuple[int, int],
    mask_background: bool,
    target: np.dtype,
    enc: dict[str, Any],
) -> tuple[Any, list, dict[str, Any]]:
    """:func:`_run_volume` and :func:`_cast` for a dask volume, as a lazy array computed slab by slab.

    Statistics are those of the in-memory path, from streaming passes over the whole volume
    (exact for ``percentile``, the MRI default, and ``minmax``; to float rounding for the other
    kinds). The result's blocks are slabs of consecutive slices along the loop (non-refined) axis,
    each run as one batch of 2-D slices with the volume's normalizers, so the values equal those
    of the in-memory path; one block holds about :data:`SLAB_HR_CELLS` HR cells.

    Returns:
        ``(hr, normalizers, encoding)``: dask array in ``x``'s dim order, with the refined axes ×s.

    Shape:
        ``(I, J[, K[, T...]]) -> same with the two refined axes ×s``.
    """
    import dask
    import dask.array as dsa
    from dask.highlevelgraph import HighLevelGraph

    s = pipe.scale
    nd = x.ndim
    a, b = axes
    c = pipe.in_channels
    loop = next((d for d in range(min(3, nd)) if d not in axes), None)
    if c > 1 and (nd != 4 or x.shape[3] != c):
        raise ValueError(
            f"the model takes {c} channels; a NIfTI feeds channels from a 4-D volume's last dim "
            f"(shape {tuple(x.shape)}); use a 1-channel model"
        )
    vol_dims = [] if c > 1 else list(range(3, nd))
    h, w = x.shape[a], x.shape[b]
    xs = x
    if loop is not None:  # few large chunks: each chunk of a streaming percentile pass costs a count table
        xs = x.rechunk({loop: min(x.shape[loop], max(1, FIT_LR_CELLS // max(1, h * w * c)))})
    norms: list = []
    per_volume: dict[tuple[int, ...], list] = {}
    for v in np.ndindex(*[x.shape[d] for d in vol_dims]):
        vol = xs[(slice(None),) * min(3, nd) + tuple(v)]
        if c > 1:
            chans = [vol[..., i] for i in range(c)]
            nonzero = (vol != 0) & dsa.isfinite(vol)
            masks = [nonzero[..., i] for i in range(c)]
        else:
            chans = [vol]
            masks = [(vol != 0) & dsa.isfinite(vol)]
        use_mask = bool(dsa.any(nonzero if c > 1 else masks[0]).compute())
        if mask_background:  # fitted on the masked input, as in memory: zeros count in no statistic
            chans = [dsa.where(ch == 0, np.float32(np.nan), ch) for ch in chans]
        with dask.config.set(scheduler="synchronous"):  # one chunk (and its count tables) at a time
            fitted = [_fit_streamed(pipe, ch, m if use_mask else None) for ch, m in zip(chans, masks)]
        per_volume[v] = fitted
        norms.extend(fitted)
    n_loop = x.shape[loop] if loop is not None else 1
    per_slab = max(1, SLAB_HR_CELLS // max(1, h * w * s * s * c))
    slabs = [(i, min(i + per_slab, n_loop)) for i in range(0, n_loop, per_slab)]
    out_shape = [n * (s if d in axes else 1) for d, n in enumerate(x.shape)]
    run_pipe = _quiet(pipe)
    task = _SlabTask(run_pipe, axes, loop, c, mask_background, target, enc)
    name = f"scisr-nifti-{uuid.uuid4().hex}"
    dsk: dict[Any, Any] = {}
    for v in np.ndindex(*[x.shape[d] for d in vol_dims]):
        for si, (l0, l1) in enumerate(slabs):
            sel: list[Any] = [slice(None)] * nd
            key: list[int] = [0] * nd
            if loop is not None:
                sel[loop] = slice(l0, l1)
                key[loop] = si
            for d, iv in zip(vol_dims, v):
                sel[d] = slice(iv, iv + 1)
                key[d] = iv
            dsk[(name, *key)] = (partial(task, x[tuple(sel)], per_volume[v]),)
    chunks = []
    for d, n in enumerate(out_shape):
        if d == loop:
            chunks.append(tuple(l1 - l0 for l0, l1 in slabs))
        elif d in vol_dims:
            chunks.append((1,) * n)
        else:
            chunks.append((n,))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[])
    meta = np.empty((0,) * nd, dtype=_cast(np.zeros(1, np.float32), target, enc)[0].dtype)
    _, new_enc = _cast(np.zeros(0, np.float32), target, enc)
    return dsa.Array(graph, name, tuple(chunks), meta=meta), norms, new_enc


def _quiet(pipe: Pipeline) -> Pipeline:
    """A shallow copy of ``pipe`` whose engine shows no per-window bar (the writer shows one over slabs)."""
    import copy

    p = copy.copy(pipe)
    p.engine = copy.copy(pipe.engine)
    p.engine.progress = False
    return p


def _fit_streamed(pipe: Pipeline, x: Any, mask: Any) -> Any:
    """One normalizer fitted on the dask volume ``x`` inside ``mask`` (all finite cells when ``None``),
    as :meth:`~sciSR.pipeline.Pipeline.fit` fits it on the loaded values; ``valid_range`` is that of
    every finite value.

    Raises:
        ValueError: No valid value.
    """
    import dask
    import dask.array as dsa

    from .stream_stats import fit_percentile
    from .xarray_core import fit_dask

    nz = pipe.make_normalizer()
    if not pipe.norm_params and nz.kind == "percentile":
        return fit_percentile(nz, x, VAR, mask=mask)
    if not pipe.norm_params:
        nz = fit_dask(pipe, x if mask is None else dsa.where(mask, x, np.nan), 0, 1, VAR)[0]
    xf = x.astype(np.float64)
    ok = dsa.isfinite(xf)
    n, lo, hi = dask.compute(ok.sum(), dsa.where(ok, xf, np.inf).min(), dsa.where(ok, xf, -np.inf).max())
    if int(n) == 0:
        raise ValueError("no valid values to downscale: every cell is nodata/NaN (or masked)")
    nz.valid_range = (float(lo), float(hi))
    return nz


class _SlabTask:
    """Computes the HR block of one slab of slices (one volume) from its LR dask block."""

    def __init__(
        self,
        pipe: Pipeline,
        axes: tuple[int, int],
        loop: int | None,
        c: int,
        mask_background: bool,
        target: np.dtype,
        enc: dict[str, Any],
    ) -> None:
        self.pipe, self.axes, self.loop, self.c = pipe, axes, loop, c
        self.mask_background, self.target, self.enc = mask_background, target, enc

    def __call__(self, lr: Any, normalizers: list) -> np.ndarray:
        arr = np.asarray(lr.compute(scheduler="synchronous") if _is_dask(lr) else lr)
        s = self.pipe.scale
        a, b = self.axes
        nd = arr.ndim
        lead = [] if self.loop is None else [self.loop]
        rest = [d for d in range(nd) if d not in (*lead, a, b)]  # volume dims (size 1) or channels
        perm = [*lead, *rest, a, b]
        blk = np.transpose(arr, perm).astype(np.float32, copy=False)
        blk = blk.reshape(-1, self.c, blk.shape[-2], blk.shape[-1])
        inp = np.where(blk == 0, np.float32(np.nan), blk) if self.mask_background else blk
        y = self.pipe.run(inp, normalizers, desc="sciSR nifti")
        if y.shape[1] != self.c:
            raise ValueError(
                f"the model maps {self.c} channels to {y.shape[1]}; a NIfTI volume keeps its 4th dim"
                if self.c > 1
                else f"the model maps 1 channel to {y.shape[1]}; a NIfTI volume holds one value per voxel"
            )
        if self.mask_background:
            bg = np.repeat(np.repeat(blk == 0, s, axis=-2), s, axis=-1)
            y[bg] = 0.0
        shape = [arr.shape[d] * (s if d in self.axes else 1) for d in perm]
        y = np.transpose(y.reshape(shape), np.argsort(perm))
        return _cast(y, self.target, self.enc)[0]


def _write_streamed(ds: xr.Dataset, da: xr.DataArray, path: Path) -> None:
    """Write the dask volume ``da`` block by block (header as :meth:`NiftiAdapter.write` makes it).

    NIfTI stores voxels in Fortran order after the header. When every dask block is one
    contiguous byte range (blocks spanning the leading axes whole, as slabs along the last
    stored axis are) the blocks are appended in file order, through a gzip stream for
    ``.nii.gz``; otherwise each block is stored through a memory map of an uncompressed file
    (``path`` itself, or a temporary sibling gzipped into ``path`` at the end).
    """
    import os
    import shutil

    from nibabel.arraywriters import get_slope_inter, make_array_writer
    from nibabel.openers import Opener

    from .streaming import progress_bar

    data = da.data
    out_dtype = _disk_dtype(da.dtype)
    img = _image(ds, da, np.broadcast_to(np.zeros((), out_dtype), data.shape))
    img.update_header()
    hdr = img.header
    disk = hdr.get_data_dtype()  # with the header's byte order
    slope = hdr["scl_slope"].item() if hdr.has_data_slope else np.nan
    inter = hdr["scl_inter"].item() if hdr.has_data_intercept else np.nan
    if np.all(np.isnan((slope, inter))):  # as nibabel's to_file_map: the writer's (identity) scaling
        writer = make_array_writer(np.zeros(1, out_dtype), disk, hdr.has_data_slope, hdr.has_data_intercept)
        hdr.set_slope_inter(*get_slope_inter(writer))
    order = _block_order(data.chunks)
    bar = progress_bar(len(order), "sciSR nifti")
    try:
        if all(_contiguous(data.chunks, idx) for idx in order):
            with Opener(str(path), "wb") as f:
                _write_header(hdr, f)
                for idx in order:
                    block = data.blocks[idx].compute(scheduler="synchronous")
                    f.write(np.asarray(block, dtype=disk).tobytes(order="F"))
                    bar.update(1)
            return
        gz = str(path).endswith(".gz")
        raw = Path(f"{path}.raw") if gz else path
        try:
            with open(raw, "wb") as f:
                _write_header(hdr, f)
                offset = int(hdr.get_data_offset())
                f.truncate(offset + int(np.prod(data.shape, dtype=np.int64)) * disk.itemsize)
            bounds = [np.cumsum((0, *c)) for c in data.chunks]
            for idx in order:
                block = np.asarray(data.blocks[idx].compute(scheduler="synchronous"), dtype=disk)
                mm = np.memmap(raw, dtype=disk, mode="r+", offset=offset, shape=data.shape, order="F")
                mm[tuple(slice(int(bd[i]), int(bd[i + 1])) for bd, i in zip(bounds, idx))] = block
                mm.flush()
                del mm
                bar.update(1)
            if gz:
                with open(raw, "rb") as src, Opener(str(path), "wb") as dst:
                    shutil.copyfileobj(src, dst, 16 << 20)
        finally:
            if gz and raw.exists():
                os.unlink(raw)
    finally:
        bar.close()


def _write_header(hdr: Any, f: Any) -> None:
    """The header (and extensions) at the start of ``f``, zero-padded up to the data offset."""
    hdr.write_to(f)
    pad = int(hdr.get_data_offset()) - f.tell()
    if pad > 0:
        f.write(b"\x00" * pad)


def _block_order(chunks: tuple[tuple[int, ...], ...]) -> list[tuple[int, ...]]:
    """Block indices in Fortran (file) order: the first axis varies fastest."""
    return [tuple(reversed(i)) for i in np.ndindex(*[len(c) for c in reversed(chunks)])]


def _contiguous(chunks: tuple[tuple[int, ...], ...], idx: tuple[int, ...]) -> bool:
    """Whether block ``idx`` is one contiguous byte range of the Fortran-ordered array."""
    sizes = [c[i] for c, i in zip(chunks, idx)]
    full = [len(c) == 1 for c in chunks]
    partial_at = next((d for d, f in enumerate(full) if not f), len(chunks))
    return all(n == 1 for n in sizes[partial_at + 1 :])

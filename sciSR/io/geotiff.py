"""GeoTIFF adapter (rasterio): bands, nodata, transform, CRS, tags, packing, COG output.

Dataset layout returned by :meth:`GeoTiffAdapter.open` (compatible with rioxarray):

- one variable ``band_data`` with dims ``(band, y, x)``, float32 (float64 sources stay
  float64) in *physical* units: band scales/offsets are applied and nodata/masked cells are NaN;
- coords ``band`` (1-based), ``y``/``x`` cell centres (omitted for rotated transforms),
  ``band_description`` (when any band has one) and ``spatial_ref`` (``crs_wkt``, ``GeoTransform``);
- ``band_data.attrs``: band tags shared by all bands (``units`` included); band-specific tags in
  the JSON attribute ``scisr_band_tags``; ``ds.attrs``: the dataset tags (``AREA_OR_POINT``...);
- ``band_data.encoding``: ``scisr_source_dtype`` (on disk), ``_FillValue`` (the nodata value), ``scales``,
  ``offsets``.

Packing rule (scale/offset applied once): float data in these datasets are physical values and
are written with scale 1 / offset 0; integer data are raw packed values and are written with the
band scales/offsets of their encoding. So ``dtype="source"`` re-packs the result into the source
integer type with the source scales/offsets (rounded and clipped), while the float32 default
stores physical values and never applies a packing twice.

Geometry (DESIGN §4): ``T_new = T @ Affine.scale(1/s)``, same CRS, identical bounds; the output
nodata mask is exactly the nearest-upsampled input mask. TIFFs without any georeferencing that
look like photos (8-bit with 1–4 bands, or 16-bit grey) are handed to the image adapter.

Dask-backed rasters (file-to-file calls chunk them, see :mod:`sciSR.io.streaming`) give a lazy
result computed region by region, and :meth:`GeoTiffAdapter.write` stores dask data window by window
into the tiled output (a COG is converted from that tiled file), never holding the whole raster.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..grid import STORAGE_ULPS, irregular_figures, regular_fit, storage_ulp
from ._stack import dataset_attrs, run_block, sr_attrs
from .base import Adapter, register_adapter
from .streaming import is_dask
from .xarray_core import output_dtype

if TYPE_CHECKING:
    from affine import Affine

    from ..pipeline import Pipeline

VAR = "band_data"
#: Attributes that are sciSR/xarray bookkeeping, never written as GeoTIFF tags.
_NOT_TAGS = (
    "scisr_format",
    "scisr_band_tags",
    "grid_mapping",
    "_FillValue",
    "long_name_bands",
    "coordinates",
    "scale_factor",
    "add_offset",
    "missing_value",
)


@register_adapter
class GeoTiffAdapter(Adapter):
    """GeoTIFF rasters in and out, bands looped (or stacked as channels of a multi-channel model)."""

    name = "geotiff"
    extensions = (".tif", ".tiff", ".cog.tif", ".cog.tiff")

    # ------------------------------------------------------------------ read
    def open(self, path: Path, **kw: Any) -> xr.Dataset:
        """Open the raster; its bands are read on first access (only the window asked for), as
        physical values: nodata/masked cells → NaN, band scales/offsets applied.

        Raises:
            ValueError: The file is not a readable raster.
        """
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                if _looks_like_photo(src):
                    from .image import ImageAdapter

                    return ImageAdapter().open(path, **kw)
                meta = _read_meta(src)
                from rasterio.windows import Window

                src.read(window=Window(src.width - 1, src.height - 1, 1, 1))  # truncated data fail here
                ds = _lazy_dataset(path, src, meta)
        ds.attrs["scisr_format"] = self.name
        ds.encoding["source"] = str(path)
        return ds

    # ------------------------------------------------------------------ geometry
    def spatial_dims(self, da: xr.DataArray, **kw: Any) -> tuple[str, str] | None:
        if "y" in da.dims and "x" in da.dims:
            return ("y", "x")
        return super().spatial_dims(da, **kw)

    # ------------------------------------------------------------------ downscale
    def downscale(
        self,
        ds: xr.Dataset,
        pipe: Pipeline,
        scale: int,
        *,
        variables: str | list[str] | None = None,
        dtype: Any = None,
        periodic: bool | None = None,
        channel_dim: str | None = None,
        **kw: Any,
    ) -> xr.Dataset:
        """Super-resolve the raster variables of a GeoTIFF-layout dataset.

        Bands (every non-spatial dim) are looped, each with its own statistics, unless the model
        takes several channels: then ``channel_dim`` (default ``band``) feeds them together.

        Args:
            ds: Dataset from :meth:`open` (dims ``(..., y, x)``).
            pipe: Built pipeline.
            scale: Integer factor.
            variables: Variables to downscale (default every one with ``y`` and ``x``).
            dtype: ``None`` (float32), ``"source"`` (re-pack into the source integer type) or a dtype.
            periodic: Wrap ``x``; default: a geographic CRS spanning 360°.
            channel_dim: Dim holding the model's channels (default ``band``).
            **kw: Generic-path options (``spatial_dims``) for datasets without ``y``/``x`` dims.

        Returns:
            Dataset on the refined grid: transform ``T @ Affine.scale(1/s)``, same CRS.

        Raises:
            ValueError: Unknown variables, channel mismatch, all-nodata bands, or NaN cells that
                an integer ``dtype`` without a nodata value cannot hold.
        """
        from affine import Affine

        if ds.attrs.get("scisr_format") == "image":  # a photo-like TIFF opened by the image adapter
            from .image import ImageAdapter

            return ImageAdapter().downscale(ds, pipe, scale, variables=variables, dtype=dtype, **kw)
        if not ("y" in ds.dims and "x" in ds.dims) or kw.get("spatial_dims") not in (None, ("y", "x")):
            return super().downscale(
                ds,
                pipe,
                scale,
                variables=variables,
                dtype=dtype,
                periodic=periodic,
                channel_dim=channel_dim,
                **kw,
            )
        names = _select(ds, variables)
        _check_memory(ds, names, pipe, scale, dtype)
        transform = dataset_transform(ds)
        new_t = transform @ Affine.scale(1.0 / scale)
        ny, nx = ds.sizes["y"] * scale, ds.sizes["x"] * scale
        crs = dataset_crs(ds)
        if periodic is None:
            periodic = _is_global_lon(transform, ds.sizes["x"], crs)
        coords = {k: v for k, v in ds.coords.items() if "y" not in v.dims and "x" not in v.dims}
        if new_t.b == 0 and new_t.d == 0:
            coords["y"] = ("y", new_t.f + (np.arange(ny) + 0.5) * new_t.e, ds["y"].attrs if "y" in ds else {})
            coords["x"] = ("x", new_t.c + (np.arange(nx) + 0.5) * new_t.a, ds["x"].attrs if "x" in ds else {})
        out = xr.Dataset(coords=coords, attrs=dict(ds.attrs))
        for name, da in ds.data_vars.items():
            if "y" not in da.dims and "x" not in da.dims:
                out[name] = da
        for name in names:
            var = _downscale_var(ds[name], pipe, scale, dtype, bool(periodic), channel_dim)
            changed = [d for d in var.dims if d in out.dims and var.sizes[d] != out.sizes[d]]
            if changed:  # a model with another output channel count: per-band coords no longer apply
                out = out.drop_vars([c for c in out.coords if set(out[c].dims) & set(changed)])
            out[name] = var
        out = _set_geo(out, new_t, crs)
        out.attrs = dataset_attrs(ds.attrs, pipe, scale, names, self.name)
        derived = ds.encoding.get("source") or ds.encoding.get("scisr_derived_from")
        if derived:
            out.encoding["scisr_derived_from"] = derived
        return out

    def finalize(self, out: xr.Dataset, src: xr.Dataset, scale: int) -> xr.Dataset:
        """Rewrite the transform after the generic path (a cached ``GeoTransform`` goes stale)."""
        from affine import Affine

        try:
            t = dataset_transform(src)
        except ValueError:
            return out
        return _set_geo(out, t @ Affine.scale(1.0 / scale), dataset_crs(src))

    # ------------------------------------------------------------------ write
    def check_writable(
        self, ds: xr.Dataset, variables: Any = None, dtype: Any = None, scale: int = 1
    ) -> None:
        """Refuse, before any computation, output a GeoTIFF cannot hold: more than one non-spatial
        dim per variable, an irregular grid, or a non-numeric dtype.

        Raises:
            ValueError: One line naming the problem and the fix.
        """
        from ..grid import Grid
        from .capability import planned_outputs

        for plan in planned_outputs(ds, variables, dtype):
            if len(plan.lead) > 1:
                d0 = plan.lead[0]
                raise ValueError(
                    f"a GeoTIFF holds one band dim but '{plan.name}' has {plan.lead} besides its spatial "
                    f"dims; select the others first (e.g. ds.isel({d0}=0)) or write NetCDF/Zarr"
                )
            if plan.dtype.kind not in "fiub":
                raise ValueError(f"a GeoTIFF cannot store {plan.dtype}; use a float or integer dtype")
            try:
                grid = Grid(ds, *plan.spatial)
            except ValueError as exc:
                raise ValueError(f"cannot write '{plan.name}' as GeoTIFF: {exc}") from None
            for ax in (grid.y, grid.x):
                if ax.values is not None and ax.size > 1 and ax.spacing is None:
                    kind = f"Gaussian latitudes, N={ax.gaussian}" if ax.gaussian else "irregular spacing"
                    raise ValueError(
                        f"a GeoTIFF needs a regular grid but '{ax.dim}' of '{plan.name}' is not ({kind}); "
                        f"write NetCDF or Zarr, or regrid first"
                    )

    def write(
        self,
        ds: xr.Dataset,
        path: Path,
        *,
        cog: bool | None = None,
        compress: str = "deflate",
        blocksize: int = 256,
        **kw: Any,
    ) -> None:
        """Write a tiled, compressed GeoTIFF (or a COG for ``.cog.tif`` / ``cog=True``).

        Every variable with the spatial dims becomes one band per slice of its other dim (at most
        one). Float data are written with NaN → nodata (the encoding's ``_FillValue``, else NaN);
        integer data keep their nodata and scales/offsets. Rows are stored north-up: south-up data
        (ascending ``y``/latitude) are flipped together with their transform.

        Raises:
            ValueError: No raster variable, more than one non-spatial dim, or no usable geometry.
            OSError: ``ENOSPC`` when the disk is full (libtiff's own stderr lines are not shown).
        """
        if ds.attrs.get("scisr_format") == "image":
            from .image import ImageAdapter

            ImageAdapter().write(ds, path, **kw)
            return
        from .write_errors import disk_full_as_oserror, quiet_libtiff

        bands = _collect_bands(ds, self)
        cog = Path(path).name.lower().endswith((".cog.tif", ".cog.tiff")) if cog is None else cog
        with disk_full_as_oserror(path), quiet_libtiff():
            if cog:
                tiled = path.with_name(path.name + ".tiled.tif")
                try:
                    _write_gtiff(bands, tiled, compress, blocksize)
                    _to_cog(tiled, path, compress, blocksize)
                finally:
                    tiled.unlink(missing_ok=True)
            else:
                _write_gtiff(bands, path, compress, blocksize)


# ====================================================================== reading helpers
def _looks_like_photo(src: Any) -> bool:
    """No CRS, no GCPs, identity transform and an image-like band layout."""
    if src.crs is not None or src.gcps[0] or not src.transform.is_identity:
        return False
    dt = src.dtypes[0]
    return (dt == "uint8" and src.count in (1, 2, 3, 4)) or (dt == "uint16" and src.count == 1)


def _read_meta(src: Any) -> dict[str, Any]:
    return dict(
        transform=src.transform,
        crs=src.crs,
        nodata=src.nodata,
        dtype=np.dtype(src.dtypes[0]),
        descriptions=list(src.descriptions),
        tags=src.tags(),
        band_tags=[src.tags(i) for i in src.indexes],
        units=list(src.units),
        scales=list(src.scales),
        offsets=list(src.offsets),
    )


def _physical(
    raw: np.ndarray, valid: np.ndarray, scales: Sequence[float], offsets: Sequence[float]
) -> np.ndarray:
    """Physical float values of raw bands: scales/offsets applied, invalid cells NaN.

    Shape:
        ``(bands, H, W) -> (bands, H, W)``.
    """
    fdt = np.float64 if raw.dtype == np.float64 else np.float32
    vals = raw.astype(fdt)
    if raw.dtype.kind == "f":
        valid = valid & np.isfinite(raw)
    for i, (sc, off) in enumerate(zip(scales, offsets)):
        if (sc, off) != (1.0, 0.0):
            vals[i] = vals[i] * fdt(sc) + fdt(off)
    vals[~valid] = np.nan
    return vals


def _build_dataset(raw: np.ndarray, valid: np.ndarray, meta: dict[str, Any]) -> xr.Dataset:
    """``(band, y, x)`` physical float values (NaN invalid) with rioxarray-style geometry."""
    return _assemble(_physical(raw, valid, meta["scales"], meta["offsets"]), meta)


def _assemble(values: np.ndarray | xr.Variable, meta: dict[str, Any]) -> xr.Dataset:
    """The GeoTIFF-layout Dataset around ``values`` (an array, or a lazy ``(band, y, x)`` variable)."""
    count, h, w = values.shape
    t = meta["transform"]
    coords: dict[str, Any] = {"band": ("band", np.arange(1, count + 1))}
    if t.b == 0 and t.d == 0:
        coords["y"] = ("y", t.f + (np.arange(h) + 0.5) * t.e)
        coords["x"] = ("x", t.c + (np.arange(w) + 0.5) * t.a)
    if any(meta["descriptions"]):
        coords["band_description"] = ("band", np.array([d or "" for d in meta["descriptions"]], dtype=object))
    attrs, band_specific = _split_band_tags(meta["band_tags"], meta["units"])
    if band_specific:
        attrs["scisr_band_tags"] = json.dumps(band_specific, sort_keys=True)
    dims = None if isinstance(values, xr.Variable) else ("band", "y", "x")
    da = xr.DataArray(values, dims=dims, coords=coords, attrs=attrs)
    da.encoding.update(
        scisr_source_dtype=meta["dtype"], scales=tuple(meta["scales"]), offsets=tuple(meta["offsets"])
    )
    if meta["nodata"] is not None:
        da.encoding["_FillValue"] = meta["nodata"]
    ds = xr.Dataset({VAR: da}, attrs={k: v for k, v in meta["tags"].items()})
    return _set_geo(ds, t, meta["crs"])


class _RasterReader:
    """Reads a window of bands of a raster as physical values (picklable: path and metadata).

    Called with a basic key ``(band, y, x)`` of ints/slices (see :mod:`sciSR.io.lazy`).
    """

    def __init__(
        self, path: Path, shape: tuple[int, int, int], scales: Sequence[float], offsets: Sequence[float]
    ):
        self.path = str(path)
        self.shape = shape
        self.scales = list(scales)
        self.offsets = list(offsets)

    def __call__(self, key: tuple[Any, ...]) -> np.ndarray:
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning
        from rasterio.windows import Window

        from .lazy import covering_slice, key_ranges

        (bs, bi), (ys, yi), (xs, xi) = (covering_slice(r) for r in key_ranges(key, self.shape))
        bands = list(range(self.shape[0]))[bs]
        height, width = ys.stop - ys.start, xs.stop - xs.start
        if not bands or height <= 0 or width <= 0:
            vals = np.empty((len(bands), max(height, 0), max(width, 0)), np.float32)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(self.path) as src:
                    win = Window(xs.start, ys.start, width, height)
                    idx = [b + 1 for b in bands]
                    raw = src.read(idx, window=win)
                    valid = src.read_masks(idx, window=win) > 0
            vals = _physical(raw, valid, [self.scales[b] for b in bands], [self.offsets[b] for b in bands])
        return vals[bi, yi, xi]


def _lazy_dataset(path: Path, src: Any, meta: dict[str, Any]) -> xr.Dataset:
    """The GeoTIFF-layout Dataset whose ``band_data`` is read on access (window by window)."""
    from .lazy import lazy_variable

    shape = (src.count, src.height, src.width)
    disk = meta["dtype"]
    fdt = np.float64 if disk == np.float64 else np.float32
    var = lazy_variable(
        ("band", "y", "x"),
        shape,
        fdt,
        _RasterReader(path, shape, meta["scales"], meta["offsets"]),
        what=f"{path}",
        bytes_per_value=disk.itemsize + 2 * np.dtype(fdt).itemsize + 2,
        fix="read a window (ds.isel(y=slice(...), x=slice(...))) or fewer bands",
    )
    return _assemble(var, meta)


def _split_band_tags(band_tags: list[dict[str, str]], units: list[str | None]) -> tuple[dict[str, Any], list]:
    """Tags equal on every band (``units`` included) and the band-specific rest."""
    tags = [dict(t) for t in band_tags]
    for t, u in zip(tags, units):
        if u:
            t.setdefault("units", u)
    common = {k: v for k, v in tags[0].items() if all(t.get(k) == v for t in tags)} if tags else {}
    rest = [{k: v for k, v in t.items() if k not in common} for t in tags]
    return common, (rest if any(rest) else [])


def _set_geo(ds: xr.Dataset, transform: Affine, crs: Any) -> xr.Dataset:
    """Attach CRS and the (always rewritten) transform on ``spatial_ref`` (rioxarray layout)."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    ds = ds.drop_vars("spatial_ref", errors="ignore")
    for v in ds.data_vars.values():
        v.attrs.pop("grid_mapping", None)
        v.encoding.pop("grid_mapping", None)
    if crs is not None:
        ds = ds.rio.write_crs(crs)
    ds = ds.rio.write_transform(transform)
    for v in ds.data_vars.values():  # xarray keeps grid_mapping in the encoding
        v.attrs.pop("grid_mapping", None)
        if "y" in v.dims and "x" in v.dims:
            v.encoding["grid_mapping"] = "spatial_ref"
    return ds


def dataset_crs(ds: xr.Dataset) -> Any:
    """``rasterio.crs.CRS`` of ``ds`` (``spatial_ref``/CF grid mapping) or ``None``."""
    import rioxarray  # noqa: F401

    try:
        crs = ds.rio.crs
    except Exception:
        crs = None
    if crs is None:  # a grid-mapping *data* variable (CF files read without decode_coords="all")
        from rasterio.crs import CRS

        names = ["spatial_ref"] + [
            str(v.encoding.get("grid_mapping", v.attrs.get("grid_mapping"))) for v in ds.data_vars.values()
        ]
        for name in dict.fromkeys(names):
            attrs = ds[name].attrs if name in ds.variables else {}
            wkt = attrs.get("crs_wkt") or attrs.get("spatial_ref")
            try:
                if wkt:
                    crs = CRS.from_wkt(wkt)
                elif "grid_mapping_name" in attrs:
                    import pyproj

                    crs = CRS.from_wkt(pyproj.CRS.from_cf(attrs).to_wkt())
            except Exception:  # not a usable CRS description: try the next candidate
                crs = None
            if crs is not None:
                break
    return crs


def dataset_transform(ds: xr.Dataset, ydim: str = "y", xdim: str = "x") -> Affine:
    """Affine transform of ``ds``: ``spatial_ref.GeoTransform`` if the coordinates agree with it.

    Regular 1-D centre coordinates win over a cached ``GeoTransform`` that disagrees with them
    (other tools leave it stale after reindexing); when they agree the stored transform is used
    as is, so exact values are not replaced by ones recomputed from rounded coordinates.

    Raises:
        ValueError: Irregular coordinates, or neither coordinates nor a ``GeoTransform``.
    """
    from affine import Affine

    gt = ds["spatial_ref"].attrs.get("GeoTransform") if "spatial_ref" in ds.coords else None
    stored = Affine.from_gdal(*[float(v) for v in str(gt).split()]) if gt else None
    if ydim in ds.coords and xdim in ds.coords and ds[ydim].ndim == 1 and ds[xdim].ndim == 1:
        (dy, y0, uy), (dx, x0, ux) = (
            _spacing(ds[ydim], ydim, stored.e if stored else None),
            _spacing(ds[xdim], xdim, stored.a if stored else None),
        )
        derived = Affine(dx, 0.0, x0 - dx / 2, 0.0, dy, y0 - dy / 2)
        tol = max(1e-6 * max(abs(dx), abs(dy)), STORAGE_ULPS * max(ux, uy))
        if stored is not None and np.allclose(tuple(stored)[:6], tuple(derived)[:6], rtol=0, atol=tol):
            return stored
        return derived
    if stored is not None:
        return stored
    if ydim in ds.dims and xdim in ds.dims:
        return Affine.identity()  # plain pixel grid
    raise ValueError(
        f"no georeferencing found: expected 1-D '{ydim}'/'{xdim}' coords or spatial_ref.GeoTransform"
    )


def _spacing(coord: xr.DataArray, dim: str, stored: float | None = None) -> tuple[float, float, float]:
    """``(step, first centre, storage ulp)`` of a regular 1-D coordinate.

    Coordinates regular only to their storage precision (float32-rounded) give the fitted grid
    (see :func:`sciSR.grid.regular_fit`).

    Raises:
        ValueError: A single coordinate without a stored transform, or irregular spacing.
    """
    c = np.asarray(coord.values, dtype=np.float64)
    disk = np.dtype(coord.encoding.get("dtype", coord.dtype))
    if c.size < 2:
        if stored is not None:
            return stored, float(c[0]), 0.0
        raise ValueError(
            f"cannot infer the cell size of '{dim}' from a single coordinate; set spatial_ref.GeoTransform"
        )
    fit = regular_fit(c, disk)
    if fit is None:
        raise ValueError(f"{irregular_figures(dim, c, disk)}: a GeoTIFF needs a regular grid; regrid first")
    return fit.step, fit.origin, storage_ulp(c, disk)


def _is_global_lon(t: Affine, width: int, crs: Any) -> bool:
    if crs is None or not getattr(crs, "is_geographic", False) or t.b != 0:
        return False
    return abs(abs(t.a) * width - 360.0) < 1e-6 * 360


def _select(ds: xr.Dataset, variables: str | Sequence[str] | None) -> list[str]:
    raster = [n for n, v in ds.data_vars.items() if "y" in v.dims and "x" in v.dims]
    if variables is None:
        if not raster:
            raise ValueError(
                f"no variable with dims ('y', 'x') in the dataset (variables: {list(ds.data_vars)})"
            )
        return [str(n) for n in raster]
    names = [variables] if isinstance(variables, str) else list(variables)
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise ValueError(
            f"variable(s) {missing} not in the dataset; available: {[str(n) for n in ds.data_vars]}"
        )
    flat = [n for n in names if n not in raster]
    if flat:
        raise ValueError(f"variable(s) {flat} have no ('y', 'x') dims; raster variables: {raster}")
    return names


# ====================================================================== downscale helpers
def _check_memory(ds: xr.Dataset, names: list[str], pipe: Pipeline, scale: int, dtype: Any) -> None:
    """Refuse, before reading, a call whose estimated memory exceeds what is available.

    Bands are read whole and run one block (``C × H × W``) at a time; outputs are stacked.
    """
    from . import memory

    c = max(1, int(pipe.in_channels))

    def plans_at(k: int) -> list[memory.VarPlan]:
        plans = []
        for n in names:
            da = ds[n]
            src = source_dtype(da)
            out = output_dtype(src, dtype)
            out_size = out.itemsize + 4 + (8 if out.kind in "iu" else 0)  # stacked copy, float64 cast staging
            if da.chunks is not None:  # streamed: region by region (STREAM_WORKERS blocks at once)
                from .streaming import STREAM_WORKERS, region_grid, stream_pipeline

                rows, cols = region_grid(stream_pipeline(pipe), (da.sizes["y"], da.sizes["x"]))
                block = c * max(b - a for a, b in rows) * max(b - a for a, b in cols)
                plans.append(memory.VarPlan(block, block, 8, out_size, 4, True, STREAM_WORKERS))
                continue
            block = c * da.sizes["y"] * da.sizes["x"]
            plans.append(memory.VarPlan(int(da.size), block, src.itemsize + 2, out_size, da.dtype.itemsize))
        return plans

    bands = [d for n in names for d in ds[n].dims if d not in ("y", "x") and ds[n].sizes[d] > 1]
    fixes = [f"downscale fewer bands (ds.isel({bands[0]}=[0]))" if bands else None]
    fixes.append("downscale a window (ds.isel(y=slice(...), x=slice(...)); only that window is read)")
    memory.check_call(plans_at, pipe, scale, f"downscaling {', '.join(names)} ×{scale}", fixes)


def _downscale_var(
    da: xr.DataArray, pipe: Pipeline, scale: int, dtype: Any, periodic: bool, channel_dim: str | None
) -> xr.DataArray:
    """One variable: loop its non-spatial dims (or feed ``channel_dim`` as channels).

    Shape:
        ``(..., y, x) -> (..., s·y, s·x)`` (the channel dim takes the model's output count).
    """
    lead, cdim = _layout(da, pipe, channel_dim)
    c = pipe.in_channels
    if da.chunks is not None:
        return _downscale_var_stream(da, pipe, scale, dtype, periodic, lead, cdim)
    arr = da.transpose(*lead, "y", "x").values
    h, w = arr.shape[-2:]
    blocks = arr.reshape(-1, c, h, w)
    src = source_dtype(da)
    hr = []
    norms = []
    for b in blocks:
        y, nz = run_block(
            pipe,
            b[None].astype(np.float32 if b.dtype != np.float64 else np.float64, copy=False),
            periodic_x=periodic,
            desc=f"sciSR {da.name}",
        )
        hr.append(y[0])
        norms.extend(nz)
    c_out = hr[0].shape[0]
    if cdim is None and c_out != 1:
        raise ValueError(f"a 1-channel model must return 1 channel per band, got {c_out}")
    y = np.stack(hr)  # (N, c_out, sH, sW)
    out_lead = [d for d in lead if d != cdim]
    shape = [da.sizes[d] for d in out_lead]
    if cdim is not None:
        y = y.reshape(*shape, c_out, h * scale, w * scale)
        dims = [*out_lead, cdim, "y", "x"]
    else:
        y = y.reshape(*shape, h * scale, w * scale)
        dims = [*out_lead, "y", "x"]
    enc = dict(da.encoding)
    nodata = enc.get("_FillValue")
    band_axis = dims.index("band") if "band" in dims else None
    values, enc = _cast(y, src, dtype, nodata, enc, band_axis)
    return _result_var(da, values, dims, cdim, c, c_out, enc, pipe, scale, norms)


def _layout(da: xr.DataArray, pipe: Pipeline, channel_dim: str | None) -> tuple[list[str], str | None]:
    """Loop dims of ``da`` in processing order (the channel dim last) and the channel dim, if any.

    Raises:
        ValueError: A multi-channel model without a matching channel dim.
    """
    lead = [str(d) for d in da.dims if d not in ("y", "x")]
    c = pipe.in_channels
    cdim = None
    if c > 1:
        cdim = channel_dim or ("band" if "band" in lead else None)
        if cdim is None or cdim not in lead or da.sizes[cdim] != c:
            have = {d: da.sizes[d] for d in lead}
            raise ValueError(
                f"the model takes {c} channels but '{da.name}' has non-spatial dims {have}; "
                f"use a 1-channel model (bands are then looped) or pass channel_dim="
            )
        lead = [d for d in lead if d != cdim] + [cdim]
    return lead, cdim


def _result_var(
    da: xr.DataArray,
    values: Any,
    dims: list[str],
    cdim: str | None,
    c: int,
    c_out: int,
    enc: dict[str, Any],
    pipe: Pipeline,
    scale: int,
    norms: list[Any],
) -> xr.DataArray:
    """The output variable around ``values`` (numpy or dask): attrs, coords and encoding."""
    attrs = sr_attrs(da.attrs, pipe, scale, norms)
    if "scisr_band_tags" in attrs:  # per-band statistics are stale after refinement
        per_band = [
            {k: v for k, v in t.items() if not k.startswith("STATISTICS_")}
            for t in json.loads(attrs["scisr_band_tags"])
        ]
        attrs["scisr_band_tags"] = json.dumps(per_band, sort_keys=True)
    coords = {d: da.coords[d] for d in dims if d in da.coords and d not in ("y", "x")}
    if cdim is not None and c_out != c:
        coords.pop(cdim, None)
    out = xr.DataArray(values, dims=dims, coords=coords, attrs=attrs, name=da.name)
    out = out.transpose(*[d for d in da.dims if d in dims])
    out.encoding.update({k: v for k, v in enc.items() if k in ("dtype", "_FillValue", "scales", "offsets")})
    if out.dtype.kind in "iu":
        out.encoding["scisr_source_dtype"] = out.dtype
    return out


def _downscale_var_stream(
    da: xr.DataArray,
    pipe: Pipeline,
    scale: int,
    dtype: Any,
    periodic: bool,
    lead: list[str],
    cdim: str | None,
) -> xr.DataArray:
    """:func:`_downscale_var` for a dask-backed variable: a lazy result computed region by region.

    Each loop item (band) gets normalizers from streaming reductions over the whole band; its HR
    blocks are computed by :func:`sciSR.io.streaming.region_array` and cast block by block with
    the same rules as the eager path.

    Shape:
        ``(..., y, x) -> (..., s·y, s·x)``.
    """
    import dask.array as dsa

    from .streaming import fit_stream, region_array, region_layout

    c = pipe.in_channels
    spec = getattr(pipe.model, "spec", None)
    c_out = int(getattr(spec, "out_channels", c) or c) if cdim is not None else 1
    arr = da.transpose(*lead, "y", "x").data
    out_lead = [d for d in lead if d != cdim]
    shape = [da.sizes[d] for d in out_lead]
    dims = [*out_lead, *([cdim] if cdim else []), "y", "x"]
    src = source_dtype(da)
    enc = dict(da.encoding)
    nodata = enc.get("_FillValue")
    target = output_dtype(src, dtype)
    _, out_enc = _cast(np.zeros((1, 1, 1), np.float32), src, dtype, nodata, enc, None)
    scales, offsets = enc.get("scales"), enc.get("offsets")
    items, norms = [], []
    layout = None
    for idx in np.ndindex(*shape):
        x = arr[idx] if cdim is not None else arr[idx][None]
        nz = fit_stream(pipe, x, da.name)
        norms.extend(nz)
        item_enc, axis = dict(enc), None
        if "band" in dims and cdim == "band":
            axis = 0
        elif "band" in out_lead and scales is not None and len(scales) == da.sizes["band"]:
            b = idx[out_lead.index("band")]
            item_enc["scales"], item_enc["offsets"] = (scales[b],), (offsets[b],)
            axis = 0

        def cast(y: np.ndarray, e: dict[str, Any] = item_enc, ax: int | None = axis) -> np.ndarray:
            return _cast(y, src, dtype, nodata, e, ax)[0]

        if layout is None:  # planned once for every band
            layout = region_layout(pipe, (da.sizes["y"], da.sizes["x"]), periodic)
        hr = region_array(
            x,
            pipe,
            nz,
            cast=cast,
            out_dtype=target,
            c_out=c_out,
            periodic_x=periodic,
            desc=f"sciSR {da.name}",
            layout=layout,
        )
        items.append(hr if cdim is not None else hr[0])
    y = dsa.stack(items).reshape(*shape, *items[0].shape) if items else None
    return _result_var(da, y, dims, cdim, c, c_out, out_enc, pipe, scale, norms)


def source_dtype(da: xr.DataArray) -> np.dtype:
    """The on-disk dtype ``dtype="source"`` restores (``scisr_source_dtype``/``dtype`` encoding)."""
    enc = da.encoding
    return np.dtype(enc.get("scisr_source_dtype", enc.get("rasterio_dtype", enc.get("dtype", da.dtype))))


def _cast(
    y: np.ndarray, src: np.dtype, dtype: Any, nodata: Any, enc: dict[str, Any], band_axis: int | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply the output dtype; integer output is re-packed with the band scales/offsets.

    Invalid (NaN) cells get the nodata value; a valid cell that rounds onto the nodata value is
    moved one step away from it so the mask stays exactly the nearest-upsampled input mask.
    """
    target = output_dtype(src, dtype)
    enc = dict(enc)
    enc["dtype"] = target
    if target.kind == "f":
        enc.pop("scales", None)
        enc.pop("offsets", None)
        return y.astype(target, copy=False), enc
    if target.kind not in "iu":
        raise TypeError(f"cannot write raster values as {target}; use a float or integer dtype")
    raw = y.astype(np.float64)
    scales, offsets = enc.get("scales"), enc.get("offsets")
    if scales is not None and band_axis is not None and len(scales) == raw.shape[band_axis]:
        shape = [1] * raw.ndim
        shape[band_axis] = -1
        raw = (raw - np.reshape(offsets, shape)) / np.reshape(scales, shape)
    elif scales is not None and len(set(scales)) == 1 and len(set(offsets)) == 1:
        raw = (raw - offsets[0]) / scales[0]
    invalid = np.isnan(raw)
    info = np.iinfo(target)
    usable = nodata is not None and np.isfinite(nodata) and info.min <= nodata <= info.max
    if invalid.any() and not usable:
        raise ValueError(
            f"the output has nodata (NaN) cells that {target} cannot mark: the source has no "
            f"usable nodata value ({nodata}); keep the float32 default"
        )
    from ..dtypes import cast_output

    out = cast_output(np.where(invalid, 0.0, raw), src, target)
    if usable:
        nd = target.type(nodata)
        clash = ~invalid & (out == nd)
        out[clash] = nd + 1 if nd < info.max else nd - 1
        out[invalid] = nd
    return out, enc


# ====================================================================== writing helpers
def _collect_bands(ds: xr.Dataset, adapter: Adapter) -> dict[str, Any]:
    """Stack every raster variable into ``(count, H, W)`` with per-band metadata and geometry."""
    names = [n for n, v in ds.data_vars.items() if adapter.spatial_dims(v) is not None]
    if not names:
        raise ValueError(
            f"nothing to write as GeoTIFF: no variable has spatial dims (variables: {list(ds.data_vars)})"
        )
    ydim, xdim = adapter.spatial_dims(ds[names[0]])  # type: ignore[misc]
    dtype = _band_dtype([ds[n].dtype for n in names])
    arrays, descs, btags, scales, offsets, nodatas = [], [], [], [], [], []
    multi = len(names) > 1
    for name in names:
        da = ds[name]
        lead = [d for d in da.dims if d not in (ydim, xdim)]
        if len(lead) > 1:
            raise ValueError(
                f"'{name}' has {len(lead)} non-spatial dims {lead}; a GeoTIFF holds one band dim: "
                f"select the others first (e.g. ds.isel({lead[0]}=0))"
            )
        a = da.transpose(*lead, ydim, xdim).data
        if not is_dask(a):
            a = np.asarray(a)
        a = a.reshape(-1, *a.shape[-2:])
        n = a.shape[0]
        enc = dict(da.encoding)
        if (
            a.dtype.kind in "iu"
            and enc.get("scales") is None
            and ("scale_factor" in da.attrs or "add_offset" in da.attrs)
        ):
            # CF-packed integers (undecoded, as dtype="source" gives them): the packing becomes band scales
            enc["scales"] = (float(da.attrs.get("scale_factor", 1.0)),) * n
            enc["offsets"] = (float(da.attrs.get("add_offset", 0.0)),) * n
        packed = a.dtype.kind in "iu" and enc.get("scales") is not None and len(enc["scales"]) == n
        if packed and dtype.kind == "f":  # mixed with float variables: unpack to physical values
            a = a * np.reshape(enc["scales"], (-1, 1, 1)) + np.reshape(enc["offsets"], (-1, 1, 1))
            packed = False
        arrays.append(a.astype(dtype, copy=False))
        scales.extend(enc["scales"] if packed else [1.0] * n)
        offsets.extend(enc["offsets"] if packed else [0.0] * n)
        per_band = json.loads(da.attrs["scisr_band_tags"]) if "scisr_band_tags" in da.attrs else []
        if len(per_band) != n:
            per_band = [{}] * n
        common = {k: _tag(v) for k, v in da.attrs.items() if k not in _NOT_TAGS and _tag(v) is not None}
        btags.extend({**common, **pb} for pb in per_band)
        descs.extend(_band_descriptions(da, name, lead, n, multi))
        nodatas.append(enc.get("_FillValue", da.attrs.get("_FillValue")))
    lazy = any(is_dask(a) for a in arrays)
    if lazy:
        import dask.array as dsa

        data = dsa.concatenate(arrays)
    else:
        data = np.concatenate(arrays)
    nodata = next((v for v in nodatas if v is not None), None)
    nan_nodata = False  # streamed float data without nodata: NaN becomes nodata once a block has one
    if dtype.kind == "f":
        if nodata is None and lazy:
            nan_nodata = True
        elif nodata is None and np.isnan(data).any():
            nodata = float("nan")
        if nodata is not None and not np.isnan(nodata):
            nd = dtype.type(nodata)
            data = data.map_blocks(_fill_nodata, nd, dtype=dtype) if lazy else _fill_nodata(data, nd)
    tmp = ds[names[0]]
    geo = xr.Dataset(coords={c: tmp.coords[c] for c in (ydim, xdim) if c in tmp.coords})
    if "spatial_ref" in ds.coords:
        geo = geo.assign_coords(spatial_ref=ds["spatial_ref"])
    transform = dataset_transform(geo, ydim, xdim)
    crs = (
        dataset_crs(ds)
        if "spatial_ref" in ds.variables
        or any("grid_mapping" in ds[n].attrs or "grid_mapping" in ds[n].encoding for n in names)
        else None
    )
    if crs is None and _is_latlon(ds, ydim, xdim):
        from rasterio.crs import CRS

        crs = CRS.from_epsg(4326)
    if transform.e > 0 and transform.b == 0 and transform.d == 0:  # south-up rows → north-up
        from affine import Affine

        data = data[:, ::-1, :]
        h = data.shape[1]
        transform = Affine(transform.a, 0.0, transform.c, 0.0, -transform.e, transform.f + h * transform.e)
    tags = {k: _tag(v) for k, v in ds.attrs.items() if k not in _NOT_TAGS and _tag(v) is not None}
    return dict(
        data=data if lazy else np.ascontiguousarray(data),
        nan_nodata=nan_nodata,
        transform=transform,
        crs=crs,
        nodata=nodata,
        descriptions=descs,
        band_tags=btags,
        tags=tags,
        scales=scales,
        offsets=offsets,
    )


def _fill_nodata(data: np.ndarray, nd: Any) -> np.ndarray:
    """NaN → ``nd``; a valid value equal to ``nd`` moves one float step away (the mask stays exact)."""
    invalid = np.isnan(data)
    clash = ~invalid & (data == nd)
    if clash.any():
        data = data.copy()
        data[clash] = np.nextafter(nd, data.dtype.type(np.inf) if nd < 0 else data.dtype.type(-np.inf))
    return np.where(invalid, nd, data)


def _band_dtype(dtypes: list[np.dtype]) -> np.dtype:
    """One GeoTIFF dtype for all bands (bool → uint8, float16 → float32)."""
    dt = np.result_type(*dtypes)
    if dt.kind == "b":
        return np.dtype(np.uint8)
    if dt.kind == "f":
        return np.dtype(np.float64 if dt == np.float64 else np.float32)
    if dt.kind in "iu":
        return dt
    raise TypeError(f"cannot write {dt} data as GeoTIFF; convert to a numeric dtype")


def _tag(v: Any) -> str | None:
    if isinstance(v, (str, int, float, np.number, np.bool_, bool)):
        return str(v)
    if isinstance(v, (list, tuple, np.ndarray)) and np.size(v) <= 64:
        return " ".join(str(x) for x in np.asarray(v).ravel())
    return None


def _band_descriptions(da: xr.DataArray, name: str, lead: list[str], n: int, multi: bool) -> list[str]:
    if lead and "band_description" in da.coords and da["band_description"].dims == (lead[0],):
        return [str(d) for d in da["band_description"].values]
    if not lead:
        return [str(da.attrs.get("long_name", name)) if multi or name != VAR else ""]
    if name == VAR and not multi:
        return [""] * n
    vals = da[lead[0]].values if lead[0] in da.coords else np.arange(n)
    return [f"{name} {lead[0]}={v}" for v in vals]


def _is_latlon(ds: xr.Dataset, ydim: str, xdim: str) -> bool:
    def units(d: str) -> str:
        return str(ds[d].attrs.get("units", "")) if d in ds.coords else ""

    return (units(ydim).startswith("degree") and units(xdim).startswith("degree")) or (
        ydim.lower() in ("lat", "latitude") and xdim.lower() in ("lon", "longitude")
    )


def _write_gtiff(b: dict[str, Any], path: Path, compress: str, blocksize: int) -> None:
    import rasterio

    data = b["data"]
    count, h, w = data.shape
    profile = dict(
        driver="GTiff",
        width=w,
        height=h,
        count=count,
        dtype=data.dtype.name,
        crs=b["crs"],
        transform=b["transform"],
        nodata=b["nodata"],
        tiled=True,
        blockxsize=blocksize,
        blockysize=blocksize,
        compress=compress,
        BIGTIFF="IF_SAFER",
    )
    if compress.lower() in ("deflate", "lzw", "zstd"):
        profile["predictor"] = 3 if data.dtype.kind == "f" else 2
    if count > 1:
        profile["interleave"] = "band"
    if is_dask(data):
        with rasterio.open(path, "w", **profile) as dst:
            saw_nan = _store_blocks(data, dst)
            if b.get("nan_nodata") and saw_nan:
                dst.nodata = float("nan")
            _write_band_meta(dst, b, count)
        return
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        _write_band_meta(dst, b, count)


def _write_band_meta(dst: Any, b: dict[str, Any], count: int) -> None:
    """Band descriptions, units, tags, scales/offsets and dataset tags of an open output."""
    for i in range(count):
        if b["descriptions"][i]:
            dst.set_band_description(i + 1, b["descriptions"][i])
        tags = dict(b["band_tags"][i])
        unit = tags.pop("units", None)
        if unit:
            dst.set_band_unit(i + 1, unit)
        if tags:
            dst.update_tags(i + 1, **tags)
    if any(s != 1.0 for s in b["scales"]) or any(o != 0.0 for o in b["offsets"]):
        dst.scales = tuple(b["scales"])
        dst.offsets = tuple(b["offsets"])
    if b["tags"]:
        dst.update_tags(**b["tags"])


class _WindowWriter:
    """``dask.array.store`` target writing each ``(band, y, x)`` block into a rasterio dataset."""

    def __init__(self, dst: Any, total: int) -> None:
        from .safety import abandoned_check
        from .streaming import progress_bar

        self.dst = dst
        self.saw_nan = False
        self.abandoned = abandoned_check()
        self.bar = progress_bar(total, f"sciSR write {Path(dst.name).name}")

    def __setitem__(self, key: tuple[slice, slice, slice], block: np.ndarray) -> None:
        from rasterio.windows import Window

        if self.abandoned():
            raise KeyboardInterrupt("the write was abandoned")
        bs, ys, xs = key
        win = Window(xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
        self.dst.write(block, indexes=list(range(bs.start + 1, bs.stop + 1)), window=win)
        if block.dtype.kind == "f" and not self.saw_nan:
            self.saw_nan = bool(np.isnan(block).any())
        self.bar.update(1)
        from .streaming import release_freed_memory

        release_freed_memory()


def _store_blocks(data: Any, dst: Any) -> bool:
    """Compute the dask array ``data`` block by block into ``dst``; True when a NaN was written."""
    import dask.array as dsa

    from .streaming import STREAM_WORKERS, block_count, row_major_order

    target = _WindowWriter(dst, block_count(data))
    try:
        with row_major_order():
            dsa.store(data, target, lock=True, scheduler="threads", num_workers=STREAM_WORKERS)
    finally:
        target.bar.close()
    return target.saw_nan


def _to_cog(src: Path, dst: Path, compress: str, blocksize: int) -> None:
    """Convert a tiled GTiff into a Cloud-Optimized GeoTIFF (GDAL's COG driver)."""
    import rasterio
    from rasterio.shutil import copy as rio_copy

    with rasterio.open(src) as f:
        kind = np.dtype(f.dtypes[0]).kind
    opts = dict(driver="COG", compress=compress.upper(), blocksize=max(blocksize, 16), BIGTIFF="IF_SAFER")
    if compress.lower() in ("deflate", "lzw", "zstd"):
        opts["predictor"] = "FLOATING_POINT" if kind == "f" else "STANDARD"
    rio_copy(str(src), str(dst), **opts)

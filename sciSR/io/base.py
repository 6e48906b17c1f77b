"""Format adapters: the :class:`Adapter` contract, the adapter registry and the file-level API.

One :class:`Adapter` subclass per format (NetCDF, Zarr, GeoTIFF, NIfTI, images) turns files into
``xr.Dataset`` objects and back. Every adapter shares the generic per-variable xarray path of
:mod:`sciSR.io.xarray_core` (global normalization, masks, loop dims, lazy dask) and only adds what
its format needs in :meth:`Adapter.finalize` or an overridden :meth:`Adapter.downscale`.

Adapters are found by file extension (longest match, so ``.nii.gz`` beats ``.gz``) or by the
``scisr_format`` attribute :meth:`Adapter.open` sets on the dataset. Third-party packages add
formats through the ``sciSR.adapters`` entry-point group.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import shutil
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import xarray as xr

if TYPE_CHECKING:
    from torch import nn

    from ..pipeline import Pipeline

__all__ = [
    "Adapter",
    "adapter_for_dataset",
    "adapter_for_path",
    "atomic_path",
    "downscale_path",
    "downscale_xarray",
    "list_adapters",
    "open_dataset",
    "register_adapter",
    "write",
]

_ADAPTERS: dict[str, type[Adapter]] = {}
_LOADED = False
_LOAD_LOCK = threading.RLock()
#: Modules of the built-in adapters, imported on first use of the registry.
_BUILTIN_MODULES = ("netcdf", "zarr", "geotiff", "nifti", "image")
#: Parameters of :meth:`Adapter.downscale` that are not user options.
_DOWNSCALE_FIXED = ("self", "ds", "pipe", "scale", "variables", "dtype")

A = TypeVar("A", bound="type[Adapter]")


class Adapter:
    """One file format: open into an ``xr.Dataset``, write it back, and downscale it.

    Subclasses set :attr:`name` and :attr:`extensions` and are registered with
    :func:`register_adapter`. The defaults implement the CF/xarray behaviour; formats with their
    own geometry (GeoTIFF transform, NIfTI affine) post-process in :meth:`finalize`.

    Attributes:
        name: Registry key (``"netcdf"``, ``"zarr"``, ``"geotiff"``, ``"nifti"``, ``"image"``).
        extensions: Lower-case file extensions with the dot; may be multi-part (``".nii.gz"``).
        default_norm: Normalization used when ``norm="auto"`` and the weights carry none.
    """

    name: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()
    default_norm: ClassVar[str | None] = None

    def open(self, path: Path, **kw: Any) -> xr.Dataset:
        """Read ``path``; invalid cells (fill/nodata) become NaN in float data.

        Implementations set ``ds.attrs["scisr_format"] = self.name`` and
        ``ds.encoding["source"] = str(path)``.
        """
        raise NotImplementedError(f"the {self.name or type(self).__name__} adapter cannot read files")

    def write(self, ds: xr.Dataset, path: Path, **kw: Any) -> None:
        """Write ``ds`` to exactly ``path`` (the caller handles atomic renaming)."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} adapter cannot write files")

    def spatial_dims(self, da: xr.DataArray, **kw: Any) -> tuple[str, str] | None:
        """``(y_dim, x_dim)`` of ``da``, or ``None`` when it has no (complete) pair of spatial dims.

        The default recognizes CF ``axis``/``standard_name``/units and the usual names (see
        :func:`sciSR.grid.find_spatial_dims`).
        """
        from ..grid import find_spatial_dims

        return find_spatial_dims(da)

    def downscale(
        self,
        ds: xr.Dataset,
        pipe: Pipeline,
        scale: int,
        *,
        variables: str | list[str] | None = None,
        dtype: Any = None,
        spatial_dims: tuple[str, str] | None = None,
        periodic: bool | None = None,
        channel_dim: str | None = None,
        **kw: Any,
    ) -> xr.Dataset:
        """Super-resolve the selected variables of ``ds`` onto the refined grid.

        Args:
            ds: Dataset as returned by :meth:`open` (or any xarray Dataset).
            pipe: Built pipeline (model loaded once for the whole call).
            scale: Integer factor.
            variables: Data variables to downscale (default: every one with both spatial dims).
            dtype: Output dtype (default float32; ``"source"`` restores the input dtype).
            spatial_dims: Force ``(y_dim, x_dim)`` instead of detecting them.
            periodic: Force (or forbid) wrapping the x axis; default: detected global longitude.
            channel_dim: Dim holding the channels of a multi-channel model.
            **kw: Ignored by the generic path (format-specific options of subclasses).

        Returns:
            A new Dataset on the refined grid.
        """
        from .xarray_core import downscale_dataset

        if spatial_dims is not None:
            fixed = tuple(spatial_dims)

            def dims_of(da: xr.DataArray) -> tuple[str, str] | None:
                return fixed if set(fixed) <= set(da.dims) else None  # type: ignore[return-value]
        else:
            dims_of = self.spatial_dims
        out = downscale_dataset(
            ds,
            pipe,
            scale,
            variables=variables,
            dtype=dtype,
            spatial_dims_of=dims_of,
            periodic=periodic,
            channel_dim=channel_dim,
        )
        return self.finalize(out, ds, scale)

    def finalize(self, out: xr.Dataset, src: xr.Dataset, scale: int) -> xr.Dataset:
        """Format-specific geometry/metadata fix-ups after the generic path (default: none)."""
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {', '.join(self.extensions)}>"


def register_adapter(cls: A) -> A:
    """Class decorator: make an :class:`Adapter` subclass available by name and extensions.

    Raises:
        TypeError: ``cls`` is not an Adapter subclass or has no ``name``.
    """
    if not (isinstance(cls, type) and issubclass(cls, Adapter)) or not cls.name:
        raise TypeError(f"{cls!r} is not an Adapter subclass with a name")
    bad = [e for e in cls.extensions if not e.startswith(".") or e != e.lower()]
    if bad:
        raise TypeError(f"adapter {cls.name!r}: extensions must be lower-case and start with '.', got {bad}")
    _ADAPTERS[cls.name] = cls
    return cls


def _load_adapters() -> None:
    """Import the built-in adapter modules and the ``sciSR.adapters`` entry points (once)."""
    global _LOADED
    if _LOADED:
        return
    with _LOAD_LOCK:  # dask threads may open files concurrently: import the adapters once, fully
        if _LOADED:
            return
        _import_builtin_adapters()
        _load_entry_points()
        _LOADED = True


def _import_builtin_adapters() -> None:
    for mod in _BUILTIN_MODULES:
        full = f"{__package__}.{mod}"
        try:
            importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:  # the module exists but one of its dependencies is missing
                warnings.warn(f"sciSR: the {mod} adapter is unavailable ({exc})", stacklevel=3)
        except Exception as exc:  # a broken adapter must not break the others
            warnings.warn(
                f"sciSR: the {mod} adapter failed to load ({type(exc).__name__}: {exc})", stacklevel=3
            )


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group="sciSR.adapters"):
        try:
            obj = ep.load()
        except Exception as exc:
            warnings.warn(f"sciSR: adapter entry point {ep.name!r} failed to load ({exc})", stacklevel=4)
            continue
        if isinstance(obj, type) and issubclass(obj, Adapter) and obj.name not in _ADAPTERS:
            register_adapter(obj)


def list_adapters() -> dict[str, type[Adapter]]:
    """Registered adapters by name (built-ins and entry points)."""
    _load_adapters()
    return dict(_ADAPTERS)


def supported_extensions() -> list[str]:
    """Every extension some adapter reads, sorted."""
    return sorted({e for cls in list_adapters().values() for e in cls.extensions})


def adapter_for_path(path: str | Path, must_exist: bool = True) -> Adapter:
    """Adapter for ``path`` chosen by its extension (longest match wins).

    Raises:
        FileNotFoundError: ``must_exist`` and the path does not exist.
        ValueError: No adapter handles the extension (lists the supported ones).
    """
    p = Path(path)
    if must_exist and not p.exists():
        raise FileNotFoundError(f"no such file or directory: {p}")
    lower = p.name.lower()
    best: tuple[int, type[Adapter]] | None = None
    for cls in list_adapters().values():
        for ext in cls.extensions:
            if lower.endswith(ext) and len(lower) > len(ext) and (best is None or len(ext) > best[0]):
                best = (len(ext), cls)
    if best is None:
        ext = "".join(p.suffixes[-2:]) or "(none)"
        raise ValueError(
            f"cannot tell the format of {p}: unknown extension {ext!r}; "
            f"supported: {', '.join(supported_extensions())}"
        )
    return best[1]()


def adapter_for_dataset(ds: xr.Dataset | xr.DataArray) -> Adapter:
    """Adapter that produced ``ds`` (its ``scisr_format`` attribute), NetCDF/CF by default.

    Raises:
        ValueError: ``scisr_format`` names an adapter that is not registered.
    """
    name = str(ds.attrs.get("scisr_format", "netcdf"))
    adapters = list_adapters()
    if name not in adapters:
        raise ValueError(
            f"dataset says scisr_format={name!r} but no such adapter is registered; known: {sorted(adapters)}"
        )
    return adapters[name]()


def open_dataset(path: str | Path, **kw: Any) -> xr.Dataset:
    """Open any supported file as an ``xr.Dataset`` (``sciSR.open``).

    Args:
        path: File (or ``.zarr`` directory).
        **kw: Passed to the adapter's ``open`` (e.g. ``chunks=`` for dask-backed NetCDF).

    Raises:
        FileNotFoundError: The path does not exist.
        ValueError: Unknown extension, or the file is unreadable/truncated (names file and problem).
    """
    p = Path(path)
    adapter = adapter_for_path(p)
    try:
        return adapter.open(p, **kw)
    except TypeError:  # bad keyword arguments: the caller's mistake, not the file's
        raise
    except Exception as exc:
        raise _read_error(p, adapter, exc) from exc


def _read_error(path: Path, adapter: Adapter, exc: BaseException) -> ValueError:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if msg.startswith("cannot read"):
        return ValueError(msg)
    return ValueError(
        f"cannot read {path} as {adapter.name}: {msg} (is it truncated, or not {adapter.name}?)"
    )


def _same_path(a: str | Path, b: str | Path) -> bool:
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return os.path.samefile(pa, pb)
    return pa.resolve() == pb.resolve()


def _sources(ds: xr.Dataset | xr.DataArray) -> list[str]:
    found = [ds.encoding.get("source"), ds.encoding.get("scisr_derived_from")]
    return [s for s in found if s]


def check_output_path(path: Path, *, sources: Sequence[str] = (), overwrite: bool = True) -> None:
    """Fail early, with one clear line, when ``path`` cannot or must not be written.

    Raises:
        ValueError: ``path`` is the file the data come from.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        FileNotFoundError: The output directory does not exist.
        PermissionError: The output directory is not writable.
    """
    for src in sources:
        if _same_path(src, path):
            raise ValueError(
                f"output path {path} is the input file; choose another name (inputs are never overwritten)"
            )
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise FileNotFoundError(f"cannot write {path}: the output directory {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: the output directory {parent} is not writable")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        with contextlib.suppress(OSError):
            p.unlink()


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary name ends with ``target``'s name, so writers that pick a format from the
    extension (``.nii.gz``, ``.tif``) behave the same. Files are replaced with ``os.replace``;
    a directory target (``.zarr``) is swapped in via a short-lived backup. On any error the
    temporary output is removed and ``target`` is left as it was.

    Raises:
        FileNotFoundError, PermissionError: The target's directory is missing or not writable.
    """
    target = Path(target)
    check_output_path(target)
    tag = uuid.uuid4().hex[:8]
    tmp = target.with_name(f".scisr-tmp-{tag}-{target.name}")
    try:
        yield tmp
        if not (tmp.exists() or tmp.is_symlink()):
            raise RuntimeError(f"the writer produced no output for {target}")
        if target.is_dir() and not target.is_symlink():
            backup = target.with_name(f".scisr-old-{tag}-{target.name}")
            os.replace(target, backup)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(backup, target)
                raise
            _remove(backup)
        else:
            if tmp.is_dir() and target.exists():
                target.unlink()
            os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def write(
    ds: xr.Dataset | xr.DataArray,
    path: str | Path,
    *,
    format: str | None = None,
    overwrite: bool = True,
    **kw: Any,
) -> Path:
    """Write ``ds`` atomically in the format named by ``path``'s extension (``sciSR.write``).

    Args:
        ds: Dataset (a DataArray is wrapped in a one-variable Dataset).
        path: Output file or ``.zarr`` directory.
        format: Adapter name overriding the extension.
        overwrite: Replace an existing output.
        **kw: Passed to the adapter's ``write``.

    Returns:
        The written path.

    Raises:
        ValueError: Unknown extension/format, or ``path`` is the input file.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        FileNotFoundError, PermissionError: The output directory is missing or not writable.
    """
    p = Path(path)
    if format is not None:
        adapters = list_adapters()
        if format not in adapters:
            raise ValueError(f"unknown format {format!r}; known: {sorted(adapters)}")
        adapter = adapters[format]()
    else:
        adapter = adapter_for_path(p, must_exist=False)
    check_output_path(p, sources=_sources(ds), overwrite=overwrite)
    if isinstance(ds, xr.DataArray):
        ds = _dataarray_to_dataset(ds)
    with atomic_path(p) as tmp:
        adapter.write(ds, tmp, **kw)
    return p


_DA_NAME = "__scisr_dataarray__"


def _dataarray_to_dataset(da: xr.DataArray) -> xr.Dataset:
    ds = da.to_dataset(name=_DA_NAME if da.name is None else da.name)
    ds.attrs.update({k: v for k, v in da.attrs.items() if k in ("scisr_format",)})
    ds.encoding.update(da.encoding)
    return ds


def _split_options(
    adapter: Adapter, opts: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split user options into pipeline options, adapter options and model keyword arguments."""
    from ..pipeline import PIPELINE_OPTS

    own = inspect.signature(type(adapter).downscale).parameters
    base = inspect.signature(Adapter.downscale).parameters
    takes_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in own.values())
    adapter_names = {n for n, p in own.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    if takes_kw:
        adapter_names |= {n for n, p in base.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    adapter_names -= set(_DOWNSCALE_FIXED)
    pipe_opts = {k: v for k, v in opts.items() if k in PIPELINE_OPTS}
    adapter_opts = {k: v for k, v in opts.items() if k in adapter_names and k not in PIPELINE_OPTS}
    model_kwargs = {k: v for k, v in opts.items() if k not in pipe_opts and k not in adapter_opts}
    return pipe_opts, adapter_opts, model_kwargs


def build_pipeline(
    adapter: Adapter,
    model: str | nn.Module,
    scale: int,
    pipe_opts: dict[str, Any],
    model_kwargs: dict[str, Any],
) -> Pipeline:
    """Build the one :class:`~sciSR.pipeline.Pipeline` of a call, with the adapter's default norm.

    ``adapter.default_norm`` applies when ``norm`` is ``"auto"`` (the default) and the weights
    carry no normalization of their own.
    """
    from ..pipeline import Pipeline, infer_in_channels

    kwargs = dict(model_kwargs)
    c = infer_in_channels(model, kwargs)
    if isinstance(model, str):
        kwargs["in_channels"] = c
    else:
        kwargs.pop("in_channels", None)
    return Pipeline.build(model, scale, **pipe_opts, default_norm=adapter.default_norm, **kwargs)


def downscale_xarray(
    obj: xr.Dataset | xr.DataArray,
    model: str | nn.Module,
    scale: int,
    *,
    variables: str | list[str] | None = None,
    dtype: Any = None,
    **opts: Any,
) -> xr.Dataset | xr.DataArray:
    """``sciSR.downscale`` for xarray objects: the same type comes back, on the refined grid.

    Args:
        obj: Dataset or DataArray (numpy- or dask-backed; dask input stays lazy).
        model: Registry name or module.
        scale: Integer factor.
        variables: Dataset variables to downscale (default: all with spatial dims).
        dtype: Output dtype (default float32).
        **opts: Pipeline options (``weights``, ``tile``, ``norm``...), adapter options
            (``spatial_dims``, ``periodic``, ``channel_dim``...) and model keyword arguments.

    Raises:
        ValueError: Missing variables, no spatial dims, irregular grid, bad model options.
    """
    if not isinstance(obj, (xr.Dataset, xr.DataArray)):
        raise TypeError(f"expected an xarray Dataset or DataArray, got {type(obj).__name__}")
    adapter = adapter_for_dataset(obj)
    pipe_opts, adapter_opts, model_kwargs = _split_options(adapter, opts)
    if isinstance(obj, xr.DataArray):
        if variables is not None:
            raise ValueError("variables= selects Dataset variables; a DataArray is downscaled whole")
        ds = _dataarray_to_dataset(obj)
        pipe = build_pipeline(adapter, model, scale, pipe_opts, model_kwargs)
        out = adapter.downscale(
            ds, pipe, scale, variables=[next(iter(ds.data_vars))], dtype=dtype, **adapter_opts
        )
        return _dataset_to_dataarray(out, obj)
    pipe = build_pipeline(adapter, model, scale, pipe_opts, model_kwargs)
    return adapter.downscale(obj, pipe, scale, variables=variables, dtype=dtype, **adapter_opts)


def _dataset_to_dataarray(out: xr.Dataset, src: xr.DataArray) -> xr.DataArray:
    name = _DA_NAME if src.name is None else src.name
    from .xarray_core import append_history

    da = out[name]
    if src.name is None:
        da = da.rename(None)
    da.attrs = append_history(da.attrs, str(out.attrs["history"]).split("\n")[-1])
    da.encoding.update({k: v for k, v in out.encoding.items() if k == "scisr_derived_from"})
    return da


def downscale_path(
    path: str | Path,
    model: str | nn.Module,
    scale: int,
    *,
    variables: str | list[str] | None = None,
    out: str | Path | None = None,
    dtype: Any = None,
    **opts: Any,
) -> xr.Dataset:
    """``sciSR.downscale`` for files: open, downscale, and write ``out`` if given.

    The output format follows ``out``'s extension and may differ from the input's.

    Returns:
        The result as an ``xr.Dataset``.

    Raises:
        FileNotFoundError: The input does not exist.
        ValueError: Unknown extension, unreadable file, ``out`` equal to the input, or any
            error of :func:`downscale_xarray`.
        PermissionError: ``out``'s directory is not writable.
    """
    p = Path(path)
    adapter = adapter_for_path(p)
    out_adapter = None
    if out is not None:
        out = Path(out)
        out_adapter = adapter_for_path(out, must_exist=False)
        check_output_path(out, sources=[str(p)])
    ds = open_dataset(p)
    pipe_opts, adapter_opts, model_kwargs = _split_options(adapter, opts)
    pipe = build_pipeline(adapter, model, scale, pipe_opts, model_kwargs)
    try:
        result = adapter.downscale(ds, pipe, scale, variables=variables, dtype=dtype, **adapter_opts)
        if out is not None and not _has_dask(result):
            result = result.load()
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, (PermissionError, FileNotFoundError, FileExistsError)) or not _is_read_error(exc):
            raise
        raise _read_error(p, adapter, exc) from exc
    if out is not None:
        assert out_adapter is not None
        try:
            with atomic_path(out) as tmp:
                out_adapter.write(result, tmp)
        except (PermissionError, FileNotFoundError, FileExistsError):
            raise
        except OSError as exc:  # disk full, quota, I/O error: blame the output, not the input
            raise OSError(f"cannot write {out}: {exc}; nothing was written") from exc
    return result


def _is_read_error(exc: BaseException) -> bool:
    """True for errors of the file libraries while reading data (not model/runtime errors)."""
    if isinstance(exc, OSError):
        return True
    return any(k in str(exc) for k in ("NetCDF", "HDF", "zarr", "Zarr", "decompress", "codec"))


def _has_dask(ds: xr.Dataset) -> bool:
    return any(v.chunks is not None for v in ds.variables.values())

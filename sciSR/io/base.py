"""Format adapters: the :class:`Adapter` contract, the adapter registry and the file-level API.

One :class:`Adapter` subclass per format (NetCDF, Zarr, GeoTIFF, NIfTI, images) turns files into
``xr.Dataset`` objects and back. Every adapter shares the generic per-variable xarray path of
:mod:`sciSR.io.xarray_core` (global normalization, masks, loop dims, lazy dask) and only adds what
its format needs in :meth:`Adapter.finalize` or an overridden :meth:`Adapter.downscale`.

Adapters are found by file extension (longest match, so ``.nii.gz`` beats ``.gz``) or by the
``scisr_format`` attribute :meth:`Adapter.open` sets on the dataset. An existing input is also
identified by its content (:mod:`sciSR.io.signature`): when the content is another supported
format than the extension says (a NetCDF file named ``.tif``), the adapter of the content reads it
and a :class:`~sciSR.io.signature.FormatMismatchWarning` says so. Third-party packages add formats
through the ``sciSR.adapters`` entry-point group.

Every write follows the rules of :mod:`sciSR.io.safety`: outputs never touch inputs, only a
previous output of the same kind is replaced, and writes are atomic and interrupt-safe.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import xarray as xr

from .safety import OutputError, atomic_path, check_output_path, write_atomic
from .signature import FormatMismatchWarning, sniff

if TYPE_CHECKING:
    from torch import nn

    from ..pipeline import Pipeline

__all__ = [
    "Adapter",
    "OutputError",
    "adapter_for_dataset",
    "adapter_for_path",
    "atomic_path",
    "check_output_path",
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
        default_clip: Whether ``clip="auto"`` clips outputs to the input's valid range (on for
            MRI magnitude images, where over/undershoot at tissue edges has no meaning).
        directory_store: The format is a directory (Zarr): an existing output is replaced only
            when it is such a store, and an existing file never is.
    """

    name: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()
    default_norm: ClassVar[str | None] = None
    default_clip: ClassVar[bool] = False
    directory_store: ClassVar[bool] = False

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

    def check_writable(
        self, ds: xr.Dataset, variables: str | list[str] | None = None, dtype: Any = None, scale: int = 1
    ) -> None:
        """Refuse, before any data are read or any model runs, an output this format cannot hold.

        Called on the output's adapter with the input Dataset as opened and the call's options.
        The default accepts everything (the writer reports what it cannot store).

        Raises:
            ValueError: One line naming what this format cannot store and the fix.
        """
        return None

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


def _adapter_by_extension(p: Path) -> type[Adapter] | None:
    lower = p.name.lower()
    best: tuple[int, type[Adapter]] | None = None
    for cls in list_adapters().values():
        for ext in cls.extensions:
            if lower.endswith(ext) and len(lower) > len(ext) and (best is None or len(ext) > best[0]):
                best = (len(ext), cls)
    return None if best is None else best[1]


def adapter_for_path(path: str | Path, must_exist: bool = True) -> Adapter:
    """Adapter for ``path``: by its extension (longest match wins), checked against its content.

    For an existing path the content's signature (:func:`sciSR.io.signature.sniff`) decides
    when it names another registered adapter than the extension: that adapter is used and a
    :class:`~sciSR.io.signature.FormatMismatchWarning` names both. Content that is not recognised
    leaves the choice to the extension (the adapter then reports what is wrong with the file).
    An unknown extension is refused even when the content is recognised (the error names the
    content and the extension to use), since the path may not be the file the caller meant.

    Args:
        path: File or directory store.
        must_exist: The path is an input (must exist; its content is checked). ``False`` for
            outputs: the extension alone decides.

    Raises:
        FileNotFoundError: ``must_exist`` and the path does not exist.
        ValueError: An input that is not a regular file or directory (a FIFO would block), or
            the extension is unknown (lists the supported extensions, and the content's
            format when it is recognised).
    """
    p = Path(path)
    if must_exist and not p.exists():
        if p.is_symlink():
            raise FileNotFoundError(f"no such file or directory: {p} (a symbolic link to a missing path)")
        raise FileNotFoundError(f"no such file or directory: {p}")
    if must_exist and not (p.is_file() or p.is_dir()):
        raise ValueError(f"cannot read {p}: it is not a regular file (a device, FIFO or socket)")
    by_ext = _adapter_by_extension(p)
    sig = sniff(p) if must_exist else None
    adapters = list_adapters()
    if sig is not None and sig.adapter not in adapters:
        sig = None
    if by_ext is None:
        ext = "".join(p.suffixes[-2:]) or "(none)"
        hint = ""
        if sig is not None:
            good = adapters[sig.adapter].extensions[0]
            hint = f"; its content is {sig.what}: rename it with a {good} extension"
        raise ValueError(
            f"cannot tell the format of {p}: unknown extension {ext!r}; "
            f"supported: {', '.join(supported_extensions())}{hint}"
        )
    if sig is not None and by_ext.name != sig.adapter:
        warnings.warn(
            f"{p} is a {sig.what} file, not {by_ext.name} as its extension says; reading it as {sig.adapter}",
            FormatMismatchWarning,
            stacklevel=2,
        )
        return adapters[sig.adapter]()
    return by_ext()


def is_directory_store(adapter: Adapter) -> bool:
    """True when ``adapter`` writes directories (its ``directory_store`` flag, or the ``.zarr`` format)."""
    return bool(adapter.directory_store) or ".zarr" in adapter.extensions


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
    return _open(p, adapter_for_path(p), **kw)


def _open(p: Path, adapter: Adapter, **kw: Any) -> xr.Dataset:
    """``adapter.open(p)`` with read errors restated as one line naming the file."""
    if p.is_dir() and not is_directory_store(adapter):
        raise ValueError(f"cannot read {p}: it is a directory, not a {adapter.name} file")
    if p.is_dir() and sniff(p) is None:
        raise ValueError(
            f"cannot read {p}: the directory is not a Zarr store (no zarr.json, .zgroup or .zattrs in it)"
        )
    if p.is_file() and p.stat().st_size == 0:
        raise ValueError(f"cannot read {p}: the file is empty (0 bytes)")
    try:
        ds = adapter.open(p, **kw)
    except TypeError:  # bad keyword arguments: the caller's mistake, not the file's
        raise
    except Exception as exc:
        by_ext = _adapter_by_extension(p)
        if by_ext is not None and by_ext.name != adapter.name and adapter.extensions:
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise ValueError(
                f"cannot read {p} as {adapter.name} (its content; the extension says {by_ext.name}): {msg}; "
                f"rename it with a {adapter.extensions[0]} extension"
            ) from exc
        raise _read_error(p, adapter, exc) from exc
    for var in ds.data_vars.values():  # a DataArray taken out of ds still knows its file
        var.encoding.setdefault("source", str(p))
    return ds


def _read_error(path: Path, adapter: Adapter, exc: BaseException) -> ValueError:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if msg.startswith("cannot read"):
        return ValueError(msg)
    return ValueError(
        f"cannot read {path} as {adapter.name}: {msg} (is it truncated, or not {adapter.name}?)"
    )


def _sources(ds: xr.Dataset | xr.DataArray) -> list[str]:
    """Files ``ds`` was read from or derived from (its own and its variables' encodings)."""
    encodings = [ds.encoding]
    if isinstance(ds, xr.Dataset):
        encodings += [v.encoding for v in ds.data_vars.values()]
    found = {str(e[k]) for e in encodings for k in ("source", "scisr_derived_from") if e.get(k)}
    return sorted(found)


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
        ValueError: Unknown extension/format.
        OutputError: ``path`` is, contains or lies inside the file ``ds`` was read from, or
            exists as something other than a previous output of the same kind.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        FileNotFoundError, PermissionError: The output directory is missing or not writable.
        OSError: The write failed (the message names ``path``; nothing is left behind).
    """
    p = Path(path)
    if format is not None:
        adapters = list_adapters()
        if format not in adapters:
            raise ValueError(f"unknown format {format!r}; known: {sorted(adapters)}")
        adapter = adapters[format]()
    else:
        adapter = adapter_for_path(p, must_exist=False)
    store = is_directory_store(adapter)
    check_output_path(p, sources=_sources(ds), overwrite=overwrite, directory_store=store)
    if isinstance(ds, xr.DataArray):
        ds = _dataarray_to_dataset(ds)
    data = ds
    return write_atomic(
        p,
        lambda tmp: adapter.write(data, tmp, **kw),
        sources=_sources(ds),
        overwrite=overwrite,
        directory_store=store,
    )


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
    data: xr.Dataset | None = None,
    variables: str | list[str] | None = None,
) -> Pipeline:
    """Build the one :class:`~sciSR.pipeline.Pipeline` of a call, with the adapter's default norm.

    ``adapter.default_norm`` applies when ``norm`` is ``"auto"`` (the default) and the weights
    carry no normalization of their own; ``adapter.default_clip`` when ``clip`` is ``"auto"``.
    For ``model="auto"`` the kind of ``data`` (its ``variables``) is detected from the format and
    metadata (:func:`sciSR.models.domains.detect_domain`) to pick the model.
    """
    from ..pipeline import Pipeline, infer_in_channels

    kwargs = dict(model_kwargs)
    c = infer_in_channels(model, kwargs)
    if isinstance(model, str):
        kwargs["in_channels"] = c
    else:
        kwargs.pop("in_channels", None)
    if isinstance(model, str) and model.strip().lower() == "auto" and data is not None:
        from ..models.domains import detect_domain

        kwargs["data_domain"] = detect_domain(data, adapter.name, variables, adapter.spatial_dims)
    return Pipeline.build(
        model,
        scale,
        **pipe_opts,
        default_norm=adapter.default_norm,
        default_clip=adapter.default_clip,
        **kwargs,
    )


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
        pipe = build_pipeline(adapter, model, scale, pipe_opts, model_kwargs, ds, [next(iter(ds.data_vars))])
        out = adapter.downscale(
            ds, pipe, scale, variables=[next(iter(ds.data_vars))], dtype=dtype, **adapter_opts
        )
        return _dataset_to_dataarray(out, obj)
    pipe = build_pipeline(adapter, model, scale, pipe_opts, model_kwargs, obj, variables)
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

    The output format follows ``out``'s extension and may differ from the input's. With ``out``,
    GeoTIFF, NetCDF and Zarr inputs are streamed (:mod:`sciSR.io.streaming`): variables are
    chunked lazily, normalizers fitted by streaming reductions, and the output computed and written
    block by block, so peak memory is set by block and tile sizes, not by the file size; values
    equal the in-memory path's. A streamed output that cannot fit on its disk (uncompressed) is
    refused before any computation.

    Returns:
        The result as an ``xr.Dataset`` (lazy, dask-backed, for streamed calls: reading its values
        computes them again).

    Raises:
        FileNotFoundError: The input does not exist.
        ValueError: Unknown extension, unreadable file, or any error of :func:`downscale_xarray`.
        OutputError: ``out`` is, contains or lies inside the input, or exists as something
            other than a previous output of the same kind (checked before any computation).
        PermissionError: ``out``'s directory is not writable.
        OSError: Writing ``out`` failed (the message names it; nothing is left behind).
    """
    p = Path(path)
    adapter = adapter_for_path(p)
    out_adapter = None
    if out is not None:
        out = Path(out)
        out_adapter = adapter_for_path(out, must_exist=False)
        check_output_path(out, sources=[p], directory_store=is_directory_store(out_adapter))
    ds = _open(p, adapter)
    if out_adapter is not None:
        out_adapter.check_writable(ds, variables, dtype, scale)
    pipe_opts, adapter_opts, model_kwargs = _split_options(adapter, opts)
    pipe = build_pipeline(adapter, model, scale, pipe_opts, model_kwargs, ds, variables)
    streamed = out is not None and _streams(adapter, ds)
    if streamed:
        from .streaming import STREAMED_FORMATS, check_disk_space, check_field_memory, chunk_for_streaming

        assert out is not None
        check_disk_space(ds, variables, dtype, scale, out)
        check_field_memory(ds, adapter.spatial_dims, scale, pipe)
        regions = getattr(pipe, "covariate_stack", None) is None  # else the window graph of xarray_core
        ds = chunk_for_streaming(ds, adapter.spatial_dims, STREAMED_FORMATS[adapter.name], scale, regions)
    from .streaming import BLOCKS, STREAMED_CALL, BlockCounter

    token = STREAMED_CALL.set(streamed)
    counter = BLOCKS.set(BlockCounter() if streamed else None)
    try:
        with _gdal_cache(streamed):
            return _downscale_and_write(
                p, adapter, ds, pipe, scale, variables, dtype, adapter_opts, out, out_adapter
            )
    finally:
        BLOCKS.reset(counter)
        STREAMED_CALL.reset(token)


def _gdal_cache(streamed: bool) -> Any:
    import contextlib

    if not streamed:
        return contextlib.nullcontext()
    from .streaming import limited_gdal_cache

    return limited_gdal_cache()


def _downscale_and_write(
    p: Path,
    adapter: Adapter,
    ds: xr.Dataset,
    pipe: Pipeline,
    scale: int,
    variables: str | list[str] | None,
    dtype: Any,
    adapter_opts: dict[str, Any],
    out: Path | None,
    out_adapter: Adapter | None,
) -> xr.Dataset:
    """The downscale and the atomic write of :func:`downscale_path`."""
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
        writer = out_adapter
        from .streaming import PROGRESS

        token = PROGRESS.set(pipe.engine.progress)
        try:
            write_atomic(
                out,
                lambda tmp: writer.write(result, tmp),
                sources=[p],
                directory_store=is_directory_store(out_adapter),
            )
        finally:
            PROGRESS.reset(token)
    return result


def _streams(adapter: Adapter, ds: xr.Dataset) -> bool:
    """Whether a file-to-file call streams ``ds`` (its format is read lazily by windows or chunks)."""
    from .streaming import STREAMED_FORMATS

    return adapter.name in STREAMED_FORMATS and ds.attrs.get("scisr_format") == adapter.name


def _is_read_error(exc: BaseException) -> bool:
    """True for errors of the file libraries while reading data (not model/runtime errors)."""
    if isinstance(exc, OSError):
        return True
    return any(k in str(exc) for k in ("NetCDF", "HDF", "zarr", "Zarr", "decompress", "codec"))


def _has_dask(ds: xr.Dataset) -> bool:
    return any(v.chunks is not None for v in ds.variables.values())

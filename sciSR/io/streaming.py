"""Out-of-core downscaling: lazy region-by-region HR arrays and block-by-block writes.

A file downscaled into another file (``sciSR.downscale("in.tif", ..., out="out.tif")``) never holds
the whole input or output: :func:`chunk_for_streaming` wraps the opened variables in dask arrays
with spatial chunks, :func:`region_array` builds the HR result of one 2-D item as a dask array whose
blocks are computed independently by :meth:`sciSR.pipeline.Pipeline.run_region` (each block reads
only the LR box its tiler windows cover), and the writers store the blocks as they are computed.
Peak memory is then set by the block and tile sizes and by the number of dask threads, not by the
file size. The blocks equal the corresponding blocks of whole-array inference
(:meth:`~sciSR.pipeline.Pipeline.run_region`'s contract); normalizers are fitted on the whole
variable by streaming reductions (:func:`fit_stream`).

Block layout: the HR block boundaries follow the kept cores of the whole array's tiler windows
(grouped until a block reaches about :data:`TARGET_HR_CELLS` HR cells), so every window is run once.
Cropped models (interpolation, translation-equivariant CNNs) get window cores on a regular lattice
(:class:`sciSR.tiling.Tiler`'s ``lattice``), so their blocks are equal and each fills whole Zarr /
NetCDF-4 chunks; blended models' blocks follow their windows and share a window cache
(:mod:`sciSR.io.window_cache`). Every block reads its own LR box, through its block row's band
(read once per block row), so blocks are independent tasks: a writer storing them one after the
other holds about one block, whatever the file size. GeoTIFF is written window by window
(:mod:`sciSR.io.geotiff`), NetCDF and Zarr by xarray from the lazy result (one block at a time, in
the writing thread), NIfTI slab by slab (:mod:`sciSR.io.nifti`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import itertools
import math
import re
import uuid
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from ..normalize import Normalizer
    from ..pipeline import Pipeline

#: HR cells a streamed block aims at (1024² float32 = 4 MiB per channel).
TARGET_HR_CELLS = 1024 * 1024
#: Smallest LR window core of cropped-window models in streamed runs; the core is at least
#: :data:`STREAM_HALO_FACTOR` halos wide, so the halo adds at most (1 + 2/10)² = 1.44× work, and at most
#: the tile the memory budget allows. Small windows keep a streamed call's working set small: ×4 of a
#: 4000² GeoTIFF with ESPCN peaked at 771 MiB with 256-px cores and 736 MiB with 128-px ones.
STREAM_MODEL_TILE = 128
STREAM_HALO_FACTOR = 10
#: LR chunk edge of the spatial chunks of a streamed input.
INPUT_CHUNK = 1024
#: Formats whose inputs are chunked for streaming when a call writes a file, with the largest field
#: (LR cells) each keeps in one spatial chunk (0: every field larger than :data:`INPUT_CHUNK` is split;
#: blocks of masked fields equal whole-field inference, see :attr:`sciSR.pipeline.Pipeline.fill_reach`).
#: NIfTI slices are always whole (volumes stream slab by slab along the loop axis: :mod:`sciSR.io.nifti`).
STREAMED_FORMATS = {"geotiff": 0, "netcdf": 0, "zarr": 0, "nifti": 1 << 62}
#: Blocks computed at the same time by a streamed write. One block at a time keeps the peak at one
#: block's working set; the model itself still uses every core (torch intra-op threads).
STREAM_WORKERS = 1
#: GDAL's raster block cache while a call streams (bytes): read tiles and written (dirty) tiles stay
#: in it until it is full, so GDAL's default (5% of RAM) would grow with the file.
GDAL_CACHE_BYTES = 16 << 20
#: ``progress=`` of the running call, for the block-by-block writers (``None``: interactive stderr only).
PROGRESS: contextvars.ContextVar[bool | None] = contextvars.ContextVar("scisr_stream_progress", default=None)
#: True while a file-to-file call builds its streamed result: dask-backed variables of the generic
#: xarray path (NetCDF, Zarr) are then computed region by region (:func:`region_array`, independent
#: blocks on a regular lattice) rather than by the window graph of spatially chunked dask inputs,
#: whose output chunks must follow the input's chunks.
STREAMED_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("scisr_streamed_call", default=False)


#: Dask-backed inputs keep native chunks up to this size (bytes) in calls computed region by region.
NATIVE_CHUNK_BYTES = 64 << 20


def chunk_for_streaming(
    ds: xr.Dataset,
    spatial_dims_of: Callable[[xr.DataArray], Any],
    whole_field_cells: int = 0,
    scale: int = 1,
    regions: bool = False,
) -> xr.Dataset:
    """``ds`` with every variable that has spatial dims wrapped in dask (loop dims 1, space in chunks).

    Fields (one 2-D slice) of at most ``whole_field_cells`` LR cells stay in one spatial chunk;
    larger ones get spatial chunks of :func:`stream_chunk` LR pixels (output blocks of about
    :data:`TARGET_HR_CELLS` HR cells), rounded to a multiple of the format's native chunk/tile size
    when it has one (``preferred_chunks`` encoding), so each chunk reads whole native blocks.
    Dask-backed variables keep their chunks unless a spatial chunk is larger than that (a Zarr
    store written in whole fields): those axes are rechunked, so output blocks stay small. With
    ``regions`` (the result is computed region by region, :func:`region_array`, whose blocks read
    their own LR boxes whatever the input's chunks), dask-backed variables keep their native chunks
    up to :data:`NATIVE_CHUNK_BYTES`: splitting a Zarr chunk into dask chunks would decode it once per
    piece.

    Args:
        ds: Dataset as opened (lazily) by an adapter.
        spatial_dims_of: ``(y_dim, x_dim)`` of a variable, or ``None``.
        whole_field_cells: Largest field kept whole in space.
        scale: The call's factor (sets the LR chunk of a given HR block size).
        regions: The call computes its result region by region.

    Returns:
        The chunked Dataset (coordinates untouched).
    """
    edge = stream_chunk(scale)
    chunked = {}
    for name, var in ds.data_vars.items():
        dims = spatial_dims_of(var) if var.ndim >= 2 else None
        if dims is None or var.dtype.kind not in "fiu":
            continue
        whole = var.sizes[dims[0]] * var.sizes[dims[1]] <= whole_field_cells
        if var.chunks is not None:
            native = var.dtype.itemsize * int(np.prod([max(c) for c in var.chunks]))
            if regions and native <= NATIVE_CHUNK_BYTES:
                continue
            if not whole and any(max(var.chunksizes[d]) > edge for d in dims):
                chunked[name] = var.chunk({d: min(var.sizes[d], edge) for d in dims})
            continue
        preferred = var.encoding.get("preferred_chunks") or {}
        chunks: dict[Hashable, int] = {}
        for d in var.dims:
            if d in dims and whole:
                chunks[d] = var.sizes[d]
            elif d in dims:
                native = int(preferred.get(d, 0) or 0)
                size = edge
                if 0 < native < edge:
                    size = max(native, edge // native * native)
                chunks[d] = min(var.sizes[d], size)
            else:
                chunks[d] = 1
        chunked[name] = var.chunk(chunks)
    return ds.assign(chunked) if chunked else ds


def check_field_memory(
    ds: xr.Dataset, spatial_dims_of: Callable[[xr.DataArray], Any], scale: int, pipe: Pipeline
) -> None:
    """Refuse a streamed call whose fields must each be computed whole, when one HR field (float32)
    exceeds the memory available.

    Streamed blocks are small whatever the field size, except under a constraint that is not local
    to each coarse cell (``constraint_degradation`` other than ``"area"``): its projection needs the
    whole field, so each field is one block.

    Raises:
        sciSR.io.memory.InsufficientMemoryError: The figures and the fixes in one line.
    """
    cons = getattr(pipe, "constraint", None)
    if cons is None or getattr(cons, "local", True):
        return
    from ..sysinfo import available_bytes
    from .memory import InsufficientMemoryError

    avail = available_bytes()
    for name, var in ds.data_vars.items():
        dims = spatial_dims_of(var) if var.ndim >= 2 else None
        if dims is None:
            continue
        h, w = var.sizes[dims[0]], var.sizes[dims[1]]
        need = 4.0 * h * w * scale * scale
        if need > avail:
            raise InsufficientMemoryError(
                f"downscaling {name!r} ×{scale}: constraint degradation '{cons.degradation}' needs each "
                f"{h * scale}×{w * scale} field whole ({need / 2**30:.1f} GiB), more than the "
                f"{avail / 2**30:.1f} GiB available; use constraint_degradation='area' (applied block "
                f"by block), downscale a spatial subset, or use a smaller scale"
            )


def storage_chunks(chunks: tuple[tuple[int, ...], ...], max_edge: int = 512) -> tuple[int, ...]:
    """Chunk shape of a file variable (Zarr, NetCDF-4) written from dask blocks ``chunks``.

    An axis whose blocks are equal (the last may be shorter) is chunked by the block, so each
    block fills whole chunks; on an axis of unequal blocks (blended models' blocks follow their
    windows) the chunk is the largest power of two not above the smallest block nor ``max_edge``,
    so only chunks on block edges are written in two parts.

    Shape:
        one chunk length per axis of ``chunks``.
    """
    out = []
    for c in chunks:
        inner = c[:-1] if len(c) > 1 else c
        if len(set(inner)) == 1 and c[-1] <= c[0]:
            out.append(int(c[0]))
        else:
            edge = min(min(c), max_edge)
            out.append(1 << max(0, int(edge).bit_length() - 1))
    return tuple(out)


def aligned(chunks: tuple[tuple[int, ...], ...], storage: tuple[int, ...]) -> bool:
    """True when every dask block of ``chunks`` covers whole chunks of the ``storage`` shape."""
    for c, n in zip(chunks, storage):
        edges = np.cumsum(c)[:-1]
        if np.any(edges % n):
            return False
    return True


class BlockCounter:
    """Counts the blocks a streamed call has computed: a progress bar, freed memory handed back,
    and a prompt stop when the write was abandoned.

    :func:`region_array` tasks call :meth:`done` after each block; the writer opens the bar
    (:meth:`open`) with the number of blocks it is about to store, in the thread that writes.
    """

    def __init__(self) -> None:
        self.bar: Any = None
        self.active = False
        self.abandoned: Callable[[], bool] = lambda: False

    def __dask_tokenize__(self) -> tuple[str, int]:
        return ("scisr-block-counter", id(self))

    def open(self, total: int, desc: str) -> None:
        """Show a bar over ``total`` blocks (honouring the call's ``progress=``)."""
        from .safety import abandoned_check

        self.abandoned = abandoned_check()
        self.bar = progress_bar(total, desc)
        self.active = True

    def close(self) -> None:
        self.active = False
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def done(self) -> None:
        """One block is computed (nothing unless a writer opened the counter: the GeoTIFF writer
        counts, and hands memory back, per written window itself)."""
        if not self.active:
            return
        if self.abandoned():
            raise KeyboardInterrupt("the write was abandoned")
        if self.bar is not None:
            self.bar.update(1)
        release_freed_memory()


#: Streamed block arrays are named ``scisr-stream-<seq>-<uuid>`` / ``scisr-blended-<seq>-<uuid>``;
#: ``seq`` (creation order in this process) orders the fields of one call while their tasks keep
#: those names (dask's fusion renames them: the fused tasks carry the stacked array's index instead).
_BLOCK_SEQ = itertools.count()
_BLOCK_NAME = re.compile(r"scisr-(?:stream|blended)-(\d{12})-")


def block_array_name(kind: str) -> str:
    """A fresh dask name for the block tasks of one streamed field (``kind``: stream, blended)."""
    return f"scisr-{kind}-{next(_BLOCK_SEQ):012d}-{uuid.uuid4().hex}"


def _row_major_priority(key: Any) -> tuple[Any, ...]:
    """Start order of a ready task (smallest first): tasks without a block index, then indexed
    tasks by field and index (loop, row, column)."""
    if isinstance(key, tuple) and len(key) > 1 and isinstance(key[0], str):
        index = tuple(k for k in key[1:] if isinstance(k, int))
        m = _BLOCK_NAME.search(key[0])
        return (1, int(m.group(1)) if m else -1, index)
    return (0,)


@contextlib.contextmanager
def row_major_order() -> Iterator[None]:
    """Local dask schedulers start the blocks of streamed fields field by field in row-major order
    meanwhile, each block's store right after it.

    The local schedulers take ready tasks from the end of a list sorted by ``dask.order`` and
    append the dependents of a finished task at its end. The list is kept sorted (largest
    :func:`_row_major_priority` first) whenever tasks join it out of that order (the blocks, at the
    start or once the tasks they wait for are done); a block's store joins in order, so sorting is
    rare. xarray's NetCDF/Zarr writers otherwise visit blocks in a scattered order, which costs
    blended models' window cache re-runs (:mod:`sciSR.io.window_cache`). No value changes.
    """
    from dask.callbacks import Callback

    class _RowMajor(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seen = 0

        def _order(self, state: dict[str, Any]) -> None:
            ready = state["ready"]
            start = min(self.seen, len(ready))
            grown = [_row_major_priority(k) for k in ready[max(start - 1, 0) :]]
            if any(a < b for a, b in itertools.pairwise(grown)):
                ready.sort(key=_row_major_priority, reverse=True)
            self.seen = len(ready)

        def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
            self.seen = 0
            self._order(state)

        def _pretask(self, key: Any, dsk: Any, state: dict[str, Any]) -> None:
            self.seen = len(state["ready"])

        def _posttask(self, key: Any, result: Any, dsk: Any, state: dict[str, Any], worker_id: Any) -> None:
            self._order(state)

    with _RowMajor():
        yield


#: The :class:`BlockCounter` of the running file-to-file call (``None`` outside one).
BLOCKS: contextvars.ContextVar[BlockCounter | None] = contextvars.ContextVar(
    "scisr_stream_blocks", default=None
)


@contextlib.contextmanager
def counting_blocks(ds: xr.Dataset, desc: str) -> Iterator[None]:
    """Open the running call's block bar over the dask blocks of ``ds``'s variables while a writer
    stores them, in row-major order (:func:`row_major_order`); nothing outside a streamed call."""
    counter = BLOCKS.get()
    if counter is None:
        yield
        return
    total = sum(block_count(v.data) for v in ds.data_vars.values() if is_dask(v.data))
    counter.open(total, desc)
    try:
        with row_major_order():
            yield
    finally:
        counter.close()


def stream_chunk(scale: int) -> int:
    """LR edge of a streamed input's spatial chunks: output blocks of about :data:`TARGET_HR_CELLS`
    HR cells (at most :data:`INPUT_CHUNK`, at least 64 LR pixels)."""
    return int(max(64, min(INPUT_CHUNK, int(math.sqrt(TARGET_HR_CELLS)) // max(1, int(scale)))))


@contextlib.contextmanager
def limited_gdal_cache(nbytes: int = GDAL_CACHE_BYTES) -> Iterator[None]:
    """Lower GDAL's (process-wide) block cache to ``nbytes`` for the duration of a streamed call.

    The previous limit is restored afterwards; without rasterio nothing is changed.
    """
    try:
        from rasterio._env import get_gdal_config, set_gdal_config
    except ImportError:  # pragma: no cover - rasterio is a dependency
        yield
        return
    before = get_gdal_config("GDAL_CACHEMAX")
    set_gdal_config("GDAL_CACHEMAX", int(nbytes))
    try:
        yield
    finally:
        if before is not None:
            set_gdal_config("GDAL_CACHEMAX", before)


def check_disk_space(ds: xr.Dataset, variables: Any, dtype: Any, scale: int, out: Path) -> None:
    """Refuse, before any computation, a streamed output that cannot fit on the output's disk.

    A streamed call needs little memory whatever the grid, so a small file declaring a huge grid
    is stopped here instead: the uncompressed size of the outputs (HR cells × output item size) is
    compared with the free space beside ``out`` (compression is not counted on: it depends on the
    values).

    Raises:
        OSError: ``ENOSPC`` with the figures and the fixes in one line.
    """
    import errno
    import shutil

    from .capability import planned_outputs
    from .memory import fmt_bytes

    need = 0
    for plan in planned_outputs(ds, variables, dtype):
        cells = 1
        for d, n in plan.sizes.items():
            cells *= n * (scale if d in plan.spatial else 1)
        need += cells * plan.dtype.itemsize
    try:
        free = shutil.disk_usage(out.parent if str(out.parent) else ".").free
    except OSError:
        return
    if need > free:
        err = OSError(
            f"cannot write {out}: no space left on the device for about {fmt_bytes(need)} (uncompressed) "
            f"with {fmt_bytes(free)} free in {out.parent}; streamed, the call itself needs little memory: "
            f"write to a larger disk, or downscale a window (ds.isel(y=slice(...), x=slice(...))) or fewer "
            f"variables"
        )
        err.errno = errno.ENOSPC
        raise err


def release_freed_memory() -> None:
    """Return the C allocator's freed pages to the system (glibc ``malloc_trim``; elsewhere nothing).

    Blocks, windows and GDAL buffers are allocated and freed on several threads; glibc keeps the
    freed memory in per-thread arenas, so a streamed call's resident size would creep up by tens of
    MB per thread without it. Called after each written block.
    """
    fn = _MALLOC_TRIM[0] if _MALLOC_TRIM else _load_malloc_trim()
    if fn is not None:
        fn(0)


_MALLOC_TRIM: list[Any] = []


def _load_malloc_trim() -> Any:
    import ctypes
    import ctypes.util

    fn = None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        fn = None
    _MALLOC_TRIM.append(fn)
    return fn


def is_dask(data: Any) -> bool:
    """True for a dask array."""
    return type(data).__module__.startswith("dask")


def _axis_blocks(cores: list[tuple[int, int]], n: int, target: int) -> list[tuple[int, int]]:
    """Group consecutive kept cores ``(k0, k1)`` into blocks of at most ``target`` cells along one axis
    (a single core longer than ``target`` is one block)."""
    bounds = sorted({k for c in cores for k in c} | {0, n})
    bounds = [b for b in bounds if 0 <= b <= n]
    out: list[tuple[int, int]] = []
    start = prev = 0
    for b in bounds[1:]:
        if b - start > target and prev > start:
            out.append((start, prev))
            start = prev
        prev = b
    out.append((start, n))
    return out


def region_grid(
    pipe: Pipeline, shape: tuple[int, int], periodic_x: bool = False
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """LR row and column ranges of the streamed blocks of an ``H × W`` array.

    Boundaries lie on the kept cores of the whole array's windows; blocks are grouped up to about
    :data:`TARGET_HR_CELLS` HR cells (a single window larger than that is one block).

    Returns:
        ``(rows, cols)``: lists of ``(start, stop)`` LR ranges covering ``0..H`` and ``0..W``.
    """
    h, w = shape
    s = pipe.scale
    pad = min(pipe.halo, w) if periodic_x else 0
    tiler = pipe.stream_tiler(h, w + 2 * pad)
    wins = tiler.windows(h, w + 2 * pad)
    edge = max(16, int(math.sqrt(TARGET_HR_CELLS)) // s)
    rows = _axis_blocks([(v.ky0, v.ky1) for v in wins], h, edge)
    cols = _axis_blocks([(min(max(v.kx0 - pad, 0), w), min(max(v.kx1 - pad, 0), w)) for v in wins], w, edge)
    return rows, cols


class _RegionTask:
    """Computes one HR block from its LR box (holds the pipeline; never pickled by the threaded scheduler)."""

    def __init__(
        self,
        pipe: Pipeline,
        normalizers: list[Normalizer],
        cast: Callable[[np.ndarray], np.ndarray],
        desc: str,
    ) -> None:
        self.pipe = pipe
        self.normalizers = normalizers
        self.cast = cast
        self.desc = desc
        self.counter = BLOCKS.get()

    def __call__(self, read: Callable[[], np.ndarray], plan: Any) -> np.ndarray:
        x = np.asarray(read())
        x = x.astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False)
        y = self.cast(self.pipe.run_region(x[None], plan, self.normalizers, self.desc)[0])
        if self.counter is not None:
            self.counter.done()
        return y


class _BoxRead:
    """Reads the LR box of one plan from the input array when its block is computed.

    Each block reads its own box (through its block row's band, :class:`_RowBands`) instead of
    depending on shared chunk tasks: shared input chunks would be kept in memory until every block
    that overlaps them is done, which can be the whole input.
    """

    def __init__(self, bands: _RowBands, row: int, plan: Any) -> None:
        self.bands = bands
        self.row = row
        self.plan = plan

    def __call__(self) -> np.ndarray:
        return self.bands.read_box(self.row, self.plan)


#: Largest row band :class:`_RowBands` keeps (bytes); wider inputs read each box on its own.
BAND_BYTES = 64 << 20


class _RowBands:
    """LR boxes read through whole-width row bands, one band per block row, the last two kept.

    Blocks of one block row are computed one after the other; reading their rows once (instead of
    each box on its own) decodes the input's native chunks once per block row, not once per block:
    a Zarr store chunked in whole rows was otherwise decoded 16 times per chunk at ×4.
    """

    KEEP = 2

    def __init__(self, x: Any, spans: list[tuple[int, int]]) -> None:
        import threading

        self.x = x
        self.spans = spans
        self.cache: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()
        widest = max((b - a for a, b in spans), default=0)
        self.banded = widest * int(np.prod(x.shape[:-2])) * x.shape[-1] * x.dtype.itemsize <= BAND_BYTES

    def __dask_tokenize__(self) -> tuple[str, int]:
        return ("scisr-row-bands", id(self))

    def _band(self, row: int) -> np.ndarray:
        with self.lock:
            band = self.cache.get(row)
            if band is None:
                a, b = self.spans[row]
                part = self.x[..., a:b, :]
                band = np.asarray(part.compute(scheduler="synchronous") if is_dask(part) else part)
                self.cache[row] = band
                while len(self.cache) > self.KEEP:
                    self.cache.pop(next(iter(self.cache)))
            return band

    def read_box(self, row: int, plan: Any) -> np.ndarray:
        """The LR box of ``plan`` (a block of block row ``row``)."""
        if not self.banded:
            x = self.x
            box = plan.read_box(lambda a, b, c, d: x[:, a:b, c:d])
            return np.asarray(box.compute(scheduler="synchronous") if is_dask(box) else box)
        band, top = self._band(row), self.spans[row][0]
        return plan.read_box(lambda a, b, c, d: band[:, a - top : b - top, c:d])


def stream_pipeline(pipe: Pipeline) -> Pipeline:
    """A shallow copy of ``pipe`` for block-by-block runs.

    Its engine shows no per-window progress bar (the writer shows one over blocks), and a model
    left at the default tile whose windows are cropped (interpolation, translation-equivariant
    CNNs) gets window cores of ``max(STREAM_MODEL_TILE, STREAM_HALO_FACTOR·halo)`` LR pixels (at
    most the budget's tile): its receptive field lies within the
    halo, so any window size gives the whole array's values (to float rounding) while each block's
    activations and temporaries stay small. Blended (non-equivariant) models keep their tile, on
    which their values depend.
    """
    import copy

    p = copy.copy(pipe)
    p.engine = copy.copy(pipe.engine)
    p.engine.progress = False
    spec = getattr(p.model, "spec", None)
    free = not any(True for _ in p.model.parameters())
    cropped = bool(getattr(spec, "equivariant", False)) and p.blend == "crop"
    if p.tile is None and free:  # interpolation: one window per block (a window's fixed costs dominate)
        p.tile = max(STREAM_MODEL_TILE, int(math.sqrt(TARGET_HR_CELLS)) // max(1, int(p.scale)))
    elif p.tile is None and cropped:
        core = max(STREAM_MODEL_TILE, STREAM_HALO_FACTOR * int(p.halo))
        p.tile = min(core, pipe.tiler_for(1 << 20, 1 << 20).tile)
    if p.blend == "crop" and (free or cropped):
        p.lattice = True  # equal cores, so equal blocks: whole output chunks in Zarr and NetCDF-4
    return p


@dataclass(frozen=True)
class RegionLayout:
    """The blocks of an ``H × W`` field in a streamed run, computed once for every item of that shape.

    Attributes:
        pipe: The streamed pipeline (:func:`stream_pipeline`).
        shape: ``(H, W)``.
        rows: LR row ranges of the blocks.
        cols: LR column ranges of the blocks.
        periodic_x: The last axis wraps.
        plans: Cropped windows: each block's :class:`sciSR.pipeline.RegionPlan` (rows of columns).
        windows: Blended windows: the field's windows (padded coordinates), ``()`` when cropped.
        touching: Blended windows: per block (rows of columns), the indices of its windows.
    """

    pipe: Pipeline
    shape: tuple[int, int]
    rows: tuple[tuple[int, int], ...]
    cols: tuple[tuple[int, int], ...]
    periodic_x: bool
    plans: tuple[tuple[Any, ...], ...] = ()
    windows: tuple[Any, ...] = ()
    touching: tuple[tuple[tuple[int, ...], ...], ...] = ()

    @property
    def blocks(self) -> int:
        """Number of blocks."""
        return len(self.rows) * len(self.cols)

    @property
    def pad(self) -> int:
        """Columns of periodic padding."""
        return min(self.pipe.halo, self.shape[1]) if self.periodic_x else 0


def region_layout(pipe: Pipeline, shape: tuple[int, int], periodic_x: bool = False) -> RegionLayout:
    """The :class:`RegionLayout` of an ``H × W`` field: :func:`region_grid`'s blocks (one block when
    the pipeline applies a constraint that is not local to each coarse cell), and what each block
    runs: its region plan (cropped windows) or the windows it merges (blended windows)."""
    pipe = stream_pipeline(pipe)
    h, w = shape
    rows, cols = region_grid(pipe, (h, w), periodic_x)
    cons = getattr(pipe, "constraint", None)
    if cons is not None and not getattr(cons, "local", True):  # a constraint over the whole field
        rows, cols = [(0, h)], [(0, w)]
    base = RegionLayout(pipe, (h, w), tuple(rows), tuple(cols), periodic_x)
    pad = base.pad
    tiler = pipe.stream_tiler(h, w + 2 * pad)
    if tiler.blend == "crop":
        plans = tuple(tuple(pipe.plan_region((h, w), (*r, *c), periodic_x) for c in cols) for r in rows)
        return dataclasses.replace(base, plans=plans)
    wins = tiler.windows(h, w + 2 * pad)
    index = {win: k for k, win in enumerate(wins)}
    touching = tuple(
        tuple(tuple(index[v] for v in tiler.touching(wins, (y0, y1, x0 + pad, x1 + pad))) for x0, x1 in cols)
        for y0, y1 in rows
    )
    return dataclasses.replace(base, windows=tuple(wins), touching=touching)


def block_array(name: str, dsk: dict[Any, Any], layout: RegionLayout, c_out: int, out_dtype: Any) -> Any:
    """The dask array ``(C_out, s·H, s·W)`` of the block tasks ``dsk`` (keys ``(name, 0, i, j)``).

    Shape:
        ``-> (C_out, s·H, s·W)``.
    """
    import dask.array as dsa
    from dask.highlevelgraph import HighLevelGraph

    s = layout.pipe.scale
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[])
    chunks = (
        (c_out,),
        tuple(s * (b - a) for a, b in layout.rows),
        tuple(s * (b - a) for a, b in layout.cols),
    )
    return dsa.Array(graph, name, chunks, meta=np.empty((0, 0, 0), np.dtype(out_dtype)))


def region_array(
    x: Any,
    pipe: Pipeline,
    normalizers: list[Normalizer],
    *,
    cast: Callable[[np.ndarray], np.ndarray],
    out_dtype: Any,
    c_out: int,
    periodic_x: bool = False,
    desc: str = "sciSR",
    layout: RegionLayout | None = None,
) -> Any:
    """The HR result of one 2-D item as a lazy dask array computed block by block.

    Args:
        x: ``(C, H, W)`` dask (or numpy) array of physical values, NaN invalid.
        pipe: Built pipeline.
        normalizers: One per channel, fitted on the whole variable.
        cast: Output cast applied to each ``(C_out, sh, sw)`` float32 block.
        out_dtype: dtype ``cast`` returns.
        c_out: Output channels of the model.
        periodic_x: The last axis wraps.
        desc: Progress label.
        layout: :func:`region_layout` of ``pipe`` for this shape (computed when ``None``; pass it
            for many items of one shape: planning a 2000² field takes about 30 ms).

    Returns:
        Dask array ``(C_out, s·H, s·W)`` with one chunk per block of the layout. Blended windows
        overlap their neighbours' blocks: their blocks share a window cache
        (:mod:`sciSR.io.window_cache`), which runs each window once.

    Shape:
        ``(C, H, W) -> (C_out, s·H, s·W)``.
    """
    import dask.array as dsa

    if not is_dask(x):
        x = dsa.from_array(np.asarray(x), chunks=(x.shape[0], INPUT_CHUNK, INPUT_CHUNK))
    if layout is None:
        layout = region_layout(pipe, (int(x.shape[1]), int(x.shape[2])), periodic_x)
    if not layout.plans:
        from .window_cache import blended_blocks

        a = x.astype(np.float64 if x.dtype == np.float64 else np.float32)
        return blended_blocks(a, layout, normalizers, cast, out_dtype, c_out)
    task = _RegionTask(layout.pipe, normalizers, cast, desc)
    name = block_array_name("stream")
    spans = [(min(p.rows[0] for p in row), max(p.rows[1] for p in row)) for row in layout.plans]
    bands = _RowBands(x, spans)
    dsk = {
        (name, 0, i, j): (partial(task, _BoxRead(bands, i, plan), plan),)
        for i, row in enumerate(layout.plans)
        for j, plan in enumerate(row)
    }
    return block_array(name, dsk, layout, c_out, out_dtype)


def fit_stream(pipe: Pipeline, x: Any, name: Hashable) -> list[Normalizer]:
    """One normalizer per channel of ``x`` (``(C, H, W)``, dask) from streaming reductions.

    ``percentile`` uses the exact two-pass quantiles of :mod:`sciSR.io.stream_stats`; the other
    kinds the dask reductions of :func:`sciSR.io.xarray_core.fit_dask`.

    Raises:
        ValueError: No valid value in a channel.
    """
    from .xarray_core import fit_dask

    c = int(x.shape[0])
    probe = pipe.make_normalizer()
    if probe.kind != "percentile" or pipe.norm_params:
        normalizers = fit_dask(pipe, x if c > 1 else x[0], 0, c, name)
    else:
        from .stream_stats import fit_percentile

        normalizers = [fit_percentile(pipe.make_normalizer(), x[i], name) for i in range(c)]
    check = getattr(pipe, "check_constraint", None)
    if check is not None:
        check(normalizers, f"variable {name!r}")
    return normalizers


def block_count(data: Any) -> int:
    """Number of dask blocks of ``data`` (1 for numpy)."""
    return int(np.prod(data.numblocks)) if is_dask(data) else 1


def progress_bar(total: int, desc: str) -> Any:
    """A tqdm bar over ``total`` written blocks on stderr, honouring the call's ``progress=``."""
    import os

    from ..engine import _NoBar

    setting = PROGRESS.get()
    if setting is False or total <= 1 or os.environ.get("SCISR_NO_PROGRESS"):
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="block", disable=None if setting is None else False, leave=False)

"""Lazy HR arrays as dask graphs of window tasks and block tasks: every tile runs once.

The whole array's tiler (:meth:`sciSR.pipeline.Pipeline.stream_tiler`) splits an ``H × W`` field into
windows. This module makes one dask task per window (and per chunk of the loop dims): it assembles
the window's LR box (the window plus :attr:`~sciSR.pipeline.Pipeline.fill_reach` cells, wrapped for
a periodic last axis) from the input chunks, normalizes and fills it with the variable's
normalizers, and runs the model. One task per output block (an input chunk ×scale) then merges the
windows that touch it, in the tiler's order, exactly as :meth:`sciSR.engine.Engine.run` merges them
into the whole array (crop: the kept cores; blends: weighted sums divided by the summed weights),
and finishes the block (inverse normalization, clip, NaN where the input was invalid, cast).

So a chunked result equals the whole-array result for any model (blended tiles of networks with an
unbounded receptive field included), and no window is computed twice however the chunks fall; a
window shared by several blocks is held until they are done. Memory per task: one window's LR box
and HR output, or one block with the HR outputs of its windows.

The pipeline enters the graph once, as one key holding a :class:`sciSR.workers.PipelineHandle`
(distributed workers unpickle it once, not per task).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..normalize import Normalizer
    from ..pipeline import Pipeline
    from ..tiling import Tiler, Window


def _bounds(chunks: tuple[int, ...]) -> list[int]:
    return [0, *np.cumsum(chunks).tolist()]


def _pieces(bounds: list[int], start: int, stop: int) -> list[tuple[int, int, int]]:
    """``(chunk index, local start, local stop)`` of the chunks covering ``[start, stop)``."""
    out = []
    for i in range(len(bounds) - 1):
        lo, hi = max(start, bounds[i]), min(stop, bounds[i + 1])
        if lo < hi:
            out.append((i, lo - bounds[i], hi - bounds[i]))
    return out


def _source_columns(x0: int, x1: int, pad: int, w: int) -> list[tuple[int, int]]:
    """Source column ranges of padded columns ``[x0, x1)`` (a periodic axis wraps), in order."""
    cols = []
    p = x0
    while p < x1:
        src = (p - pad) % w
        n = min(x1 - p, w - src)
        cols.append((src, src + n))
        p += n
    return cols


def _to_block(a: np.ndarray, c: int) -> np.ndarray:
    h, w = a.shape[-2:]
    return a.reshape(-1, c, h, w)


def window_box(
    win: Window, pipe: Pipeline, shape: tuple[int, int], pad: int
) -> tuple[tuple[int, int], tuple[int, int], list[tuple[int, int]]]:
    """LR box of one window: rows, padded columns, and the source column ranges to read.

    The box is the window plus :attr:`Pipeline.fill_reach` on each side, within the (padded) array,
    so its invalid cells are filled as in the whole array.
    """
    h, w = shape
    m = pipe.fill_reach
    rows = (max(win.y0 - m, 0), min(win.y1 + m, h))
    cols = (max(win.x0 - m, 0), min(win.x1 + m, w + 2 * pad))
    return rows, cols, _source_columns(cols[0], cols[1], pad, w)


def lazy_hr(
    a: Any,
    pipe: Pipeline,
    normalizers: list[Normalizer],
    *,
    scale: int,
    cast: Callable[[np.ndarray], np.ndarray],
    out_dtype: Any,
    c_out: int,
    nlead: int,
    c: int,
    periodic_x: bool,
    name: Hashable,
) -> Any:
    """The lazy HR array of ``a`` (see the module docstring).

    Args:
        a: ``(*loop, [C,] H, W)`` dask array, float, NaN invalid; the channel axis (``c > 1``) one chunk.
        pipe: The call's pipeline.
        normalizers: One per channel, fitted on the whole variable.
        scale: Factor.
        cast: Output cast applied to each finished ``(*loop, [C_out,] sh, sw)`` block.
        out_dtype: What ``cast`` returns.
        c_out: Model output channels.
        nlead: Number of loop axes.
        c: Model input channels (``> 1``: axis ``nlead`` holds them).
        periodic_x: The last axis wraps.
        name: Variable name (graph names).

    Returns:
        Dask array with the loop chunks of ``a``, channels whole and spatial chunks ×scale.

    Shape:
        ``(*loop, [C,] H, W) -> (*loop, [C_out,] s·H, s·W)``.
    """
    import dask.array as dsa
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    from .. import workers

    h, w = a.shape[-2:]
    pad = min(pipe.halo, w) if periodic_x else 0
    tiler = pipe.stream_tiler(h, w + 2 * pad)
    wins = tiler.windows(h, w + 2 * pad)
    ptoken = workers.pipeline_token(pipe)
    pkey = f"scisr-pipeline-{ptoken}"
    nz_state = [(nz.kind, nz.params, nz.valid_range) for nz in normalizers]
    token = tokenize(a.name, ptoken, nz_state, scale, periodic_x, nlead, c, str(out_dtype), str(name))
    wname, out_name = f"scisr-windows-{name}-{token}", f"scisr-{name}-{token}"
    ybounds, xbounds = _bounds(a.chunks[-2]), _bounds(a.chunks[-1])
    mid = (0,) if c > 1 else ()
    leads = list(itertools.product(*(range(len(ch)) for ch in a.chunks[:nlead])))
    dsk: dict[Any, Any] = {pkey: workers.PipelineHandle(pipe, ptoken)}
    for k, win in enumerate(wins):
        (r0, r1), (b0, _b1), cols = window_box(win, pipe, (h, w), pad)
        ys = _pieces(ybounds, r0, r1)
        xs = [p for c0, c1 in cols for p in _pieces(xbounds, c0, c1)]
        crop = (win.y0 - r0, win.y1 - r0, win.x0 - b0, win.x1 - b0)
        for lead in leads:
            keys = [[(a.name, *lead, *mid, jy, jx) for jx, _, _ in xs] for jy, _, _ in ys]
            slices = ([(y0, y1) for _, y0, y1 in ys], [(x0, x1) for _, x0, x1 in xs])
            dsk[(wname, *lead, k)] = (
                _window_task,
                pkey,
                keys,
                slices,
                crop,
                normalizers,
                c,
                (h, w),
                (r0, r1),
                cols,
            )
    for iy in range(len(ybounds) - 1):
        for ix in range(len(xbounds) - 1):
            region = (ybounds[iy], ybounds[iy + 1], xbounds[ix] + pad, xbounds[ix + 1] + pad)
            near = set(tiler.touching(wins, region))
            touching = [k for k, win in enumerate(wins) if win in near]
            for lead in leads:
                dsk[(out_name, *lead, *mid, iy, ix)] = (
                    _block_task,
                    pkey,
                    [(wname, *lead, k) for k in touching],
                    [wins[k] for k in touching],
                    (a.name, *lead, *mid, iy, ix),
                    tiler,
                    (region[0], region[2]),
                    (ybounds[iy], xbounds[ix]),
                    normalizers,
                    cast,
                    nlead,
                    c,
                )
    chunks = (
        *a.chunks[:nlead],
        *([(c_out,)] if c > 1 else []),
        tuple(n * scale for n in a.chunks[-2]),
        tuple(n * scale for n in a.chunks[-1]),
    )
    graph = HighLevelGraph.from_collections(out_name, dsk, dependencies=[a])
    return dsa.Array(graph, out_name, chunks, meta=np.empty((0,) * a.ndim, np.dtype(out_dtype)))


def _window_task(
    handle: Any,
    chunks: list[list[np.ndarray]],
    slices: tuple[list[tuple[int, int]], list[tuple[int, int]]],
    crop: tuple[int, int, int, int],
    normalizers: list[Normalizer],
    c: int,
    shape: tuple[int, int],
    rows: tuple[int, int],
    cols: list[tuple[int, int]],
) -> np.ndarray:
    """One window: its LR box from the input chunks, normalized and filled, through the model.

    ``shape``, ``rows`` and ``cols`` (the whole field's size, the box's rows and its source column
    ranges) place the box in the field, for the covariate channels of a pipeline that has them.

    Shape:
        chunks ``(*loop, [C,] h_i, w_j)`` -> ``(B, C_out, s·wh, s·ww)`` (raw model output, float32).
    """
    import torch

    from .. import workers

    workers.limit_torch_threads()
    prow, pcol = slices
    strips = []
    for row, (y0, y1) in zip(chunks, prow):
        parts = [ch[..., y0:y1, x0:x1] for ch, (x0, x1) in zip(row, pcol)]
        strips.append(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1))
    box = strips[0] if len(strips) == 1 else np.concatenate(strips, axis=-2)
    pipe = handle.pipe
    z, _valid = pipe._normalized(_to_block(box, c), normalizers)
    z = pipe._with_covariate_channels(z, shape, rows, cols)
    y0, y1, x0, x1 = crop
    tile = torch.from_numpy(np.ascontiguousarray(z[..., y0:y1, x0:x1]))
    # items go through the model in batches of engine.batch_size, as the whole-array run sends its
    # tiles (reduced-precision kernels can round differently for another batch size)
    n = max(1, int(pipe.engine.batch_size))
    parts = [pipe.engine.forward(pipe.model, tile[i : i + n], pipe.scale) for i in range(0, len(tile), n)]
    return (parts[0] if len(parts) == 1 else torch.cat(parts)).numpy()


def _block_task(
    handle: Any,
    outputs: list[np.ndarray],
    wins: list[Window],
    chunk: np.ndarray,
    tiler: Tiler,
    origin: tuple[int, int],
    corner: tuple[int, int],
    normalizers: list[Normalizer],
    cast: Callable[[np.ndarray], np.ndarray],
    nlead: int,
    c: int,
) -> np.ndarray:
    """One output block: the windows' outputs merged as the whole array merges them, then finished
    (and constrained, when the pipeline has a consistency constraint: the block's own LR cells are
    all a block-mean constraint needs). ``origin`` is the block's LR corner in the tiler's (padded)
    coordinates, ``corner`` in the field's.

    Shape:
        chunk ``(*loop, [C,] bh, bw)`` -> ``(*loop, [C_out,] s·bh, s·bw)``.
    """
    import torch

    pipe = handle.pipe
    s = pipe.scale
    lead = chunk.shape[:nlead]
    x = _to_block(chunk, c)
    b, _c, bh, bw = x.shape
    hr = (s * bh, s * bw)
    c_out = outputs[0].shape[1]
    out = torch.zeros(b, c_out, *hr)
    wsum = None if tiler.blend == "crop" else torch.zeros(b, *hr)
    for y, win in zip(outputs, wins):
        yt = torch.from_numpy(y)
        for i in range(b):
            tiler.merge_into(out[i], None if wsum is None else wsum[i], yt[i], win, (*origin, *hr))
    if wsum is not None:
        out /= wsum[:, None]
    raw = out.numpy()
    y = pipe._finish(raw, np.isfinite(x), normalizers)
    if pipe.constraint is not None:
        y = pipe._constrain(y, x, (corner[0] * s, corner[1] * s), raw)
    shape = (*lead, *((y.shape[1],) if c > 1 else ()), *y.shape[-2:])
    if c == 1 and y.shape[1] != 1:
        raise ValueError(
            f"the model returned {y.shape[1]} channels for a 1-channel input; use a model with "
            f"out_channels=1 for gridded variables"
        )
    return cast(y.reshape(shape))

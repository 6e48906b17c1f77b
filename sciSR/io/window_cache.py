"""Streamed blocks of blended models: independent block tasks sharing one window cache.

Blended windows (networks whose receptive field is not bounded, e.g. RCAN's channel attention)
overlap the blocks of their neighbours, so a streamed block needs windows that other blocks need
too. A dask graph with one task per window holds each window's output until every block using it
is done, but the scheduler's order decides when that is: streaming ×2 of a 4000² field through such
a graph grew the peak by about 520 MiB (210 MiB at 1000²). Here every block is an independent task;
a :class:`WindowCache` shared by the blocks of one field runs each window on first use and drops its
output when the last block that uses it is done (reference counts are known from the plan), or,
beyond a cap of two rows of windows (at least :data:`CACHE_BYTES`), the least recently used one.
Blocks in row-major order, one at a time, run each window once: the streamed writers set that
order (:func:`sciSR.io.streaming.row_major_order`; xarray's NetCDF/Zarr writers visited blocks in
a scattered order, where capped windows ran again: 15 % more window runs for 4000² ×2). In any
order the blocks are exact.

Blocks equal the whole array's blocks: windows, weights and summation order are those of
:meth:`sciSR.engine.Engine.run` (the merge is :func:`sciSR.io.window_graph._block_task`'s).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..normalize import Normalizer
    from ..pipeline import Pipeline
    from .streaming import RegionLayout


#: Window outputs a field's cache may keep (bytes; at least two rows of windows).
CACHE_BYTES = 128 << 20


class _Handle:
    """What the window-graph task functions expect of a pipeline handle."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe


class WindowCache:
    """Window outputs of one field, computed on first use and dropped after their last use.

    Args:
        x: ``(C, H, W)`` LR field (dask or numpy), float, NaN invalid.
        layout: The field's blended :class:`sciSR.io.streaming.RegionLayout`.
        normalizers: One per channel, fitted on the whole variable.
    """

    def __init__(self, x: Any, layout: RegionLayout, normalizers: list[Normalizer]) -> None:
        pipe = layout.pipe
        self.x = x
        self.handle = _Handle(pipe)
        self.normalizers = normalizers
        self.wins = list(layout.windows)
        self.pad = layout.pad
        self.tiler = pipe.stream_tiler(layout.shape[0], layout.shape[1] + 2 * self.pad)
        self.left = [0] * len(self.wins)
        for row in layout.touching:
            for ks in row:
                for k in ks:
                    self.left[k] += 1
        self.outputs: dict[int, np.ndarray] = {}
        self.held = 0
        # two rows of window outputs at least: blocks in row-major order then never run a window
        # twice, whatever the field's height
        s, c_out = (
            pipe.scale,
            int(getattr(getattr(pipe.model, "spec", None), "out_channels", 0) or x.shape[0]),
        )
        per_row = len({(w.x0, w.x1) for w in self.wins})
        largest = max(((w.y1 - w.y0) * (w.x1 - w.x0) for w in self.wins), default=0)
        self.cap = max(CACHE_BYTES, 2 * per_row * largest * s * s * c_out * 4)
        self.lock = threading.Lock()
        self.runs = 0

    def __dask_tokenize__(self) -> tuple[str, int]:
        return ("scisr-window-cache", id(self))

    def _run(self, k: int) -> np.ndarray:
        from .streaming import is_dask
        from .window_graph import _window_task, window_box

        c, h, w = (int(n) for n in self.x.shape)
        win = self.wins[k]
        (r0, r1), (b0, _b1), cols = window_box(win, self.handle.pipe, (h, w), self.pad)
        parts = [self.x[:, r0:r1, c0:c1] for c0, c1 in cols]
        parts = [np.asarray(p.compute(scheduler="synchronous") if is_dask(p) else p) for p in parts]
        box = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        box = box if c > 1 else box[0]
        crop = (win.y0 - r0, win.y1 - r0, win.x0 - b0, win.x1 - b0)
        whole = ([(0, r1 - r0)], [(0, box.shape[-1])])
        self.runs += 1
        return _window_task(self.handle, [[box]], whole, crop, self.normalizers, c, (h, w), (r0, r1), cols)

    def take(self, ks: list[int]) -> list[np.ndarray]:
        """The outputs of windows ``ks`` (run now if not held)."""
        with self.lock:
            out = []
            for k in ks:
                y = self.outputs.pop(k, None)  # re-inserted: the dict's order is the use order
                if y is None:
                    y = self._run(k)
                    self.held += y.nbytes
                self.outputs[k] = y
                out.append(y)
            return out

    def release(self, ks: list[int]) -> None:
        """One block using windows ``ks`` is done: drop those no other block needs, then the least
        recently used ones while more than ``cap`` bytes are held (:data:`CACHE_BYTES`, or two rows
        of window outputs when more): they run again if a later block needs them, which only
        happens when blocks come in a scattered order."""
        with self.lock:
            for k in ks:
                self.left[k] -= 1
                if self.left[k] <= 0:
                    self._drop(k)
            while self.held > self.cap and self.outputs:
                self._drop(next(iter(self.outputs)))

    def _drop(self, k: int) -> None:
        y = self.outputs.pop(k, None)
        if y is not None:
            self.held -= y.nbytes


def _block(
    cache: WindowCache,
    ks: list[int],
    region: tuple[int, int, int, int],
    cast: Callable[[np.ndarray], np.ndarray],
    counter: Any,
) -> np.ndarray:
    """One HR block ``(C_out, s·bh, s·bw)`` of field rows/cols ``region`` from its windows."""
    from .streaming import is_dask
    from .window_graph import _block_task

    y0, y1, x0, x1 = region
    c = int(cache.x.shape[0])
    lr = cache.x[:, y0:y1, x0:x1]
    lr = np.asarray(lr.compute(scheduler="synchronous") if is_dask(lr) else lr)
    outputs = cache.take(ks)
    try:
        y = _block_task(
            cache.handle,
            outputs,
            [cache.wins[k] for k in ks],
            lr if c > 1 else lr[0],
            cache.tiler,
            (y0, x0 + cache.pad),
            (y0, x0),
            cache.normalizers,
            cast,
            0,
            c,
        )
    finally:
        del outputs
        cache.release(ks)
    if counter is not None:
        counter.done()
    return y if c > 1 else y[None]


def blended_blocks(
    x: Any,
    layout: RegionLayout,
    normalizers: list[Normalizer],
    cast: Callable[[np.ndarray], np.ndarray],
    out_dtype: Any,
    c_out: int,
) -> Any:
    """The HR result of one field as independent block tasks over a shared :class:`WindowCache`.

    Args:
        x: ``(C, H, W)`` dask or numpy array, float, NaN invalid.
        layout: The field's blended :class:`sciSR.io.streaming.RegionLayout`.
        normalizers: One per channel.
        cast: Output cast of each finished block.
        out_dtype: What ``cast`` returns.
        c_out: Model output channels.

    Returns:
        Dask array ``(C_out, s·H, s·W)`` with one chunk per block.

    Shape:
        ``(C, H, W) -> (C_out, s·H, s·W)``.
    """
    from .streaming import BLOCKS, block_array, block_array_name

    cache = WindowCache(x, layout, normalizers)
    counter = BLOCKS.get()
    name = block_array_name("blended")
    dsk = {
        (name, 0, i, j): (
            partial(_block, cache, list(ks), (*layout.rows[i], *layout.cols[j]), cast, counter),
        )
        for i, row in enumerate(layout.touching)
        for j, ks in enumerate(row)
    }
    return block_array(name, dsk, layout, c_out, out_dtype)

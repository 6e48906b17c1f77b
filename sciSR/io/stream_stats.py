"""Exact percentiles of arrays larger than memory, in a few streaming passes over their chunks.

``np.percentile`` (linear interpolation, numpy's default) needs the order statistics of ranks
``⌊p(n-1)⌋`` and the next one. They are found by radix selection on an order-preserving 64-bit
key of each float64 value: each pass counts, per chunk, the values of every 16-bit digit of the
key among the values that share the digits already fixed, and narrows each wanted rank to one
digit. As soon as the values left in a rank's bucket fit in :data:`COLLECT_MAX` they are gathered
and the rank is picked exactly (``np.partition``); at most four counting passes are ever needed.
Memory per pass: one chunk and a 65536-entry count table per chunk. The result equals
``np.percentile`` of the loaded valid values (same interpolation formula).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..normalize import Normalizer

#: values gathered at most per wanted rank to pick it exactly (8 MiB of float64)
COLLECT_MAX = 1 << 20
_DIGIT = 16
_SIGN = np.uint64(1 << 63)


def _keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving unsigned 64-bit keys of float64 values (negative values bit-inverted)."""
    u = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(u & _SIGN, ~u, u | _SIGN)


def _value(key: int) -> float:
    """The float64 value of a key made by :func:`_keys`."""
    u = np.uint64(key)
    bits = u & ~_SIGN if u & _SIGN else ~u
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _valid(block: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    b = np.asarray(block, dtype=np.float64)
    ok = np.isfinite(b)
    if mask is not None:
        ok &= np.asarray(mask, dtype=bool)
    return b[ok]


States = tuple[tuple[int, int], ...]


def _count_digits(block: np.ndarray, mask: np.ndarray | None, states: States) -> np.ndarray:
    """Per state ``(prefix, bits fixed)``: counts of the next digit among values with that prefix."""
    k = _keys(_valid(block, mask))
    out = np.zeros((len(states), 1 << _DIGIT), dtype=np.int64)
    for i, (prefix, fixed) in enumerate(states):
        sel = k if fixed == 0 else k[(k >> np.uint64(64 - fixed)) == np.uint64(prefix)]
        digit = (sel >> np.uint64(64 - fixed - _DIGIT)) & np.uint64((1 << _DIGIT) - 1)
        out[i] = np.bincount(digit.astype(np.int64), minlength=1 << _DIGIT)
    return out


def _collect(block: np.ndarray, mask: np.ndarray | None, states: States) -> list[np.ndarray]:
    """Per state: the values whose key starts with its prefix."""
    v = _valid(block, mask)
    k = _keys(v)
    return [v if f == 0 else v[(k >> np.uint64(64 - f)) == np.uint64(prefix)] for prefix, f in states]


def _blocks(x: Any, mask: Any) -> list[tuple[Any, Any]]:
    """Pairs of per-chunk delayed values (``x`` chunk, mask chunk or ``None``)."""
    xs = list(x.to_delayed().ravel())
    if mask is None:
        return [(b, None) for b in xs]
    ms = list(mask.rechunk(x.chunks).to_delayed().ravel())
    return list(zip(xs, ms))


def order_statistics(x: Any, ranks: Sequence[int], mask: Any = None, n: int | None = None) -> list[float]:
    """The values of the given 0-based ``ranks`` among the valid (finite, unmasked) values of ``x``.

    Args:
        x: Dask array (any shape); NaN/inf are ignored.
        ranks: Wanted ranks, each in ``0 .. n-1`` (``n`` valid values).
        mask: Optional boolean dask array of ``x``'s shape: only its true cells count.
        n: The number of valid values when known (small arrays are then gathered at once).

    Returns:
        One float per rank, equal to ``np.sort(valid)[rank]``.
    """
    import dask

    blocks = _blocks(x, mask)
    # per wanted rank: [prefix, bits fixed, values below the prefix, values with the prefix]
    state = {r: [0, 0, 0, n] for r in dict.fromkeys(int(r) for r in ranks)}
    found: dict[int, float] = {}
    while len(found) < len(state):
        todo = [r for r in state if r not in found]
        collect = [r for r in todo if state[r][3] is not None and state[r][3] <= COLLECT_MAX]
        count = [r for r in todo if r not in collect]
        if count:
            states = tuple((state[r][0], state[r][1]) for r in count)
            parts = [dask.delayed(_count_digits)(b, m, states) for b, m in blocks]
            total = sum(dask.compute(*parts)) if parts else np.zeros((len(count), 1 << _DIGIT), np.int64)
            for i, r in enumerate(count):
                prefix, fixed, below, _ = state[r]
                cum = np.cumsum(total[i])
                d = int(np.searchsorted(cum, r - below, side="right"))
                before = int(cum[d - 1]) if d else 0
                n_in = int(total[i][d])
                state[r] = [(prefix << _DIGIT) | d, fixed + _DIGIT, below + before, n_in]
                if fixed + _DIGIT == 64:  # every value left has this exact key
                    found[r] = _value(state[r][0])
        if collect:
            states = tuple((state[r][0], state[r][1]) for r in collect)
            parts = [dask.delayed(_collect)(b, m, states) for b, m in blocks]
            got = dask.compute(*parts)
            for i, r in enumerate(collect):
                vals = np.concatenate([g[i] for g in got]) if got else np.empty(0)
                k = r - state[r][2]
                found[r] = float(np.partition(vals, k)[k])
    return [found[int(r)] for r in ranks]


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation between neighbouring order statistics (``np.percentile``)."""
    diff = b - a
    return float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t)


def percentiles(x: Any, qs: Sequence[float], mask: Any = None) -> tuple[list[float], int, float, float]:
    """Exact ``np.percentile(valid, qs)`` of a dask array, its valid count and valid min/max.

    Raises:
        ValueError: No valid value.
    """
    import dask
    import dask.array as dsa

    xf = x.astype(np.float64)
    ok = dsa.isfinite(xf) if mask is None else dsa.isfinite(xf) & mask
    n, lo, hi = dask.compute(ok.sum(), dsa.where(ok, xf, np.inf).min(), dsa.where(ok, xf, -np.inf).max())
    n = int(n)
    if n == 0:
        raise ValueError("no valid values to normalize: the data are all NaN/fill/nodata")
    pos = [float(q) / 100.0 * (n - 1) for q in qs]
    ranks = sorted({r for p in pos for r in (int(np.floor(p)), min(int(np.floor(p)) + 1, n - 1))})
    stats = dict(zip(ranks, order_statistics(xf, ranks, mask, n)))
    out = []
    for p in pos:
        k = int(np.floor(p))
        out.append(_lerp(stats[k], stats[min(k + 1, n - 1)], p - k))
    return out, n, float(lo), float(hi)


def fit_percentile(nz: Normalizer, x: Any, name: Hashable, mask: Any = None) -> Normalizer:
    """Fit a :class:`~sciSR.normalize.Percentile` normalizer on a dask array (exact, streaming).

    ``valid_range`` is the range of every finite value (as :meth:`sciSR.pipeline.Pipeline.fit`
    records it), even when ``mask`` limits the cells the percentiles are taken on.

    Raises:
        ValueError: ``x`` has no valid value.
    """
    import dask
    import dask.array as dsa

    try:
        (lo, hi), _n, _a, _b = percentiles(x, [nz.lower, nz.upper], mask)  # type: ignore[attr-defined]
    except ValueError:
        raise ValueError(f"variable {name!r} is all NaN/fill: nothing valid to downscale") from None
    nz.params = {"lo": lo, "hi": hi if hi > lo else lo + 1.0}
    xf = x.astype(np.float64)
    ok = dsa.isfinite(xf)
    vmin, vmax = dask.compute(dsa.where(ok, xf, np.inf).min(), dsa.where(ok, xf, -np.inf).max())
    nz.valid_range = (float(vmin), float(vmax))
    return nz

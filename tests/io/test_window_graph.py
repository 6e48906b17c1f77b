"""Window-task dask graphs: chunked results equal whole-array inference, and every tile runs once."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from sciSR.io.window_graph import lazy_hr
from sciSR.pipeline import Pipeline

TINY_RCAN = {"pretrained": False, "n_resgroups": 1, "n_resblocks": 2, "n_feats": 16}


def _field(b: int = 3, c: int = 1) -> np.ndarray:
    x = np.random.default_rng(0).random((b, c, 97, 131)).astype(np.float32)
    x[1, :, 5:40, 60:100] = np.nan  # a hole larger than the fill reach
    return x


def _lazy(pipe: Pipeline, x: np.ndarray, nz, periodic: bool, chunks=(2, 30, 50)):
    c = x.shape[1]
    a = da.from_array(x if c > 1 else x[:, 0], chunks=(chunks[0], c, *chunks[1:]) if c > 1 else chunks)
    return lazy_hr(
        a,
        pipe,
        nz,
        scale=pipe.scale,
        cast=lambda v: v,
        out_dtype=np.float32,
        c_out=c,
        nlead=1,
        c=c,
        periodic_x=periodic,
        name="v",
    )


@pytest.mark.parametrize(
    ("model", "kw"),
    [("rcan", {"tile": 40, **TINY_RCAN}), ("espcn", {"tile": 32}), ("bicubic", {})],
)
@pytest.mark.parametrize("periodic", [False, True])
def test_chunked_equals_whole_array(model, kw, periodic):
    x = _field()
    pipe = Pipeline.build(model, 2, progress=False, **kw)
    nz = pipe.fit(x)
    ref = pipe.run(x, nz, periodic_x=periodic)[:, 0]
    y = _lazy(pipe, x, nz, periodic)
    assert y.chunks == ((2, 1), (60, 60, 60, 14), (100, 100, 62))
    got = y.compute(scheduler="sync")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert np.nanmax(np.abs(got - ref)) == 0.0  # the same tiles, weights and summation order


def test_several_channels_and_loop_chunks():
    x = _field(b=2, c=3)
    pipe = Pipeline.build("rcan", 2, progress=False, tile=36, in_channels=3, **TINY_RCAN)
    nz = pipe.fit(x)
    ref = pipe.run(x, nz)
    got = _lazy(pipe, x, nz, False, chunks=(1, 40, 60)).compute(scheduler="sync")
    assert np.nanmax(np.abs(got - ref)) == 0.0


def test_every_window_runs_once():
    """Blended windows straddle chunk edges; each still goes through the model once per item."""
    x = _field()
    pipe = Pipeline.build("rcan", 2, progress=False, tile=40, **TINY_RCAN)
    nz = pipe.fit(x)
    calls: list[int] = []
    pipe.model.register_forward_hook(lambda _m, inp, _out: calls.append(inp[0].shape[0]))
    _lazy(pipe, x, nz, False).compute(scheduler="sync")
    n_windows = len(pipe.stream_tiler(97, 131).windows(97, 131))
    assert sum(calls) == n_windows * x.shape[0]

"""Region-by-region inference (Pipeline.plan_region / run_region) equals whole-array inference."""

from __future__ import annotations

import numpy as np
import pytest

from sciSR.pipeline import Pipeline


def _blocks(h: int, w: int, bh: int, bw: int):
    for y0 in range(0, h, bh):
        for x0 in range(0, w, bw):
            yield (y0, min(y0 + bh, h), x0, min(x0 + bw, w))


def _by_regions(pipe: Pipeline, x: np.ndarray, nz, periodic: bool, bh: int, bw: int) -> np.ndarray:
    s = pipe.scale
    h, w = x.shape[-2:]
    out = None
    for r in _blocks(h, w, bh, bw):
        plan = pipe.plan_region((h, w), r, periodic)
        box = plan.read_box(lambda a, b, c, d: x[..., a:b, c:d])
        y = pipe.run_region(box, plan, nz)
        if out is None:
            out = np.full((*x.shape[:2], h * s, w * s), -1.0, np.float32)
        out[..., r[0] * s : r[1] * s, r[2] * s : r[3] * s] = y
    return out


@pytest.mark.parametrize(
    ("model", "kw"),
    [
        # unbounded receptive field (channel attention): blended tiles
        ("rcan", {"tile": 40, "pretrained": False, "n_resgroups": 1, "n_resblocks": 2, "n_feats": 16}),
        ("espcn", {"tile": 32}),  # cropped tiles
        ("edsr_baseline", {"tile": 36, "blend": "gaussian", "pretrained": False, "n_resblocks": 2}),
    ],
)
@pytest.mark.parametrize("periodic", [False, True])
def test_regions_equal_whole_array(model, kw, periodic, recwarn):
    rng = np.random.default_rng(1)
    x = rng.random((2, 1, 97, 131)).astype(np.float32)
    x[1, 0, 5:12, 60:70] = np.nan  # a hole: the output keeps it
    pipe = Pipeline.build(model, 2, progress=False, **kw)
    nz = pipe.fit(x)
    ref = pipe.run(x, nz, periodic_x=periodic)
    got = _by_regions(pipe, x, nz, periodic, 29, 41)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert np.nanmax(np.abs(got - ref)) <= 1e-6


@pytest.mark.parametrize("periodic", [False, True])
def test_large_invalid_areas_fill_as_in_the_whole_array(periodic):
    """A land mask covering half the field (and the wrap seam): blocks are filled as the whole array."""
    rng = np.random.default_rng(3)
    x = rng.random((1, 1, 90, 120)).astype(np.float32)
    yy, xx = np.mgrid[:90, :120]
    x[0, 0][(xx < 30) | (xx > 100) | ((yy - 45) ** 2 + (xx - 60) ** 2 < 400)] = np.nan
    kw = {"tile": 24, "pretrained": False, "n_resgroups": 1, "n_resblocks": 1, "n_feats": 8}
    pipe = Pipeline.build("rcan", 2, progress=False, **kw)
    nz = pipe.fit(x)
    ref = pipe.run(x, nz, periodic_x=periodic)
    got = _by_regions(pipe, x, nz, periodic, 23, 31)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert np.nanmax(np.abs(got - ref)) <= 1e-6


def test_fill_reach_bounds_the_nearest_fill():
    from sciSR.masking import fill_invalid

    x = np.arange(20, dtype=np.float32)[None].repeat(3, 0)
    valid = np.zeros_like(x, bool)
    valid[:, 0] = True
    got = fill_invalid(x, valid, reach=4)
    assert (got[:, :5] == 0).all() and (got[:, 5:] == 0).all()  # column 0 holds 0: all cells read 0
    x[:, 0] = 7
    got = fill_invalid(x, valid, reach=4)
    assert (got[:, 1:5] == 7).all() and (got[:, 5:] == 0).all()
    assert (fill_invalid(x, valid)[:, 5:] == 7).all()  # unbounded


def test_interpolation_streams_in_windows():
    """A parameter-free model runs whole in one window but region by region in STREAM_TILE windows."""
    from sciSR import pipeline

    x = np.random.default_rng(2).random((1, 1, 300, 260)).astype(np.float32)
    pipe = Pipeline.build("bicubic", 3, progress=False)
    old = pipeline.STREAM_TILE
    pipeline.STREAM_TILE = 64
    try:
        assert len(pipe.stream_tiler(300, 260).windows(300, 260)) > 1
        nz = pipe.fit(x)
        ref = pipe.run(x, nz)
        got = _by_regions(pipe, x, nz, False, 100, 90)
    finally:
        pipeline.STREAM_TILE = old
    # torch's float32 bicubic maps output to input coordinates with a rounding error that grows
    # with the index (whole vs windowed differ by ~3e-5 on [0, 1] data; float64 differs from both)
    assert np.max(np.abs(got - ref)) <= 1e-4


def test_region_plan_reads_only_what_the_windows_need():
    pipe = Pipeline.build("espcn", 2, progress=False, tile=32)
    plan = pipe.plan_region((400, 500), (100, 140, 200, 260))
    y0, y1, x0, x1 = plan.box
    assert y0 <= 100 and y1 >= 140 and x0 <= 200 and x1 >= 260
    assert (y1 - y0) * (x1 - x0) < 400 * 500 / 10
    assert plan.read == ((x0, x1),)


def test_periodic_plan_wraps_columns():
    pipe = Pipeline.build("espcn", 2, progress=False, tile=32)
    plan = pipe.plan_region((64, 100), (0, 64, 0, 10), periodic_x=True)
    assert plan.read[0][1] == 100 and plan.read[-1][0] == 0  # last columns first, then the first ones


def test_region_errors():
    pipe = Pipeline.build("espcn", 2, progress=False, tile=32)
    with pytest.raises(ValueError, match="not inside"):
        pipe.plan_region((50, 50), (0, 60, 0, 10))
    plan = pipe.plan_region((50, 50), (0, 10, 0, 10))
    with pytest.raises(ValueError, match="LR box has shape"):
        pipe.run_region(np.zeros((1, 1, 3, 3), np.float32), plan, pipe.fit(np.ones((1, 1, 50, 50))))

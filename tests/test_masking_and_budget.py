"""Unit tests of the mask fill, the memory budget and the automatic tile size."""

from __future__ import annotations

import numpy as np
import pytest

import sciSR
from sciSR import engine
from sciSR.masking import fill_invalid, upsample_mask
from sciSR.pipeline import Pipeline


def test_fill_invalid_takes_the_nearest_valid_value() -> None:
    x = np.array(
        [
            [1.0, 2.0, 3.0, 4.0],
            [5.0, np.nan, np.nan, 8.0],
            [9.0, 10.0, np.nan, np.nan],
        ]
    )
    valid = np.isfinite(x)
    got = fill_invalid(x, valid)
    # (1,1): 2 at distance 1 above, 5 left and 10 below also at 1 -> any of them; check by distance
    for i, j in zip(*np.where(~valid)):
        d = np.hypot(*(np.argwhere(valid) - [i, j]).T)
        candidates = {x[tuple(p)] for p in np.argwhere(valid)[d == d.min()]}
        assert got[i, j] in candidates, (i, j, got[i, j], candidates)
    np.testing.assert_array_equal(got[valid], x[valid])  # valid cells untouched
    # a far cell takes the value of the one valid cell, not an average or zero
    y = np.full((5, 7), np.nan)
    y[0, 0] = 42.0
    assert (fill_invalid(y, np.isfinite(y)) == 42.0).all()
    none = fill_invalid(y.astype(np.float32), np.zeros_like(y, bool))  # nothing valid: zeros
    assert none.shape == y.shape and none.dtype == np.float32 and (none == 0).all()
    full = np.arange(6.0).reshape(2, 3)
    assert fill_invalid(full, np.ones_like(full, bool)) is full


def test_upsample_mask_is_block_replication() -> None:
    m = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(
        upsample_mask(m, 3), np.kron(m.astype(int), np.ones((3, 3), int)).astype(bool)
    )
    # leading (batch, channel) axes are left alone: only the last two are refined
    stack = np.random.default_rng(0).random((2, 3, 4, 5)) > 0.5
    up = upsample_mask(stack, 2)
    assert up.shape == (2, 3, 8, 10)
    for i in range(2):
        for c in range(3):
            np.testing.assert_array_equal(up[i, c], np.kron(stack[i, c], np.ones((2, 2), bool)))


def test_budget_follows_the_environment_and_available_memory(monkeypatch) -> None:
    import torch

    monkeypatch.setenv("SCISR_MEMORY_BUDGET", "123456789")
    assert engine.default_budget(torch.device("cpu")) == 123456789.0
    monkeypatch.delenv("SCISR_MEMORY_BUDGET")
    monkeypatch.setattr(engine, "available_memory", lambda: 2.0 * 2**30)
    assert engine.default_budget(torch.device("cpu")) == 0.5 * 2**30  # a quarter of what is free
    monkeypatch.setattr(engine, "available_memory", lambda: 400.0 * 2**30)
    assert engine.default_budget(torch.device("cpu")) == engine.CPU_BUDGET_CAP == 2**30  # capped


def test_auto_tile_size_fits_the_budget_and_scales_with_it() -> None:
    m = sciSR.create_model("edsr_baseline", scale=4, in_channels=1, pretrained=False)
    per_px = engine.activation_bytes_per_pixel(m, 1, 4)
    # the largest activation of EDSR-baseline ×4 is the 64-channel map at ×4 before the last
    # pixel shuffle step or the 256-channel map at ×2: 64·16 = 1024 or 256·4 = 1024 values per px
    assert per_px == pytest.approx(4.0 * 1024, rel=0.01)
    budget = 2.0 * 2**30
    halo = m.spec.halo
    tile = engine.auto_tile_size(m, 1, halo, budget, "fp32", 4)
    window = tile + 2 * halo
    assert 2 * window**2 * per_px <= budget < 2 * (window + 2) ** 2 * per_px  # the largest that fits
    tile16 = engine.auto_tile_size(m, 1, halo, budget, "bf16", 4)
    assert (tile16 + 2 * halo) == pytest.approx(np.sqrt(2) * window, abs=2)  # half the bytes per value
    assert engine.auto_tile_size(m, 1, halo, 1.0, "fp32", 4) == 32  # floor
    assert engine.auto_tile_size(m, 1, halo, 1e18, "fp32", 4) == 8192  # ceiling


def test_pipeline_tiles_only_when_the_input_exceeds_the_budget(monkeypatch) -> None:
    m = sciSR.create_model("edsr_baseline", scale=2, in_channels=1, pretrained=False, n_resblocks=2)
    monkeypatch.setenv("SCISR_MEMORY_BUDGET", str(64 * 2**20))
    p = Pipeline.build(m, 2, precision="fp32", norm=None)
    t = p.tiler_for(500, 500)
    assert 32 <= t.tile < 500 and len(t.windows(500, 500)) > 1
    monkeypatch.setenv("SCISR_MEMORY_BUDGET", str(64 * 2**30))
    p = Pipeline.build(m, 2, precision="fp32", norm=None)
    assert len(p.tiler_for(500, 500).windows(500, 500)) == 1
    # parameter-free baselines never tile
    assert len(Pipeline.build("bicubic", 2).tiler_for(5000, 5000).windows(5000, 5000)) == 1

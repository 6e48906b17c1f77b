"""Dask-backed input stays lazy until compute and equals the eager result."""

from __future__ import annotations

import json

import dask.array as dsa
import numpy as np
import pytest
import torch

import sciSR
from sciSR.models import get_entry


def _tiny_srcnn():
    torch.manual_seed(0)
    return sciSR.create_model("srcnn", scale=2, in_channels=1, pretrained=False, **get_entry("srcnn").tiny)


@pytest.mark.parametrize("norm", ["zscore", "minmax", "log1p"])
def test_dask_lazy_equals_eager(tas, norm):
    model = _tiny_srcnn()
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    eager = sciSR.downscale(tas, model=model, scale=2, norm=norm)
    calls.clear()
    lazy = sciSR.downscale(tas.chunk({"time": 1}), model=model, scale=2, norm=norm)
    assert isinstance(lazy.tas.data, dsa.Array)
    assert lazy.tas.data.chunks == ((1, 1, 1), (192,), (384,))
    assert not calls  # nothing ran yet (no meta inference on empty arrays either)
    p_lazy, p_eager = (json.loads(o.tas.attrs["scisr_norm_params"]) for o in (lazy, eager))
    assert p_lazy.keys() == p_eager.keys() and p_lazy
    np.testing.assert_allclose(list(p_lazy.values()), list(p_eager.values()), rtol=1e-9)
    got = lazy.tas.values
    assert calls
    np.testing.assert_allclose(got, eager.tas.values, rtol=1e-5, atol=1e-4)


def test_dask_spatial_chunks_are_kept_and_nan_carried(sst):
    lazy = sst.chunk({"TIME": 2, "COADSY": 30, "COADSX": 60})
    out = sciSR.downscale(lazy, model="bicubic", scale=2)
    assert out.SST.data.chunks == ((2, 1), (60, 60, 60), (120, 120, 120))
    eager = sciSR.downscale(sst, model="bicubic", scale=2)
    np.testing.assert_array_equal(np.isnan(out.SST.values), np.isnan(eager.SST.values))
    np.testing.assert_allclose(out.SST.values, eager.SST.values, rtol=1e-6, equal_nan=True)


def test_dask_written_to_zarr_lazily(tas, tmp_path):
    model = _tiny_srcnn()
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    eager = sciSR.downscale(tas, model=model, scale=2)
    calls.clear()
    out = sciSR.downscale(tas.chunk({"time": 1}), model=model, scale=2)
    assert isinstance(out.tas.data, dsa.Array) and not calls  # nothing computed before the write
    sciSR.write(out, tmp_path / "lazy.zarr")
    assert calls  # the write computed the chunks
    assert isinstance(out.tas.data, dsa.Array)  # and left the result lazy
    back = sciSR.open(tmp_path / "lazy.zarr")
    np.testing.assert_allclose(back.tas.values, eager.tas.values, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(back.lat.values, eager.lat.values)

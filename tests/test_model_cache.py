"""Prepared models are reused across calls only while nothing they were made from changed."""

from __future__ import annotations

import os
import shutil

import numpy as np
import torch

import sciSR
from sciSR import model_cache
from sciSR.models.registry import default_weights_path
from sciSR.pipeline import Pipeline


def _espcn() -> torch.nn.Module:
    torch.manual_seed(0)
    return sciSR.create_model("espcn", scale=2, pretrained=False, channels=(8, 4))


def test_user_module_copy_is_reused_and_follows_every_kind_of_edit() -> None:
    m = _espcn()
    x = np.random.default_rng(0).random((12, 14)).astype(np.float32)
    p1, p2 = Pipeline.build(m, 2, precision="fp32"), Pipeline.build(m, 2, precision="fp32")
    assert p1.model is p2.model and p1.model is not m  # reused private copy
    a = sciSR.downscale(x, model=m, scale=2, precision="fp32")
    with torch.no_grad():  # in-place edit: version counter
        m.body[0].weight.mul_(2.0)
    b = sciSR.downscale(x, model=m, scale=2, precision="fp32")
    assert not np.allclose(a, b) and Pipeline.build(m, 2, precision="fp32").model is not p1.model
    m.body[0].weight.data.mul_(0.5)  # edit through .data: no version bump, caught by value
    np.testing.assert_allclose(sciSR.downscale(x, model=m, scale=2, precision="fp32"), a, rtol=1e-6)
    m.body[0].bias = torch.nn.Parameter(torch.zeros_like(m.body[0].bias))  # replaced tensor
    c = sciSR.downscale(x, model=m, scale=2, precision="fp32")
    assert not np.allclose(c, a)
    m.body[1] = torch.nn.ReLU()  # structure change
    d = sciSR.downscale(x, model=m, scale=2, precision="fp32")
    assert not np.allclose(d, c)
    # other settings get their own copy
    assert Pipeline.build(m, 2, precision="bf16").model is not Pipeline.build(m, 2, precision="fp32").model


def test_editing_a_pipelines_model_is_not_served_to_later_calls() -> None:
    m = _espcn()
    p = Pipeline.build(m, 2, precision="fp32")
    with torch.no_grad():
        p.model.body[0].weight.zero_()
    assert Pipeline.build(m, 2, precision="fp32").model is not p.model
    assert not torch.equal(m.body[0].weight, torch.zeros_like(m.body[0].weight))


def test_cache_entries_go_with_the_module() -> None:
    import gc

    model_cache.clear()
    m = _espcn()
    Pipeline.build(m, 2, precision="fp32")
    assert model_cache.cached_count()["modules"] == 1
    del m
    gc.collect()
    assert model_cache.cached_count()["modules"] == 0


def test_shipped_and_file_weights_are_reused_until_the_file_changes(tmp_path) -> None:
    model_cache.clear()
    assert Pipeline.build("espcn", 4).model is Pipeline.build("espcn", 4).model
    random = Pipeline.build("espcn", 4, pretrained=False)
    assert random.model is not Pipeline.build("espcn", 4, pretrained=False).model  # never reused
    w = tmp_path / "w.safetensors"
    shutil.copy(default_weights_path("espcn", 4, 1), w)
    first = Pipeline.build("espcn", 4, weights=w).model
    assert Pipeline.build("espcn", 4, weights=w).model is first
    from sciSR.models.weights_io import save_weights

    m = sciSR.create_model("espcn", scale=4)
    with torch.no_grad():
        m.body[0].bias.add_(1.0)
    save_weights(m, w)
    st = w.stat()
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new modification time
    again = Pipeline.build("espcn", 4, weights=w).model
    assert again is not first
    assert torch.equal(again.body[0].bias, m.body[0].bias)

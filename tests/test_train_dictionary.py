"""Sparse-coding dictionaries fitted on training fields (sciSR.train.dictionary.fit_dictionary)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sciSR.data import sample_path
from sciSR.metrics import psnr
from sciSR.models.base import upsample_bicubic
from sciSR.models.sparse_coding import SparseCodingSR
from sciSR.train.data import load_luma
from sciSR.train.dictionary import fit_dictionary


@pytest.fixture(scope="module")
def luma() -> np.ndarray:
    return load_luma(sample_path("ladybird_crop.png"))  # 256 × 256 real photo


def _small(scale: int, **kw) -> SparseCodingSR:
    return SparseCodingSR(scale, n_atoms=64, patch=5, sparsity=3, **kw)


def test_fitted_dictionary_beats_bicubic_on_a_held_out_crop(luma) -> None:
    """Fit on the left 160 columns, score the right 96 × 96 crop (never seen) at ×2."""
    model = _small(2)
    rec = fit_dictionary(model, [luma[:, :160]], scale=2, patches=3000, n_iter=5, progress=False)
    assert model.is_fitted
    assert rec["atoms"] == 64 and rec["patch"] == 5 and rec["sparsity"] == 3 and rec["scale"] == 2
    assert rec["patches"] == 3000 and rec["crops"] >= 4 and rec["seconds"] > 0
    assert rec["psnr"] > rec["psnr_bicubic"] + 0.5  # training PSNR
    hold = torch.from_numpy(np.ascontiguousarray(luma[64:160, 160:256]))[None, None]
    lr = torch.nn.functional.interpolate(hold, scale_factor=0.5, mode="bicubic", antialias=True,
                                         align_corners=False)
    with torch.no_grad():
        sr, bic = model(lr), upsample_bicubic(lr, 2)
    ref = hold[0, 0, 2:-2, 2:-2].numpy()
    gain = psnr(sr[0, 0, 2:-2, 2:-2].numpy(), ref, 1.0) - psnr(bic[0, 0, 2:-2, 2:-2].numpy(), ref, 1.0)
    assert gain > 0.5


def test_same_seed_same_dictionaries_and_channel_fields(luma) -> None:
    """(C, H, W) arrays count each channel as a field; the seed fixes crops and K-SVD."""
    stack = np.stack([luma[:128, :128], luma[128:, 128:]])
    a, b, c = _small(3), _small(3), _small(3)
    ra = fit_dictionary(a, [stack], scale=3, patches=800, n_iter=2, progress=False, seed=1)
    fit_dictionary(b, [stack], scale=3, patches=800, n_iter=2, progress=False, seed=1)
    fit_dictionary(c, [stack], scale=3, patches=800, n_iter=2, progress=False, seed=2)
    assert torch.equal(a.dict_hr, b.dict_hr) and torch.equal(a.dict_lr, b.dict_lr)
    assert not torch.equal(a.dict_hr, c.dict_hr)
    assert ra["patches"] == 800 and ra["seed"] == 1


def test_area_degradation_and_patch_count_below_the_budget(luma) -> None:
    """A budget above what the crops hold reports the windows actually used."""
    model = _small(2)
    rec = fit_dictionary(model, [luma[:40, :40]], scale=2, degradation="area", patches=10_000, n_iter=1,
                         progress=False, crop=40, eval_crops=1)
    assert model.degradation == "area" and rec["degradation"] == "area"
    # the field holds fewer windows than asked for: used once, whole. 36² = 1296 windows; the 10 %
    # quantile of the feature norms sits between ranks 129 and 130, so ranks 130… (1166 windows) stay
    assert rec["crops"] == 1
    assert 1160 <= rec["patches"] <= 1166


def test_bad_input_errors(luma) -> None:
    with pytest.raises(ValueError, match="built for ×2, not ×4"):
        fit_dictionary(_small(2), [luma], scale=4, progress=False)
    with pytest.raises(ValueError, match="'bicubic', 'area' or 'matlab', not 'gaussian'"):
        fit_dictionary(_small(2), [luma], scale=2, degradation="gaussian", progress=False)
    with pytest.raises(ValueError, match="upsampler='matlab'"):
        fit_dictionary(_small(2), [luma], scale=2, degradation="matlab", progress=False)
    with pytest.raises(ValueError, match="smaller than 8×8"):
        fit_dictionary(_small(2), [luma[:7, :50]], scale=2, progress=False)
    with pytest.raises(ValueError, match="NaN/inf"):
        fit_dictionary(_small(2), [np.full((30, 30), np.nan)], scale=2, progress=False)
    with pytest.raises(ValueError, match="no training fields"):
        fit_dictionary(_small(2), [], scale=2, progress=False)
    with pytest.raises(ValueError, match="2-D"):
        fit_dictionary(_small(2), [np.zeros((2, 2, 8, 8))], scale=2, progress=False)
    with pytest.raises(TypeError, match="sparse_coding"):
        fit_dictionary(torch.nn.Conv2d(1, 1, 1), [luma], scale=2, progress=False)
    with pytest.raises(ValueError, match="patches must be ≥ 1"):
        fit_dictionary(_small(2), [luma], scale=2, patches=0, progress=False)

"""Training utilities: degradations, patch sampler, a short real training run and its weight file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage.data import camera

import sciSR
from sciSR.models.weights_io import read_state_dict
from sciSR.pipeline import Pipeline
from sciSR.train import TrainConfig, degrade, train
from sciSR.train.data import PatchSampler


def test_area_degradation_is_block_mean_and_bicubic_is_antialiased() -> None:
    hr = torch.rand(1, 1, 12, 16)
    np.testing.assert_allclose(
        degrade(hr, 4, "area")[0, 0].numpy(),
        hr[0, 0].numpy().reshape(3, 4, 4, 4).mean(axis=(1, 3)),
        rtol=1e-6,
    )
    stripes = torch.zeros(1, 1, 16, 16)
    stripes[..., ::2] = 1.0  # Nyquist pattern: antialiasing averages it out
    lr = degrade(stripes, 4, "bicubic")
    assert float(lr.std()) < 0.05 and abs(float(lr.mean()) - 0.5) < 0.05
    with pytest.raises(ValueError, match="not a multiple"):
        degrade(torch.rand(1, 1, 10, 12), 4)


def test_sampler_gives_textured_pairs() -> None:
    img = camera().astype(np.float32) / 255.0
    s = PatchSampler([img], scale=2, patch=32, seed=0)
    lr, hr = s.batch(8)
    assert lr.shape == (8, 1, 16, 16) and hr.shape == (8, 1, 32, 32)
    assert float(hr.std(dim=(1, 2, 3)).min()) > 0.0


def test_short_training_beats_the_untrained_model_and_round_trips(tmp_path) -> None:
    torch.manual_seed(0)
    img = camera().astype(np.float32) / 255.0
    train_part, val_part = img[:, :384], img[:, 384:]
    model = sciSR.create_model("espcn", scale=2, pretrained=False, channels=(16, 8))
    cfg = TrainConfig(steps=150, batch_size=8, patch=32, lr=3e-3, log_every=150, threads=1)
    from sciSR.train.trainer import evaluate_psnr

    before = evaluate_psnr(model, [val_part], 2)["psnr"]
    out = tmp_path / "w.safetensors"
    rec = train(model, [train_part], cfg, val_images=[val_part], out=out, log=lambda _m: None)
    after = rec["history"][-1]["psnr"]
    assert after > before + 3.0  # a real fit, measured on held-out columns
    _sd, meta = read_state_dict(out)
    assert meta["scisr_norm"] == "minmax" and json.loads(meta["training"])["config"]["steps"] == 150
    back = sciSR.create_model("espcn", scale=2, pretrained=out, channels=(16, 8))
    x = torch.rand(1, 1, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model.eval()(x))
    assert Pipeline.build(back, 2).norm == "minmax"  # norm="auto" follows the weights' metadata

"""``sciSR.train`` / ``sciSR.finetune`` / ``scisr train|finetune`` on real data: fine-tuning on half of a
real DEM beats bicubic on the other half, the statistics travel with the weights, and bad input is
refused before any training step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import sciSR
from sciSR import metrics
from sciSR.data import sample_path

POOL_DEM = Path.home() / ".cache" / "scisr-pool" / "dem" / "etopo5.cdf"


def _block_mean(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape[0] // s * s, a.shape[1] // s * s
    return a[:h, :w].reshape(h // s, s, w // s, s).mean(axis=(1, 3))


@pytest.fixture(scope="module")
def alps() -> np.ndarray:
    """A 192×384 ETOPO5 window over the Alps (metres), from the training pool."""
    if not POOL_DEM.is_file():
        pytest.skip("training pool not fetched (tools/fetch-training-pool.sh)")
    xr = pytest.importorskip("xarray")
    with xr.open_dataset(POOL_DEM) as ds:
        z = ds["ROSE"]
        lat, lon = z.dims
        return z.isel({lat: slice(1610, 1802), lon: slice(60, 444)}).values.astype(np.float32)


def test_finetuning_espcn_300_steps_on_half_a_dem_beats_bicubic_on_the_other_half(alps) -> None:
    left, right = alps[:, :192], alps[:, 192:]
    assert left.std() > 200 and right.std() > 200  # real relief on both sides
    net = sciSR.finetune(
        "espcn", left, scale=4, steps=300, batch_size=16, patch=48, seed=0, progress=False, threads=2
    )
    assert net.scisr_metadata["scisr_norm_fixed"] == "1"
    lr = _block_mean(right, 4)
    ours = sciSR.downscale(lr, model=net, scale=4, progress=False)
    bic = sciSR.downscale(lr, model="bicubic", scale=4, progress=False)
    natural = sciSR.downscale(lr, model="espcn", scale=4, progress=False)
    r_ours, r_bic, r_nat = (metrics.rmse(x, right) for x in (ours, bic, natural))
    assert r_ours < 0.97 * r_bic, (r_ours, r_bic)  # measured: see the closing figures
    assert r_ours < r_nat  # the fine-tuning itself helped


def test_finetuned_weights_carry_their_statistics_through_a_file(alps, tmp_path) -> None:
    out = tmp_path / "dem.safetensors"
    left = alps[:96, :192]
    net = sciSR.finetune("espcn", left, scale=4, steps=4, batch_size=4, patch=32, out=out, progress=False)
    assert (tmp_path / "dem.csv").is_file()
    from sciSR.models.weights_io import read_state_dict

    _sd, meta = read_state_dict(out)
    assert meta["scisr_norm_fixed"] == "1" and meta["scisr_recipe"] == "finetune"
    lr = _block_mean(alps[96:, 192:], 4)
    a = sciSR.downscale(lr, model=net, scale=4, progress=False, precision="fp32")
    b = sciSR.downscale(lr, model="espcn", weights=out, scale=4, progress=False, precision="fp32")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-3)
    # the training statistics, not the input's own range: a shifted input is not re-normalized
    c = sciSR.downscale(lr + 1000.0, model=net, scale=4, progress=False, precision="fp32")
    assert not np.allclose(c - 1000.0, a, atol=1.0)


def test_train_from_scratch_on_an_image_folder(tmp_path) -> None:
    from PIL import Image

    im = Image.open(sample_path("ladybird_crop.png")).convert("RGB")
    (tmp_path / "imgs").mkdir()
    im.save(tmp_path / "imgs" / "a.png")
    im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "imgs" / "b.png")
    net = sciSR.train(
        "espcn",
        tmp_path / "imgs",
        scale=2,
        steps=40,
        batch_size=8,
        patch=32,
        lr=3e-3,
        progress=False,
        model_kwargs={"channels": (16, 8)},
    )
    hist = net.training_record["history"]
    assert hist[-1]["step"] == 40 and "psnr" in hist[-1]
    assert callable(sciSR.train) and sciSR.train.degrade is not None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patch": 30}, "multiple of scale"),
        ({"patch": 4096}, "at least"),
        ({"degradation": "nearest"}, "unknown degradation"),
        ({"loss": "perceptual"}, "vgg_weights"),
        ({"bogus": 1}, "unknown training option"),
    ],
)
def test_bad_training_input_is_refused_before_any_step(kwargs, match) -> None:
    dem = sciSR.open(sample_path("etopo5_alps.tif")).band_data.values[0]
    with pytest.raises((ValueError, TypeError), match=match):
        sciSR.finetune("espcn", dem, scale=4, steps=5, progress=False, **kwargs)


def test_empty_folder_and_missing_weights_are_clear_errors(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty|no image"):
        sciSR.train("espcn", tmp_path / "empty", scale=2, steps=2, progress=False)
    with pytest.raises(ValueError, match=r"no weights|weights"):
        sciSR.finetune("vdsr", np.zeros((64, 64), np.float32), scale=3, steps=2, progress=False)


def test_cli_finetune_writes_weights_and_log(tmp_path) -> None:
    from sciSR.cli import cli

    out = tmp_path / "m.safetensors"
    res = CliRunner().invoke(
        cli,
        [
            "finetune",
            str(sample_path("etopo5_alps.tif")),
            "-m",
            "espcn",
            "-s",
            "4",
            "-o",
            str(out),
            "--steps",
            "3",
            "--batch-size",
            "4",
            "--patch",
            "32",
        ],
    )
    assert res.exit_code == 0, res.output
    assert out.is_file() and out.with_suffix(".csv").is_file()
    assert "trained: 3 steps" in res.output
    bad = CliRunner().invoke(cli, ["finetune", str(tmp_path / "nope.tif"), "-m", "espcn", "-o", str(out)])
    assert bad.exit_code != 0 and "Traceback" not in bad.output

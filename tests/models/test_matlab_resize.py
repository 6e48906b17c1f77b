"""MATLAB ``imresize`` bicubic (sciSR.resize) against hand-computed values and independent oracles,
and the ``upsampler="matlab"`` option of pre-upsampling models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sciSR
from sciSR.models import get_entry
from sciSR.pipeline import Pipeline
from sciSR.resize import imresize_matlab, upsample


def test_upscale_border_weights_hand_computed() -> None:
    """×2 of [0, 1, 0, 0, 0, 0] along one axis. Keys a=-0.5 at distances 0.25/0.75/1.25/1.75 gives
    0.8671875/0.2265625/-0.0703125/-0.0234375; output 0 samples u=0.75 (1-based) with taps at
    -1, 0, 1, 2 mirrored to x[1], x[0], x[0], x[1]: -0.0234375·1 + 0 + 0 - 0.0703125·1 = -0.09375."""
    x = np.array([[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    y = imresize_matlab(x, scale=(1.0, 2.0))
    expected = [-0.09375, 0.2265625, 0.8671875, 0.8671875, 0.2265625, -0.0703125, -0.0234375, 0.0]
    np.testing.assert_allclose(y[0, :8], expected, rtol=0, atol=1e-15)
    assert y.shape == (1, 12)


def test_shrink_border_and_interior_hand_computed() -> None:
    """½ of a ramp: antialiased kernel 0.5·cubic(0.5·d), taps (×256) -3, -9, 29, 111, 111, 29, -9, -3;
    output 0 (u = 1.5) reads x[2], x[1], x[0], x[0], x[1], x[2], x[3], x[4] after mirroring:
    (-6 - 9 + 0 + 0 + 111 + 58 - 27 - 12)/256 = 115/256. Away from the border a ramp stays exact."""
    x = np.arange(16.0)[None, :]
    y = imresize_matlab(x, scale=(1.0, 0.5))
    assert y.shape == (1, 8)
    assert y[0, 0] == pytest.approx(115 / 256, abs=1e-15)
    np.testing.assert_allclose(y[0, 2:-2], 2 * np.arange(2, 6) + 0.5, atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_upscale_reproduces_quadratics(s: int) -> None:
    """Keys' kernel with a = -0.5 (MATLAB) interpolates quadratics exactly; torch's a = -0.75 does not.
    Output pixel o samples input coordinate (o + 0.5)/s - 0.5 (cell-centred grid)."""
    n = 20
    t = np.arange(n, dtype=np.float64)
    x = np.tile(0.3 * t**2 - 2 * t + 1, (3, 1))
    y = imresize_matlab(x, scale=(1.0, float(s)))[0]
    u = (np.arange(n * s) + 0.5) / s - 0.5
    inner = slice(2 * s, (n - 2) * s)
    np.testing.assert_allclose(y[inner], (0.3 * u**2 - 2 * u + 1)[inner], rtol=0, atol=1e-9)
    torch_y = F.interpolate(torch.as_tensor(x)[None, None], scale_factor=(1, s), mode="bicubic",
                            align_corners=False)[0, 0, 0].numpy()
    assert np.abs(torch_y[inner] - (0.3 * u**2 - 2 * u + 1)[inner]).max() > 1e-3


@pytest.mark.parametrize("s", [2, 3, 4])
def test_symmetric_border_convention(s: int) -> None:
    """Borders mirror with the edge sample repeated (numpy's 'symmetric' padding): resizing the
    padded image and cropping equals resizing the image."""
    rng = np.random.default_rng(0)
    x = rng.random((9, 11))
    p = 4
    padded = np.pad(x, p, mode="symmetric")
    ref = imresize_matlab(padded, scale=float(s))[p * s : -p * s, p * s : -p * s]
    np.testing.assert_allclose(imresize_matlab(x, scale=float(s)), ref, atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_shrink_interior_matches_torch_antialias(s: int) -> None:
    """Peer oracle: torch's antialiased bicubic uses the same a = -0.5 stretched kernel, so the two
    agree away from the borders (they differ at the border: torch renormalises, MATLAB mirrors)."""
    x = torch.rand(1, 2, 8 * s, 10 * s, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = imresize_matlab(x, scale=1.0 / s)
    b = F.interpolate(x, scale_factor=1.0 / s, mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(a[..., 2:-2, 2:-2], b[..., 2:-2, 2:-2], rtol=0, atol=1e-12)
    assert (a - b).abs().max() > 1e-4  # the border conventions do differ


def test_sizes_types_and_errors() -> None:
    x = torch.rand(2, 3, 7, 5)
    assert imresize_matlab(x, scale=1.5).shape == (2, 3, 11, 8)  # ceil(7·1.5), ceil(5·1.5)
    assert imresize_matlab(x, size=(4, 9)).shape == (2, 3, 4, 9)
    assert imresize_matlab(x.to(torch.bfloat16), scale=2.0).dtype == torch.bfloat16
    assert imresize_matlab(np.ones((4, 4), dtype=np.float32), scale=2.0).dtype == np.float32
    np.testing.assert_allclose(imresize_matlab(np.full((5, 6), 3.0), scale=0.5), 3.0, atol=1e-12)
    with pytest.raises(ValueError, match="exactly one"):
        imresize_matlab(x)
    with pytest.raises(ValueError, match="unknown upsampler"):
        upsample(x, 2, "lanczos")
    with pytest.raises(ValueError, match="unknown upsampler"):
        sciSR.create_model("vdsr", scale=2, pretrained=False, upsampler="cubic")


@pytest.mark.parametrize("name", ["srcnn", "vdsr", "drcn", "drrn", "cmsc", "sparse_coding"])
def test_pre_upsampling_models_use_the_chosen_upsampler(name: str) -> None:
    """The network sees exactly the MATLAB-interpolated input with ``upsampler="matlab"``."""
    entry = get_entry(name)
    seen: list[torch.Tensor] = []
    m = sciSR.create_model(name, scale=3, pretrained=False, upsampler="matlab", **entry.tiny)
    original = m.forward_sr

    def spy(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach().clone())
        return original(x)

    m.forward_sr = spy  # type: ignore[method-assign]
    x = torch.rand(1, 1, 6, 7)
    with torch.no_grad():
        m(x)
    torch.testing.assert_close(seen[0], imresize_matlab(x, scale=3.0))
    assert m.spec.extra["upsampler"] == "matlab"


def test_global_skip_models_use_the_chosen_upsampler() -> None:
    """VDSR/BTSRN/SelNet with the residual branch zeroed return the interpolated input."""
    x = torch.rand(1, 1, 6, 7)
    for name, last in [("vdsr", lambda m: m.body[-1]), ("btsrn", lambda m: m.tail[-1]),
                       ("selnet", lambda m: m.tail)]:
        for method in ("bicubic", "matlab"):
            m = sciSR.create_model(name, scale=2, pretrained=False, upsampler=method, **get_entry(name).tiny)
            with torch.no_grad():
                last(m).weight.zero_()
                last(m).bias.zero_()
                torch.testing.assert_close(m(x), upsample(x, 2, method))


def test_matlab_upsampler_tiles_exactly() -> None:
    """Mirrored borders only act at true borders: tiled inference equals whole-image inference."""
    torch.manual_seed(0)
    m = sciSR.create_model("vdsr", scale=2, pretrained=False, upsampler="matlab", **get_entry("vdsr").tiny)
    x = np.random.default_rng(1).random((1, 1, 37, 30)).astype(np.float32)
    whole = Pipeline.build(m, 2, tile=0, precision="fp32", norm=None)
    tiled = Pipeline.build(m, 2, tile=9, precision="fp32", norm=None)
    np.testing.assert_allclose(tiled.run(x, tiled.fit(x)), whole.run(x, whole.fit(x)), atol=1e-5, rtol=0)

"""Architecture-specific behaviour of the classic zoo (VDSR, FSRCNN, MDSR, CARN, DRCN, LapSRN...)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import sciSR
from sciSR.models.layers.deconv import CenteredConvTranspose2d, bilinear_kernel_1d, init_interpolation
from sciSR.models.layers.losses import charbonnier_loss, multiscale_charbonnier_loss
from sciSR.models.vdsr import clip_gradients


def tiny(name: str, scale: int, channels: int = 1, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    entry = sciSR.models.get_entry(name)
    kwargs = {**entry.tiny, **kw}
    return sciSR.create_model(name, scale=scale, in_channels=channels, pretrained=False, **kwargs)


@pytest.mark.parametrize(
    ("k", "s"), [(9, 1), (9, 2), (9, 3), (9, 4), (4, 2), (3, 2), (17, 3), (17, 4), (8, 8)]
)
def test_centered_deconv_matches_conv_transpose(k: int, s: int) -> None:
    """Same weights as nn.ConvTranspose2d with padding ceil((k-s)/2) and the matching output padding."""
    layer = CenteredConvTranspose2d(2, 3, k, s)
    p = layer.offset
    ref = torch.nn.ConvTranspose2d(2, 3, k, s, padding=p, output_padding=2 * p - (k - s))
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(1, 2, 5, 6)
    torch.testing.assert_close(layer(x), ref(x))
    assert layer(x).shape[-2:] == (5 * s, 6 * s)


@pytest.mark.parametrize("s", [2, 3, 4, 5])
def test_bilinear_taps_reproduce_bilinear(s: int) -> None:
    """Centring check: a deconvolution set to linear-interpolation taps (kernel 2s, 2s - 1 for odd s,
    so that it can be centred) reproduces F.interpolate(bilinear) away from the borders."""
    k = 2 * s - (s % 2)
    layer = CenteredConvTranspose2d(1, 1, k, s)
    init_interpolation(layer, bilinear_kernel_1d(s, k))
    x = torch.rand(1, 1, 12, 12)
    ref = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
    b = s
    torch.testing.assert_close(layer(x)[..., b:-b, b:-b], ref[..., b:-b, b:-b])


@pytest.mark.parametrize("s", [5, 12])
def test_fsrcnn_any_scale(s: int) -> None:
    """A 9×9 deconvolution still gives exactly s·H at scales up to and beyond its kernel size."""
    m = tiny("fsrcnn", s)
    assert m(torch.rand(1, 1, 7, 5)).shape == (1, 1, 7 * s, 5 * s)


def test_vdsr_adjustable_gradient_clipping() -> None:
    m = tiny("vdsr", 2)
    (m(torch.rand(1, 1, 8, 8)) * 1e4).sum().backward()
    bound = clip_gradients(m, theta=0.01, lr=0.1)
    assert bound == pytest.approx(0.1)
    assert all(p.grad.abs().max() <= 0.1 + 1e-7 for p in m.parameters())
    assert m.clip_gradients(lr=1e-3) == pytest.approx(m.clip_theta / 1e-3)
    with pytest.raises(ValueError):
        clip_gradients(m, theta=0.01, lr=0)


def test_mdsr_branches_and_set_scale() -> None:
    m = sciSR.create_model("mdsr", scale=2, pretrained=False, n_resblocks=1, n_feats=8)
    x = torch.rand(1, 1, 6, 7)
    for s in (2, 3, 4):
        m.set_scale(s)
        assert m.spec.scale == s
        assert m(x).shape == (1, 1, 6 * s, 7 * s)
    keys = set(m.state_dict())
    for i in range(3):
        assert f"pre_process.{i}.0.body.0.weight" in keys and f"upsample.{i}.0.weight" in keys
    assert {"head.0.weight", "body.0.body.0.weight", "body.1.weight", "tail.0.weight"} <= keys
    # only the active branch and the shared trunk receive gradients
    m.set_scale(3).train()
    m(x).sum().backward()
    assert m.pre_process[1][0].body[0].weight.grad is not None
    assert m.pre_process[0][0].body[0].weight.grad is None
    assert m.body[0].body[0].weight.grad is not None
    with pytest.raises(ValueError):
        m.set_scale(8)
    single = sciSR.create_model("mdsr", scale=3, pretrained=False, n_resblocks=1, n_feats=8, branches=None)
    with pytest.raises(ValueError):
        single.set_scale(2)


def test_carn_multiscale_switch_and_layout() -> None:
    m = tiny("carn", 2, multi_scale=True)
    x = torch.rand(1, 1, 5, 6)
    for s in (2, 3, 4):
        assert m.set_scale(s)(x).shape == (1, 1, 5 * s, 6 * s)
    keys = set(m.state_dict())
    assert {"entry.weight", "b1.b1.body.0.weight", "b1.c1.body.0.weight", "c1.body.0.weight",
            "upsample.up2.body.0.weight", "upsample.up4.body.3.weight", "exit.weight"} <= keys
    mobile = tiny("carn_m", 4)
    assert not any(k.startswith("b1.b2.") for k in mobile.state_dict())  # one unit shared per block
    assert mobile.b1.b1.body[0].groups == 4


@pytest.mark.parametrize("name", ["drcn", "cmsc"])
def test_intermediate_predictions(name: str) -> None:
    m = tiny(name, 3)
    x = torch.rand(1, 1, 6, 5)
    final, inter = m.intermediate_predictions(x)
    assert len(inter) == (m.config["recursions"] if name == "drcn" else m.config["n_subnets"])
    assert all(y.shape == (1, 1, 18, 15) for y in inter)
    with torch.no_grad():
        torch.testing.assert_close(final, m(x))
    w = m.ensemble_weights if name == "drcn" else m.fusion_weights
    torch.testing.assert_close(final, sum(wi * y for wi, y in zip(w, inter, strict=True)))
    assert m._collected is None  # nothing is kept between calls


def test_intermediates_get_the_output_transform() -> None:
    m = tiny("drcn", 2).set_input_transform(mean=0.5, value_range=255.0)
    x = torch.rand(1, 1, 4, 4)
    final, inter = m.intermediate_predictions(x)
    with torch.no_grad():
        torch.testing.assert_close(final, m(x))
    w = m.ensemble_weights
    # ensemble of transformed predictions = transformed ensemble (weights sum to 1 at init)
    ensemble = sum(wi * y for wi, y in zip(w, inter, strict=True))
    torch.testing.assert_close(final, ensemble, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name", ["lapsrn", "ms_lapsrn"])
def test_pyramid_levels_and_loss(name: str) -> None:
    m = tiny(name, 8).train()
    x = torch.rand(2, 1, 5, 6)
    levels = m.pyramid(x)
    assert [y.shape[-2:] for y in levels] == [(10, 12), (20, 24), (40, 48)]
    hr = torch.rand(2, 1, 40, 48)
    loss = multiscale_charbonnier_loss(levels, hr)
    loss.backward()
    assert torch.isfinite(loss)
    assert charbonnier_loss(hr, hr) == pytest.approx(1e-3)
    if name == "ms_lapsrn":  # same weights at every scale
        m2 = tiny(name, 2)
        assert m2.state_dict().keys() == m.state_dict().keys()


def test_lapsrn_image_branch_starts_as_bilinear() -> None:
    """With the feature branch's residual zeroed, LapSRN is repeated ×2 bilinear upsampling."""
    m = tiny("lapsrn", 2)
    with torch.no_grad():
        for r in m.residuals:
            r.weight.zero_()
            r.bias.zero_()
        x = torch.rand(1, 1, 10, 10)
        ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        torch.testing.assert_close(m(x)[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2])


@pytest.mark.parametrize("name", ["vdsr", "drcn", "drrn", "cmsc", "idn", "selnet"])
def test_global_skip_channel_rules(name: str) -> None:
    m = tiny(name, 2, channels=1, out_channels=3)
    assert m(torch.rand(1, 1, 4, 4)).shape == (1, 3, 8, 8)
    m = tiny(name, 2, channels=3, out_channels=1)
    assert m(torch.rand(1, 3, 4, 4)).shape == (1, 1, 8, 8)
    with pytest.raises(ValueError):
        tiny(name, 2, channels=3, out_channels=2)

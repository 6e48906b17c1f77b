"""Extras of the GAN / transformer / classical zoo members: discriminators, texture loss, sparse coding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sciSR
from sciSR.models.base import upsample_bicubic
from sciSR.models.enhancenet import gram_matrix, texture_loss
from sciSR.models.esrgan import ESRGANDiscriminator
from sciSR.models.sparse_coding import SparseCodingSR, degrade, omp
from sciSR.models.srresnet import SRGANDiscriminator
from sciSR.models.swinir import SwinTransformerBlock
from sciSR.models.weights_io import save_weights
from sciSR.pipeline import Pipeline


# --------------------------------------------------------------------------- discriminators
@pytest.mark.parametrize("cls", [SRGANDiscriminator, ESRGANDiscriminator])
@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("size", [(33, 47), (64, 64)])
def test_discriminator_any_size_and_channels(cls, channels: int, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    d = cls(in_channels=channels, n_feats=8).train()
    y = d(torch.rand(2, channels, *size))
    assert y.shape == (2, 1)
    y.sum().backward()
    assert all(p.grad is not None for p in d.parameters())


def test_discriminator_paper_sizes_keep_paper_layout() -> None:
    # 96×96 (SRGAN) and 128×128 (ESRGAN VGG128) reach the dense layers at 6×6 and 4×4 unchanged.
    d = SRGANDiscriminator(in_channels=3)
    assert d.classifier[1].in_features == 512 * 6 * 6
    assert d.features(torch.rand(1, 3, 96, 96)).shape[-2:] == (6, 6)
    e = ESRGANDiscriminator(in_channels=3)
    assert e.linear1.in_features == 512 * 4 * 4
    keys = set(e.state_dict())
    assert {"conv0_0.weight", "conv0_0.bias", "conv0_1.weight", "bn0_1.weight", "conv4_1.weight",
            "bn4_1.running_var", "linear1.weight", "linear2.bias"} <= keys
    assert "conv1_0.bias" not in keys


# --------------------------------------------------------------------------- texture loss
def test_gram_matrix() -> None:
    f = torch.randn(2, 3, 4, 5)
    g = gram_matrix(f)
    assert g.shape == (2, 3, 3)
    torch.testing.assert_close(g, g.transpose(1, 2))
    torch.testing.assert_close(g[0, 1, 2], (f[0, 1] * f[0, 2]).sum() / (3 * 4 * 5))
    with pytest.raises(ValueError, match="N, C, H, W"):
        gram_matrix(torch.randn(3, 4, 5))


def test_texture_loss_patchwise() -> None:
    torch.manual_seed(0)
    a = torch.randn(1, 4, 32, 32, requires_grad=True)
    assert float(texture_loss(a.detach(), a.detach())) == 0.0
    # same global statistics, different local arrangement: the patch-wise loss sees it
    assert float(texture_loss(a.detach(), a.detach())) == 0.0
    # a flipped map has the same global Gram matrix, but not the same 16×16 window Grams
    b = a.detach().flip(-1)
    assert float(texture_loss(a.detach(), b, patch=32)) < 1e-10
    assert float(texture_loss(a.detach(), b, patch=16)) > 1e-4
    c = a.detach().clone()
    c[..., :16, :16] = torch.randn(1, 4, 16, 16) * 3
    loss = texture_loss([a, a], [c, c], patch=16, weights=[1.0, 0.5])
    assert float(loss.detach()) > 0
    loss.backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    # windows larger than the map use the whole map
    assert float(texture_loss(a[..., :8, :8], c[..., :8, :8], patch=16)) >= 0
    with pytest.raises(ValueError):
        texture_loss([a], [c, c])


# --------------------------------------------------------------------------- generators
def test_esrgan_x4_tiles_exactly_and_x2_unshuffles() -> None:
    torch.manual_seed(0)
    m = sciSR.create_model("esrgan", scale=4, pretrained=False, n_feats=8, n_blocks=1, gc=4)
    assert m.spec.equivariant and m.spec.size_multiple == 1
    x = np.random.default_rng(0).random((1, 1, 30, 27)).astype(np.float32)
    whole = Pipeline.build(m, 4, tile=0, precision="fp32", norm=None)
    tiled = Pipeline.build(m, 4, tile=9, precision="fp32", norm=None)
    np.testing.assert_allclose(whole.run(x, whole.fit(x)), tiled.run(x, tiled.fit(x)), atol=1e-4, rtol=0)
    tiny = {"n_feats": 8, "n_blocks": 1, "gc": 4}
    for s, mult in ((2, 2), (1, 4)):
        m2 = sciSR.create_model("esrgan", scale=s, in_channels=2, pretrained=False, **tiny)
        assert m2.conv_first.in_channels == 2 * mult * mult
        assert not m2.spec.equivariant and m2.spec.size_multiple == mult
        assert m2(torch.rand(1, 2, 7, 9)).shape == (1, 2, 7 * s, 9 * s)
    keys = set(sciSR.create_model("esrgan", scale=8, pretrained=False, **tiny).state_dict())
    assert {"conv_first.weight", "body.0.rdb1.conv1.weight", "body.0.rdb3.conv5.bias", "conv_body.weight",
            "conv_up1.weight", "conv_up2.weight", "conv_up3.weight", "conv_hr.weight",
            "conv_last.weight"} <= keys


def test_srresnet_layout_and_scales() -> None:
    m = sciSR.create_model("srgan", scale=3, pretrained=False)
    assert m.registry_name == "srgan"  # (m.spec would measure the full-size receptive field: slow)
    keys = set(m.state_dict())
    assert {"conv_first.weight", "prelu_first.weight", "body.15.bn2.running_mean", "conv_body.weight",
            "bn_body.weight", "upconv1.weight", "conv_last.weight"} <= keys
    assert "upconv2.weight" not in keys and m.upconv1.out_channels == 64 * 9
    with pytest.raises(ValueError, match="supports scales"):
        sciSR.create_model("srresnet", scale=5, pretrained=False)


def test_enhancenet_adds_bicubic() -> None:
    m = sciSR.create_model("enhancenet", scale=3, in_channels=2, pretrained=False, n_feats=8, n_blocks=1)
    for p in m.conv_last.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 2, 9, 11)
    torch.testing.assert_close(m(x), upsample_bicubic(x, 3))


def test_unet_residual_padding_and_weights_refused() -> None:
    with pytest.raises(ValueError, match="encoder_weights must be None"):
        sciSR.create_model("unet", scale=2, pretrained=False, encoder_weights="imagenet")
    m = sciSR.create_model("unet", scale=4, pretrained=False, encoder_depth=3, decoder_channels=(8, 8, 8))
    assert m.size_multiple == 2 and not m.spec.equivariant and m.spec.upsampling == "pre"
    assert sciSR.create_model("unet", scale=3, pretrained=False, encoder_depth=3,
                              decoder_channels=(8, 8, 8)).size_multiple == 8
    # unused deeper ResNet stages are dropped (every parameter is used)
    deep = ("unet.encoder.layer3", "unet.encoder.layer4")
    assert not any(n.startswith(deep) for n, _ in m.named_parameters())
    for p in m.unet.segmentation_head.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 1, 13, 10)
    torch.testing.assert_close(m(x), upsample_bicubic(x, 4))


def test_swin_shifted_window_mask_blocks_wraparound() -> None:
    torch.manual_seed(0)
    blk = SwinTransformerBlock(dim=8, num_heads=2, window_size=4, shift_size=2).eval()
    h = w = 8
    x = torch.randn(1, h * w, 8)
    x2 = x.clone()
    x2[0, 0] += torch.randn(8)  # token (0, 0): rolled into the bottom-right window, a different region
    with torch.no_grad():
        d = (blk(x2, (h, w)) - blk(x, (h, w))).abs().sum(-1).view(h, w)
    assert d[h - 1, w - 1] == 0 and d[h - 2, w - 1] == 0  # same rolled window, other side of the wrap
    assert d[0, 1] > 0 and d[1, 1] > 0  # same region of that window


def test_swinir_any_scale_and_window_padding() -> None:
    m = sciSR.create_model("swinir", scale=5, in_channels=2, pretrained=False, embed_dim=8, depths=(2,),
                           num_heads=(2,), window_size=4, drop_path_rate=0.0)
    assert m.spec.size_multiple == 4 and not m.spec.equivariant and m.spec.receptive_field is None
    assert m(torch.rand(1, 2, 5, 7)).shape == (1, 2, 25, 35)


# --------------------------------------------------------------------------- sparse coding
def test_omp_recovers_sparse_codes() -> None:
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(40, 64, generator=gen)
    d = d / d.norm(dim=0)
    idx_true = torch.stack([torch.randperm(64, generator=gen)[:3] for _ in range(50)])
    coef_true = (torch.rand(50, 3, generator=gen) + 0.5) * torch.sign(torch.randn(50, 3, generator=gen))
    y = torch.einsum("bt,btd->bd", coef_true, d.T[idx_true])
    idx, coef = omp(d, y, 3)
    for b in range(50):
        got = dict(zip(idx[b].tolist(), coef[b].tolist()))
        want = dict(zip(idx_true[b].tolist(), coef_true[b].tolist()))
        assert set(got) == set(want)
        for k, v in want.items():
            assert abs(got[k] - v) < 1e-4
    # zero signal: no atom, zero codes
    idx0, coef0 = omp(d, torch.zeros(2, 40), 3)
    assert (idx0 == -1).all() and (coef0 == 0).all()


def test_sparse_coding_unfitted_error_and_bad_args() -> None:
    m = sciSR.create_model("sparse_coding", scale=2, pretrained=False)
    with pytest.raises(RuntimeError, match=r"call model\.fit"):
        m(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="built for ×2"):
        m.fit([np.zeros((32, 32))], scale=3)
    with pytest.raises(ValueError, match="out_channels"):
        SparseCodingSR(2, in_channels=1, out_channels=2)
    assert not SparseCodingSR(2, patch=5, overlap=2).spec.equivariant  # stride 3 does not divide ×2
    assert SparseCodingSR(4, patch=5, overlap=3).spec.equivariant  # stride 2 divides ×4
    assert list(m.parameters()) == []


@pytest.fixture(scope="module")
def camera_fit() -> tuple[SparseCodingSR, torch.Tensor]:
    skimage_data = pytest.importorskip("skimage.data")
    img = torch.tensor(skimage_data.camera().astype(np.float32) / 255.0)
    train, held_out = img[:, :320], img[128:384, 352:508]  # disjoint columns
    m = SparseCodingSR(2, n_atoms=64, patch=5, sparsity=3).fit([train], n_iter=5, max_patches=6000)
    return m.eval(), held_out


def test_sparse_coding_beats_bicubic_on_held_out_crop(camera_fit) -> None:
    m, hr = camera_fit
    lr = degrade(hr[None, None], 2)
    with torch.no_grad():
        sr = m(lr)[0, 0]
    bic = upsample_bicubic(lr, 2)[0, 0]

    def psnr(a: torch.Tensor) -> float:
        return float(10 * torch.log10(1.0 / ((a - hr) ** 2).mean()))

    gain = psnr(sr) - psnr(bic)
    assert gain > 0, f"sparse coding {psnr(sr):.2f} dB vs bicubic {psnr(bic):.2f} dB"
    # units do not matter: the method is homogeneous of degree 1 (feature-norm normalization)
    with torch.no_grad():
        torch.testing.assert_close(m(lr * 250.0 + 0.0)[0, 0], sr * 250.0, rtol=1e-3, atol=1e-3)


def test_sparse_coding_state_dict_round_trip(camera_fit, tmp_path) -> None:
    m, hr = camera_fit
    path = save_weights(m, tmp_path / "sc.safetensors")
    lr = degrade(hr[None, None, :64, :64], 2)
    m2 = sciSR.create_model("sparse_coding", scale=2, pretrained=path, n_atoms=64, patch=5)
    # a default-sized model adopts the stored dictionary size through load_state_dict
    m3 = SparseCodingSR(2)
    m3.load_state_dict(torch.load(_to_pt(m, tmp_path), weights_only=True))
    assert m3.n_atoms == 64 and m3.is_fitted
    with torch.no_grad():
        ref = m(lr)
        torch.testing.assert_close(m2(lr), ref)
        torch.testing.assert_close(m3(lr), ref)


def _to_pt(model: torch.nn.Module, tmp_path) -> str:
    p = tmp_path / "sc.pt"
    torch.save(model.state_dict(), p)
    return str(p)


def test_sparse_coding_back_projection_reduces_lr_error(camera_fit) -> None:
    m, hr = camera_fit  # the default: 20 back-projection iterations (Yang et al.'s code)
    lr = degrade(hr[None, None, :80, :80], 2)
    plain = SparseCodingSR(2, n_atoms=64, patch=5, back_projection=0)
    bp = SparseCodingSR(2, n_atoms=64, patch=5, back_projection=3)
    plain.load_state_dict(m.state_dict())
    bp.load_state_dict(m.state_dict())
    with torch.no_grad():
        e0, e3, e20 = ((degrade(net(lr), 2) - lr).pow(2).mean() for net in (plain, bp, m))
    assert e20 < e3 < e0
    assert m.spec.receptive_field > bp.spec.receptive_field > plain.spec.receptive_field

"""Parameter counts of full-size configurations against the papers' published figures.

Models are built, never run on real inputs. Counts are for the published colour/channel setting
(VDSR, FSRCNN, DRCN, DRRN, LapSRN, MS-LapSRN, IDN: luminance only, 1 channel; EDSR family and
CARN: RGB, 3 channels).
"""

from __future__ import annotations

import torch

import sciSR


def n_params(name: str, scale: int = 4, channels: int = 1, **kw) -> int:
    m = sciSR.create_model(name, scale=scale, in_channels=channels, pretrained=False, **kw)
    return m.spec.params


def close(measured: int, published: float, rel: float = 0.01) -> bool:
    return abs(measured - published) <= rel * published


def conv_params(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def test_vdsr_665k() -> None:
    """VDSR: 20 layers × 64 filters, Y channel: 665 K in the DRRN/LapSRN comparison tables."""
    m = sciSR.create_model("vdsr", scale=4, pretrained=False)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert len(convs) == 20 and all(c.kernel_size == (3, 3) for c in convs)
    expected = conv_params(1, 64, 3) + 18 * conv_params(64, 64, 3) + conv_params(64, 1, 3)
    assert m.spec.params == expected == 665_921
    assert close(m.spec.params, 665_000)


def test_fsrcnn_weights_12464() -> None:
    """FSRCNN(56, 12, 4): the paper's 12,464 counts convolution/deconvolution weights only."""
    m = sciSR.create_model("fsrcnn", scale=3, pretrained=False)
    weights = sum(p.numel() for n, p in m.named_parameters() if n.endswith("weight") and p.ndim == 4)
    assert weights == 12_464
    # + 173 biases + 172 PReLU slopes
    assert m.spec.params == 12_809
    # the 9×9 deconvolution does not depend on the scale
    assert n_params("fsrcnn", scale=2) == n_params("fsrcnn", scale=4) == 12_809


def test_mdsr_8m() -> None:
    """MDSR, 80 blocks × 64 features, ×2/×3/×4 branches, RGB: 7.95 M (paper: 8.0 M)."""
    p = n_params("mdsr", channels=3)
    assert p == 7_953_987
    assert close(p, 8.0e6)


def test_carn_1_59m_multiscale() -> None:
    """CARN's published 1.59 M (RGB) includes three upsamplers (×2/×3/×4, multi-scale training);
    the single-scale ×4 model has 1.11 M."""
    assert close(n_params("carn", channels=3, multi_scale=True), 1.59e6)
    assert n_params("carn", channels=3, multi_scale=True) == 1_591_939
    assert n_params("carn", channels=3) == 1_111_875


def test_carn_m_0_41m_multiscale() -> None:
    """CARN-M: 0.41 M published (RGB, multi-scale upsampler); 0.29 M single-scale ×4. The figure
    has two significant digits: 414,787 rounds to it (1.2 % above 410,000, inside the rounding)."""
    assert round(n_params("carn_m", channels=3, multi_scale=True) / 1e6, 2) == 0.41
    assert n_params("carn_m", channels=3, multi_scale=True) == 414_787
    assert n_params("carn_m", channels=3) == 294_147


def test_drcn_1774k() -> None:
    """DRCN: 256 filters, 16 recursions, Y channel: 1,774 K in the DRRN paper's table (we add
    16 ensemble weights and count biases)."""
    assert close(n_params("drcn"), 1_774_000)


def test_drrn_b1u25_297k() -> None:
    """DRRN B1U25, 128 filters, Y channel: 297 K (convolutions). The official prototxt's
    pre-activation batch norm adds gamma/beta for 52 positions (input, 50 unit convs, output)."""
    p = n_params("drrn")
    assert p == 297_601 == conv_params(1, 128, 3) + 2 * conv_params(128, 128, 3) + conv_params(128, 1, 3)
    assert close(p, 297_000)
    assert n_params("drrn", batch_norm=True) == p + 2 * (1 + 50 * 128 + 128)


def test_lapsrn_812k() -> None:
    """LapSRN ×4, d=10, official 3×3 feature up-kernels (default): 814,242 for the published 812 K;
    with 4×4 feature up-kernels 871,586. The image up-kernels are 4×4 without bias."""
    p = n_params("lapsrn")
    level = 10 * conv_params(64, 64, 3) + conv_params(64, 64, 3) + conv_params(64, 1, 3) + 16
    assert p == conv_params(1, 64, 3) + 2 * level == 814_242
    assert close(p, 812_000)
    assert n_params("lapsrn", up_kernel=4) == 871_586


def test_ms_lapsrn_d5r8_222k() -> None:
    """MS-LapSRN D5R8: 222 K published; 222,801 with the official 3×3 feature up-kernel (default).
    Shared across levels: the count does not depend on the scale."""
    p = n_params("ms_lapsrn")
    assert p == conv_params(1, 64, 3) + 6 * conv_params(64, 64, 3) + conv_params(64, 1, 3) + 16 == 222_801
    assert close(p, 222_000)
    assert n_params("ms_lapsrn", scale=8) == n_params("ms_lapsrn", scale=2) == p
    assert n_params("ms_lapsrn", up_kernel=4) == 251_473


def test_idn_553k() -> None:
    """IDN: 64 features, 4 DBlocks, 17×17 transposed conv, Y channel: 553 K at any scale."""
    for s in (2, 3, 4):
        p = n_params("idn", scale=s)
        assert p == 552_769
        assert close(p, 553_000)


def test_selnet_974k() -> None:
    """SelNet ×2, Y: ≈974 K published. 22 conv layers (input conv, 10 residual units of two convs,
    HR conv) + the sub-pixel conv + 21 selection-unit 1×1 convs give 974,849."""
    p = n_params("selnet", scale=2)
    su = conv_params(64, 64, 1)
    assert p == (conv_params(1, 64, 3) + 20 * conv_params(64, 64, 3) + 21 * su
                 + conv_params(64, 64 * 4, 3) + conv_params(64, 1, 3)) == 974_849
    assert close(p, 974_000, rel=0.001)


def test_btsrn_official_layout_count() -> None:
    """BTSRN publishes no count; the official code's layout (1×1 in/out convs, 11 PConv blocks at ×4
    including the one between the two ×2 up-sampling layers, 2×2 deconvolutions) gives these."""
    pconv = conv_params(128, 64, 1) + conv_params(64, 128, 3)
    up = 128 * 128 * 4 + 128
    rgb = n_params("btsrn", channels=3)
    assert rgb == conv_params(3, 128, 1) + 11 * pconv + 2 * up + conv_params(128, 3, 1) == 1_035_459
    assert n_params("btsrn", scale=2) == conv_params(1, 128, 1) + 10 * pconv + up + conv_params(128, 1, 1)


def test_cmsc_unverified_default_is_stable() -> None:
    """CMSC publishes no count we could verify (docs/models.md labels it unverified); pin ours."""
    assert n_params("cmsc") == 3_383_556

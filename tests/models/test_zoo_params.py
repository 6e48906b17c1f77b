"""Parameter counts of full-size configurations against the papers' published figures.

Models are built, never run on real inputs. Counts are for the published colour/channel setting
(VDSR, FSRCNN, DRCN, DRRN, LapSRN, MS-LapSRN, IDN: luminance only, 1 channel; EDSR family and
CARN: RGB, 3 channels).
"""

from __future__ import annotations

import pytest

import sciSR


def n_params(name: str, scale: int = 4, channels: int = 1, **kw) -> int:
    m = sciSR.create_model(name, scale=scale, in_channels=channels, pretrained=False, **kw)
    return m.spec.params


def close(measured: int, published: float, rel: float = 0.01) -> bool:
    return abs(measured - published) <= rel * published


def test_vdsr_665k() -> None:
    """VDSR: 20 layers × 64 filters, Y channel: 665 K in the DRRN/LapSRN comparison tables."""
    assert n_params("vdsr") == 665_921
    assert close(665_921, 665_000)


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
    """DRRN B1U25, 128 filters, Y channel: 297 K."""
    p = n_params("drrn")
    assert p == 297_601
    assert close(p, 297_000)


def test_lapsrn_812k() -> None:
    """LapSRN ×4, d=10: the paper's 812 K matches 3×3 feature-upsampling kernels (``up_kernel=3``,
    814,244); with the 4×4 transposed convs the paper describes (our default) the count is
    871,588. The published table is ambiguous here, so both are pinned."""
    assert close(n_params("lapsrn", up_kernel=3), 812_000)
    assert n_params("lapsrn") == 871_588


def test_ms_lapsrn_d5r8_222k() -> None:
    """MS-LapSRN D5R8: 222 K published; 222,802 with 3×3 feature upsampling, 251,474 with the
    described 4×4 (default). Shared across levels: the count does not depend on the scale."""
    assert close(n_params("ms_lapsrn", up_kernel=3), 222_000)
    assert n_params("ms_lapsrn") == n_params("ms_lapsrn", scale=8) == 251_474


def test_idn_553k() -> None:
    """IDN: 64 features, 4 DBlocks, 17×17 transposed conv, Y channel: 553 K at any scale."""
    for s in (2, 3, 4):
        p = n_params("idn", scale=s)
        assert p == 552_769
        assert close(p, 553_000)


def test_selnet_count() -> None:
    """SelNet: 22 conv layers × 64 filters, 21 selection units, ×4, one channel: 835,792. The
    "≈0.97 M" quoted for SelNet could not be derived from the paper's description (no
    configuration of 22 layers × 64 filters gives it), so it is not asserted."""
    assert n_params("selnet") == 835_792


@pytest.mark.parametrize("name", ["btsrn", "cmsc"])
def test_unpublished_counts_are_stable(name: str) -> None:
    """BTSRN and CMSC publish no parameter count we could verify; pin ours to catch drift."""
    expected = {"btsrn": 856_449, "cmsc": 3_383_556}[name]
    assert n_params(name) == expected

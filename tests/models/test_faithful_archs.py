"""Architecture details checked against the papers and official code (BTSRN, SelNet, CMSC,
LapSRN/MS-LapSRN, DRRN, ESRGAN/MSRResNet init, U-Net label, sparse-coding back-projection)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sciSR
from sciSR.models import get_entry
from sciSR.models.selnet import SelectionUnit
from sciSR.models.sparse_coding import back_projection_kernel, degrade


def tiny(name: str, scale: int, **kw) -> nn.Module:
    torch.manual_seed(0)
    return sciSR.create_model(name, scale=scale, pretrained=False, **{**get_entry(name).tiny, **kw})


# ----------------------------------------------------------------------------- BTSRN
def test_btsrn_upsampling_is_nearest_plus_kernel_equals_stride_deconv() -> None:
    m = tiny("btsrn", 4)
    assert [up.r for up in m.up] == [2, 2] and len(m.between) == 1  # ×4: ×2, block, ×2
    for up in m.up:
        assert up.deconv.kernel_size == up.deconv.stride == (2, 2) and up.deconv.groups == 1
    assert not any(isinstance(mod, nn.ReLU) for mod in m.modules())
    assert sum(isinstance(mod, nn.LeakyReLU) for mod in m.modules()) > 0
    up = m.up[0]
    x = torch.randn(1, 8, 3, 4)
    with torch.no_grad():
        expected = F.interpolate(x, scale_factor=2, mode="nearest") + up.deconv(F.leaky_relu(x, 0.2))
        torch.testing.assert_close(up(x), expected)
        up.deconv.weight.zero_()
        up.deconv.bias.zero_()
        torch.testing.assert_close(up(x), F.interpolate(x, scale_factor=2, mode="nearest"))
    assert [u.r for u in tiny("btsrn", 3).up] == [3]
    assert [u.r for u in tiny("btsrn", 8).up] == [2, 2, 2] and len(tiny("btsrn", 8).between) == 2


def test_btsrn_learns_a_residual_over_bicubic() -> None:
    m = tiny("btsrn", 2)
    x = torch.rand(1, 1, 5, 6)
    with torch.no_grad():
        m.tail[-1].weight.zero_()
        m.tail[-1].bias.zero_()
        bicubic = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        torch.testing.assert_close(m(x), bicubic)


# ----------------------------------------------------------------------------- SelNet
def test_selection_unit_gates_the_identity() -> None:
    """SU(x) = x · sigmoid(conv1×1(relu(x))): with the 1×1 conv set to a constant bias b, negative
    inputs pass scaled by sigmoid(b) (a ReLU-based unit would zero them)."""
    su = SelectionUnit(4)
    with torch.no_grad():
        su.gate.weight.zero_()
        su.gate.bias.fill_(0.7)
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(su(x), x * torch.sigmoid(torch.tensor(0.7)))
    with torch.no_grad():
        su.gate.weight.copy_(torch.eye(4).reshape(4, 4, 1, 1))
        su.gate.bias.zero_()
    torch.testing.assert_close(su(x), x * torch.sigmoid(torch.relu(x)))


def test_selnet_layout_22_layers_and_residual_units() -> None:
    m = sciSR.create_model("selnet", scale=2, pretrained=False)
    k3 = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3)]
    assert len(k3) == 22 + 1  # 22 layers + the sub-pixel layer's conv
    assert sum(isinstance(mod, SelectionUnit) for mod in m.modules()) == 21
    assert isinstance(m.upsample[1], nn.PixelShuffle) and m.upsample[0].out_channels == 64 * 4
    assert m.tail.in_channels == 64 and m.tail.out_channels == 1  # the HR conv after the shuffle
    unit = m.body[0]
    x = torch.randn(1, 64, 4, 4)
    with torch.no_grad():
        unit.body[2].weight.zero_()
        unit.body[2].bias.zero_()
        torch.testing.assert_close(unit(x), x)  # identity skip of the residual unit


# ----------------------------------------------------------------------------- CMSC
def test_cmsc_every_stage_adds_the_extracted_features() -> None:
    """Residual-features learning: h_i = subnet_i(h_{i-1}) + h_0. With identity subnets (all
    branch convs zero) the reconstruction sees 2·h_0, 3·h_0, 4·h_0 (h_0 alone without the skips)."""
    m = tiny("cmsc", 2, n_subnets=3)
    with torch.no_grad():
        for subnet in m.subnets:
            for mod in subnet.modules():
                if isinstance(mod, nn.Conv2d):
                    mod.weight.zero_()
                    mod.bias.zero_()
    seen: list[torch.Tensor] = []
    m.reconstruction.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].detach()))
    x = torch.rand(1, 1, 5, 4)
    with torch.no_grad():
        m(x)
        h0 = m.features(F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False))
    assert len(seen) == 3
    for i, h in enumerate(seen, start=2):
        torch.testing.assert_close(h, i * h0)


# ----------------------------------------------------------------------------- LapSRN
def test_lapsrn_official_kernels() -> None:
    m = sciSR.create_model("lapsrn", scale=4, pretrained=False)
    assert m.features[0][-2].kernel_size == (3, 3)  # feature up-kernel f = 3 (official)
    assert all(up.kernel_size == (4, 4) and up.bias is None for up in m.image_up)


def test_ms_lapsrn_residual_conv_reads_the_upsampled_features_directly() -> None:
    """Official MS-LapSRN: residual conv on the transposed conv's output, no LeakyReLU between.
    Features forced to -1 give a residual of -1 (a LeakyReLU(0.2) in between would give -0.2)."""
    m = tiny("ms_lapsrn", 2, n_feats=4)
    assert isinstance(m.residual, nn.Conv2d)
    with torch.no_grad():
        deconv = m.feature_up[1]
        deconv.weight.zero_()
        deconv.bias.fill_(-1.0)
        m.residual.weight.zero_()
        m.residual.weight[0, 0, 1, 1] = 1.0
        m.residual.bias.zero_()
        m.image_up.weight.zero_()
        y = m(torch.rand(1, 1, 6, 6))
    torch.testing.assert_close(y, torch.full_like(y, -1.0))


# ----------------------------------------------------------------------------- DRRN
def test_drrn_batch_norm_is_the_official_pre_activation() -> None:
    """batch_norm=True: BN before every conv (52 positions for B1U25), conv keys unchanged, and at
    initialisation (eval: identity BN up to eps) the same output as the BN-free net on positive input
    (the official net also applies BN+ReLU to the input)."""
    plain = sciSR.create_model("drrn", scale=2, pretrained=False, n_feats=8).eval()
    bn = sciSR.create_model("drrn", scale=2, pretrained=False, n_feats=8, batch_norm=True).eval()
    norms = [mod for mod in bn.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert len(norms) == 52 and norms[0].num_features == 1
    missing, unexpected = bn.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all("norm" in k for k in missing)
    x = torch.rand(1, 1, 6, 5) + 0.1
    with torch.no_grad():
        torch.testing.assert_close(bn(x), plain(x), rtol=1e-3, atol=1e-4)
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in plain.modules())


# ----------------------------------------------------------------------------- init
def rel_std(conv: nn.Conv2d) -> float:
    """Weight std relative to Kaiming-normal's sqrt(2 / fan_in)."""
    fan_in = conv.weight[0].numel()
    return float(conv.weight.detach().std()) / math.sqrt(2.0 / fan_in)


def test_rrdbnet_dense_block_convs_start_at_a_tenth_of_kaiming() -> None:
    m = sciSR.create_model("esrgan", scale=4, pretrained=False, n_feats=32, gc=16, n_blocks=1)
    rdb = m.body[0].rdb1
    for conv in (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4, rdb.conv5):
        assert rel_std(conv) == pytest.approx(0.1, rel=0.15)
        assert float(conv.bias.detach().abs().max()) == 0.0
    # the trunk convs keep PyTorch's default init (uniform, std 1/sqrt(3·fan_in)), as in BasicSR
    assert rel_std(m.conv_body) == pytest.approx(math.sqrt(1 / 6), rel=0.15)


def test_msrresnet_every_conv_starts_at_a_tenth_of_kaiming() -> None:
    m = sciSR.create_model("msrresnet", scale=4, pretrained=False, n_feats=32, n_blocks=2)
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    assert len(convs) == 2 + 2 * 2 + 2 + 1  # first, blocks, two upconvs, hr, last
    for conv in convs:
        if conv.weight.numel() >= 1000:
            assert rel_std(conv) == pytest.approx(0.1, rel=0.15)
        assert float(conv.bias.detach().abs().max()) == 0.0


# ----------------------------------------------------------------------------- U-Net
def test_unet_is_labelled_as_the_smp_resnet18_unet() -> None:
    entry = get_entry("unet")
    label = "ResNet18-UNet (segmentation-models-pytorch)"
    assert label in entry.description and label in entry.paper
    m = tiny("unet", 2)
    assert label in type(m).__doc__ and m.config["encoder_name"] == "resnet18"


# ----------------------------------------------------------------------------- sparse coding
def test_back_projection_kernel_is_yangs_squared_gaussian() -> None:
    """fspecial('gaussian', 5, 1).^2, normalised: exp(-r²/2)² ∝ exp(-r²)."""
    r = torch.arange(-2, 3, dtype=torch.float64)
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 2)
    g = (g / g.sum()) ** 2
    torch.testing.assert_close(back_projection_kernel(torch.float64)[0, 0], g / g.sum())


def test_sparse_coding_back_projects_by_default() -> None:
    assert sciSR.create_model("sparse_coding", scale=2, pretrained=False).back_projection == 20
    kw = {**get_entry("sparse_coding").tiny}
    torch.manual_seed(0)
    plain = sciSR.create_model("sparse_coding", scale=2, pretrained=False, **{**kw, "back_projection": 0})
    bp = sciSR.create_model("sparse_coding", scale=2, pretrained=False, **{**kw, "back_projection": 8})
    bp.load_state_dict(plain.state_dict())
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        err_plain = (degrade(plain(x), 2) - x).abs().mean()
        err_bp = (degrade(bp(x), 2) - x).abs().mean()
    assert err_bp < 0.5 * err_plain  # back-projection enforces consistency with the LR input
    assert bp.receptive_field() - plain.receptive_field() == 8 * 5  # ceil(2/2) + 2 + 2 per iteration

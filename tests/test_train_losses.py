"""Training losses against hand-computed values: EnhanceNet's patch-wise Gram (texture) loss and the
Charbonnier losses of LapSRN (sciSR.models.layers.losses)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sciSR.models.enhancenet import gram_matrix, texture_loss
from sciSR.models.layers.losses import charbonnier_loss, multiscale_charbonnier_loss

# two 2-channel 2×2 feature maps; rows are channels, columns the pixels in raster order
A = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]])
B = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[2.0, 2.0], [2.0, 2.0]]]])


def test_gram_matrix_hand_computed() -> None:
    """A: c0 = (1, 2, 3, 4), c1 = (0, 1, 1, 0): c0·c0 = 30, c0·c1 = 5, c1·c1 = 2, over C·H·W = 8."""
    torch.testing.assert_close(gram_matrix(A), torch.tensor([[[30.0, 5.0], [5.0, 2.0]]]) / 8)
    torch.testing.assert_close(gram_matrix(B), torch.tensor([[[2.0, 4.0], [4.0, 16.0]]]) / 8)


def test_texture_loss_one_window_hand_computed() -> None:
    """patch=2 (one window): G_A - G_B = [[28, 1], [1, -14]]/8, mean of squares = (784+1+1+196)/64/4."""
    assert float(texture_loss(A, B, patch=2)) == pytest.approx(982 / 256, rel=1e-7)
    # a window larger than the map is the whole map
    assert float(texture_loss(A, B, patch=16)) == pytest.approx(982 / 256, rel=1e-7)


def test_texture_loss_per_pixel_windows_hand_computed() -> None:
    """patch=1: each pixel is a window with Gram f·fᵀ/2. Pixel (A; B) pairs and sums of squared
    Gram differences ×4: (1,0;1,2) → 0+4+4+16, (2,1;0,2) → 16+4+4+9, (3,1;0,2) → 81+9+9+9,
    (4,0;1,2) → 225+4+4+16; total 414/4 = 103.5 over 4 windows × 4 entries."""
    assert float(texture_loss(A, B, patch=1)) == pytest.approx(103.5 / 16, rel=1e-7)


def _texture_reference(a: np.ndarray, b: np.ndarray, patch: int) -> float:
    """Loop over windows (right/bottom remainders dropped), Gram by einsum, normalized per window."""
    n, c, h, w = a.shape
    sq, entries = 0.0, 0
    for i in range(n):
        for y in range(0, h - patch + 1, patch):
            for x in range(0, w - patch + 1, patch):
                wa, wb = a[i, :, y : y + patch, x : x + patch], b[i, :, y : y + patch, x : x + patch]
                ga = np.einsum("cyx,dyx->cd", wa, wa) / (c * patch * patch)
                gb = np.einsum("cyx,dyx->cd", wb, wb) / (c * patch * patch)
                sq += float(((ga - gb) ** 2).sum())
                entries += c * c
    return sq / entries


def test_texture_loss_matches_a_window_loop_with_remainders_and_layer_weights() -> None:
    g = torch.Generator().manual_seed(0)
    a1, b1 = (torch.randn(2, 3, 10, 13, generator=g, dtype=torch.float64) for _ in range(2))
    a2, b2 = (torch.rand(2, 5, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
    r1 = _texture_reference(a1.numpy(), b1.numpy(), 4)  # uses the top-left 8 × 12
    r2 = _texture_reference(a2.numpy(), b2.numpy(), 4)
    assert float(texture_loss(a1, b1, patch=4)) == pytest.approx(r1, rel=1e-10)
    assert float(texture_loss([a1, a2], [b1, b2], patch=4, weights=[0.25, 2.0])) == pytest.approx(
        0.25 * r1 + 2.0 * r2, rel=1e-10
    )
    # the dropped remainder really is ignored: changing it leaves the loss unchanged
    b1x = b1.clone()
    b1x[..., 8:, :] += 5.0
    b1x[..., :, 12:] -= 5.0
    assert float(texture_loss(a1, b1x, patch=4)) == pytest.approx(r1, rel=1e-10)


def test_charbonnier_losses_hand_computed() -> None:
    """sqrt(d² + ε²) with d = (3, 0), ε = 4 → (5 + 4)/2. Multi-scale: the ×2-coarser level is compared
    with the block mean of the target (2.5, 4.5, 10.5, 12.5 for arange(16) in 4×4); ε = 0 makes it L1."""
    pred, target = torch.tensor([[[[3.0, 0.0]]]]), torch.zeros(1, 1, 1, 2)
    assert float(charbonnier_loss(pred, target, eps=4.0)) == pytest.approx(4.5)
    assert float(charbonnier_loss(pred, target)) == pytest.approx((np.sqrt(9 + 1e-6) + 1e-3) / 2, rel=1e-6)
    t = torch.arange(16.0).reshape(1, 1, 4, 4)
    coarse, fine = torch.zeros(1, 1, 2, 2), t + 1.0
    assert float(multiscale_charbonnier_loss([coarse, fine], t, eps=0.0)) == pytest.approx(7.5 + 1.0)


# --------------------------------------------------------------------------- sciSR.train.losses
import math  # noqa: E402

import torch.nn.functional as F  # noqa: E402

from sciSR.train.losses import build_objective, parse_loss  # noqa: E402

SR = torch.tensor([[[[0.0, 1.0], [2.0, -1.0]]]])
HR = torch.tensor([[[[0.5, 1.0], [0.0, 1.0]]]])  # d = (-0.5, 0, 2, -2)


def test_pixel_losses_against_their_formulas() -> None:
    """l1 = mean|d| = 4.5/4, mse = mean d² = 8.25/4, charbonnier = mean sqrt(d² + 1e-6)."""
    d = [-0.5, 0.0, 2.0, -2.0]
    expect = {
        "l1": sum(abs(v) for v in d) / 4,
        "mse": sum(v * v for v in d) / 4,
        "l2": sum(v * v for v in d) / 4,
        "charbonnier": sum(math.sqrt(v * v + 1e-6) for v in d) / 4,
    }
    for name, value in expect.items():
        loss, logs = build_objective(name, scale=2)(SR, HR)
        assert loss.item() == pytest.approx(value, rel=1e-6), name
        assert logs["loss"] == pytest.approx(value, rel=1e-6)
    assert expect["charbonnier"] != pytest.approx(expect["l1"], rel=1e-6)  # ε really enters


def test_combinations_dict_weights_and_callables() -> None:
    l1, mse = 4.5 / 4, 8.25 / 4
    loss, logs = build_objective("l1+mse", scale=2)(SR, HR)
    assert loss.item() == pytest.approx(l1 + mse, rel=1e-6)
    assert logs["l1"] == pytest.approx(l1, rel=1e-6) and logs["mse"] == pytest.approx(mse, rel=1e-6)
    loss, logs = build_objective({"L1": 0.25, "l2": 3.0}, scale=2)(SR, HR)
    assert loss.item() == pytest.approx(0.25 * l1 + 3.0 * mse, rel=1e-6)
    assert logs["mse"] == pytest.approx(mse, rel=1e-6)  # unweighted value, canonical name
    loss, logs = build_objective(lambda a, b: (a - b).abs().max(), scale=2)(SR, HR)
    assert loss.item() == pytest.approx(2.0) and logs["custom"] == pytest.approx(2.0)


def test_pixel_gradient_reaches_the_output() -> None:
    """d(mean|d|)/d sr = sign(d)/4 (0 where d = 0); d(mean d²)/d sr = 2d/4."""
    sr = SR.clone().requires_grad_(True)
    build_objective("l1", scale=2)(sr, HR)[0].backward()
    torch.testing.assert_close(sr.grad, torch.sign(SR - HR) / 4)
    sr.grad = None
    build_objective("mse", scale=2)(sr, HR)[0].backward()
    torch.testing.assert_close(sr.grad, 2 * (SR - HR) / 4)


def test_loss_specification_errors() -> None:
    for bad, words in [("l3", "unknown loss term 'l3'"), ("mse+l2", "appears twice"), ("l1+gan", "gan="),
                       ("l1+", "unknown loss term ''"), ({}, "names no term"), ({"l1": -1}, "≥ 0"),
                       ({"l1": "x"}, "must be a number"), (3, "must be a name")]:
        with pytest.raises(ValueError, match=words):
            parse_loss(bad)
    with pytest.raises(ValueError, match="unknown degradation"):
        build_objective("l1", scale=2, degradation="nearest")
    with pytest.raises(ValueError, match="scale must be a positive integer"):
        build_objective("l1", scale=0)
    with pytest.raises(ValueError, match="perceptual_criterion"):
        build_objective("l1", scale=2, perceptual_criterion="huber")


def test_output_shape_and_weight_checks() -> None:
    obj = build_objective("l1", scale=2)
    with pytest.raises(ValueError, match="differs from the HR batch"):
        obj(SR[..., :1], HR)
    with pytest.raises(ValueError, match="empty list"):
        obj([], HR)
    with pytest.raises(ValueError, match="weights has 2 entries"):
        build_objective("l1", scale=2, weights=[1.0, 1.0])(SR, HR)
    hr = torch.zeros(1, 1, 6, 6)
    with pytest.raises(ValueError, match="integer factor dividing"):
        obj([torch.zeros(1, 1, 4, 4), hr], hr)
    with pytest.raises(ValueError, match="integer factor dividing"):  # factor 3 does not divide 2
        obj([torch.zeros(1, 1, 2, 2), hr], hr)


def test_multiscale_targets_are_degraded_hr_and_weights_apply() -> None:
    """Coarse output vs the 2×2 block mean of HR (area), fine output vs HR; weights per output."""
    hr = torch.arange(16.0).reshape(1, 1, 4, 4)
    coarse, fine = torch.zeros(1, 1, 2, 2), hr + 1.0
    block_mean = (2.5 + 4.5 + 10.5 + 12.5) / 4  # L1 of zeros vs the block means
    obj = build_objective("l1", scale=4, degradation="area", weights=[0.5, 2.0])
    loss, logs = obj([coarse, fine], hr)
    assert loss.item() == pytest.approx(0.5 * block_mean + 2.0 * 1.0)
    assert logs["l1_final"] == pytest.approx(1.0)
    obj.weights = [1.0, 0.0]  # reassignable between steps (DRCN's α schedule)
    assert float(obj([coarse, fine], hr)[0]) == pytest.approx(block_mean)
    # bicubic degradation gives the torch antialiased bicubic reduction as the coarse target
    bic = F.interpolate(hr, size=(2, 2), mode="bicubic", antialias=True, align_corners=False)
    loss, _ = build_objective("mse", scale=2)([coarse, fine], hr)
    assert loss.item() == pytest.approx(float((bic**2).mean()) + 1.0, rel=1e-6)


def test_lapsrn_forward_train_and_multiscale_charbonnier() -> None:
    """forward_train = the pyramid (×2, ×4), final = forward(); with area targets the objective is
    the architecture's own multi-scale Charbonnier loss."""
    from sciSR.models.lapsrn import LapSRN, MSLapSRN

    torch.manual_seed(0)
    x, hr = torch.rand(2, 1, 6, 5), torch.rand(2, 1, 24, 20)
    for m in (LapSRN(4, n_feats=8, depth=1), MSLapSRN(4, n_feats=8, depth=1, recursions=2)):
        outs = m.forward_train(x)
        assert [tuple(o.shape) for o in outs] == [(2, 1, 12, 10), (2, 1, 24, 20)]
        torch.testing.assert_close(outs[-1], m(x))
        loss, _ = build_objective("charbonnier", scale=4, degradation="area")(outs, hr)
        ref = multiscale_charbonnier_loss([o.detach() for o in outs], hr)
        assert float(loss.detach()) == pytest.approx(float(ref), rel=1e-6)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
        assert m.conv_in.parameters().__next__().grad.abs().sum() > 0


def test_drcn_forward_train_recursive_supervision() -> None:
    """[y_1 … y_D, ensemble] at HR; weights [α/D]*D + [1-α] give Kim et al.'s loss."""
    from sciSR.models.drcn import DRCN

    torch.manual_seed(0)
    m = DRCN(2, n_feats=8, recursions=3)
    x, hr = torch.rand(2, 1, 5, 6), torch.rand(2, 1, 10, 12)
    outs = m.forward_train(x)
    assert len(outs) == 4 and all(tuple(o.shape) == (2, 1, 10, 12) for o in outs)
    ens, inter = m.intermediate_predictions(x)
    torch.testing.assert_close(outs[-1], ens)
    torch.testing.assert_close(outs[-1], m(x))
    alpha = 0.7
    expect = alpha / 3 * sum(F.mse_loss(y, hr) for y in inter) + (1 - alpha) * F.mse_loss(ens, hr)
    obj = build_objective("mse", scale=2, weights=[alpha / 3] * 3 + [1 - alpha])
    loss, logs = obj(outs, hr)
    assert float(loss.detach()) == pytest.approx(float(expect.detach()), rel=1e-6)
    assert logs["mse_final"] == pytest.approx(float(F.mse_loss(ens.detach(), hr)), rel=1e-6)
    loss.backward()
    assert m.ensemble_weights.grad is not None and m.ensemble_weights.grad.abs().sum() > 0


# --------------------------------------------------------------------------- VGG feature losses
TINY_CFG = [4, 4, "M", 6, 6, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M"]
MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)


def _tiny_vgg_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A VGG19-topology state dict with small widths, torchvision key names, plus classifier keys."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    i, prev = 0, 3
    for v in TINY_CFG:
        if v == "M":
            i += 1
            continue
        sd[f"features.{i}.weight"] = torch.randn(v, prev, 3, 3, generator=g) * 0.3
        sd[f"features.{i}.bias"] = torch.randn(v, generator=g) * 0.1
        prev, i = v, i + 2
    sd["classifier.0.weight"] = torch.zeros(2, 3)
    return sd


def _reference_features(sd: dict[str, torch.Tensor], x3: torch.Tensor, upto: int) -> torch.Tensor:
    """Hand-written VGG forward up to torchvision features index ``upto`` (inclusive)."""
    y = (x3 - MEAN) / STD
    i = 0
    for v in TINY_CFG:
        if v == "M":
            y = F.max_pool2d(y, 2)
            if i == upto:
                return y
            i += 1
            continue
        y = F.conv2d(y, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1)
        if i == upto:
            return y
        y = F.relu(y)
        if i + 1 == upto:
            return y
        i += 2
    raise AssertionError(upto)


@pytest.fixture
def vgg_file(tmp_path):
    from safetensors.torch import save_file

    sd = _tiny_vgg_state()
    path = tmp_path / "vgg19.safetensors"
    save_file(sd, str(path))
    return path, sd


def test_perceptual_conv5_4_l1_matches_hand_reference(vgg_file) -> None:
    """ESRGAN default: conv5_4 (index 34) before ReLU, L1; 1 channel repeated to RGB, ImageNet norm."""
    path, sd = vgg_file
    g = torch.Generator().manual_seed(1)
    sr = torch.rand(2, 1, 32, 32, generator=g).requires_grad_(True)
    hr = torch.rand(2, 1, 32, 32, generator=g)
    obj = build_objective("perceptual", scale=4, vgg_weights=path)
    loss, logs = obj(sr, hr)
    ref = F.l1_loss(_reference_features(sd, sr.detach().repeat(1, 3, 1, 1), 34),
                    _reference_features(sd, hr.repeat(1, 3, 1, 1), 34))
    assert loss.item() == pytest.approx(float(ref), rel=1e-5)
    assert logs["perceptual"] == pytest.approx(float(ref), rel=1e-5)
    loss.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in obj.vgg.parameters())
    obj.train()
    assert not obj.vgg.training
    assert obj.state_dict() == {}  # frozen VGG weights are not part of the resume state


def test_perceptual_srgan_layer_mse_weights_and_channels(vgg_file, tmp_path) -> None:
    """relu2_2 (index 8) with MSE (SRGAN VGG22), weight 0.5 in a '+' spec with L1; 3-channel input
    used as RGB; 2-channel input fed channel by channel; a weights-only .pth loads the same."""
    path, sd = vgg_file
    pth = tmp_path / "vgg19.pth"
    torch.save(sd, pth)
    g = torch.Generator().manual_seed(2)
    sr3, hr3 = torch.rand(1, 3, 8, 12, generator=g), torch.rand(1, 3, 8, 12, generator=g)
    for file in (path, pth):
        obj = build_objective("l1+perceptual", scale=2, vgg_weights=file, perceptual_layer="relu2_2",
                              perceptual_criterion="mse", perceptual_weight=0.5)
        loss, logs = obj(sr3, hr3)
        ref = F.mse_loss(_reference_features(sd, sr3, 8), _reference_features(sd, hr3, 8))
        assert logs["perceptual"] == pytest.approx(float(ref), rel=1e-5)
        assert loss.item() == pytest.approx(float(F.l1_loss(sr3, hr3)) + 0.5 * float(ref), rel=1e-5)
    sr2, hr2 = sr3[:, :2], hr3[:, :2]
    _, logs = obj(sr2, hr2)
    fold = lambda t: t.reshape(2, 1, 8, 12).repeat(1, 3, 1, 1)  # noqa: E731
    ref = F.mse_loss(_reference_features(sd, fold(sr2), 8), _reference_features(sd, fold(hr2), 8))
    assert logs["perceptual"] == pytest.approx(float(ref), rel=1e-5)


def test_texture_loss_objective_matches_enhancenet_formula(vgg_file) -> None:
    path, sd = vgg_file
    g = torch.Generator().manual_seed(3)
    sr, hr = torch.rand(1, 1, 20, 24, generator=g), torch.rand(1, 1, 20, 24, generator=g)
    obj = build_objective("texture", scale=4, vgg_weights=path, texture_weight=2.0, texture_patch=4)
    loss, logs = obj(sr, hr)
    idx = {"conv1_1": 0, "conv2_1": 5, "conv3_1": 10}
    fs = [_reference_features(sd, sr.repeat(1, 3, 1, 1), i) for i in idx.values()]
    fh = [_reference_features(sd, hr.repeat(1, 3, 1, 1), i) for i in idx.values()]
    ref = float(texture_loss(fs, fh, patch=4))
    assert logs["texture"] == pytest.approx(ref, rel=1e-5)
    assert loss.item() == pytest.approx(2.0 * ref, rel=1e-5)


def test_vgg_layout_matches_torchvision(vgg_file) -> None:
    """The index layout is torchvision's: a make_layers stack with these weights gives the same
    relu5_4 and pool5 features."""
    tv = pytest.importorskip("torchvision.models.vgg")
    from sciSR.train.vgg import VGG19Features

    _, sd = vgg_file
    seq = tv.make_layers(TINY_CFG)
    seq.load_state_dict({k.removeprefix("features."): v for k, v in sd.items() if k.startswith("features.")})
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    ours = VGG19Features(sd, ["relu5_4", "pool5", "conv3_1"])(x)
    with torch.no_grad():
        xn = (x - MEAN) / STD
        torch.testing.assert_close(ours["relu5_4"], seq[:36](xn))
        torch.testing.assert_close(ours["pool5"], seq(xn))
        torch.testing.assert_close(ours["conv3_1"], seq[:11](xn))


def test_missing_or_wrong_vgg_weights_fail_in_build_objective(tmp_path, vgg_file) -> None:
    """Each error is one line naming vgg_weights= and the expected file."""
    from safetensors.torch import save_file

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    _, sd = vgg_file
    vgg16_like = tmp_path / "vgg16.safetensors"  # 13 convs: no features.16 (VGG19's conv3_4)
    save_file({k: v for k, v in sd.items() if k not in ("features.16.weight", "features.16.bias")},
              str(vgg16_like))
    wrong_width = tmp_path / "wrong.safetensors"
    save_file({**sd, "features.2.weight": torch.zeros(4, 5, 3, 3)}, str(wrong_width))
    cases = [(None, "needs VGG19 weights: pass vgg_weights="), (tmp_path / "absent.pth", "is not a file"),
             (junk, "cannot be read"), (vgg16_like, "no features.16.weight"),
             (wrong_width, r"features.2.weight has shape \(4, 5, 3, 3\)")]
    for loss in ("perceptual", "l1+texture"):
        for file, words in cases:
            with pytest.raises(ValueError, match=words) as err:
                build_objective(loss, scale=4, vgg_weights=file)
            msg = str(err.value)
            assert "\n" not in msg and "vgg_weights=" in msg and "VGG19 state dict" in msg
    with pytest.raises(ValueError, match="unknown VGG19 layer 'conv6_1'"):
        build_objective("perceptual", scale=4, vgg_weights=vgg_file[0], perceptual_layer="conv6_1")
    # a file is not needed (nor read) for pixel losses
    assert build_objective("l1", scale=4, vgg_weights=junk).vgg is None


def test_vgg_patch_size_is_checked(vgg_file) -> None:
    obj = build_objective("perceptual", scale=4, vgg_weights=vgg_file[0])
    assert obj.min_patch == 16
    with pytest.raises(ValueError, match="at least 16×16"):
        obj(torch.rand(1, 1, 12, 40), torch.rand(1, 1, 12, 40))
    obj.check_patch(2, 16, 16)

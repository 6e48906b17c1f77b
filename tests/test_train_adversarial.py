"""Adversarial training: vanilla (SRGAN) and relativistic average (ESRGAN) losses against hand
computations, the discriminator update, size checks and the resume state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sciSR.train.adversarial import (
    Adversary,
    ragan_d_loss,
    ragan_g_loss,
    vanilla_d_loss,
    vanilla_g_loss,
)
from sciSR.train.losses import build_objective

SMALL = {"srgan": {"n_feats": 4, "dense": 16}, "esrgan": {"n_feats": 4}}  # paper layout, fewer filters
REAL = torch.tensor([[2.0], [-1.0]])  # mean 0.5
FAKE = torch.tensor([[0.5], [-0.5]])  # mean 0


def _nlog_sig(z: float) -> float:
    """-log σ(z)."""
    return math.log1p(math.exp(-z))


def _nlog_one_minus_sig(z: float) -> float:
    """-log(1 - σ(z))."""
    return math.log1p(math.exp(z))


def test_vanilla_losses_hand_computed() -> None:
    """D: -mean log σ(real) - mean log(1 - σ(fake)); G: -mean log σ(fake)."""
    d = (_nlog_sig(2.0) + _nlog_sig(-1.0)) / 2 + (_nlog_one_minus_sig(0.5) + _nlog_one_minus_sig(-0.5)) / 2
    g = (_nlog_sig(0.5) + _nlog_sig(-0.5)) / 2
    assert float(vanilla_d_loss(REAL, FAKE)) == pytest.approx(d, rel=1e-6)
    assert float(vanilla_g_loss(REAL, FAKE)) == pytest.approx(g, rel=1e-6)
    assert float(vanilla_g_loss(REAL * 0 + 7.0, FAKE)) == pytest.approx(g, rel=1e-6)  # real unused


def test_ragan_losses_hand_computed() -> None:
    """C_r - E C_f = (2, -1), C_f - E C_r = (0, -1).
    D = (-mean log σ(2, -1) - mean log(1 - σ(0, -1))) / 2; G swaps the targets."""
    real_term = (_nlog_sig(2.0) + _nlog_sig(-1.0)) / 2
    fake_term = (_nlog_one_minus_sig(0.0) + _nlog_one_minus_sig(-1.0)) / 2
    d = (real_term + fake_term) / 2
    g = ((_nlog_one_minus_sig(2.0) + _nlog_one_minus_sig(-1.0)) / 2
         + (_nlog_sig(0.0) + _nlog_sig(-1.0)) / 2) / 2
    assert float(ragan_d_loss(REAL, FAKE)) == pytest.approx(d, rel=1e-6)
    assert float(ragan_g_loss(REAL, FAKE)) == pytest.approx(g, rel=1e-6)
    # the generator's loss is the discriminator's with the roles of real and fake exchanged
    r, f = torch.randn(5, 1), torch.randn(5, 1)
    torch.testing.assert_close(ragan_g_loss(r, f), ragan_d_loss(f, r))
    # relativistic: shifting every logit by the same amount changes nothing
    torch.testing.assert_close(ragan_d_loss(r + 3.0, f + 3.0), ragan_d_loss(r, f))


def test_generator_term_is_weighted_into_the_loss_and_spares_the_discriminator() -> None:
    torch.manual_seed(0)
    sr = torch.rand(2, 1, 32, 32, requires_grad=True)
    hr = torch.rand(2, 1, 32, 32)
    obj = build_objective("l1", scale=4, gan="ragan", discriminator="esrgan", gan_weight=0.25,
                          discriminator_options=SMALL["esrgan"])
    assert obj.adversarial
    loss, logs = obj(sr, hr)
    assert logs["loss"] == pytest.approx(logs["l1"] + 0.25 * logs["gan_g"], rel=1e-6)
    assert loss.item() == pytest.approx(logs["loss"], rel=1e-6)
    # recompute the term with the discriminator by hand (BN in train mode, as inside the objective)
    net = obj.adversary.net
    with torch.no_grad():
        expect = ragan_g_loss(net(hr), net(sr))
    assert logs["gan_g"] == pytest.approx(float(expect), rel=1e-5)
    loss.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())  # restored for the D step


@pytest.mark.parametrize(("gan", "disc", "size"), [("vanilla", "srgan", 16), ("ragan", "esrgan", 32)])
def test_adversarial_steps_with_a_tiny_generator(gan: str, disc: str, size: int) -> None:
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.PixelShuffle(2))
    opt = torch.optim.Adam(gen.parameters(), lr=1e-3)
    obj = build_objective({"l1": 1e-2}, scale=2, gan=gan, discriminator=disc, gan_weight=5e-3, lr=1e-3,
                          discriminator_options=SMALL[disc])
    d0 = {k: v.clone() for k, v in obj.adversary.net.state_dict().items()}
    g0 = [p.detach().clone() for p in gen.parameters()]
    hr = torch.rand(3, 1, size, size + 8)
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    for _ in range(3):
        sr = gen(lr)
        loss, logs = obj(sr, hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        d_logs = obj.discriminator_step(sr.detach(), hr)
        assert set(d_logs) == {"d_loss", "d_real", "d_fake"}
        assert all(math.isfinite(v) for v in [*logs.values(), *d_logs.values()])
        assert 0 < d_logs["d_real"] < 1 and 0 < d_logs["d_fake"] < 1
    d1 = obj.adversary.net.state_dict()
    changed = [k for k in d0 if d0[k].is_floating_point() and not torch.equal(d0[k], d1[k])]
    assert any(k.endswith("weight") for k in changed)
    assert all(torch.isfinite(v).all() for v in d1.values() if v.is_floating_point())
    assert any(not torch.equal(a, b) for a, b in zip(g0, gen.parameters()))


def test_state_dict_round_trip_gives_an_exact_resume(tmp_path) -> None:
    """Two D steps, save (weights-only torch file), load into a freshly built objective: the next
    step is bitwise the same as continuing the original."""
    g = torch.Generator().manual_seed(5)
    batches = [(torch.rand(2, 1, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g))
               for _ in range(3)]
    torch.manual_seed(1)
    a = build_objective("l1", scale=4, gan="ragan", lr=1e-3, discriminator_options=SMALL["esrgan"])
    for sr, hr in batches[:2]:
        a.discriminator_step(sr, hr)
    path = tmp_path / "objective.pt"
    torch.save(a.state_dict(), path)
    torch.manual_seed(2)  # a different initialization that the load must overwrite
    b = build_objective("l1", scale=4, gan="ragan", lr=1e-3, discriminator_options=SMALL["esrgan"])
    assert not torch.equal(b.adversary.net.conv0_0.weight, a.adversary.net.conv0_0.weight)
    b.load_state_dict(torch.load(path, weights_only=True))
    sr, hr = batches[2]
    assert a.discriminator_step(sr, hr) == b.discriminator_step(sr, hr)
    for (ka, va), (kb, vb) in zip(a.adversary.net.state_dict().items(), b.adversary.net.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert a.state_dict()["optimizer"]["state"][0]["step"] == 3
    la, lb = a(sr, hr)[1], b(sr, hr)[1]
    assert la == lb


def test_discriminators_take_any_channel_count_and_size_above_their_minimum() -> None:
    for disc, ok, small in (("srgan", (16, 40), 15), ("esrgan", (32, 72), 31)):
        adv = Adversary("vanilla", disc, in_channels=3, options=SMALL[disc])
        x = torch.rand(2, 3, *ok)
        assert tuple(adv.net(x).shape) == (2, 1)
        adv.step(x, torch.rand(2, 3, *ok))
        with pytest.raises(ValueError, match=f"at least {adv.spec.min_size}×{adv.spec.min_size}"):
            adv.step(torch.rand(2, 3, small, 64), torch.rand(2, 3, small, 64))
        with pytest.raises(ValueError, match="batch_size ≥ 2"):  # BN on a single 1×1 value
            adv.check_size(1, adv.spec.min_size, adv.spec.min_size)
        adv.check_size(1, 2 * adv.spec.min_size, 2 * adv.spec.min_size)
    obj = build_objective("l1", scale=4, gan="vanilla", discriminator="esrgan",
                          discriminator_options=SMALL["esrgan"])
    assert obj.min_patch == 32
    with pytest.raises(ValueError, match="esrgan discriminator needs HR patches of at least 32×32"):
        obj(torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24))


def test_adversarial_configuration_errors() -> None:
    with pytest.raises(ValueError, match="unknown gan='wgan'"):
        build_objective("l1", scale=4, gan="wgan")
    with pytest.raises(ValueError, match="unknown discriminator='patchgan'"):
        build_objective("l1", scale=4, gan="ragan", discriminator="patchgan")
    plain = build_objective("l1", scale=4)
    assert not plain.adversarial and plain.state_dict() == {}
    with pytest.raises(RuntimeError, match="no discriminator"):
        plain.discriminator_step(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32))
    adv = build_objective("l1", scale=4, gan="ragan")  # default: ESRGAN's discriminator as published
    assert adv.adversary.kind == "esrgan" and adv.adversary.net.conv0_0.out_channels == 64
    assert adv.adversary.optimizer.defaults["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="bad discriminator_options for 'srgan'"):
        build_objective("l1", scale=4, gan="ragan", discriminator="srgan", discriminator_options={"width": 3})
    with pytest.raises(ValueError, match="no discriminator for this adversarial"):
        adv.load_state_dict({})
    with pytest.raises(ValueError, match="has no discriminator but the state holds one"):
        plain.load_state_dict(adv.state_dict())
    with pytest.raises(ValueError, match="'discriminator' and 'optimizer'"):
        adv.load_state_dict({"discriminator": {}})

"""The model contract (DESIGN §3), checked for every registered architecture in tiny configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sciSR
from sciSR.models import get_entry, measure_receptive_field
from sciSR.pipeline import Pipeline

NAMES = sciSR.list_models()


def scales_for(name: str) -> list[int]:
    entry = get_entry(name)
    m = entry.builder(scale=entry_default_scale(name), in_channels=1, **entry.tiny)
    return list(m.scales) if m.scales else [2, 3, 4]


def entry_default_scale(name: str) -> int:
    cls_scales = getattr(
        get_entry(name).builder(scale=2, in_channels=1, **get_entry(name).tiny), "scales", ()
    )
    return 2 if not cls_scales or 2 in cls_scales else cls_scales[0]


def build(name: str, scale: int, channels: int = 1, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    entry = get_entry(name)
    return sciSR.create_model(name, scale=scale, in_channels=channels, pretrained=False, **entry.tiny)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 4])
def test_output_shape_all_scales(name: str, channels: int) -> None:
    for s in scales_for(name):
        m = build(name, s, channels)
        x = torch.rand(2, channels, 13, 17)
        with torch.no_grad():
            y = m(x)
        assert y.shape == (2, channels, 13 * s, 17 * s), (name, s)
        assert torch.isfinite(y).all()
        spec = m.spec
        assert spec.scale == s and spec.in_channels == channels and spec.out_channels == channels
        assert spec.params == sum(p.numel() for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    s = scales_for(name)[0]
    m = build(name, s).train()
    params = [p for p in m.parameters() if p.requires_grad]
    if not params:
        pytest.skip("parameter-free model")
    y = m(torch.rand(2, 1, 12, 12))
    (y**2).mean().backward()
    for n, p in m.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}: no gradient for {n}"
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {n}"


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_mode_consistent(name: str) -> None:
    s = scales_for(name)[0]
    m = build(name, s).eval()
    x = torch.rand(1, 1, 11, 14)
    with torch.no_grad():
        a = m(x)
        b = m(x)
        m.train()
        m.eval()
        c = m(x)
    assert torch.equal(a, b) and torch.equal(a, c)
    has_stochastic = any(isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.Dropout)) for mod in m.modules())
    if not has_stochastic:
        with torch.no_grad():
            d = m.train()(x)
        torch.testing.assert_close(a, d, rtol=1e-5, atol=1e-5)
    # same weights built twice from the same seed → same output
    m2 = build(name, s).eval()
    with torch.no_grad():
        torch.testing.assert_close(m2(x), a)


@pytest.mark.parametrize("name", NAMES)
def test_receptive_field_declared_truthfully(name: str) -> None:
    s = scales_for(name)[0]
    m = build(name, s)
    spec = m.spec
    if not spec.equivariant:
        assert spec.receptive_field is None or spec.receptive_field >= 0
        return
    measured = measure_receptive_field(m)
    assert measured is not None, f"{name} declares equivariance but its receptive field is unbounded"
    assert spec.receptive_field >= measured, f"{name}: declared {spec.receptive_field} < measured {measured}"


@pytest.mark.parametrize("name", NAMES)
def test_tiled_equals_whole_for_equivariant(name: str) -> None:
    s = scales_for(name)[0]
    m = build(name, s)
    if not m.spec.equivariant:
        pytest.skip("not translation-equivariant: tiles are blended")
    rng = np.random.default_rng(1)
    x = rng.random((1, 1, 45, 38)).astype(np.float32)
    whole = Pipeline.build(m, s, tile=0, precision="fp32", norm=None)
    tiled = Pipeline.build(m, s, tile=9, precision="fp32", norm=None)
    a = whole.run(x, whole.fit(x))
    b = tiled.run(x, tiled.fit(x))
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)

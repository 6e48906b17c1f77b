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
    """Equivariant nets: the declared halo covers the measured support (safe) and exceeds it by at
    most a small structural slack (a wildly over-declared halo multiplies the tiling work)."""
    s = scales_for(name)[0]
    m = build(name, s)
    spec = m.spec
    if not spec.equivariant:
        pytest.skip("not translation-equivariant: see test_non_equivariant_receptive_field")
    measured = measure_receptive_field(m)
    assert measured is not None, f"{name} declares equivariance but its receptive field is unbounded"
    assert spec.receptive_field >= measured, f"{name}: declared {spec.receptive_field} < measured {measured}"
    slack = 1 + measured // 4
    assert spec.receptive_field <= measured + slack, (
        f"{name}: declared {spec.receptive_field} is far above the measured {measured}"
    )


def phase_support(model: torch.nn.Module, size: int, cells: list[int]) -> int | None:
    """Largest LR reach of the gradient support over several output cells (all phases of a
    non-equivariant net); ``None`` when it touches the border. ``size`` is a multiple of the
    model's size multiple so that no replicate padding feeds the border."""
    import copy

    probe = copy.deepcopy(model).float().eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in probe.parameters():
            fan_in = max(1, p[0].numel()) if p.ndim > 1 else 1
            p.copy_((0.5 + torch.rand(p.shape, generator=gen)) / fan_in)
    s, reach = probe.scale, 0
    for c in cells:
        x = torch.zeros(1, probe.in_channels, size, size, requires_grad=True)
        probe(x + 0.5)[..., c * s : (c + 1) * s, c * s : (c + 1) * s].sum().backward()
        nz = torch.nonzero(x.grad.abs().sum(dim=(0, 1)) > 0)
        if int(nz.min()) == 0 or int(nz.max()) == size - 1:
            return None
        reach = max(reach, int((nz.float() - c).abs().max()))
    return reach


NON_EQUIVARIANT = [n for n in NAMES if not build(n, scales_for(n)[0]).spec.equivariant]


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [(n, {}) for n in NON_EQUIVARIANT]
    + [("sparse_coding", {"overlap": 1})],  # patch stride 2 does not divide ×3: finite RF, blended
)
def test_non_equivariant_receptive_field(name: str, kwargs: dict) -> None:
    """Non-equivariant nets: a one-cell shift of the input must not just shift the output (else
    they should tile exactly instead of blending), and a finite declared halo must cover the
    gradient support at every sub-pixel/window phase."""
    s = 3 if kwargs else scales_for(name)[0]
    torch.manual_seed(0)
    options = {**get_entry(name).tiny, **kwargs}
    m = sciSR.create_model(name, scale=s, in_channels=1, pretrained=False, **options)
    spec = m.spec
    assert not spec.equivariant
    mult = spec.size_multiple
    n = 8 * mult * max(1, 8 // mult)
    x = torch.rand(1, 1, n + 1, n + 1, generator=torch.Generator().manual_seed(2))
    x[..., 0, :] += 20.0  # a strong feature only the first crop sees, far from the compared centre
    with torch.no_grad():  # shift by one LR cell: a different phase of any size multiple
        a = m(x[..., :n, :n])[..., s:, s:]
        b = m(x[..., 1 : n + 1, 1 : n + 1])[..., :-s, :-s]
    lo, hi = a.shape[-1] // 3, 2 * a.shape[-1] // 3
    diff = (a - b)[..., lo:hi, lo:hi].abs().max().item()
    assert diff > 1e-4, f"{name} declares itself non-equivariant but a shift only shifts its output"
    if spec.receptive_field is not None:
        size = 12 * mult * max(1, 4 // mult) + 1 if mult == 1 else 12 * mult * max(1, 4 // mult)
        centre = size // 2
        measured = phase_support(m, size, [centre - 1, centre, centre + 1, centre + 2])
        assert measured is not None and spec.receptive_field >= measured, (
            f"{name}: declared {spec.receptive_field} < measured {measured}"
        )


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

"""Reduced precision must not change the science: bf16 outputs are fp32-grade on real fields.

The fields are the shipped samples (ETOPO5 Alps DEM, CMIP5 near-surface air temperature),
coarsened by block means; the learned model is the shipped ESPCN. ``precision="bf16"`` is asked
for explicitly so the reduced-precision path runs on every CPU (the ``auto`` choice is tested
separately by pretending the CPU has or lacks fast bf16).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import sciSR
from sciSR import engine
from sciSR.data import sample_path
from sciSR.models.registry import get_entry
from sciSR.pipeline import Pipeline
from sciSR.precision import fp32_marked, profile_model


def _block_mean(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape[-2] // s * s, a.shape[-1] // s * s
    a = a[..., :h, :w]
    return a.reshape(*a.shape[:-2], h // s, s, w // s, s).mean(axis=(-3, -1))


def _field(name: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "dem":
            return sciSR.open(sample_path("etopo5_alps.tif"))["band_data"].values[0].astype(np.float32)
        return sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))["tas"].values.astype(np.float32)


def _identical_neighbours(y: np.ndarray) -> float:
    """Fraction of horizontally and vertically adjacent pairs with exactly equal values."""
    pairs = [(np.diff(y, axis=-1) == 0).ravel(), (np.diff(y, axis=-2) == 0).ravel()]
    return float(np.mean(np.concatenate(pairs)))


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("field", ["dem", "tas"])
@pytest.mark.parametrize("scale", [2, 4])
def test_bf16_is_fp32_grade_on_real_fields(field: str, scale: int) -> None:
    truth = _field(field)
    lr = _block_mean(truth, scale)
    truth = truth[..., : lr.shape[-2] * scale, : lr.shape[-1] * scale]
    y32 = sciSR.downscale(lr, model="espcn", scale=scale, precision="fp32")
    y16 = sciSR.downscale(lr, model="espcn", scale=scale, precision="bf16")
    e32, e16 = _rmse(y32, truth), _rmse(y16, truth)
    assert e16 <= 1.01 * e32, (e16, e32)  # error against truth within 1% of fp32's
    assert _identical_neighbours(y16) <= _identical_neighbours(y32) + 0.01  # no terraces
    assert len(np.unique(y16)) >= 0.9 * len(np.unique(y32))
    # no systematic shift: the mean difference is a small fraction of the fp32 error (ESPCN has
    # no skip connection, so bf16-rounded weights of its middle layer shift it by ~3% of it)
    assert abs(float(np.mean(y16.astype(np.float64) - y32))) < 0.05 * e32
    assert _rmse(y16, y32) < 0.15 * e32  # in quadrature this keeps e16 within ~1.1% of e32


def test_whole_bf16_would_terrace_the_dem_which_is_what_the_fp32_layers_prevent() -> None:
    """The test above is sensitive: rounding the fp32 output to bf16 fails its terrace bound."""
    truth = _field("dem")
    lr = _block_mean(truth, 4)
    pipe = Pipeline.build("espcn", 4, precision="fp32")
    z = pipe.run(lr[None, None], pipe.fit(lr[None, None]))[0, 0]
    nz = pipe.fit(lr[None, None])[0]
    rounded = nz.inverse(torch.from_numpy(nz.forward(z)).bfloat16().float().numpy())
    assert _identical_neighbours(rounded) > _identical_neighbours(z) + 0.05


def _learned_models() -> list[str]:
    return [n for n in sciSR.list_models() if get_entry(n).trainable]


def _tiny(name: str, scale: int) -> torch.nn.Module:
    torch.manual_seed(0)
    kw = get_entry(name).tiny or {}
    return sciSR.create_model(name, scale=scale, in_channels=1, pretrained=False, **kw)


def _dem_lr(scale: int) -> np.ndarray:
    lr = _block_mean(_field("dem"), scale)[:24, :32]
    return ((lr - lr.min()) / (lr.max() - lr.min())).astype(np.float32)[None, None]


@pytest.mark.parametrize("name", _learned_models())
def test_every_learned_model_returns_unquantized_output_under_bf16(name: str) -> None:
    try:
        scale, m = 2, _tiny(name, 2)
    except ValueError:  # ×4-only architectures
        scale, m = 4, _tiny(name, 4)
    if not getattr(m, "reduced_precision", True):
        pytest.skip(f"{name} runs in fp32 only")
    x = _dem_lr(scale)
    p32 = Pipeline.build(m, scale, precision="fp32", norm=None, tile=0)
    p16 = Pipeline.build(m, scale, precision="bf16", norm=None, tile=0)
    y32, y16 = p32.run(x, p32.fit(x)), p16.run(x, p16.fit(x))
    marked = fp32_marked(p16.model)
    assert marked, "no layer kept in fp32"
    # a bf16-rounded output has (nearly) every value exactly representable in bf16
    exact = float(np.mean(y16 == torch.from_numpy(y16).bfloat16().float().numpy()))
    assert exact < 0.02, exact
    spread = float(np.std(y32))
    assert _rmse(y16, y32) < 0.05 * spread, (_rmse(y16, y32), spread)


def test_profile_marks_entry_and_exit_convolutions() -> None:
    m = sciSR.create_model("edsr_baseline", scale=4, in_channels=1, pretrained=False)
    prof = profile_model(m, 1, 4)
    names = dict(m.named_modules())
    first, last = names[prof.fp32_layers[0]], names[prof.fp32_layers[-1]]
    assert first.in_channels == 1 and last.out_channels == 1
    # the feature-space body stays in reduced precision: only image-space layers are marked
    assert len(prof.fp32_layers) == 2
    assert prof.activation_bytes_per_px > 4 * 64  # 64 feature maps at fp32, ×16 HR pixels at the tail


def test_user_module_is_not_modified() -> None:
    torch.manual_seed(0)
    m = sciSR.create_model(
        "edsr_baseline", scale=2, in_channels=1, pretrained=False, n_resblocks=2, n_feats=16
    )
    m.train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    ptrs = {k: v.data_ptr() for k, v in m.state_dict().items()}
    x = np.random.default_rng(0).random((20, 22)).astype(np.float32)
    sciSR.downscale(x, model=m, scale=2, precision="bf16")
    assert m.training
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]) and v.data_ptr() == ptrs[k] and v.dtype == before[k].dtype
        assert v.ndim < 4 or v.is_contiguous()  # not converted to channels_last
    assert not fp32_marked(m)
    assert all(not mod._forward_hooks and not mod._forward_pre_hooks for mod in m.modules())


@pytest.mark.parametrize("fast", [True, False])
def test_auto_precision_follows_the_hardware_and_the_work_share(monkeypatch, fast: bool) -> None:
    monkeypatch.setattr(engine, "cpu_has_fast_bf16", lambda: fast)
    x = _dem_lr(2)[0, 0]
    m = sciSR.create_model("edsr_baseline", scale=2, pretrained=False, n_resblocks=4, n_feats=32)
    pipe = Pipeline.build(m, 2, device="cpu")
    assert pipe.engine.precision == ("bf16" if fast else "fp32")
    assert pipe.engine.channels_last == fast
    auto = sciSR.downscale(x, model=m, scale=2, device="cpu")
    ref = sciSR.downscale(x, model=m, scale=2, precision="bf16" if fast else "fp32")
    np.testing.assert_array_equal(auto, ref)
    # ESPCN's image-space layers are a quarter of its work: bf16 would not pay, auto keeps fp32
    assert engine.reduced_share(_tiny("espcn", 4), 1, 4) < engine.MIN_REDUCED_SHARE
    assert Pipeline.build("espcn", 4, device="cpu").engine.precision == "fp32"
    # baselines never run reduced precision
    assert Pipeline.build("bicubic", 4, device="cpu").engine.precision == "fp32"


def test_fp32_only_models_refuse_explicit_bf16_and_run_fp32_on_auto(monkeypatch) -> None:
    monkeypatch.setattr(engine, "cpu_has_fast_bf16", lambda: True)
    m = sciSR.create_model("edsr_baseline", scale=2, pretrained=False, n_resblocks=4, n_feats=32)
    m.reduced_precision = False
    assert Pipeline.build(m, 2, device="cpu").engine.precision == "fp32"
    with pytest.raises(ValueError, match="fp32 only"):
        Pipeline.build(m, 2, precision="bf16")


# ---------------------------------------------------------------------------- hooks and profile units
from torch import nn  # noqa: E402

from sciSR.precision import (  # noqa: E402
    _LOCAL,
    keep_fp32,
    keep_image_layers_fp32,
    release_fp32,
    structure_key,
)


class _Toy(nn.Module):
    """Entry conv, grouped body conv, grouped transposed conv, a channel-mixing linear, exit conv."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(1, 8, 3, padding=1)
        self.body = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2, groups=2)
        self.mix = nn.Linear(8, 8)
        self.tail = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.up(self.body(self.head(x)))
        f = self.mix(f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.tail(f)


def test_profile_counts_multiply_accumulates_of_each_layer_kind() -> None:
    prof = profile_model(_Toy(), 1, 2, probe=16)
    assert prof.fp32_layers == ("head", "tail") and prof.out_channels == 1
    px = 16 * 16
    head = 8 * px * 1 * 9  # output values × input channels per group × kernel taps
    body = 8 * px * 4 * 9
    up = 8 * px * 4 * 4  # transposed: input values × output channels per group × kernel taps
    mix = 8 * (4 * px) * 8  # linear: output values × input features
    tail = 1 * (4 * px) * 8 * 9
    assert prof.reduced_fraction == pytest.approx((body + up + mix) / (head + body + up + mix + tail))
    assert prof.activation_bytes_per_px == pytest.approx(4.0 * 8 * 4)  # 8 maps at ×2, fp32, per LR pixel


def _twin(module: str | None = None, qualname: str | None = None) -> type:
    ns = {"__module__": module or __name__, "__qualname__": qualname or "Twin"}
    return type("Twin", (nn.Sequential,), ns)


def test_structure_key_tells_apart_what_changes_the_forward_pass() -> None:
    def seq(act: type = nn.ReLU, cls: type = nn.Sequential) -> nn.Module:
        torch.manual_seed(0)
        return cls(nn.Conv2d(1, 4, 3), act(), nn.Conv2d(4, 1, 3))

    base = structure_key(seq(), 1, 2)  # a plain module: no config, scale or size_multiple
    other_weights = seq()
    with torch.no_grad():
        other_weights[0].weight.add_(1.0)
    assert structure_key(other_weights, 1, 2) == base
    explicit = seq()
    explicit.size_multiple = 1  # the default, spelled out
    assert structure_key(explicit, 1, 2) == base
    differs = [
        structure_key(seq(), 2, 2),
        structure_key(seq(), 1, 3),
        structure_key(seq(nn.GELU), 1, 2),
        structure_key(seq(cls=_twin()), 1, 2),
        structure_key(seq(cls=_twin(qualname="Other")), 1, 2),
        structure_key(seq(cls=_twin(module="elsewhere")), 1, 2),
    ]
    for attr, value in (("config", {"n_feats": 4}), ("scale", 2), ("size_multiple", 8)):
        m = seq()
        setattr(m, attr, value)
        differs.append(structure_key(m, 1, 2))
    m = seq()
    m.config = {"n_feats": 5}
    differs.append(structure_key(m, 1, 2))
    assert len({base, *differs}) == len(differs) + 1


def _bf16() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_marked_layers_run_fp32_and_autocast_resumes_after_them() -> None:
    torch.manual_seed(0)
    a, b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
    assert keep_fp32([a]) == 1 and keep_fp32([a]) == 0  # marking twice adds no second hook
    assert keep_fp32([a, b]) == 1  # the already marked one is skipped, the next one still marked
    assert keep_fp32([]) == 0
    assert len(a._forward_pre_hooks) == 1 and len(a._forward_hooks) == 1
    c = nn.Conv2d(4, 1, 3, padding=1)
    x = torch.rand(1, 1, 8, 8)
    with _bf16():
        ya = a(x.bfloat16())  # bf16 input cast up
        assert ya.dtype == torch.float32
        yc = c(ya)  # unmarked: autocast is on again after the marked layer
        assert yc.dtype == torch.bfloat16
        yb = b(input=ya.bfloat16())  # keyword input cast up too
        assert yb.dtype == torch.float32
    assert not getattr(_LOCAL, "stack", [])
    assert release_fp32(nn.Sequential(a, b, c)) == 2 and release_fp32(nn.Sequential(a, b, c)) == 0
    assert not a._forward_pre_hooks and not a._forward_hooks and not fp32_marked(nn.Sequential(a, b))
    with _bf16():
        assert a(x).dtype == torch.bfloat16  # released: plain autocast again


class _Picky(nn.Module):
    """Takes an integer index tensor, a Python number and a float tensor; may raise."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.fail = False

    def forward(self, x: torch.Tensor, idx: torch.Tensor, gain: float) -> torch.Tensor:
        if self.fail:
            raise RuntimeError("boom")
        return self.conv(x)[..., idx] * gain


def test_marked_module_passes_integer_and_non_tensor_arguments_through() -> None:
    m = _Picky()
    keep_fp32([m])
    x = torch.rand(1, 1, 4, 6).bfloat16()
    with _bf16():
        y = m(x, torch.tensor([0, 2]), 2.0)  # an index tensor cast to float would fail here
    assert y.dtype == torch.float32 and y.shape == (1, 1, 4, 2)


def test_a_marked_module_that_raises_leaves_autocast_as_it_was() -> None:
    m = _Picky()
    m.fail = True
    keep_fp32([m])
    after = nn.Conv2d(1, 1, 1)
    x = torch.rand(1, 1, 4, 4)
    with _bf16():
        with pytest.raises(RuntimeError, match="boom"):
            m(x, torch.tensor([0]), 1.0)
        assert after(x).dtype == torch.bfloat16  # the fp32 region was closed
    assert not getattr(_LOCAL, "stack", [])


def test_nested_marked_modules() -> None:
    torch.manual_seed(0)
    inner = nn.Conv2d(1, 2, 3, padding=1)
    outer = nn.Sequential(inner, nn.ReLU(), nn.Conv2d(2, 1, 3, padding=1))
    assert keep_fp32([outer, inner]) == 2
    x = torch.rand(1, 1, 6, 6)
    with _bf16():
        y = outer(x.bfloat16())
        assert y.dtype == torch.float32
        assert nn.Conv2d(1, 1, 1)(x).dtype == torch.bfloat16
    ref = nn.Sequential(*outer)  # same layers, unmarked, fp32
    release_fp32(outer)
    torch.testing.assert_close(y, ref(x.bfloat16().float()))
    assert not getattr(_LOCAL, "stack", [])


def test_an_architecture_can_choose_its_own_fp32_layers() -> None:
    class Chooser(_Toy):
        def fp32_modules(self) -> list[nn.Module]:
            return [self.body]

    m = Chooser()
    assert keep_image_layers_fp32(m, 1, 2) == [m.body]
    assert fp32_marked(m) == [m.body]
    plain = _Toy()
    assert keep_image_layers_fp32(plain, 1, 2) == [plain.head, plain.tail]
    assert fp32_marked(plain) == [plain.head, plain.tail]
